"""Property tests of context synthesis, with the model's tokenizer.

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


def _words(text: str) -> int:
    return len(text.split())


def test_fit_documents_takes_the_most_candidates_that_fit_exactly_as_a_brute_force_search():
    """Binary search against trying every k, for every budget from 'gold only' to 'everything'; a prompt
    of exactly the budget fits."""
    from solopo.data.contexts import fit_documents, render_prompt

    gold = [format_document(f"G{i}", f"gold fact {i} .") for i in range(5)]
    cands = [format_document(f"D{i}", " ".join(["filler"] * (i % 4 + 1))) for i in range(9)]
    sizes = [_words(render_prompt(gold, cands[:k], "where ?", f"s-{k}")) for k in range(len(cands) + 1)]
    for budget in range(sizes[0], sizes[-1] + 2):
        k, prompt, n = fit_documents(gold, cands, "where ?", budget, _words, "s")
        want = max(j for j in range(len(cands) + 1) if sizes[j] <= budget)
        assert (k, n) == (want, sizes[want]) and prompt == render_prompt(gold, cands[:want], "where ?", f"s-{want}"), budget
    with pytest.raises(UnfittableError) as e:
        fit_documents(gold, cands, "where ?", sizes[0] - 1, _words, "s")
    assert str(e.value) == f"the supporting documents alone need {sizes[0]} tokens, more than the budget of {sizes[0] - 1}"
    # the gold-only prompt is seeded too: the same order every time
    assert len({fit_documents(gold, [], "where ?", sizes[0], _words, "s")[1] for _ in range(5)}) == 1


def test_distractors_come_from_other_questions_once_the_own_ones_run_out(count):
    """A long budget needs pool documents: they are real documents of other questions, each at most once,
    never one titled like a paragraph of this question."""
    from solopo.data.contexts import gold_answers

    records = generate_records(8, 2, {2: 1.0}, SIZES)
    out, _ = build_contexts(records, paragraph_pool(records), count, {"short": 150, "long": 900}, 0)
    pool_docs = {format_document(t, x) for t, x in paragraph_pool(records)}
    for rec, row in zip(records, out["long"]):
        own = {format_document(p["title"], p["paragraph_text"]) for p in rec["paragraphs"]}
        docs = _docs(row["prompt"])
        foreign = [d for d in docs if d not in own]
        assert foreign and all(d in pool_docs for d in foreign) and len(set(docs)) == len(docs)
        assert len(docs) > len(own)  # the own paragraphs alone would not fill the budget
        assert row["tokens"] > 900 - 60  # and enough were drawn to fill it to within a document
    assert gold_answers({"answer": "Zapex"}) == ["Zapex"]  # no aliases key
    assert gold_answers({"answer": "Zapex", "answer_aliases": ["zapex city"]}) == ["Zapex", "zapex city"]
    assert gold_answers({"answer": "Zapex", "answer_aliases": ["zapex city"]}, use_aliases=False) == ["Zapex"]
