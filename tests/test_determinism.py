"""Determinism: the same config twice gives the same bytes.

The reduced tiny config of tests/test_pipeline_e2e.py, run in two fresh folders (jobs as
threads of one Snakemake process, two at a time, as the local profile runs them), must give
byte-identical data, contexts, samples, pairs, datasets, reference log-probs, eval JSONs and
predictions, and identical model weights. Manifests (wall times, timestamps) and the tiny
model's pre-training statistics (seconds) are the only files allowed to differ.

Also: the first import of transformers in two job threads at once used to fail with
`ImportError: cannot import name 'AutoConfig' from 'transformers'` about one run in two
(model loads and tokenizer loads now import under `solopo.runtime.MODEL_LOAD_LOCK`).
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.reduced_pipeline import ENV, comparable_files, run_reduced

# files whose content legitimately changes from run to run


def _run(workdir: Path) -> None:
    out = run_reduced(workdir, "all")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]


@pytest.mark.slow
def test_same_config_twice_gives_identical_artifacts(tmp_path, reduced_tree):
    # a: the session's reduced tree (tests/conftest.py), built by the same run_reduced call in its own fresh folder
    a, b = reduced_tree, tmp_path / "b"
    b.mkdir()
    _run(b)
    fa, fb = comparable_files(a / "results"), comparable_files(b / "results")
    assert fa.keys() == fb.keys()
    for must in ("pairs/tiny/pairs.jsonl", "samples/tiny/short.jsonl", "samples/tiny/long.jsonl",
                 "datasets/tiny/solo.jsonl", "eval/solo_orpo_ruler.json", "eval/base_longbench_v1.json",
                 "train/solo_orpo/model/model.safetensors"):
        assert must in fa, must
    differ = [name for name in fa if fa[name].read_bytes() != fb[name].read_bytes()]
    assert differ == [], f"not byte-identical across two runs: {differ}"


RACE = textwrap.dedent("""
    import sys, threading
    import torch  # imported at Snakefile parse time, before any job thread starts
    from solopo.generate.hf import load_model_and_tokenizer, load_tokenizer

    model = sys.argv[1]
    barrier, errors = threading.Barrier(3), []

    def job(i):
        barrier.wait()
        try:
            load_model_and_tokenizer(model, "cpu", "float32") if i else load_tokenizer(model)
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=job, args=(i,)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print("ERRORS", errors)
""")


def test_concurrent_first_transformers_import_in_job_threads(tiny_lm_dir, tmp_path):
    (tmp_path / "race.py").write_text(RACE)
    for _ in range(2):  # the unguarded import failed about every second fresh process
        out = subprocess.run([sys.executable, str(tmp_path / "race.py"), tiny_lm_dir], capture_output=True, text=True,
                             timeout=300, env=ENV)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "ERRORS []" in out.stdout, out.stdout[-3000:]
