"""The benchmark table (solopo.eval.BENCHES): every suite the config may name has an entry, and each
entry's entry points exist with the signatures the stages call; the LongPO defaults live in one place."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from solopo import pipeline
from solopo.eval import BENCHES, BENCHMARKS, benchmark
from solopo.train.losses import LONGPO_DEFAULTS, LossConfig

ROOT = Path(__file__).resolve().parents[2]


def _paper() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_table_matches_the_config_schema():
    schema = yaml.safe_load((ROOT / "src/solopo/schemas/config.schema.yaml").read_text())
    enum = schema["properties"]["eval"]["properties"]["benchmarks"]["items"]["enum"]
    assert set(enum) == set(BENCHMARKS)
    assert set(_paper()["eval"]["benchmarks"]) <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_entry_points_exist(name):
    spec = benchmark(name)
    assert list(inspect.signature(spec.evaluate).parameters)[:2] in (["backend", "items"], ["model_path", "cfg"])
    if spec.has_data:  # rule bench_data and the evaluation read these
        assert list(inspect.signature(spec.build_data).parameters) == ["out", "records", "cfg", "seed", "model",
                                                                       "sources_dir"]
        assert list(inspect.signature(spec.eval_items).parameters)[1:] == ["cfg"]  # (the folder, eval.<name>)
    assert spec.loads_model == (not spec.has_data)  # only lm-eval reads its own tasks and loads the model
    assert callable(getattr(spec.module, "item_scores", None)) == spec.item_scores  # the seeds page's entry point


def test_unknown_benchmark_is_one_clear_line():
    with pytest.raises(ValueError, match="unknown benchmark 'rulerr'; expected one of longbench_v1, ruler"):
        benchmark("rulerr")
    assert BENCHES["ruler"].length_key == "lengths" and BENCHES["longbench_v1"].length_key == "max_length"


def test_longpo_defaults_agree_everywhere():
    """LossConfig's LongPO fields, the stage's defaults and the paper preset's `train.longpo` are one set of numbers."""
    assert (LossConfig().longpo_beta, LossConfig().longpo_lambda) == (LONGPO_DEFAULTS["beta"], LONGPO_DEFAULTS["lambda"])
    assert _paper()["train"]["longpo"] == LONGPO_DEFAULTS


def test_longpo_config_value_wins():
    cfg = _paper()
    cfg["train"]["longpo"] = {**cfg["train"]["longpo"], "beta": 0.05, "lambda": 0.2, "learning_rate": 1e-6}
    lc, tc = pipeline.loss_config(cfg, "longpo", None), pipeline.train_config(cfg, "longpo")
    assert (lc.longpo_beta, lc.longpo_lambda, tc.learning_rate) == (0.05, 0.2, 1e-6)
    del cfg["train"]["longpo"]  # absent block: the release defaults
    assert pipeline.loss_config(cfg, "longpo", None).longpo_beta == LONGPO_DEFAULTS["beta"]
    # the other runs never read train.longpo (their slices leave it out): the defaults, whatever it holds
    cfg["train"]["longpo"] = {"beta": 0.05}
    assert pipeline.loss_config(cfg, "dpo_short", 0.0).longpo_beta == LONGPO_DEFAULTS["beta"]


def test_every_data_folder_names_its_item_files_and_fields():
    """validate.check_benchmark_folder reads these: a suite without them would go unchecked."""
    for spec in BENCHES.values():
        assert bool(spec.item_files and spec.item_fields) == spec.has_data, spec.name


def test_seed_page_suites_are_the_ones_with_item_scores():
    from solopo.report.science import SEED_BENCHES, item_scores

    assert set(SEED_BENCHES) == {n for n, b in BENCHES.items() if b.item_scores}
    with pytest.raises(ValueError, match="longbench_v2: no per-item scores for the seeds page"):
        item_scores("longbench_v2", {}, [])


def test_ruler_item_scores_follow_the_primary_metric():
    """An evaluation scored on the whole output (eval.ruler.primary: whole_output, the value the result
    records) is paired on that metric, not on the extracted answer."""
    from solopo.report.science import item_scores

    preds = [{"target_length": 256, "set": "squad", "index": 3, "correct_extracted": False, "correct_whole_output": True}]
    key = "ruler|256|squad|3"
    assert item_scores("ruler", {"settings": {"primary": "whole_output"}}, preds) == {key: 100.0}
    assert item_scores("ruler", {"settings": {"primary": "extracted"}}, preds) == {key: 0.0}
    lb = [{"dataset": "hotpotqa", "id": "x", "score": 42.5}]
    assert item_scores("longbench_v1", {}, lb) == {"lbv1|all|hotpotqa|x": 42.5}


def test_each_configured_part_needs_items(tmp_path):
    """validate.check_eval_items asks the suite's own `check_items`: a RULER set or LongBench v1 subset
    with no items stops with the file named (it would silently leave the average)."""
    from solopo.artifacts import DataError
    from solopo.validate import check_eval_items

    items = [{"set": "squad"}]
    check_eval_items("ruler", items, tmp_path, {"sets": ["squad"]})
    with pytest.raises(DataError, match=r"items.jsonl: 0 items of set 'hotpotqa'"):
        check_eval_items("ruler", items, tmp_path, {"sets": ["squad", "hotpotqa"]})
    with pytest.raises(DataError, match=r"qasper.jsonl: 0 items"):
        check_eval_items("longbench_v1", [{"dataset": "narrativeqa"}], tmp_path, {"datasets": ["narrativeqa", "qasper"]})
