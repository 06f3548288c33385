"""Interruptions: a real SIGKILL during sampling, training and evaluation, then a rerun.

Each job runs in a child process (a small script calling the `solopo.pipeline` function
of the Snakemake rule, on a tiny random model) that is killed with SIGKILL as soon as a
progress marker appears. The checks: nothing that looks finished is left behind;
sampling resumes from its shard file and training from its checkpoint; the rerun's
artifacts equal those of an uninterrupted run (bytes of the samples JSONL and eval JSON,
every tensor of model.safetensors). A rerun after a config change must not resume from
the other config's shards or checkpoints. The last test kills a whole `snakemake` run
(process group) mid-job and reruns it with the local profile.

The child scripts slow each unit of work down by a fraction of a second (a wrapper
around `generate` / `_save_checkpoint`), so that the kill reliably lands mid-job. Children
and this process use one torch thread (`OMP_NUM_THREADS=1`): equal settings on both sides
of a comparison, and on a busy 2-core machine two spinning OpenMP threads make the tiny
model ~50x slower.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SEED = 7
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config() -> dict:
    """config.yaml + tiny.yaml, merged the way Snakemake merges --configfile."""
    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    return merge(yaml.safe_load((ROOT / "config/config.yaml").read_text()),
                 yaml.safe_load((ROOT / "config/tiny.yaml").read_text()))


CHILD = r'''
import json, sys, time
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
delay, marker = spec["delay"], Path(spec["marker"])
count = [0]


def slowed(fn):
    def wrapper(*a, **k):
        out = fn(*a, **k)
        count[0] += 1
        marker.write_text(str(count[0]))  # progress marker: units of work done
        time.sleep(delay)
        return out
    return wrapper


import solopo.generate.hf as hf
import solopo.train.trainer as trainer
from solopo import pipeline

hf.HFBackend.generate = slowed(hf.HFBackend.generate)
trainer._save_checkpoint = slowed(trainer._save_checkpoint)
getattr(pipeline, spec["fn"])(*spec["args"])
'''


def _spawn(workdir: Path, fn: str, args: list, delay: float = 0.3) -> tuple[subprocess.Popen, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / ".progress"
    (workdir / "child.py").write_text(CHILD)
    (workdir / "spec.json").write_text(json.dumps({"fn": fn, "args": args, "delay": delay, "marker": str(marker)}))
    out = open(workdir / "child.out", "w")
    proc = subprocess.Popen([sys.executable, "child.py", "spec.json"], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, env=ENV)
    return proc, marker


def _kill_when(proc: subprocess.Popen, ready, what: str, log: Path, timeout: float = 240) -> None:
    """SIGKILL the child's whole process group as soon as `ready()`; fail if it ends first."""
    t0 = time.time()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the job ended (rc {proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.time() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _progress(marker: Path) -> int:
    try:
        return int(marker.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _finished_looking(folder: Path) -> list[str]:
    """Files an interrupted job must not leave: anything not hidden, partial, or a log/child file."""
    keep = (".partial", ".partial.key", ".log", "child.py", "spec.json", "child.out", "contexts.jsonl", "rows.jsonl")
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and not p.name.endswith(keep) and "checkpoints" not in p.parts)


# --------------------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def contexts_rows(toy_records, tiny_lm_dir):
    from transformers import AutoTokenizer

    from solopo.data.contexts import build_contexts, paragraph_pool

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    out, _ = build_contexts(toy_records, paragraph_pool(toy_records),
                            lambda s: len(tok(s, add_special_tokens=False)["input_ids"]), {"short": 256, "long": 512}, 0)
    return out["short"][:8]


def _sampling_cfg(**over) -> dict:
    cfg = _config()
    cfg["sampling"] = {"backend": "hf", "n": 2, "temperature": 0.85, "top_p": 1.0, "max_new_tokens": 16,
                       "batch_size": 4, "shard_size": 2, **over}
    return cfg


def _write_rows(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _sample_here(folder: Path, rows, model, cfg) -> Path:
    from solopo import pipeline

    ctx = _write_rows(folder / "contexts.jsonl", rows)
    out = folder / "samples.jsonl"
    pipeline.sample(ctx, model, str(out), cfg, SEED, str(folder / "sample.log"), {})
    return out


def test_sampling_killed_resumes_from_its_shards(tmp_path, contexts_rows, tiny_lm_dir):
    cfg = _sampling_cfg()
    reference = _sample_here(tmp_path / "ref", contexts_rows, tiny_lm_dir, cfg)

    job = tmp_path / "job"
    ctx = _write_rows(job / "contexts.jsonl", contexts_rows)
    out = job / "samples.jsonl"
    partial = job / "samples.jsonl.tmp-samples.partial"  # the pipeline's stable shard file
    proc, marker = _spawn(job, "sample", [ctx, tiny_lm_dir, str(out), cfg, SEED, str(job / "sample.log"), {}])
    _kill_when(proc, lambda: _progress(marker) >= 3, "three sampled shards", job / "child.out")
    assert partial.exists() and len(partial.read_text().splitlines()) >= 4
    assert _finished_looking(job) == [], "an interrupted sampling job left a finished-looking file"

    _sample_here(job, contexts_rows, tiny_lm_dir, cfg)
    resumed = re.search(r"resuming sampling from \S+: (\d+) of (\d+) prompts already sampled",
                        (job / "sample.log").read_text())
    assert resumed and int(resumed.group(1)) >= 4 and int(resumed.group(2)) == len(contexts_rows)
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists() and (job / "samples.jsonl.manifest.json").exists()


def test_sampling_does_not_resume_shards_of_other_settings(tmp_path, contexts_rows, tiny_lm_dir):
    """Killed, then the config changes (temperature): the old shards must be discarded."""
    job = tmp_path / "job"
    ctx = _write_rows(job / "contexts.jsonl", contexts_rows)
    out = job / "samples.jsonl"
    proc, marker = _spawn(job, "sample", [ctx, tiny_lm_dir, str(out), _sampling_cfg(), SEED, str(job / "a.log"), {}])
    _kill_when(proc, lambda: _progress(marker) >= 2, "two sampled shards", job / "child.out")
    hot = _sampling_cfg(temperature=1.5)
    _sample_here(job, contexts_rows, tiny_lm_dir, hot)
    reference = _sample_here(tmp_path / "ref", contexts_rows, tiny_lm_dir, hot)
    assert out.read_bytes() == reference.read_bytes()


# --------------------------------------------------------------------------- training


def _train_rows(n=16):
    return [{"id": f"q{i}", "x": f"Question {i} short ?", "x_long": f"Many documents here . Question {i} long ?",
             "y_w": f"right answer {i} . The answer is: A{i}", "y_l": "wrong . The answer is: B"} for i in range(n)]


def _train_cfg(lr=1e-3) -> dict:
    cfg = _config()
    cfg["train"]["optim"].update(learning_rate=lr, sft_learning_rate=lr, batch_size=2, micro_batch_size=1,
                                 save_steps=1, max_length=128, dtype="float32",
                                 keep_checkpoints=0)  # keep all: the tests list every checkpoint
    cfg["train"]["select_checkpoint"] = "final"
    cfg["train"]["deepspeed"] = "none"
    return cfg


RUN = "solo_orpo"


def _train_args(folder: Path, model: str, cfg: dict) -> list:
    data = _write_rows(folder / "rows.jsonl", _train_rows())
    return [data, None, model, f"results/train/{RUN}/model", RUN, "solo_orpo", 1.0, cfg, SEED, "train.log"]


def _train_here(folder: Path, model: str, cfg: dict, monkeypatch) -> Path:
    from solopo import pipeline

    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)  # checkpoints live under results/checkpoints/<run>, relative to the workdir
    pipeline.train(*_train_args(folder, model, cfg))
    return folder / f"results/train/{RUN}/model"


def _assert_same_weights(a: Path, b: Path, same=True):
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert ta.keys() == tb.keys()
    equal = all(torch.equal(ta[k], tb[k]) for k in ta)
    assert equal == same, "weights differ" if same else "weights are identical"


def test_training_killed_resumes_from_its_checkpoint(tmp_path, tiny_lm_dir, monkeypatch):
    cfg = _train_cfg()
    reference = _train_here(tmp_path / "ref", tiny_lm_dir, cfg, monkeypatch)

    job = tmp_path / "job"
    job.mkdir()
    proc, marker = _spawn(job, "train", _train_args(job, tiny_lm_dir, cfg), delay=0.5)
    _kill_when(proc, lambda: _progress(marker) >= 3, "checkpoint step-3", job / "child.out")
    ckpt = job / "results/checkpoints" / RUN
    assert (ckpt / "step-3" / "COMPLETE").exists()
    assert not (job / f"results/train/{RUN}/model").exists()
    assert _finished_looking(job) == [], "an interrupted training job left a finished-looking file"

    model = _train_here(job, tiny_lm_dir, cfg, monkeypatch)
    stats = json.loads((model / "manifest.json").read_text())["stats"]
    assert stats["resumed_from_step"] >= 3 and stats["steps"] == 8
    _assert_same_weights(model, reference)
    assert (model / "train_log.jsonl").read_bytes() == (reference / "train_log.jsonl").read_bytes()


def test_training_does_not_resume_checkpoints_of_other_settings(tmp_path, tiny_lm_dir, monkeypatch):
    """A finished run's checkpoints, then a new learning rate (Snakemake reruns the job on the
    params change): the new run must start from step 0, not from the old run's last checkpoint.
    The same when the training data changes (new pairs)."""
    job = tmp_path / "job"
    old = _train_here(job, tiny_lm_dir, _train_cfg(1e-3), monkeypatch)
    shutil.rmtree(old)  # Snakemake removes the output of a job it reruns
    new = _train_here(job, tiny_lm_dir, _train_cfg(3e-3), monkeypatch)
    assert json.loads((new / "manifest.json").read_text())["stats"]["resumed_from_step"] == 0
    _assert_same_weights(new, _train_here(tmp_path / "ref", tiny_lm_dir, _train_cfg(3e-3), monkeypatch))

    from solopo import pipeline

    shutil.rmtree(new)
    monkeypatch.chdir(job)
    args = _train_args(job, tiny_lm_dir, _train_cfg(3e-3))
    _write_rows(job / "rows.jsonl", _train_rows(12))  # new pairs: 6 steps instead of 8
    pipeline.train(*args)
    stats = json.loads((new / "manifest.json").read_text())["stats"]
    assert stats["resumed_from_step"] == 0 and stats["steps"] == 6
    assert stats["checkpoints"] == [f"step-{i}" for i in range(1, 7)]


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def lb1_data(toy_records, tmp_path_factory):
    from solopo.eval import longbench_v1

    folder = tmp_path_factory.mktemp("lb1")
    longbench_v1.build_fixture(toy_records, folder, {"fixture_items": 2}, seed=0)
    return str(folder)


def _eval_cfg() -> dict:
    cfg = _config()
    cfg["eval"]["longbench_v1"].update(max_new_tokens=24, batch_size=2, fixture_items=2)
    return cfg


def test_evaluation_killed_then_rerun_equals_uninterrupted(tmp_path, tiny_lm_dir, lb1_data):
    from solopo import pipeline

    cfg = _eval_cfg()
    ref = tmp_path / "ref"
    ref.mkdir()
    pipeline.evaluate("longbench_v1", tiny_lm_dir, lb1_data, str(ref / "base_longbench_v1.json"), "base", cfg, SEED,
                      str(ref / "eval.log"), {})

    job = tmp_path / "job"
    out = job / "base_longbench_v1.json"
    args = ["longbench_v1", tiny_lm_dir, lb1_data, str(out), "base", cfg, SEED, str(job / "eval.log"), {}]
    proc, marker = _spawn(job, "evaluate", args)
    _kill_when(proc, lambda: _progress(marker) >= 2, "two generated batches", job / "child.out")
    assert _finished_looking(job) == [], "an interrupted evaluation left a finished-looking file"
    # the finished batches survive the kill (solopo.partial): the job key, then one line per batch
    partial = job / "base_longbench_v1.json.partial"
    kept = len(partial.read_text().splitlines()) - 1
    assert kept >= 1

    pipeline.evaluate(*args)
    reused = re.search(r"reused (\d+) finished generation piece\(s\)", (job / "eval.log").read_text())
    assert reused and int(reused.group(1)) >= kept, (job / "eval.log").read_text()[-2000:]
    for name in ("base_longbench_v1.json", "base_longbench_v1.predictions.jsonl"):
        assert (job / name).read_bytes() == (ref / name).read_bytes(), name
    assert json.loads(out.read_text())["n"] == 12
    assert not partial.exists()


# --------------------------------------------------------------------------- through Snakemake

# a 4-step backbone answers in no format yet: the quality floors are off, this is about interruptions
SMALL = """
tiny_model: {steps: 4}
data: {toy: {train_questions: 16, dev_questions: 12}}
sampling: {shard_size: 2}
pairs: {min_answer_format_rate: 0, min_pair_yield: 0}
train: {methods: [sft_short], lambdas: {}}
eval: {benchmarks: [longbench_v1], longbench_v1: {fixture_items: 2}}
"""
TARGETS = ["results/pairs/tiny/pairs.jsonl", "results/eval/base_longbench_v1.json"]


def _snakemake(workdir: Path, *extra: str) -> subprocess.Popen:
    (workdir / "small.yaml").write_text(SMALL)
    cmd = [SNAKEMAKE, *extra, *TARGETS, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--profile", str(ROOT / "profiles/local"), "--configfile", str(ROOT / "config/tiny.yaml"),
           str(workdir / "small.yaml")]
    return subprocess.Popen(cmd, stdout=open(workdir / "snakemake.out", "a"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=ENV)


def _run_to_end(workdir: Path, *extra: str) -> str:
    start = (workdir / "snakemake.out").stat().st_size if (workdir / "snakemake.out").exists() else 0
    rc = _snakemake(workdir, *extra).wait(timeout=900)
    text = (workdir / "snakemake.out").read_text()[start:]
    assert rc == 0, text[-4000:]
    return text


@pytest.mark.slow
def test_snakemake_killed_mid_sampling_then_rerun(tmp_path):
    ref, job = tmp_path / "ref", tmp_path / "job"
    ref.mkdir(), job.mkdir()
    _run_to_end(ref)

    proc = _snakemake(job)
    samples = job / "results/samples/tiny"

    def mid_sampling():
        return any(len(p.read_text().splitlines()) >= 2 for p in samples.glob("*.partial")) if samples.exists() else False

    _kill_when(proc, mid_sampling, "a sampled shard", job / "snakemake.out", timeout=600)
    killed = {p.name for p in samples.glob("*.partial")}
    for ctx in ("short", "long"):  # a sample file that exists must be the finished one
        f = samples / f"{ctx}.jsonl"
        if f.exists():
            assert f.read_bytes() == (ref / "results/samples/tiny" / f.name).read_bytes()
    assert not (job / "results/pairs/tiny/pairs.jsonl").exists()

    # A SIGKILLed snakemake leaves its lock: the rerun refuses until --unlock (Snakemake cannot
    # tell a dead run from a live one). The killed job's output was never renamed into place, so
    # the rerun sees it as missing (rerun-incomplete, set by the local profile, would also cover
    # an output that exists) and the job resumes from its shard file.
    locked = _snakemake(job)
    assert locked.wait(timeout=300) != 0
    assert "Error: Directory cannot be locked." in (job / "snakemake.out").read_text()
    _run_to_end(job, "--unlock")
    rerun = _run_to_end(job)
    for name in killed:
        assert f"reason: Missing output files: results/samples/tiny/{name.split('.')[0]}.jsonl" in rerun, rerun[-3000:]
    for name in killed:
        ctx = name.split(".")[0]
        log = (job / f"logs/sample/tiny_{ctx}.log").read_text()
        assert re.search(r"resuming sampling from \S+: [1-9]\d* of 16 prompts", log), log[-2000:]
    files = ["results/data/musique_train.jsonl", "results/contexts/tiny/short.jsonl", "results/contexts/tiny/long.jsonl",
             "results/samples/tiny/short.jsonl", "results/samples/tiny/long.jsonl", "results/pairs/tiny/pairs.jsonl",
             "results/pairs/tiny/pair_stats.json", "results/eval/base_longbench_v1.json",
             "results/eval/base_longbench_v1.predictions.jsonl"]
    for f in files:
        assert (job / f).read_bytes() == (ref / f).read_bytes(), f
    assert not list(samples.glob("*.partial"))


# --------------------------------------------------------------------------- a missing GPU

NO_GPU = ("device 'cuda' was requested but no CUDA GPU is visible (torch.cuda.is_available() is False); "
          "use the tiny preset on CPU or run on a GPU node")


def test_missing_gpu_fails_at_once_with_a_clear_message(monkeypatch, tiny_lm_dir, tmp_path):
    import torch

    from solopo import pipeline
    from solopo.generate.hf import load_model_and_tokenizer
    from solopo.runtime import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine that has one
    assert pick_device("auto") == "cpu"
    for call in (lambda: pick_device("cuda"), lambda: load_model_and_tokenizer(tiny_lm_dir, "cuda"),
                 lambda: pipeline.launch_deepspeed("d", None, tiny_lm_dir, tmp_path / "o", tmp_path / "c", "sft_short",
                                                   None, None, 0, "zero3", str(tmp_path / "log"))):
        with pytest.raises(RuntimeError) as e:
            call()
        assert str(e.value) == NO_GPU
    with pytest.raises(RuntimeError, match=r"^device 'cuda:1' was requested but no CUDA GPU is visible"):
        pick_device("cuda:1")
