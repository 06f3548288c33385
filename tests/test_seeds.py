"""Seeds are a dimension of the DAG (train.seeds): run names and paths, config slices, and what
Snakemake plans (its own planning, in-process: tests/snakemake_plan.py) when a seed is added."""
from __future__ import annotations

import copy
import json

import pytest

from solopo import slices
from solopo.config import (
    ConfigError,
    Run,
    run_table,
    seeded_runs,
    split_seed_tag,
    train_seeds,
    validate_config,
)
from solopo.report.provenance import Expected, load_config
from tests.snakemake_plan import ROOT, build_tree, plan


def _tiny() -> dict:
    cfg = load_config([ROOT / "config/tiny.yaml"], ROOT / "config/config.yaml")
    validate_config(cfg)
    return cfg


def _toy(seeds: list[int]) -> dict:
    """The toy-science preset with fewer runs (every run of a method plans alike)."""
    cfg = load_config([ROOT / "config/tiny.yaml", ROOT / "config/toy_science.yaml"], ROOT / "config/config.yaml")
    cfg["train"].update({"methods": ["orpo_short", "solo_orpo"], "lambdas": {"solo_orpo": [1.0, 0.0]}, "seeds": seeds})
    cfg["report"]["baselines"] = ["base", "orpo_short"]
    cfg["report"]["tune"].update(grid=[1.0e-4, 2.0e-4, 5.0e-4], probes=["sft_long", "orpo_long", "solo_orpo"])
    validate_config(cfg)
    return cfg


def test_the_default_seed_keeps_every_run_name_and_slice():
    """One seed (the default, or train.seeds = [seed]): the run table, the pair and training slices
    are exactly those of a config without train.seeds, so no artifact path or params change."""
    cfg = _tiny()
    assert "seeds" not in cfg["train"] and train_seeds(cfg) == [cfg["seed"]]
    assert seeded_runs(cfg) == run_table(cfg)
    explicit = copy.deepcopy(cfg)
    explicit["train"]["seeds"] = [cfg["seed"]]
    run = run_table(cfg)["solo_orpo"]
    assert slices.train(explicit, run) == slices.train(cfg, run)
    assert slices.pairs(explicit, "tiny") == slices.pairs(cfg, "tiny")
    assert seeded_runs(explicit) == run_table(cfg)
    # and the slices hold no trace of train.seeds (a params change would rerun every training)
    t = slices.train(cfg, run)
    assert t["seed"] == cfg["seed"] and set(t) == {"seed", "train", "method", "lambda", "backbone"}
    assert "seeds" not in t["train"] and "seeds" not in slices.pairs(explicit, "tiny").get("train", {})


def test_further_seeds_add_tagged_runs_with_their_own_seed():
    cfg = _tiny()
    cfg["train"]["seeds"] = [7, 1]
    runs = seeded_runs(cfg)
    assert runs["solo_orpo@s1"] == Run("solo_orpo@s1", "tiny", "solo_orpo", 1.0, {}, 1)
    assert "base@s1" not in runs  # the untrained backbone is evaluated once
    assert set(runs) == set(run_table(cfg)) | {f"{n}@s1" for n, r in run_table(cfg).items() if r.method != "base"}
    # the first seed keeps the plain names and trains (and draws its pairs) with seeds[0]
    assert slices.train(cfg, runs["solo_orpo"])["seed"] == 7 and slices.pairs(cfg, "tiny")["seed"] == 7
    assert slices.train(cfg, runs["solo_orpo@s1"])["seed"] == 1 and slices.pairs(cfg, "tiny", 1)["seed"] == 1
    # the rest of a slice is the first seed's: the seed is the only difference between two seeds' runs
    a, b = slices.train(cfg, runs["solo_orpo"]), slices.train(cfg, runs["solo_orpo@s1"])
    assert {k: v for k, v in a.items() if k != "seed"} == {k: v for k, v in b.items() if k != "seed"}
    assert split_seed_tag("tiny@s12") == ("tiny", 12) and split_seed_tag("tiny") == ("tiny", None)
    # `solopo check` expects the same slices for the tagged paths
    exp = Expected(cfg)
    assert exp.expected("results/pairs/tiny@s1/pairs.jsonl")[1] == slices.pairs(cfg, "tiny", 1)
    assert exp.expected("results/train/solo_orpo@s1/model")[1] == b
    assert exp.expected("results/eval/solo_orpo@s1_ruler.json")[1] == slices.evaluate(cfg, runs["solo_orpo"], "ruler")


