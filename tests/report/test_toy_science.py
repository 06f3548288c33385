"""Toy science (issue 15): the statistics by hand, the generated answer, and a reduced experiment
(2 seeds, 4 runs, a few steps and items) through the real driver, report page and plots."""
import json
import math
import random
from pathlib import Path

import pytest

from solopo.report import science as sci

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def test_seed_interval_is_a_t_interval():
    r = sci.seed_interval([1.0, 2.0, 3.0])
    assert r["mean"] == 2.0 and r["sd"] == pytest.approx(1.0)
    assert r["hi"] - r["mean"] == pytest.approx(4.303 / math.sqrt(3))
    assert sci.seed_interval([5.0])["lo"] is None  # one seed: no interval
    assert sci.t975(2) == 4.303 and sci.t975(12) == 2.228 and sci.t975(100) == 1.96


def test_paired_bootstrap_resolves_a_real_gap_and_not_noise():
    rng = random.Random(0)
    base = {f"i{k}": [rng.choice([0.0, 100.0]) for _ in range(3)] for k in range(300)}
    better = {k: [min(100.0, v + 40.0 * (rng.random() < 0.5)) for v in vs] for k, vs in base.items()}
    res = sci.paired_bootstrap(better, base, 1000)
    assert res["resolved"] and res["delta"] > 0 and res["lo"] > 0 and res["p"] < 0.01 and res["n_items"] == 300
    same = sci.paired_bootstrap(base, base, 1000)
    assert same["delta"] == 0 and not same["resolved"] and same["p"] == 1.0
    noisy = {k: [rng.choice([0.0, 100.0]) for _ in range(3)] for k in base}
    res = sci.paired_bootstrap(noisy, base, 1000)
    assert res["lo"] < res["delta"] < res["hi"]
    assert res["resolved"] == (res["lo"] > 0 or res["hi"] < 0)
    # paired: only shared items count
    assert sci.paired_bootstrap({"a": [1.0]}, {"b": [1.0]}) is None


def test_answer_paragraph_follows_the_numbers():
    comps = [{"run": "solo_orpo", "baseline": "orpo_short", "score": "ruler@512", "delta": 6.0, "lo": 2.0, "hi": 10.0,
              "p": 0.004, "resolved": True},
             {"run": "solo_orpo", "baseline": "orpo_long", "score": "ruler@512", "delta": 1.0, "lo": -3.0, "hi": 5.0,
              "p": 0.6, "resolved": False}]
    meta = {"solo_orpo": {"method": "solo_orpo", "lambda": 1.0, "default": True},
            "orpo_short": {"method": "orpo_short"}, "orpo_long": {"method": "orpo_long"}}
    text = sci.answer_paragraph(comps, meta)
    assert "1 are resolved" in text and "better on: ruler@512 vs ORPO-short +6.0" in text
    assert "Not resolved: ruler@512 vs ORPO-long +1.0" in text
    comps[1].update(delta=-6.0, lo=-9.0, hi=-2.0, p=0.001, resolved=True)
    text = sci.answer_paragraph(comps, meta)
    assert "2 are resolved" in text and "worse on: ruler@512 vs ORPO-long -6.0" in text


REDUCED = {
    "data": {"toy": {"train_questions": 6, "dev_questions": 3}},
    "sampling": {"n": 2, "max_new_tokens": 6, "batch_size": 8, "shard_size": 8},
    "pairs": {"num_pairs": 6},
    "train": {"optim": {"epochs": 1, "batch_size": 2, "micro_batch_size": 2}},
    "eval": {"ruler": {"lengths": [256, 384], "num_samples": 1, "max_new_tokens": 6},
             "longbench_v1": {"fixture_items": 1, "max_new_tokens": 6}},
    "science": {"seeds": [0, 1], "jobs": 1, "methods": ["orpo_short", "orpo_long", "solo_orpo"],
                "lambdas": {"solo_orpo": [1.0, 0.0]}, "baselines": ["base", "orpo_short", "orpo_long"],
                "bootstrap_resamples": 200},
}


def _config():
    import yaml

    from solopo.bench.gpu_tiny import _merge

    cfg = {}
    for f in ("config.yaml", "tiny.yaml", "toy_science.yaml"):
        cfg = _merge(cfg, yaml.safe_load((ROOT / "config" / f).read_text()))
    return _merge(cfg, REDUCED)


