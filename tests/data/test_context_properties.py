"""Property tests of context synthesis (issue 18, item 2), with the model's tokenizer.

For random toy worlds, budgets and seeds: every supporting document is in both the short and
the long prompt; the short prompt's documents are a subset of the long one's; each prompt's
token count (measured by the tokenizer) is the one recorded and within its budget; a document
titled like one of the question's paragraphs is that paragraph (no contradicting distractor);
the gold answers are [answer] + aliases exactly when aliases are on.
"""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solopo.data.contexts import UnfittableError, build_contexts, paragraph_pool
from solopo.data.prompts import format_document
from solopo.data.toy_world import alias, generate_records

SIZES = {"person": 30, "city": 12, "country": 6, "leader": 6, "spouse": 6}
_DOC = re.compile(r"Document \d+:\n(.*?)(?=\n\nDocument \d+:\n|\n\nQuestion: )", re.S)


@pytest.fixture(scope="module")
def count(tiny_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    return lambda s: len(tok(s, add_special_tokens=False)["input_ids"])


def _docs(prompt: str) -> list[str]:
    return _DOC.findall(prompt)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world_seed=st.integers(0, 10**6), n=st.integers(1, 4), hops=st.sampled_from([{2: 1.0}, {3: 1.0}, {4: 1.0},
                                                                                     {2: 0.5, 3: 0.3, 4: 0.2}]),
       short=st.integers(100, 400), extra=st.integers(0, 600), seed=st.integers(0, 10**6),
       use_aliases=st.booleans())
def test_context_invariants(count, world_seed, n, hops, short, extra, seed, use_aliases):
    records = generate_records(n, world_seed, hops, SIZES)
    budgets = {"short": short, "long": short + extra}
    try:
        out, stats = build_contexts(records, paragraph_pool(records), count, budgets, seed, use_aliases,
                                    allow_skip=True)
    except UnfittableError as e:
        assert str(e).startswith(f"all {n} questions were skipped")
        return
    assert [r["id"] for r in out["short"]] == [r["id"] for r in out["long"]]
    by_id = {r["id"]: r for r in records}
    assert stats["skipped_unfittable"] == n - len(out["short"])
    for s_row, l_row in zip(out["short"], out["long"]):
        rec = by_id[s_row["id"]]
        gold = [format_document(p["title"], p["paragraph_text"]) for p in rec["paragraphs"] if p["is_supporting"]]
        own = {p["title"]: format_document(p["title"], p["paragraph_text"]) for p in rec["paragraphs"]}
        docs = {}
        for row, ctx in ((s_row, "short"), (l_row, "long")):
            d = _docs(row["prompt"])
            docs[ctx] = d
            assert row["prompt"].endswith(f"Question: {rec['question']}")
            assert all(g in d for g in gold), f"{ctx}: a supporting document is missing"
            assert row["num_docs"] == len(d) and row["num_gold"] == len(gold)
            assert len(set(d)) == len(d), f"{ctx}: a document appears twice"
            assert count(row["prompt"]) == row["tokens"] <= budgets[ctx]
            for doc in d:
                title = doc.split("\n", 1)[0]
                assert title not in own or own[title] == doc, f"{ctx}: distractor titled like the question's {title}"
            want = [rec["answer"]] + ([alias(rec["answer"])] if use_aliases else [])
            assert row["answers"] == want and row["question"] == rec["question"]
        assert set(docs["short"]) <= set(docs["long"]), "short distractors are not a subset of the long ones"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world_seed=st.integers(0, 10**6), seed=st.integers(0, 10**6))
def test_budget_is_filled(count, world_seed, seed):
    """The prompt holds as many documents as fit: a larger budget never gives fewer documents, and the
    long prompt is within one average document of its budget when candidates remain."""
    records = generate_records(2, world_seed, {2: 1.0}, SIZES)
    out, _ = build_contexts(records, paragraph_pool(records), count, {"short": 200, "long": 500}, seed)
    for s_row, l_row in zip(out["short"], out["long"]):
        assert l_row["num_docs"] >= s_row["num_docs"] > s_row["num_gold"]
        assert l_row["tokens"] > 500 - 60


def test_toy_world_aliases_reach_the_contexts(count):
    """Some toy questions state their answer under its alias only: gold answers carry both forms."""
    records = generate_records(40, 7, {2: 0.8, 3: 0.2}, SIZES)
    aliased = [r for r in records if alias(r["answer"]) in r["cot"]]
    assert 0 < len(aliased) < len(records)
    out, _ = build_contexts(records, paragraph_pool(records), count, {"short": 300, "long": 600}, 0)
    rows = {r["id"]: r for r in out["short"]}
    for r in aliased:
        prompt = rows[r["id"]]["prompt"]
        gold_text = " ".join(p["paragraph_text"] for p in r["paragraphs"] if p["is_supporting"])
        assert alias(r["answer"]) in gold_text and f" {r['answer']} ." not in gold_text
        assert alias(r["answer"]) in prompt and rows[r["id"]]["answers"] == [r["answer"], alias(r["answer"])]


def test_rows_and_stats_are_what_the_prompts_say(count):
    """Row fields, per-context means, the compression ratio and progress, from the rows themselves;
    contexts ordered by budget whatever the order given; seeded, and the seed matters."""
    records = generate_records(6, 3, {2: 0.7, 3: 0.3}, SIZES)

    class Progress:
        total = 0

        def update(self, n: int) -> None:
            self.total += n

    progress = Progress()
    budgets = {"long": 500, "short": 200}
    out, stats = build_contexts(records, paragraph_pool(records), count, budgets, 5, progress=progress)
    assert list(out) == ["short", "long"] and progress.total == len(records)
    want = {"questions": 6, "skipped_unfittable": 0}
    for ctx, rows in out.items():
        assert [r["id"] for r in rows] == [r["id"] for r in records]
        assert all(r["ctx"] == ctx and r["target_tokens"] == budgets[ctx] for r in rows)
        want[f"{ctx}_mean_tokens"] = round(sum(r["tokens"] for r in rows) / len(rows), 1)
        want[f"{ctx}_mean_docs"] = round(sum(r["num_docs"] for r in rows) / len(rows), 2)
    want["compression_ratio"] = round(want["short_mean_tokens"] / want["long_mean_tokens"], 4)
    assert stats == want
    assert build_contexts(records, paragraph_pool(records), count, budgets, 5)[0] == out
    assert build_contexts(records, paragraph_pool(records), count, budgets, 6)[0] != out
    one, one_stats = build_contexts(records, paragraph_pool(records), count, {"short": 200}, 5)
    assert one["short"] == out["short"] and "compression_ratio" not in one_stats


def test_paragraph_pool_is_unique_in_first_seen_order():
    records = generate_records(4, 1, {2: 1.0}, SIZES)
    twice = records + records
    pool = paragraph_pool(twice)
    flat = [(p["title"], p["paragraph_text"]) for r in records for p in r["paragraphs"]]
    assert pool == list(dict.fromkeys(flat)) and len(pool) == len(set(pool))
