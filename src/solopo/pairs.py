"""sub-EM labelling and preference-pair construction (SoLoPO §3 and App. C).

Each sampled CoT output is labelled correct when `sub_em(extract_answer(output), golds)`.
Per input, one random correct output is the chosen and one random incorrect output the
rejected; inputs whose samples are all correct or all wrong are discarded. The
intersection rule prefers questions that yield a pair on both the short and the long
context. Besides the yield, the statistics report the sampled accuracy against chance
(a model at chance still yields pairs).
"""
from __future__ import annotations

import random
import re
from collections import Counter

from solopo.eval.metrics import extract_answer, has_answer_marker, sub_em

_HOPS = re.compile(r"^(\d+)hop")


def hop_count(qid: str) -> str:
    """MuSiQue's hop label from the id prefix (`2hop__`, `3hop1__`, `4hop3__` -> 2hop/3hop/4hop)."""
    m = _HOPS.match(str(qid))
    return f"{m.group(1)}hop" if m else "unknown"


def stratified_order(ids: list[str], seed, label=hop_count) -> list[str]:
    """A seeded random order of `ids` in which every prefix keeps the hop mix of the whole list.

    MuSiQue's training file is grouped by hop count (2-hop first), so taking the first
    `num_pairs` questions in file order would select 2-hop questions only. Each hop group is
    shuffled on its own and its k-th member (of n) gets the key (k + u) / n, u uniform in [0, 1):
    sorting by key interleaves the groups in proportion to their sizes.
    """
    rng = random.Random(f"{seed}-pair-selection")
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(label(i), []).append(i)
    keyed = []
    for name in sorted(groups):
        members = groups[name]
        rng.shuffle(members)
        keyed += [((k + rng.random()) / len(members), i) for k, i in enumerate(members)]
    return [i for _, i in sorted(keyed)]


def label_sub_em(responses: list[str], golds: list[str]) -> list[bool]:
    return [sub_em(extract_answer(r), golds) for r in responses]


def make_pair(responses: list[str], labels: list[bool], rng: random.Random) -> tuple[str, str] | None:
    """(chosen, rejected) picked at random among correct / incorrect outputs, or None for all-right/all-wrong.
    An empty output is never picked: as a rejected it would teach nothing but "say something"."""
    right = [r for r, ok in zip(responses, labels) if ok and str(r).strip()]
    wrong = [r for r, ok in zip(responses, labels) if not ok and str(r).strip()]
    if not right or not wrong:
        return None
    return rng.choice(right), rng.choice(wrong)


def build_pairs(samples: dict[str, list[dict]], contexts: dict[str, list[dict]], seed: int, num_pairs: int,
                chance: float | None = None, intersection: bool = True) -> tuple[list[dict], dict]:
    """Pair records keyed by question id, plus statistics.

    `samples[ctx]` are sampling rows ({id, responses, answers}); `contexts[ctx]` the prompts.
    Each output row: {id, question, answers, x_short, x_long, short: {chosen, rejected} | None,
    long: {chosen, rejected} | None}. Selection: questions with pairs on both contexts first
    (intersection rule), then the rest, up to `num_pairs` per pair set; within each tier in a
    seeded random order stratified by hop count (`stratified_order`). The hop mix of the inputs
    and of each selected set is in the statistics (`hop_mix`).
    """
    prompts = {ctx: {r["id"]: r for r in rows} for ctx, rows in contexts.items()}
    stats: dict = {"chance_accuracy": chance}
    per_ctx: dict[str, dict[str, dict | None]] = {}
    for ctx, rows in samples.items():
        pairs, n_right, n_total, n_marker, yields = {}, 0, 0, 0, 0
        for row in rows:
            labels = label_sub_em(row["responses"], row["answers"])
            rng = random.Random(f"{seed}-{ctx}-{row['id']}")
            pair = make_pair(row["responses"], labels, rng)
            pairs[row["id"]] = None if pair is None else {"chosen": pair[0], "rejected": pair[1]}
            n_right += sum(labels)
            n_total += len(labels)
            n_marker += sum(has_answer_marker(r) for r in row["responses"])
            yields += pair is not None
        per_ctx[ctx] = pairs
        stats[ctx] = {
            "inputs": len(rows), "samples": n_total,
            "sampled_accuracy": round(n_right / max(1, n_total), 4),
            "accuracy_over_chance": round(n_right / max(1, n_total) / chance, 2) if chance else None,
            "answer_format_rate": round(n_marker / max(1, n_total), 4),
            "all_right": sum(1 for r in rows if all(label_sub_em(r["responses"], r["answers"]))),
            "yield": round(yields / max(1, len(rows)), 4), "pairs": yields,
            "empty_responses": sum(not str(r).strip() for row in rows for r in row["responses"]),
            "identical_pairs": sum(1 for p in pairs.values() if p and p["chosen"].strip() == p["rejected"].strip()),
        }
    ids = [r["id"] for r in contexts["short"]]
    both = [i for i in ids if per_ctx["short"].get(i) and per_ctx["long"].get(i)]
    rest = [i for i in ids if i not in set(both)]
    # Within each tier, a seeded random order stratified by hop count (not the file's order).
    order = stratified_order(both, seed) + stratified_order(rest, seed) if intersection else stratified_order(ids, seed)
    out, counts = [], {"short": 0, "long": 0}
    for i in order:
        row = {"id": i, "question": prompts["short"][i]["question"], "answers": prompts["short"][i]["answers"],
               "x_short": prompts["short"][i]["prompt"], "x_long": prompts["long"][i]["prompt"],
               "short": None, "long": None}
        for ctx in ("short", "long"):
            if per_ctx[ctx].get(i) and counts[ctx] < num_pairs:
                row[ctx] = per_ctx[ctx][i]
                counts[ctx] += 1
        if row["short"] or row["long"]:
            out.append(row)
    # Selection is random; the rows keep the input order, so when every pair fits nothing changes.
    position = {i: k for k, i in enumerate(ids)}
    out.sort(key=lambda r: position[r["id"]])
    stats["intersection"] = len(both)
    stats["selected"] = counts
    stats["selection"] = "seeded random, stratified by hop count (intersection tier first)" if intersection \
        else "seeded random, stratified by hop count"
    stats["hop_mix"] = {
        "inputs": dict(sorted(Counter(hop_count(i) for i in ids).items())),
        **{ctx: dict(sorted(Counter(hop_count(r["id"]) for r in out if r[ctx]).items())) for ctx in ("short", "long")},
    }
    return out, stats


