"""RULER-style short/long context synthesis for the training questions (SoLoPO App. C; RULER `scripts/data/synthetic/qa.py`).

For each question: its supporting paragraphs (all of them, always) plus distractors
(first the question's own non-supporting paragraphs, then random paragraphs from the
global pool, never one titled like a paragraph of the question), as many as fit the
token budget measured with the target model's tokenizer on the full prompt. The short
context is a prefix of the long one's distractor list (long ⊇ short: both carry the
same evidence). Documents are shuffled with a per-question RNG (not RULER's fixed-seed
shuffle, which puts gold documents at the same position for equal sizes).
"""
from __future__ import annotations

import random
from collections.abc import Callable

from solopo.artifacts import DataError
from solopo.data.prompts import format_context, format_document, qa_prompt


class UnfittableError(DataError):
    pass


def gold_answers(rec: dict, use_aliases: bool = True) -> list[str]:
    return [rec["answer"]] + (list(rec.get("answer_aliases", [])) if use_aliases else [])


def paragraph_pool(records: list[dict]) -> list[tuple[str, str]]:
    """Unique (title, text) paragraphs of all records, in first-seen order (deterministic)."""
    seen, pool = set(), []
    for r in records:
        for p in r["paragraphs"]:
            key = (p["title"], p["paragraph_text"])
            if key not in seen:
                seen.add(key)
                pool.append(key)
    return pool


def padded_paragraphs(rec: dict, records: list[dict], min_words: int, rng: random.Random) -> list[dict]:
    """`rec`'s paragraphs with other records' paragraphs inserted at seeded positions until the words reach
    `min_words`: a benchmark fixture as long as the released data (LongBench v1's 31.5K-token truncation,
    v2's 120K), with the record's own paragraphs spread through it. `min_words` 0: the record's alone."""
    paras = list(rec["paragraphs"])
    words = sum(len(p["paragraph_text"].split()) for p in paras)
    if words >= min_words:
        return paras  # no draw from `rng`: a fixture without padding is what it was
    others = [p for r in records if r["id"] != rec["id"] for p in r["paragraphs"]]
    if words < min_words and not others:
        raise ValueError(f"fixture_min_words {min_words}: no other records to fill {rec['id']!r} with")
    order = list(range(len(others)))
    rng.shuffle(order)
    while words < min_words:
        for i in order:
            p = others[i]
            paras.insert(rng.randrange(len(paras) + 1), p)
            words += len(p["paragraph_text"].split())
            if words >= min_words:
                break
    return paras


def _candidates(rec: dict, pool: list[tuple[str, str]], rng: random.Random, count: int) -> list[str]:
    own = [format_document(p["title"], p["paragraph_text"]) for p in rec["paragraphs"] if not p["is_supporting"]]
    rng.shuffle(own)
    titles = {p["title"] for p in rec["paragraphs"]}
    out, tries, seen = own, 0, set(own)
    while len(out) < count and tries < 20 * count + 100:
        t, txt = pool[rng.randrange(len(pool))]
        tries += 1
        doc = format_document(t, txt)
        if t not in titles and doc not in seen:  # drawn with replacement: a document twice in one context is a bug
            seen.add(doc)
            out.append(doc)
    return out


def render_prompt(gold: list[str], distractors: list[str], question: str, seed_key: str) -> str:
    """The QA prompt over `gold` + `distractors` in an order seeded by `seed_key`."""
    docs = gold + distractors
    random.Random(seed_key).shuffle(docs)
    return qa_prompt(format_context(docs), question)


def fit_documents(gold: list[str], candidates: list[str], question: str, budget: int,
                  count_tokens: Callable[[str], int], seed_key: str) -> tuple[int, str, int]:
    """Largest k with tokens(prompt(gold + candidates[:k])) <= budget (binary search). Returns (k, prompt, tokens)."""
    lo, hi = 0, len(candidates)
    prompt = render_prompt(gold, [], question, f"{seed_key}-0")
    n = count_tokens(prompt)
    if n > budget:
        raise UnfittableError(f"the supporting documents alone need {n} tokens, more than the budget of {budget}")
    best = (0, prompt, n)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        p = render_prompt(gold, candidates[:mid], question, f"{seed_key}-{mid}")
        t = count_tokens(p)
        if t <= budget:
            lo, best = mid, (mid, p, t)
        else:
            hi = mid - 1
    return best


def build_contexts(records: list[dict], pool: list[tuple[str, str]], count_tokens: Callable[[str], int],
                   budgets: dict[str, int], seed: int, use_aliases: bool = True,
                   allow_skip: bool = False, progress=None) -> tuple[dict[str, list[dict]], dict]:
    """Short and long prompts for each record. Returns ({ctx: rows}, stats)."""
    names = sorted(budgets, key=budgets.get)
    out = {name: [] for name in names}
    skipped = 0
    avg_doc = max(1, sum(count_tokens(format_document(t, x)) for t, x in pool[:200]) // max(1, min(200, len(pool))))
    for rec in records:
        rng = random.Random(f"{seed}-{rec['id']}")
        gold = [format_document(p["title"], p["paragraph_text"]) for p in rec["paragraphs"] if p["is_supporting"]]
        need = 2 * max(budgets.values()) // avg_doc + 20
        cands = _candidates(rec, pool, rng, need)
        rows, prev_k = {}, 0
        try:
            for name in names:
                k, prompt, tokens = fit_documents(gold, cands, rec["question"], budgets[name], count_tokens,
                                                  f"{seed}-{rec['id']}-{name}")
                rows[name] = {"id": rec["id"], "ctx": name, "question": rec["question"],
                              "answers": gold_answers(rec, use_aliases), "prompt": prompt, "tokens": tokens,
                              "target_tokens": budgets[name], "num_docs": k + len(gold), "num_gold": len(gold)}
                prev_k = max(prev_k, k)
        except UnfittableError as e:
            if not allow_skip:
                raise UnfittableError(f"question {rec['id']}: {e} (data.skip_unfittable: true skips such questions)") from None
            skipped += 1
            continue
        for name in names:
            out[name].append(rows[name])
        if progress is not None:
            progress.update(1)
    if records and skipped == len(records):  # else it surfaces stages later as "no training rows"
        raise UnfittableError(f"all {skipped} questions were skipped: their supporting documents alone exceed the "
                              f"short budget of {budgets[names[0]]} tokens; raise data.short_tokens")
    stats = {"questions": len(records), "skipped_unfittable": skipped}
    for name in names:
        toks = [r["tokens"] for r in out[name]]
        stats[f"{name}_mean_tokens"] = round(sum(toks) / max(1, len(toks)), 1)
        stats[f"{name}_mean_docs"] = round(sum(r["num_docs"] for r in out[name]) / max(1, len(toks)), 2)
    if len(names) == 2:
        stats["compression_ratio"] = round(stats[f"{names[0]}_mean_tokens"] / max(1e-9, stats[f"{names[1]}_mean_tokens"]), 4)
    return out, stats
