"""Open LLM Leaderboard subset through lm-eval: local task YAMLs, aggregation, one real tiny run."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest
import yaml

from solopo.eval import leaderboard as lb
from tests.eval.helpers import tiny_qwen2, tiny_tokenizer

TINY_CFG = {
    "source": "fixture", "dtype": "float32", "num_fewshot": 1, "batch_size": 8,
    "gen_kwargs": {"temperature": 0, "max_gen_toks": 16},
}


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# --------------------------------------------------------------------------- tiny model

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_qwen2")
    corpus = ["Question: what is the answer? Answer: (A) (B) (C) (D) True False Yes No 0 1 2 3 4 5 6 7 8 9",
              "Problem: Solve for $x$. Solution: \\boxed{5}. Describe a quiet harbor at dawn."] * 20
    hf_tok = tiny_tokenizer(corpus)
    tiny_qwen2(hf_tok, max_position_embeddings=4096).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_run(tiny_model, tmp_path_factory):
    t0 = time.perf_counter()
    result, preds = lb.evaluate(str(tiny_model), TINY_CFG, tmp_path_factory.mktemp("lb_work"))
    print(f"\nleaderboard tiny evaluate: {time.perf_counter() - t0:.1f} s")
    return result, preds


# --------------------------------------------------------------------------- local task YAMLs

def test_write_local_tasks(tmp_path):
    names = lb.write_local_tasks(lb.FIXTURE_DIR, tmp_path)
    assert names == [lb.LOCAL_TASK_GROUPS[s] for s in lb.SUBSETS]
    installed = Path(lb.installed_task_dir())
    files = {p.stem: yaml.safe_load(p.read_text()) for p in tmp_path.glob("*.yaml")}

    mp = files["local_leaderboard_mmlu_pro"]
    assert mp["include"] == str(installed / "mmlu_pro" / "mmlu_pro.yaml") and Path(mp["include"]).is_file()
    assert mp["dataset_path"] == "json" and mp["dataset_name"] is None
    assert set(mp["dataset_kwargs"]["data_files"]) == {"test", "validation"}
    assert mp["fewshot_split"] == "validation" and mp["test_split"] == "test"
    # Only task/dataset/split keys are overridden; prompts and metrics stay in the included YAML.
    allowed = {"include", "task", "dataset_path", "dataset_name", "dataset_kwargs",
               "test_split", "fewshot_split", "training_split", "validation_split"}
    for name, cfg in files.items():
        if "group" in cfg:
            continue
        assert set(cfg) <= allowed, (name, set(cfg) - allowed)
        assert Path(cfg["include"]).is_absolute() and Path(cfg["include"]).is_file()
        for f in cfg["dataset_kwargs"]["data_files"].values():
            assert Path(f).is_absolute() and Path(f).is_file()

    gp = files["local_leaderboard_gpqa_main"]
    assert gp["test_split"] is None and gp["validation_split"] == "train"
    assert files["local_leaderboard_math_algebra_hard"]["include"].endswith("math/math_algebra.yaml")

    bbh = files["local_leaderboard_bbh"]
    assert bbh["group"] == "local_leaderboard_bbh"
    assert sorted(bbh["task"]) == sorted(f"local_leaderboard_bbh_{p.stem}"
                                         for p in (lb.FIXTURE_DIR / "bbh").glob("*.jsonl"))
    assert bbh["aggregate_metric_list"] == [{"metric": "acc_norm", "aggregation": "mean", "weight_by_size": True}]
    assert files["local_leaderboard_math_hard"]["aggregate_metric_list"][0]["metric"] == "exact_match"

    # lm-eval indexes them without its own tasks (fast), resolving the absolute includes.
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(tmp_path), include_defaults=False)
    assert set(files) <= set(tm.all_tasks)


def test_fixtures_match_task_choices():
    """BBH targets must be among each installed subtask's doc_to_choice; MMLU-Pro letters consistent."""
    installed = Path(lb.installed_task_dir())
    for p in (lb.FIXTURE_DIR / "bbh").glob("*.jsonl"):
        text = (installed / "bbh_mc" / f"{p.stem}.yaml").read_text()
        choices = yaml.safe_load(text.split("fewshot_config:")[0])["doc_to_choice"]
        for r in _rows(p):
            assert r["target"] in choices, (p.stem, r["target"])
    for split in ("test", "validation"):
        for r in _rows(lb.FIXTURE_DIR / "mmlu_pro" / f"{split}.jsonl"):
            assert r["answer"] == "ABCDEFGHIJ"[r["answer_index"]] and r["answer_index"] < len(r["options"])
    assert len(_rows(lb.FIXTURE_DIR / "mmlu_pro" / "validation.jsonl")) >= 5  # default 5-shot, first_n


# --------------------------------------------------------------------------- aggregation

