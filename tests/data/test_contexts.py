"""Contexts whose evidence does not fit: a clear error naming the question, or a counted skip.

A question whose supporting documents alone exceed the short budget (measured with the
target model's tokenizer on the full prompt) raises `UnfittableError` naming its id; with
`data.skip_unfittable: true` it is skipped and counted (`skipped_unfittable` in the stats,
which `pipeline.contexts` writes into both manifests).
"""
import copy
import json

import pytest

from solopo.artifacts import DataError, read_jsonl
from solopo.data.contexts import UnfittableError, build_contexts, paragraph_pool

BUDGETS = {"short": 256, "long": 640}


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_dir)


@pytest.fixture()
def records(toy_records):
    recs = copy.deepcopy(toy_records)
    # one question whose supporting paragraph alone is far longer than the short budget
    sup = next(p for p in recs[3]["paragraphs"] if p["is_supporting"])
    sup["paragraph_text"] = " ".join([sup["paragraph_text"]] * 60)
    return recs


def _count(tok):
    return lambda s: len(tok(s, add_special_tokens=False)["input_ids"])


def test_unfittable_question_raises_naming_its_id(records, tokenizer):
    with pytest.raises(UnfittableError) as e:
        build_contexts(records, paragraph_pool(records), _count(tokenizer), BUDGETS, seed=0)
    msg = str(e.value)
    assert isinstance(e.value, DataError)
    assert msg.startswith(f"question {records[3]['id']}: the supporting documents alone need ")
    assert msg.endswith("tokens, more than the budget of 256 (data.skip_unfittable: true skips such questions)")


def test_unfittable_question_is_skipped_and_counted(records, tokenizer):
    out, stats = build_contexts(records, paragraph_pool(records), _count(tokenizer), BUDGETS, seed=0, allow_skip=True)
    assert stats["skipped_unfittable"] == 1 and stats["questions"] == len(records)
    for ctx in ("short", "long"):
        ids = [r["id"] for r in out[ctx]]
        assert records[3]["id"] not in ids and len(ids) == len(records) - 1
        assert all(r["tokens"] <= BUDGETS[ctx] for r in out[ctx])


def test_budget_below_every_question_is_an_error_even_when_skipping(records, tokenizer):
    """Skipping every question would only surface later as 'no training rows'; say it now."""
    with pytest.raises(UnfittableError) as e:
        build_contexts(records, paragraph_pool(records), _count(tokenizer), {"short": 8, "long": 16}, seed=0,
                       allow_skip=True)
    assert str(e.value) == (f"all {len(records)} questions were skipped: their supporting documents alone exceed "
                            "the short budget of 8 tokens; raise data.short_tokens")


def test_one_token_per_character_tokenizer(toy_records):
    """A tokenizer much finer than the one the budgets were chosen for: same clear error."""
    with pytest.raises(UnfittableError, match=r"^question \w+: the supporting documents alone need \d+ tokens, more "
                                              r"than the budget of 128 \(data.skip_unfittable: true skips such"):
        build_contexts(toy_records, paragraph_pool(toy_records), len, {"short": 128, "long": 4096}, seed=0)


def _cfg(skip: bool) -> dict:
    return {"data": {"short_tokens": BUDGETS["short"], "long_tokens": BUDGETS["long"], "num_questions": None,
                     "use_aliases": True, "skip_unfittable": skip}}


def test_pipeline_contexts_writes_skip_count_to_manifests(records, tiny_lm_dir, tmp_path):
    from solopo.pipeline import contexts

    src = tmp_path / "musique_train.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    short, long = tmp_path / "short.jsonl", tmp_path / "long.jsonl"
    with pytest.raises(UnfittableError, match=f"^question {records[3]['id']}: "):
        contexts(str(src), tiny_lm_dir, str(short), str(long), _cfg(False), 0, str(tmp_path / "a.log"))
    assert not short.exists() and not long.exists()
    contexts(str(src), tiny_lm_dir, str(short), str(long), _cfg(True), 0, str(tmp_path / "b.log"))
    for path in (short, long):
        m = json.loads(path.with_name(path.name + ".manifest.json").read_text())
        assert m["stats"]["skipped_unfittable"] == 1
        assert len(read_jsonl(path)) == len(records) - 1


def test_training_on_an_empty_pair_set_says_why(tmp_path):
    """What follows when skipping leaves nothing to train on: one line, before any model is loaded."""
    from solopo.pipeline import train

    empty = tmp_path / "sft_short.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError) as e:
        train(str(empty), None, "no/model", str(tmp_path / "model"), "sft_short", "sft_short", None, {}, 0,
              str(tmp_path / "t.log"))
    assert str(e.value) == f"{empty}: no training rows for run sft_short (the pair yield was zero)"
    assert not (tmp_path / "model").exists()


# ------------------------------------------------------------ synthetic records (word-count tokens)
def _words(s: str) -> int:
    return len(s.split())