# Floors below which sampled data is degenerate (e.g. token salad at a far too high temperature):
# the pairs job stops with the measured numbers instead of training on it. Config `pairs.*`.
DEFAULT_FLOORS = {"min_answer_format_rate": 0.25, "min_pair_yield": 0.05}


def check_quality(stats: dict, floors: dict, where: str) -> None:
    """Raise DataError (one line, with the numbers) when the samples of either context are degenerate:
    answer-format rate or pair yield below the configured floors. Empty responses are counted
    (`empty_responses`) and never paired (`make_pair`); a sampler that returns mostly empty
    outputs fails the answer-format floor (an empty output has no answer)."""
    from solopo.artifacts import DataError

    for ctx in ("short", "long"):
        s = stats[ctx]
        for key, stat, what in (("min_answer_format_rate", "answer_format_rate", "answer-format rate"),
                                ("min_pair_yield", "yield", "pair yield")):
            floor = floors.get(key, DEFAULT_FLOORS[key])
            if s[stat] < floor:
                raise DataError(f"{where}: {ctx}-context {what} {s[stat]} ({s['pairs']} pairs from {s['inputs']} inputs, "
                                f"{s['samples']} samples) is below pairs.{key} {floor}: the samples are degenerate; "
                                "check sampling.temperature, sampling.max_new_tokens and the model")


def check_distinct(rows: list[dict], path, chosen: str = "y_w", rejected: str = "y_l") -> None:
    """A pair whose chosen equals its rejected (or either is empty) trains with zero gradient."""
    from solopo.artifacts import DataError

    for i, r in enumerate(rows, 1):
        for sub in ([r.get("short"), r.get("long")] if "short" in r or "long" in r else [r]):
            if not sub or rejected not in sub:
                continue
            w, lo = str(sub.get(chosen, "")).strip(), str(sub[rejected]).strip()
            if not w or not lo:
                raise DataError(f"{path}:{i}: id {r.get('id')!r} has an empty {chosen if not w else rejected}; "
                                "expected two non-empty responses")
            if w == lo:
                raise DataError(f"{path}:{i}: id {r.get('id')!r} has {chosen} equal to {rejected}; a pair of one "
                                "response trains with zero gradient")


DATASETS = ("short", "long", "expand", "solo", "sft_short", "sft_long", "sft_expand")


def method_datasets(pairs: list[dict]) -> dict[str, list[dict]]:
    """The per-method training sets (SoLoPO Table 2), as {x, y_w, y_l, x_long} rows.

    - short: (x_short, y_w, y_l) sampled on x_short;  sft_short: its chosen only.
    - long: (x_long, y_w^L, y_l^L) sampled on x_long;  sft_long: its chosen only.
    - expand: short-sampled pairs with the long prompt (Expand-Long-PO); sft_expand: chosen only.
    - solo: (x_short, x_long, y_w, y_l), short-sampled (SoLo-PO, SoLo-KL, LongPO).
    """
    out = {k: [] for k in DATASETS}
    for r in pairs:
        if r["short"]:
            s = r["short"]
            out["short"].append({"id": r["id"], "x": r["x_short"], "y_w": s["chosen"], "y_l": s["rejected"]})
            out["sft_short"].append({"id": r["id"], "x": r["x_short"], "y_w": s["chosen"]})
            out["expand"].append({"id": r["id"], "x": r["x_long"], "y_w": s["chosen"], "y_l": s["rejected"]})
            out["sft_expand"].append({"id": r["id"], "x": r["x_long"], "y_w": s["chosen"]})
            out["solo"].append({"id": r["id"], "x": r["x_short"], "x_long": r["x_long"], "y_w": s["chosen"],
                                "y_l": s["rejected"]})
        if r["long"]:
            lp = r["long"]
            out["long"].append({"id": r["id"], "x": r["x_long"], "y_w": lp["chosen"], "y_l": lp["rejected"]})
            out["sft_long"].append({"id": r["id"], "x": r["x_long"], "y_w": lp["chosen"]})
    return out