@pytest.mark.slow
def test_reduced_experiment_writes_the_report(tmp_path):
    from solopo import science
    from solopo.artifacts import read_jsonl, write_jsonl
    from solopo.data.toy_world import generate_records
    from solopo.tiny_model import train_tiny_model

    cfg = _config()
    s = science.settings(cfg)
    # the tiny preset's backbone (its tokenizer and shape), 2 pre-training steps instead of 1,500
    tiny_lm_dir = str(tmp_path / "backbone")
    train_tiny_model(tiny_lm_dir, {**cfg["tiny_model"], "steps": 2, "threads": 1}, cfg["tiny_model"]["seed"])
    work = tmp_path / "science"
    # the shared stage with the random test backbone (samples all wrong), then each question's samples
    # extended with its gold trace and a wrong one, so the pair stage has pairs (a trained backbone has them)
    science.prepare(cfg, s, tiny_lm_dir, work / "shared")
    tm = cfg["tiny_model"]
    recs = {r["id"]: r for r in generate_records(6, cfg["seed"] + 11, {int(k): v for k, v in tm["hop_weights"].items()},
                                                  tm["entities"])}
    for c in ("short", "long"):
        p = work / "shared" / f"samples_{c}.jsonl"
        rows = read_jsonl(p)
        for r in rows:
            gold = recs[r["id"]]["cot"]
            r["responses"] += [gold, gold.rpartition("The answer is:")[0] + "The answer is: nobody"]
        write_jsonl(p, rows)
    out = tmp_path / "report" / "toy_science.md"
    res = science.experiment(cfg, tiny_lm_dir, work, out)
    runs = {"base", "orpo_short", "orpo_long", "solo_orpo", "solo_orpo_lam0"}
    assert set(res["summary"]) == runs
    assert res["keys"] == ["ruler@256", "ruler@384", "ruler", "longbench_v1"]
    for run, row in res["summary"].items():
        assert row["ruler"]["n_seeds"] == (1 if run == "base" else 2)
        if run != "base":
            assert row["train_tokens"] > 0 and row["train_seconds"] > 0 and row["train_steps"] >= 1
    comps = res["comparisons"]
    assert {(c["run"], c["baseline"]) for c in comps} >= {("solo_orpo", "orpo_short"), ("solo_orpo", "orpo_long"),
                                                          ("solo_orpo", "base"), ("solo_orpo_lam0", "solo_orpo")}
    assert all({"delta", "lo", "hi", "p", "resolved", "n_items"} <= set(c) for c in comps)
    md = out.read_text()
    assert md.splitlines()[2] == res["answer"] and res["answer"].startswith("**Answer (generated")
    tuned = "(tuned on the held-out dev split)" if s["lr_tuned_on_dev"] else "NOT tuned on the dev split"
    assert tuned in md and "| SoLo-ORPO (λ=0) |" in md
    for p in res["plots"]:
        assert Path(p).read_bytes()[:8] == PNG
    assert json.loads(Path(str(out) + ".json").read_text())["answer"] == res["answer"]
    # a rerun reuses every finished (run, seed)
    before = {p.name: p.stat().st_mtime_ns for p in (work / "runs").glob("*.json")}
    science.experiment(cfg, tiny_lm_dir, work, out)
    assert {p.name: p.stat().st_mtime_ns for p in (work / "runs").glob("*.json")} == before


def test_estimate_extrapolates_the_profiled_costs():
    from solopo import science

    est = science.estimate(_config(), reps=1)
    assert est["trainings"] == 2 * 4 and est["evaluations"] == 1 + 2 * 4
    assert all(v > 0 for v in est["cpu_s"].values())
    assert est["cpu_s_total"] == pytest.approx(sum(est["cpu_s"].values()), abs=0.2)
    # sampling in one process, the rest shared by the workers
    c = est["cpu_s"]
    assert est["wall_min_estimate"] == pytest.approx((c["sampling"] + (c["training"] + c["evaluation"]) / 2) / 60, abs=0.02)


def test_shared_samples_and_runs_are_not_reused_under_other_settings_or_another_backbone(tmp_path):
    """The shared folder (contexts, samples, fixtures) and each run's key depend on the settings that
    make them and on the backbone's weights: a changed `sampling.n` or a retrained backbone starts afresh."""
    import copy

    from solopo import science

    backbone = tmp_path / "backbone"
    backbone.mkdir()
    (backbone / "config.json").write_text("{}")
    (backbone / "model.safetensors").write_bytes(b"weights-1")
    cfg = {"tiny_model": {}, "data": {}, "sampling": {"n": 8}, "eval": {}, "seed": 0}
    s = {"sample_seed": 0, "eval_seed": 0, "tune": {"dev_items": 50}}
    work = tmp_path / "shared"
    key = science._shared_key(cfg, s, str(backbone))
    science._reset_if_stale(work, key)
    (work / "samples_short.jsonl").write_text("{}\n")
    science._reset_if_stale(work, key)  # same settings: kept
    assert (work / "samples_short.jsonl").exists()
    other = copy.deepcopy(cfg)
    other["sampling"]["n"] = 4
    assert science._shared_key(other, s, str(backbone)) != key
    science._reset_if_stale(work, science._shared_key(other, s, str(backbone)))
    assert not (work / "samples_short.jsonl").exists()  # other settings: rebuilt
    job = {"run": "orpo_long", "method": "orpo_long", "lambda": None, "seed": 0, "lr": 1e-4, "backbone": str(backbone)}
    before = science._job_key(cfg, job)
    (backbone / "model.safetensors").write_bytes(b"weights-2")
    science._backbone_digest.cache_clear()
    assert science._shared_key(cfg, s, str(backbone)) != key and science._job_key(cfg, job) != before
    (work / "key.txt").unlink()
    (work / "samples_long.jsonl").write_text("{}\n")
    science._reset_if_stale(work, key)  # no stamp: made by an older version, not trusted
    assert not (work / "samples_long.jsonl").exists() and (work / "key.txt").read_text() == key
