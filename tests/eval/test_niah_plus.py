"""NIAH-Plus: released-schema reader, needle insertion at token depths, scoring, tiny-model evaluate."""
from __future__ import annotations

import json
import os
import random
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from solopo.artifacts import DataError  # noqa: E402
from solopo.eval import niah_plus  # noqa: E402
from tests.eval.helpers import records_tokenizer, tiny_backend, toy_name, valley_records  # noqa: E402


def _tiny_tokenizer(records):
    return records_tokenizer(records, [niah_plus.TASK_DESCRIPTIONS["needle_squad"],
                                       "The answer is: yes. Think step by step. Question: Answer:"])


TOL = 0.1
FIX_CFG = {"lengths": [256, 384], "single_depths": [0, 50, 100], "multi_depth_pairs": [[0, 100], [33, 66]],
           "samples_per_cell": 2, "length_tolerance": TOL, "boundary": "sentence", "prompt": "solopo_cot",
           "max_new_tokens": 4, "batch_size": 8}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    recs = valley_records()
    tok = _tiny_tokenizer(recs)
    out = tmp_path_factory.mktemp("niah")
    paths = niah_plus.build_fixture(recs, out, FIX_CFG, seed=3, tokenizer=tok)
    return recs, tok, paths


def _filler_sentences(n=200):
    rng = random.Random(5)
    docs = []
    for d in range(n // 10):
        docs.append(" ".join(f"Filler line {d * 10 + k} mentions {toy_name(rng, 2)}." for k in range(10)))
    return docs


def _depth_of(tok, context, needle):
    """(filler tokens before the needle) / (all filler tokens), from a fresh tokenisation."""
    start = context.index(needle)
    total = niah_plus.count_tokens(tok, context)
    before = niah_plus.count_tokens(tok, context[:start].rstrip())
    return 100 * before / (total - niah_plus.count_tokens(tok, needle))


def test_fixture_schema_counts_and_lengths(world):
    recs, tok, paths = world
    single = niah_plus.load_items(paths["single_doc"])
    multi = niah_plus.load_items(paths["multi_doc"])
    both = niah_plus.load_items(paths["single_doc"].parent)
    assert len(single) == 2 * 3 * 2 and len(multi) == 2 * 2 * 2 and len(both) == len(single) + len(multi)
    for it in single + multi:
        n = niah_plus.count_tokens(tok, it["context"])
        assert n == it["measured_length"]
        assert it["context_length"] * (1 - TOL) <= n <= it["context_length"]
    rec = {r["id"]: r for r in recs}
    for it in single:
        r = rec[it["needle_id"]]
        assert set(it) >= {"id", "context", "context_length", "depth_percent", "input", "answers", "dataset"}
        assert it["dataset"] == "needle_squad" and it["answers"][0] == r["answer"] and it["input"] == r["question"]
        for p in r["paragraphs"]:
            if p["is_supporting"]:
                assert p["paragraph_text"] in it["context"]
            elif p["title"] not in {q["title"] for q in r["paragraphs"] if q["is_supporting"]}:
                assert p["paragraph_text"] not in it["context"]  # own non-supporting paragraphs are not filler
    for it in multi:
        assert it["dataset"] == "needle_hotpotqa" and "depth_percent1" in it and "depth_percent2" in it


def test_single_needle_depth_and_length_within_tolerance():
    docs = _filler_sentences()
    recs = valley_records(3)
    tok = _tiny_tokenizer(recs + [{"paragraphs": [{"paragraph_text": d} for d in docs], "question": ""}])
    needle = {"id": "n1", "question": "Where?", "answers": ["Zokal"],
              "docs": ["Special note\nThe hidden treasure of Zokal lies under the old mill."]}
    depths = [0, 25, 50, 75, 100]
    items = niah_plus.build_items([needle], docs, tok, [600, 1000], depths, kind="single", seed=0, tolerance=0.05)
    assert len(items) == 10
    for it in items:
        n = niah_plus.count_tokens(tok, it["context"])
        assert 0.95 * it["context_length"] <= n <= it["context_length"]
        got = _depth_of(tok, it["context"], needle["docs"][0])
        assert abs(got - it["depth_percent"]) <= 3.0, (it["context_length"], it["depth_percent"], got)
        assert abs(got - it["measured_depths"][0]) <= 1.5
    assert items[0]["context"].startswith("Special note") and items[4]["context"].endswith("old mill.")


def test_multi_needles_in_depth_order():
    docs = _filler_sentences()
    recs = valley_records(3)
    tok = _tiny_tokenizer(recs + [{"paragraphs": [{"paragraph_text": d} for d in docs], "question": ""}])
    a, b = "Alpha fact: Quin owns the red boat.", "Beta fact: the red boat is moored at Hexdor."
    needle = {"id": "m1", "question": "Where is Quin's boat moored?", "answers": ["Hexdor"], "docs": [a, b]}
    pairs = [[0, 33], [33, 100], [66, 100]]
    items = niah_plus.build_items([needle], docs, tok, [800], pairs, kind="multi", seed=1, tolerance=0.05)
    for it, (d1, d2) in zip(items, pairs):
        ctx = it["context"]
        assert ctx.index(a) < ctx.index(b) and (it["depth_percent1"], it["depth_percent2"]) == (d1, d2)
        assert abs(it["measured_depths"][0] - d1) <= 3 and abs(it["measured_depths"][1] - d2) <= 3
        assert 0.95 * 800 <= niah_plus.count_tokens(tok, ctx) <= 800


def test_deterministic_and_too_long_needle_raises(world):
    recs, tok, paths = world
    again = niah_plus.build_fixture(recs, paths["single_doc"].parent / "again", FIX_CFG, seed=3, tokenizer=tok)
    assert again["single_doc"].read_text() == paths["single_doc"].read_text()
    with pytest.raises(ValueError, match="more than the target length 20"):
        niah_plus.build_items([{"id": "x", "question": "q", "answers": ["a"], "docs": ["word " * 50]}],
                              ["filler text."], tok, [20], [50], kind="single")


def test_load_items_raises_data_error_with_file_line(tmp_path, world):
    _, _, paths = world
    good = paths["single_doc"].read_text().splitlines()[0]
    p = tmp_path / "needle_squad.jsonl"
    bad = json.loads(good)
    del bad["depth_percent"]
    p.write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(p))}:2: missing field\(s\) depth_percent"):
        niah_plus.load_items(p)
    p.write_text(good + "\n\n" + json.dumps(dict(bad, depth_percent=10, dataset="needle_x")) + "\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(p))}:3: field 'dataset'"):
        niah_plus.load_items(p)
    p.write_text("{oops\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(p))}:1: invalid JSON"):
        niah_plus.load_items(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        niah_plus.load_items(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*.jsonl"):
        niah_plus.load_items(tmp_path / "empty")


class _FixedBackend:
    def __init__(self, outputs):
        self.outputs, self.tokenizer = outputs, None

    def generate(self, prompts, cfg):
        assert cfg.temperature == 0.0
        return [[self.outputs[i]] for i in range(len(prompts))]


def test_scoring_grid_and_extraction():
    def s(L, d, ans):
        return {"id": f"s{L}{d}", "dataset": "needle_squad", "context": "c", "context_length": L,
                "depth_percent": d, "input": "q", "answers": ans}

    def m(L, d1, d2, ans):
        return {"id": f"m{L}{d1}", "dataset": "needle_hotpotqa", "context": "c", "context_length": L,
                "depth_percent1": d1, "depth_percent2": d2, "input": "q", "answers": ans}

    items = [s(1000, 0, ["Zokal"]), s(1000, 11.111111, ["Zokal"]), s(2000, 0, ["yes"]), s(2000, 0, ["Quin"]),
             m(1000, 0, 33, ["Hexdor"]), m(1000, 0, 33, ["Tem"])]
    outs = ["Zokal is a town, but the answer is Lo.\nThe answer is: Lo.",  # only whole-output would hit
            "The answer is: the Zokal.",  # normalised sub-EM hit
            "The answer is: Yes.",
            "",  # empty prediction never scores
            "The answer is: Hexdor",
            "Reasoning.\nThe answer is: Temple"]  # one-directional containment: gold 'tem' in 'temple'
    result, preds = niah_plus.evaluate(_FixedBackend(outs), items, {"prompt": "solopo_cot"})
    assert result["subsets"] == {"single_doc": 50.0, "multi_doc": 100.0} and result["score"] == 75.0
    assert result["grid"]["single_doc"] == {"1000": {"0": 0.0, "11.11": 100.0}, "2000": {"0": 50.0}}
    assert result["grid"]["multi_doc"] == {"1000": {"0-33": 100.0}}
    assert [p["correct"] for p in preds] == [False, True, True, False, True, True]
    off, _ = niah_plus.evaluate(_FixedBackend(outs), items, {"prompt": "official"})
    assert off["grid"]["single_doc"]["1000"]["0"] == 100.0  # no extraction: the whole output is matched
    prompt = niah_plus.user_prompt(items[4], "official")
    assert prompt.startswith(niah_plus.TASK_DESCRIPTIONS["needle_hotpotqa"]) and prompt.endswith("Question: q\nAnswer:")


def test_evaluate_end_to_end_tiny_model(world):
    _, tok, paths = world
    items = niah_plus.load_items(paths["single_doc"].parent)[::2]
    backend = tiny_backend(tok)
    result, preds = niah_plus.evaluate(backend, items, FIX_CFG, seed=0)
    assert result["benchmark"] == "niah_plus" and result["n"] == len(preds) == len(items)
    assert set(result["grid"]["single_doc"]) == {"256", "384"}
    assert set(result["grid"]["multi_doc"]["256"]) == {"0-100", "33-66"}
    assert set(result["grid"]["single_doc"]["384"]) == {"0", "50", "100"}
    assert 0 <= result["score"] <= 100 and result["settings"]["max_new_tokens"] == 4


def test_limit_keeps_the_longest_haystack_first_and_spreads_over_lengths():
    items = [{"id": f"{L}-{d}", "context_length": L} for L in (1000, 64500, 128000) for d in range(3)]
    assert [it["id"] for it in niah_plus.limit_items(items, 1)] == ["128000-0"]
    assert [it["id"] for it in niah_plus.limit_items(items, 4)] == ["128000-0", "64500-0", "1000-0", "128000-1"]
    assert niah_plus.limit_items(items, None) == items and len(niah_plus.limit_items(items, 50)) == 9


class _MergingTokenizer:
    """A tokenizer for which a document alone counts twice the tokens it has inside a joined haystack (as a
    BPE tokenizer merges across the separators, exaggerated: Qwen2.5's gives ~9 % fewer at 128K)."""

    def __init__(self, tok):
        self.tok = tok

    def __call__(self, text, **kw):
        enc = self.tok(text, **kw)
        if "\n" in text and niah_plus.SEP not in text and not kw.get("return_offsets_mapping"):  # one document
            enc["input_ids"] = enc["input_ids"] * 2
        return enc


def test_a_haystack_reaches_its_length_when_joined_documents_tokenize_shorter(world):
    recs, tok, _ = world
    hay = [niah_plus.format_document(p["title"], p["paragraph_text"]) for r in recs[1:] for p in r["paragraphs"]
           if not p["is_supporting"]]
    needle = {"id": "n1", "question": recs[0]["question"], "answers": [recs[0]["answer"]], "docs": ["The needle ."]}
    items = niah_plus.build_items([needle], hay, _MergingTokenizer(tok), [384], [50], seed=0, tolerance=0.05)
    assert len(items) == 1 and 384 * 0.95 <= items[0]["measured_length"] <= 384
