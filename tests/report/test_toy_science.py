"""The seeds page (toy science): the statistics by hand, the generated answer, the records read from
the pipeline's artifacts, and a reduced toy-science experiment (2 seeds, 3 runs, a few steps and items)
produced by the workflow's own DAG (train/evaluate rules, report rule), in the test command."""
import json
import math
import os
import random
import subprocess
import sys
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


def _write_eval(root: Path, run: str, bench: str, preds: list[dict], primary: str = "extracted") -> str:
    path = root / f"{run}_{bench}.json"
    path.write_text(json.dumps({"benchmark": bench, "run": run, "score": 1.0, "settings": {"primary": primary}}))
    Path(str(path).replace(".json", ".predictions.jsonl")).write_text("".join(json.dumps(p) + "\n" for p in preds))
    return str(path)


def test_records_come_from_the_eval_predictions_and_the_train_manifest(tmp_path):
    """Each (run, seed) record: per-item scores from the predictions (RULER by its primary metric),
    the training cost from the model folder's manifest, the seed and λ from the run table."""
    ruler = [{"target_length": 256, "set": "squad", "index": 0, "correct_extracted": True, "correct_whole_output": False},
             {"target_length": 512, "set": "musique", "index": 3, "correct_extracted": False, "correct_whole_output": True}]
    lbv1 = [{"dataset": "qasper", "id": "q1", "score": 0.25}]
    model = tmp_path / "train" / "solo_orpo@s1" / "model"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text(json.dumps({"stats": {"train_seconds": 3.5, "steps": 4, "tokens": 900,
                                                               "final_loss": 0.7, "examples": 16}}))
    evals = [_write_eval(tmp_path, "solo_orpo@s1", "ruler", ruler), _write_eval(tmp_path, "solo_orpo@s1", "longbench_v1", lbv1),
             _write_eval(tmp_path, "base", "ruler", ruler, primary="whole_output")]
    meta = {"solo_orpo@s1": {"run": "solo_orpo", "seed": 1, "method": "solo_orpo", "lambda": 1.0, "default": True},
            "base": {"run": "base", "seed": None, "method": "base", "lambda": None, "default": True}}
    recs = sci.dag_records(evals, {"solo_orpo@s1": str(model)}, meta)
    base, solo = recs
    assert solo["run"] == "solo_orpo" and solo["seed"] == 1 and solo["lambda"] == 1.0
    assert solo["eval"]["ruler"]["items"] == {"ruler|256|squad|0": 100.0, "ruler|512|musique|3": 0.0}
    assert base["eval"]["ruler"]["items"] == {"ruler|256|squad|0": 0.0, "ruler|512|musique|3": 100.0}
    assert solo["eval"]["longbench_v1"]["items"] == {"lbv1|all|qasper|q1": 0.25}
    assert solo["train"] == {"seconds": 3.5, "steps": 4, "tokens": 900, "final_loss": 0.7, "rows": 16}
    assert base["train"] is None
    assert set(sci.summary(sci.load_runs(recs))["solo_orpo"]) >= {"ruler@256", "ruler@512", "ruler", "longbench_v1"}
    with pytest.raises(ValueError, match="run 'orpo_long' is not in the config's run table"):
        sci.dag_records([_write_eval(tmp_path, "orpo_long", "ruler", ruler)], {}, meta)


def test_a_seeds_page_without_per_item_suites_stops_with_one_line(tmp_path):
    """More than one seed but eval.benchmarks without RULER or LongBench v1: no paired statistics can
    be computed, and the page job says so in one line instead of writing an empty page."""
    settings = {"title": "t", "learning_rates": {}, "lr_tuned_on_dev": False, "seeds": [0, 1], "baselines": ["base"],
                "primary": "solo_orpo", "bootstrap_resamples": 200}
    with pytest.raises(ValueError, match=r"^eval.benchmarks: the seeds page needs per-item scores of ruler or longbench_v1"):
        sci.write_seeds_page([], {}, str(tmp_path / "seeds.md"), {}, settings)
    assert not (tmp_path / "seeds.md").exists()


def test_the_seeds_meta_names_every_run_and_seed():
    from solopo.config import validate_config
    from solopo.report.provenance import load_config

    cfg = load_config([ROOT / "config/tiny.yaml", ROOT / "config/toy_science.yaml"], ROOT / "config/config.yaml")
    validate_config(cfg)
    meta = sci.seeds_meta(cfg)
    assert meta["solo_orpo_lam0.3@s2"] == {"run": "solo_orpo_lam0.3", "seed": 2, "method": "solo_orpo", "lambda": 0.3,
                                           "default": False}
    assert meta["orpo_long"]["seed"] == 0 and meta["base"]["seed"] is None and "base@s1" not in meta
    assert len(meta) == 1 + 3 * 13  # base once; 13 trained runs x 3 seeds
    assert meta["solo_orpo_sg_lam3.0"]["method"] == "solo_orpo_sg"
    settings = sci.page_settings(cfg)
    assert set(settings["learning_rates"]) == {"sft", "po", "solo"} and settings["seeds"] == [0, 1, 2]
    assert settings["headroom_runs"] == ["sft_long", "orpo_long"]
    assert settings["primary"] == "solo_orpo" and "orpo_expand" in settings["baselines"]


