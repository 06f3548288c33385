"""The stages that run in the generate env (workflow/envs/generate.yaml), called as the rules call them.

`pipeline.sample` and `pipeline.evaluate` on a tiny random model, HF backend. These run twice in
`make test`: in the project's .venv (the training pin, transformers 5.23) and, from
tests/test_envs.py, in a venv made from generate.yaml's pins minus vLLM (transformers 5.19).
"""
import json
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED = 3


def _config() -> dict:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    for k, v in yaml.safe_load((ROOT / "config/tiny.yaml").read_text()).items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    cfg["sampling"] = {"backend": "hf", "n": 2, "temperature": 0.85, "top_p": 1.0, "max_new_tokens": 8,
                       "batch_size": 4, "shard_size": 2}
    cfg["eval"]["longbench_v1"].update(max_new_tokens=8, batch_size=2, fixture_items=2)
    return cfg


def test_sample_and_evaluate_stages_under_this_envs_transformers(tmp_path, toy_records, tiny_lm_dir):
    from transformers import AutoTokenizer

    from solopo import pipeline
    from solopo.data.contexts import build_contexts, paragraph_pool
    from solopo.eval import longbench_v1

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    rows, _ = build_contexts(toy_records, paragraph_pool(toy_records),
                             lambda s: len(tok(s, add_special_tokens=False)["input_ids"]), {"short": 256, "long": 512}, 0)
    ctx = tmp_path / "contexts.jsonl"
    ctx.write_text("".join(json.dumps(r) + "\n" for r in rows["short"][:3]))
    cfg = _config()

    out = tmp_path / "samples.jsonl"
    pipeline.sample(str(ctx), tiny_lm_dir, str(out), cfg, SEED, str(tmp_path / "sample.log"), {})
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(samples) == 3 and all(len(s["responses"]) == 2 for s in samples)
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    # the manifest records the transformers that produced the samples: the env's own pin
    assert manifest["versions"]["transformers"] == metadata.version("transformers")

    bench = tmp_path / "lb1"
    bench.mkdir()
    longbench_v1.build_fixture(toy_records, bench, {"fixture_items": 2}, seed=0)
    res = tmp_path / "base_longbench_v1.json"
    pipeline.evaluate("longbench_v1", tiny_lm_dir, str(bench), str(res), "base", cfg, SEED, str(tmp_path / "eval.log"), {})
    score = json.loads(res.read_text())
    assert score["benchmark"] == "longbench_v1" and 0.0 <= score["score"] <= 100.0
