"""Degenerate training data refused with the numbers (solopo.pairs.check_quality / check_distinct):
token salad, a zero pair yield, empty responses and pairs whose chosen equals the rejected."""
import copy
import json
from pathlib import Path

import pytest

from solopo import pipeline
from solopo.artifacts import DataError, write_jsonl, write_manifest
from solopo.report.provenance import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = load_config([ROOT / "config/tiny.yaml"], ROOT / "config/config.yaml")


def _inputs(tmp_path, responses, n_ctx=6):
    """Samples and contexts for both contexts; `responses(i)` gives question i's sampled outputs."""
    paths = {}
    for c in ("short", "long"):
        ctx = [{"id": f"q{i}", "ctx": c, "question": "q?", "prompt": "p", "answers": ["Paris"]} for i in range(n_ctx)]
        smp = [{"id": f"q{i}", "ctx": c, "answers": ["Paris"], "responses": responses(i)} for i in range(n_ctx)]
        n = len(smp[0]["responses"])
        for name, rows, extra, cfg in (("ctx", ctx, {"rows": n_ctx}, {}), ("smp", smp, {"n_inputs": n_ctx}, {"sampling": {"n": n}})):
            p = tmp_path / f"{name}_{c}.jsonl"
            write_manifest(p, cfg, [], None, extra)
            write_jsonl(p, rows)
            paths[f"{name}_{c}"] = p
    return paths


def _pairs(tmp_path, paths, cfg=TINY):
    pipeline.pairs(str(paths["smp_short"]), str(paths["smp_long"]), str(paths["ctx_short"]), str(paths["ctx_long"]),
                   str(tmp_path / "pairs.jsonl"), str(tmp_path / "stats.json"), cfg, 1, str(tmp_path / "p.log"))
    return json.loads((tmp_path / "stats.json").read_text())


GOOD = ["The answer is: Paris", "The answer is: Rome", "Paris is the city. The answer is: Paris", "The answer is: Oslo"]


def test_good_samples_pass_and_the_statistics_carry_the_counts(tmp_path):
    stats = _pairs(tmp_path, _inputs(tmp_path, lambda i: GOOD))
    for ctx in ("short", "long"):
        assert stats[ctx]["answer_format_rate"] == 1.0 and stats[ctx]["yield"] == 1.0
        assert stats[ctx]["empty_responses"] == 0 and stats[ctx]["identical_pairs"] == 0


def test_token_salad_is_refused_by_the_answer_format_floor(tmp_path):
    """Was: sampling.temperature 100 gave 41 pairs of token salad (answer-format rate 0.0), exit 0."""
    def salad(i):
        return ["qz Paris vr ,, kk", "xx yy zz", "Oslo mm . ;", "zz Paris zz"]

    with pytest.raises(DataError) as e:
        _pairs(tmp_path, _inputs(tmp_path, salad))
    msg = str(e.value)
    assert "\n" not in msg and "short-context answer-format rate 0.0 (6 pairs from 6 inputs, 24 samples)" in msg
    assert "below pairs.min_answer_format_rate 0.25" in msg
    assert not (tmp_path / "pairs.jsonl").exists()


def test_a_pair_yield_below_the_floor_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"short-context pair yield 0.0 \(0 pairs from 6 inputs, 24 samples\) is below "
                                        r"pairs.min_pair_yield 0.05"):
        _pairs(tmp_path, _inputs(tmp_path, lambda i: ["The answer is: Paris"] * 4))
    cfg = copy.deepcopy(TINY)
    cfg["pairs"].update(min_pair_yield=0.0, min_answer_format_rate=0.0)  # floors are configurable
    assert _pairs(tmp_path, _inputs(tmp_path, lambda i: ["The answer is: Paris"] * 4), cfg)["short"]["pairs"] == 0


def test_an_empty_response_is_counted_and_never_paired(tmp_path):
    """Was: an empty sampled output became a `rejected` with no words."""
    stats = _pairs(tmp_path, _inputs(tmp_path, lambda i: ["The answer is: Paris", " ", "", "The answer is: Oslo"]))
    assert stats["short"]["empty_responses"] == 12 and stats["short"]["pairs"] == 6
    rows = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert {r[c]["rejected"] for r in rows for c in ("short", "long")} == {"The answer is: Oslo"}
    with pytest.raises(DataError, match=r"short-context answer-format rate 0.2 .* below pairs.min_answer_format_rate"):
        _pairs(tmp_path, _inputs(tmp_path, lambda i: ["The answer is: Paris", "", "", "", ""]))  # a sampler returning nothing


def test_chosen_equal_to_rejected_is_refused_before_datasets_and_training(tmp_path):
    """Was: such pairs trained with zero gradient (DPO loss 0.693147 at every step), exit 0."""
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, [{"id": "q0", "x_short": "p", "x_long": "p", "short": {"chosen": "The answer is: Paris", "rejected": "x"},
                         "long": None},
                        {"id": "q1", "x_short": "p", "x_long": "p", "long": None,
                         "short": {"chosen": "The answer is: Paris", "rejected": "The answer is: Paris "}}])
    with pytest.raises(DataError, match=f"{pairs}:2: id 'q1' has chosen equal to rejected"):
        pipeline.datasets(str(pairs), {"short": str(tmp_path / "short.jsonl")}, {}, str(tmp_path / "d.log"))
    data = tmp_path / "dpo.jsonl"
    write_jsonl(data, [{"id": "q0", "x": "p", "y_w": "a b", "y_l": "a b"}])
    with pytest.raises(DataError, match=f"{data}:1: id 'q0' has y_w equal to y_l"):
        pipeline.train(str(data), None, "unused-model", str(tmp_path / "model"), "dpo_short", "dpo_short", None, TINY, 1,
                       str(tmp_path / "t.log"))
    assert not (tmp_path / "model").exists()