def _hand_results() -> dict:
    return {
        "results": {
            "leaderboard_mmlu_pro": {"acc,none": 0.40, "acc_stderr,none": 0.01},
            "leaderboard_ifeval": {"prompt_level_strict_acc,none": 0.70, "inst_level_strict_acc,none": 0.80,
                                   "prompt_level_loose_acc,none": 0.75, "inst_level_loose_acc,none": 0.85},
            "leaderboard_bbh": {"acc_norm,none": 0.50},
            "leaderboard_bbh_navigate": {"acc_norm,none": 0.90},
            "leaderboard_bbh_snarks": {"acc_norm,none": 0.30},
            "leaderboard_math_hard": {"exact_match,none": 0.20, "exact_match_original,none": 0.10},
            "leaderboard_gpqa": {"acc_norm,none": 0.30},
        },
        "group_subtasks": {"leaderboard_bbh": ["leaderboard_bbh_navigate", "leaderboard_bbh_snarks"]},
        "n-samples": {"leaderboard_mmlu_pro": {"original": 10, "effective": 10},
                      "leaderboard_ifeval": {"original": 5, "effective": 5},
                      "leaderboard_bbh_navigate": {"original": 2, "effective": 2},
                      "leaderboard_bbh_snarks": {"original": 3, "effective": 3},
                      "leaderboard_math_hard": {"original": 7, "effective": 7},
                      "leaderboard_gpqa": {"original": 4, "effective": 4}},
        "configs": {"x": {"fn": object()}},
    }


def test_aggregate_hand_made():
    res = lb.aggregate(_hand_results(), lb.TASK_GROUPS)
    # headline IFEval = inst_level_strict_acc (0.80), MATH = exact_match_original (0.10), as SoLoPO could have scored
    assert res["subsets"] == pytest.approx({"mmlu_pro": 40.0, "ifeval": 80.0, "bbh": 50.0, "math": 10.0, "gpqa": 30.0})
    assert res["score"] == pytest.approx((40 + 80 + 50 + 10 + 30) / 5)
    assert res["math_metrics"] == pytest.approx({"exact_match": 20.0, "exact_match_original": 10.0})
    assert res["ifeval_metrics"]["inst_level_loose_acc"] == pytest.approx(85.0)
    assert res["n"] == {"mmlu_pro": 10, "ifeval": 5, "bbh": 5, "math": 7, "gpqa": 4}
    json.dumps(res)  # the non-serialisable config objects were stringified

    loose = lb.aggregate(_hand_results(), lb.TASK_GROUPS, ifeval_metric="inst_level_loose_acc")
    assert loose["subsets"]["ifeval"] == pytest.approx(85.0)
    assert loose["score"] == pytest.approx((40 + 85 + 50 + 10 + 30) / 5)

    part = {k: v for k, v in lb.TASK_GROUPS.items() if k != "ifeval"}
    res = lb.aggregate(_hand_results(), part, skipped={"ifeval": "why"})
    assert res["avg_over"] == ["mmlu_pro", "bbh", "math", "gpqa"] and res["skipped"] == {"ifeval": "why"}
    assert res["score"] == pytest.approx((40 + 50 + 10 + 30) / 4)

    with pytest.raises(ValueError):
        lb.aggregate(_hand_results(), lb.TASK_GROUPS, ifeval_metric="acc")


def test_ifeval_skip_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(lb, "punkt_tab_available", lambda: True)
    assert lb.ifeval_skip_reason("hub", None) is None
    monkeypatch.setattr(lb, "punkt_tab_available", lambda: False)
    monkeypatch.setattr(lb, "_try_nltk_download", lambda: False)  # never touch the network in tests
    assert "punkt_tab" in lb.ifeval_skip_reason("hub", None)
    assert lb.ifeval_skip_reason("fixture", lb.FIXTURE_DIR) is None  # shipped fixture avoids punkt checkers
    (tmp_path / "ifeval").mkdir()
    (tmp_path / "ifeval" / "train.jsonl").write_text(json.dumps(
        {"key": 1, "prompt": "Answer in 3 sentences.", "instruction_id_list": ["length_constraints:number_sentences"],
         "kwargs": [{"relation": "less than", "num_sentences": 3}]}) + "\n")
    assert "number_sentences" in lb.ifeval_skip_reason("fixture", tmp_path)


# --------------------------------------------------------------------------- real runs