@pytest.mark.parametrize("seeds,report,message", [
    ([0, 0], {}, "train.seeds: [0, 0] is not valid"),
    ([], {}, "train.seeds: [] is not valid"),
    ([0], {"primary": "solo_orpoo"}, "report.primary: 'solo_orpoo' is not a run of this config"),
    ([0], {"baselines": ["base", "orpo_lng"]}, "report.baselines: 'orpo_lng' is not a run of this config"),
])
def test_bad_seeds_and_report_runs_stop_with_one_line(seeds, report, message):
    cfg = _tiny()
    cfg["train"]["seeds"] = seeds
    cfg["report"] = report
    with pytest.raises(ConfigError, match=r"^config error: ") as e:
        validate_config(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def _rule_outputs(jobs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for j in jobs.values():
        out.setdefault(j.rule, set()).add(j.outputs[0])
    return out


def test_adding_a_seed_plans_only_that_seeds_jobs(tmp_path):
    """The toy-science preset, built for seeds [0, 1]; seed 2 added: Snakemake plans that seed's pair
    draw, training sets, trainings and evaluations, and the seeds page, nothing else (no sampling,
    no other seed's training, no base evaluation); the paper tables keep the first seed's runs."""
    base = _toy([0, 1])
    jobs = build_tree(tmp_path, base, ("toy_science",))
    rules = _rule_outputs(jobs)
    assert len(rules["sample"]) == 2  # one sampling job per context length, shared by the seeds
    assert rules["pairs"] == {"results/pairs/tiny/pairs.jsonl", "results/pairs/tiny@s1/pairs.jsonl"}
    assert plan(tmp_path, base, ("toy_science",)) == {}, "a freshly built tree must be up to date"

    more = copy.deepcopy(base)
    more["train"]["seeds"] = [0, 1, 2]
    planned = _rule_outputs(plan(tmp_path, more, ("toy_science",)))
    runs = ["orpo_short", "solo_orpo", "solo_orpo_lam0.0"]
    assert planned == {
        "pairs": {"results/pairs/tiny@s2/pairs.jsonl"},
        "datasets": {"results/datasets/tiny@s2/short.jsonl"},  # one job writes every training set
        "train": {f"results/train/{r}@s2/model" for r in runs},
        "evaluate": {f"results/eval/{r}@s2_{b}.json" for r in runs for b in more["eval"]["benchmarks"]},
        "report_seeds": {"results/report/seeds.md"},
    }, planned
    # `all` with three seeds: the paper tables read the first seed's evaluations only
    tables = [j for j in plan(tmp_path, more, ("all",)).values() if j.rule == "report_tables"]
    assert tables and not any("@s" in i for i in tables[0].inputs)
    # removing the seed again plans nothing: its artifacts are left aside, the others are current
    assert plan(tmp_path, base, ("toy_science",)) == {}


def test_tuning_is_dag_jobs_on_dev_questions_only(tmp_path):
    """make toy-science-tune: one training per (probe, rate) on the first seed's training set with that
    rate in its slice, one evaluation each on the dev RULER set (its own questions), never a test item."""
    cfg = _toy([0, 1])
    jobs = plan(tmp_path, cfg, ("toy_science_tune",))
    rules = _rule_outputs(jobs)
    grid = cfg["report"]["tune"]["grid"]
    runs = {f"tune_{m}@lr{lr:g}" for m in ("sft_long", "orpo_long", "solo_orpo") for lr in grid}
    assert rules["tune_train"] == {f"results/tune/train/{r}/model" for r in runs}
    assert rules["tune_evaluate"] == {f"results/tune/eval/{r}_ruler.json" for r in runs}
    assert not {"evaluate", "train", "bench_data_tokenized", "report_seeds"} & set(rules)
    assert rules["pairs"] == {"results/pairs/tiny/pairs.jsonl"}  # the first seed's training sets only
    for j in jobs.values():
        if j.rule == "tune_train":
            name = j.outputs[0].split("/")[3]
            key = "sft_learning_rate" if "sft" in name else "solo_learning_rate" if "solo" in name else "learning_rate"
            assert j.params["run"]["train"]["optim"][key] == float(name.rpartition("@lr")[2])
            assert j.params["run"]["seed"] == 0 and any(i.startswith("results/datasets/tiny/") for i in j.inputs)
        if j.rule == "tune_evaluate":
            assert "results/tune/ruler" in j.inputs
        if j.rule == "tune_bench":
            assert j.inputs[0] == "results/tune/questions.jsonl"
            assert j.params["cfg"]["eval"]["ruler"]["num_samples"] == cfg["report"]["tune"]["dev_items"]


def test_the_tuning_choice_is_the_best_dev_score_per_family(tmp_path):
    from solopo.tune import choose, tune_runs

    cfg = _toy([0])
    runs = tune_runs(cfg)
    scores = {"tune_sft_long@lr0.0001": 20.0, "tune_sft_long@lr0.0002": 22.0, "tune_sft_long@lr0.0005": 22.0,
              "tune_orpo_long@lr0.0001": 30.0, "tune_orpo_long@lr0.0002": 10.0, "tune_orpo_long@lr0.0005": 29.0,
              "tune_solo_orpo@lr0.0001": 5.0, "tune_solo_orpo@lr0.0002": 6.0, "tune_solo_orpo@lr0.0005": 4.0}
    evals = []
    for name, score in scores.items():
        evals.append(tmp_path / f"{name}_ruler.json")
        evals[-1].write_text(json.dumps({"benchmark": "ruler", "run": name, "score": score}))
    res = choose([str(e) for e in evals], str(tmp_path / "chosen.json"), runs)
    assert res["chosen"]["sft_learning_rate"] == {"value": 2.0e-4, "probe": "sft_long", "dev_score": 22.0}  # tie: first
    assert res["chosen"]["learning_rate"]["value"] == 1.0e-4
    assert res["chosen"]["solo_learning_rate"] == {"value": 2.0e-4, "probe": "solo_orpo", "dev_score": 6.0}
    assert json.loads((tmp_path / "chosen.json").read_text())["dev_scores"] == scores


def test_tuning_questions_are_never_test_questions(tmp_path):
    """The dev draw drops every question whose text a test question has (the toy world repeats texts)."""
    from solopo.artifacts import read_jsonl, write_jsonl
    from solopo.data.toy_world import generate_records, hop_weights
    from solopo.tune import TUNE_DRAW_FACTOR, TUNE_ID_OFFSET, TUNE_SEED_OFFSET, tune_questions

    cfg = _tiny()
    tm = cfg["tiny_model"]
    pool = generate_records(TUNE_DRAW_FACTOR * 10, cfg["seed"] + TUNE_SEED_OFFSET, hop_weights(tm), tm["entities"],
                            id_offset=TUNE_ID_OFFSET)
    test = tmp_path / "test.jsonl"
    write_jsonl(test, pool[:5])  # the first five of the dev draw are test questions
    tune_questions(str(tmp_path / "q.jsonl"), str(test), cfg, cfg["seed"], 10, str(tmp_path / "q.log"))
    rows = read_jsonl(tmp_path / "q.jsonl")
    assert len(rows) == 10 and not {r["question"] for r in rows} & {r["question"] for r in pool[:5]}
    write_jsonl(test, pool)  # every question of the draw is a test question
    with pytest.raises(ValueError, match=r"^report.tune.dev_questions: 10 questions unlike every test question"):
        tune_questions(str(tmp_path / "q2.jsonl"), str(test), cfg, cfg["seed"], 10, str(tmp_path / "q2.log"))