# The reduced toy-science preset: the tiny backbone at 60 pre-training steps (as the reduced e2e run:
# near chance, but its samples give pairs), 24 questions, 2 seeds, ORPO-short and SoLo-ORPO at λ 1 and 0.
SMALL = """
tiny_model: {steps: 60, threads: 1}   # one thread: two spin-wait on a loaded 2-core machine
data: {toy: {train_questions: 24, dev_questions: 12}}
sampling: {batch_size: 16, shard_size: 16}
pairs: {num_pairs: 5000}
train:
  methods: [orpo_short, solo_orpo]
  lambdas: {solo_orpo: [1.0, 0.0]}
  seeds: [0, 1]
  optim: {epochs: 1, batch_size: 4, micro_batch_size: 4}
eval:
  benchmarks: [ruler, longbench_v1]   # the preset scores RULER only; LongBench v1 checks the key order
  ruler: {lengths: [256, 512], num_samples: 2, batch_size: 8}
  longbench_v1: {fixture_items: 1, batch_size: 8}
report: {baselines: [base, orpo_short], bootstrap_resamples: 200}
"""


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([str(Path(sys.executable).parent / "snakemake"), "toy_science", *args, "--snakefile",
                           str(ROOT / "Snakefile"), "--directory", str(work), "--profile", str(ROOT / "profiles/local"),
                           "--configfile", str(ROOT / "config/tiny.yaml"), str(ROOT / "config/toy_science.yaml"),
                           str(work / "small.yaml")], capture_output=True, text=True, timeout=1200, env=env, check=False)


@pytest.mark.slow
def test_reduced_toy_science_page_is_made_by_the_dag(tmp_path):
    (tmp_path / "small.yaml").write_text(SMALL)
    out = _snakemake(tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    res = json.loads((tmp_path / "results/report/seeds.md.json").read_text())
    runs = {"base", "orpo_short", "solo_orpo", "solo_orpo_lam0.0"}
    assert set(res["summary"]) == runs
    assert res["keys"] == ["ruler@256", "ruler@512", "ruler", "longbench_v1"]
    for run, row in res["summary"].items():
        assert row["seeds"] == ([None] if run == "base" else [0, 1])
        assert row["ruler"]["n_seeds"] == (1 if run == "base" else 2)
        if run != "base":  # two seeds: a t-interval around the mean; the cost from the train manifests
            assert row["ruler"]["lo"] <= row["ruler"]["mean"] <= row["ruler"]["hi"]
            assert row["train_tokens"] > 0 and row["train_seconds"] > 0 and row["train_steps"] >= 1
    # one training and one evaluation per (run, seed), the first seed under the plain names
    for run in runs - {"base"}:
        for name in (run, f"{run}@s1"):
            assert (tmp_path / f"results/train/{name}/model/model.safetensors").exists()
            assert (tmp_path / f"results/eval/{name}_ruler.json").exists()
    assert (tmp_path / "results/pairs/tiny@s1/pair_stats.json").exists()
    assert sorted(p.name for p in (tmp_path / "results/samples/tiny").glob("*.jsonl")) == ["long.jsonl", "short.jsonl"]
    comps = {(c["run"], c["baseline"]) for c in res["comparisons"]}
    assert comps >= {("solo_orpo", "base"), ("solo_orpo", "orpo_short"), ("solo_orpo_lam0.0", "solo_orpo")}
    assert all(c["n_items"] > 0 and {"delta", "lo", "hi", "p", "resolved"} <= set(c) for c in res["comparisons"])
    md = (tmp_path / "results/report/seeds.md").read_text()
    assert md.startswith("# Toy science: does short-to-long alignment help on the toy world?")
    assert res["answer"] in md and "2 seeds" in res["answer"] and "| SoLo-ORPO (λ=0) |" in md
    # the findings open the page: no SFT-long/ORPO-long here, so the headroom is not checked, and it says so
    assert md.splitlines()[2].startswith("**Headroom: not checked**") and not res["headroom"]["checked"]
    # the first seed's SoLo-RA run at λ > 0 gives the RA-mechanism plot and its logged gradients
    assert "results/report/seeds_ra_mechanism.png" in res["plots"]
    assert set(res["ra_gradients"]) == {"solo_orpo"} and res["ra_gradients"]["solo_orpo"]["grad_short"] > 0
    for p in res["plots"]:
        assert Path(p).name.startswith("seeds_") and (tmp_path / "results/report" / Path(p).name).read_bytes()[:8] == PNG
    # nothing left to do: the DAG is up to date
    again = _snakemake(tmp_path, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