def test_evaluate_tiny(tiny_run):
    result, preds = tiny_run
    assert result["benchmark"] == "leaderboard"
    assert set(result["subsets"]) == set(lb.SUBSETS) and result["skipped"] == {}
    for v in list(result["subsets"].values()) + list(result["ifeval_metrics"].values()):
        assert 0.0 <= v <= 100.0
    assert result["score"] == pytest.approx(sum(result["subsets"].values()) / 5)
    assert set(result["ifeval_metrics"]) == set(lb.IFEVAL_CHOICES)
    assert set(result["math_metrics"]) == set(lb.MATH_METRICS)  # both MATH scorers, through real lm-eval
    assert result["subsets"]["ifeval"] == result["ifeval_metrics"]["inst_level_strict_acc"]
    assert result["subsets"]["math"] == result["math_metrics"]["exact_match_original"]

    s = result["settings"]
    assert s["apply_chat_template"] is True and s["fewshot_as_multiturn"] is True
    assert s["lm_eval_version"] == "0.4.13" and s["limit"] is None and s["num_fewshot"] == 1
    assert s["tasks"] == [lb.LOCAL_TASK_GROUPS[k] for k in lb.SUBSETS]

    fx = lb.FIXTURE_DIR
    expected_n = {
        "mmlu_pro": len(_rows(fx / "mmlu_pro" / "test.jsonl")),
        "ifeval": len(_rows(fx / "ifeval" / "train.jsonl")),
        "bbh": sum(len(_rows(p)) for p in (fx / "bbh").glob("*.jsonl")),
        "math": sum(r["level"] == "Level 5" for p in (fx / "math").glob("*.jsonl") for r in _rows(p)),
        "gpqa": sum(len(_rows(p)) for p in (fx / "gpqa").glob("*.jsonl")),
    }
    assert result["n"] == expected_n

    # group scores are lm-eval's size-weighted means of the subtasks
    raw = result["raw"]["results"]
    subs = result["raw"]["group_subtasks"]["local_leaderboard_bbh"]
    sizes = {t: result["raw"]["n-samples"][t]["effective"] for t in subs}
    weighted = sum(raw[t]["acc_norm,none"] * sizes[t] for t in subs) / sum(sizes.values())
    assert result["subsets"]["bbh"] == pytest.approx(100 * weighted)

    assert len(preds) == sum(expected_n.values())
    assert {p["task"] for p in preds} >= {"local_leaderboard_mmlu_pro", "local_leaderboard_ifeval"}
    gen = [p for p in preds if p["task"] == "local_leaderboard_ifeval"]
    assert all(isinstance(p["response"], str) and "prompt_level_strict_acc" in p["metrics"] for p in gen)
    json.dumps(result)
    json.dumps(preds)


def test_evaluate_records_skips(tiny_model, tmp_path, monkeypatch):
    """IFEval that would need punkt offline and a subset without fixture are skipped with reasons."""
    fx = tmp_path / "fx"
    shutil.copytree(lb.FIXTURE_DIR / "gpqa", fx / "gpqa")
    (fx / "ifeval").mkdir()
    (fx / "ifeval" / "train.jsonl").write_text(json.dumps(
        {"key": 1, "prompt": "Use capital words.", "instruction_id_list": ["change_case:capital_word_frequency"],
         "kwargs": [{"capital_frequency": 2, "capital_relation": "at least"}]}) + "\n")
    monkeypatch.setattr(lb, "punkt_tab_available", lambda: False)
    cfg = dict(TINY_CFG, tasks=["ifeval", "gpqa", "bbh"], fixture_dir=str(fx), limit=2)
    result, preds = lb.evaluate(str(tiny_model), cfg, tmp_path / "work")
    assert set(result["skipped"]) == {"ifeval", "bbh"}
    assert "punkt_tab" in result["skipped"]["ifeval"] and "no fixture" in result["skipped"]["bbh"]
    assert result["avg_over"] == ["gpqa"] and result["score"] == result["subsets"]["gpqa"]
    assert result["n"]["gpqa"] == 2 * 3  # limit 2 per subtask, three subtasks
    assert result["settings"]["limit"] == 2
    assert all(p["task"].startswith("local_leaderboard_gpqa_") for p in preds)


def test_auto_batch_size_is_one_on_a_cpu(tiny_model, tmp_path, monkeypatch):
    """lm-eval's `auto` grows batches until out-of-memory, which a CPU never raises (the kernel kills the job):
    the hf backend on a CPU gets batch size 1; vLLM and CUDA keep `auto`."""
    seen = {}

    def simple_evaluate(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    import lm_eval

    monkeypatch.setattr(lm_eval, "simple_evaluate", simple_evaluate)
    cfg = dict(TINY_CFG, tasks=["gpqa"], batch_size="auto", backend="hf", limit=1)
    with pytest.raises(RuntimeError, match="stop here"):
        lb.evaluate(str(tiny_model), cfg, tmp_path / "work", device="cpu")
    assert seen["batch_size"] == 1 and seen["device"] == "cpu"
    assert lb.lm_eval_batch_size("auto", "hf", "cuda:0") == "auto"
    assert lb.lm_eval_batch_size("auto:4", "vllm", "cpu") == "auto:4"
    assert lb.lm_eval_batch_size(8, "hf", "cpu") == 8