def _synthetic(n: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """n questions, each with one supporting and one own distractor paragraph (all the same length), and a
    pool of 300 other paragraphs, so every long context needs pool draws to reach its budget."""
    recs = [{"id": f"s{i}", "question": f"where was P{i} born ?", "answer": f"C{i}", "paragraphs": [
        {"title": f"Gold{i}", "paragraph_text": f"P{i} was born in C{i} long ago", "is_supporting": True},
        {"title": f"Own{i}", "paragraph_text": f"P{i} met Q{i} in D{i} long ago", "is_supporting": False}]}
        for i in range(n)]
    pool = [(f"Pool{j}", f"R{j} lived in E{j} long ago") for j in range(300)]
    return recs, pool


def test_a_single_questions_statistics_are_its_own():
    recs, pool = _synthetic(1)
    out, stats = build_contexts(recs, pool, _words, {"short": 60, "long": 160}, seed=0)
    for name in ("short", "long"):
        assert stats[f"{name}_mean_tokens"] == out[name][0]["tokens"]
        assert stats[f"{name}_mean_docs"] == out[name][0]["num_docs"]


def test_long_contexts_are_filled_to_their_budget_from_the_pool():
    """With one own distractor, the long budget is filled from the pool: the prompt ends within one document
    of the budget, for a budget of a few documents (where the number of candidates drawn is tight) and of many."""
    from solopo.data.prompts import format_document

    recs, pool = _synthetic(5)
    doc = _words(format_document(*pool[0])) + 2  # + the "Document i:" header
    for long in (80, 280):
        out, _ = build_contexts(recs, pool, _words, {"short": 60, "long": long}, seed=0)
        for row in out["long"]:
            assert long - doc < row["tokens"] <= long and row["num_docs"] > 2, (long, row["tokens"], row["num_docs"])


def test_the_gold_documents_position_varies_across_questions():
    """Documents are shuffled per question (seeded by the seed, the question and the length): with every
    question holding the same number of documents, the gold one must not sit at one fixed position."""
    recs, pool = _synthetic(30)
    out, _ = build_contexts(recs, pool, _words, {"short": 60, "long": 160}, seed=0)
    for name in ("short", "long"):
        assert len({row["num_docs"] for row in out[name]}) == 1  # the same k for all: only the shuffle differs
        docs = [row["prompt"].split("\n\nDocument ") for row in out[name]]
        positions = {next(i for i, d in enumerate(ds) if f"Gold{r['id'][1:]}\n" in d) for ds, r in zip(docs, recs)}
        assert len(positions) >= 3, (name, positions)


# --------------------------------------------------------------------------- fixtures at the released lengths
def _recs(n: int) -> list[dict]:
    from solopo.data.toy_world import generate_records

    return generate_records(n, 3, {2: 1.0}, {"person": 60, "city": 20, "country": 10, "leader": 10, "spouse": 10})


def test_padded_paragraphs_reach_the_word_count_with_the_records_own_paragraphs_in_order():
    import random

    from solopo.data.contexts import padded_paragraphs

    recs = _recs(40)
    own = recs[0]["paragraphs"]
    paras = padded_paragraphs(recs[0], recs, 600, random.Random(1))
    assert sum(len(p["paragraph_text"].split()) for p in paras) >= 600
    assert [p for p in paras if p in own] == own  # all of its own, in their order, spread among the others
    assert paras.index(own[0]) > 0 or paras.index(own[-1]) < len(paras) - 1
    assert padded_paragraphs(recs[0], recs, 600, random.Random(1)) == paras  # seeded
    assert padded_paragraphs(recs[0], recs, 0, random.Random(1)) == own  # no padding asked: the record alone
    with pytest.raises(ValueError, match="no other records"):
        padded_paragraphs(recs[0], recs[:1], 600, random.Random(1))


def test_contexts_of_the_first_questions_draw_distractors_from_the_whole_file(tmp_path, tiny_lm_dir):
    """data.num_questions limits the questions, not the distractor pool (the rehearsal fills 8K-token
    contexts for 8 questions from 160 questions' paragraphs)."""
    from solopo import pipeline
    from solopo.artifacts import write_jsonl

    recs = _recs(30)
    write_jsonl(tmp_path / "train.jsonl", recs)
    cfg = {"data": {"num_questions": 1, "short_tokens": 300, "long_tokens": 1000, "use_aliases": True}}
    pipeline.contexts(str(tmp_path / "train.jsonl"), str(tiny_lm_dir), str(tmp_path / "s.jsonl"),
                      str(tmp_path / "l.jsonl"), cfg, 0, str(tmp_path / "log"))
    rows = read_jsonl(tmp_path / "l.jsonl")
    own = len(recs[0]["paragraphs"])  # every paragraph the one question has: all a pool of it could give
    assert len(rows) == 1 and rows[0]["num_docs"] > own, rows[0]["num_docs"]
