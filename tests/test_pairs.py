"""Preference pairs (solopo.pairs): labels, selection and the per-method training sets.

The expected labels are written out by hand per response (RIGHT/WRONG below), not derived with
`sub_em`, so a swapped chosen/rejected, a wrong label or a wrong dataset wiring shows up here.
"""
from __future__ import annotations

import random

import pytest

from solopo.pairs import DATASETS, build_pairs, label_sub_em, make_pair, method_datasets

GOLDS = ["Kerak", "Rakke"]  # answer + alias, as the contexts rule writes them


def _resp(answer: str, k: int) -> str:
    return f"Lokin born Zapex{k} . Zapex{k} in {answer} . The answer is: {answer}"


RIGHT = [_resp("Kerak", 0), _resp("Rakke", 1), "reasoning .\nThe answer is: the kerak.", _resp("Kerak", 3)]
WRONG = [_resp("Borke", 0), "The answer is: No answer", "Kerak is mentioned .\nThe answer is: Borke", "no marker"]


def test_labels_follow_sub_em_on_the_extracted_answer_with_aliases():
    assert label_sub_em(RIGHT, GOLDS) == [True] * 4
    assert label_sub_em(WRONG, GOLDS) == [False] * 4
    assert label_sub_em([_resp("Rakke", 0)], ["Kerak"]) == [False]  # without the alias the alias answer is wrong


def test_make_pair_chosen_is_right_and_rejected_wrong():
    mixed = [WRONG[0], RIGHT[0], WRONG[1], RIGHT[1], WRONG[2]]
    labels = label_sub_em(mixed, GOLDS)
    seen = set()
    for seed in range(40):
        chosen, rejected = make_pair(mixed, labels, random.Random(seed))
        assert chosen in RIGHT and rejected in WRONG
        seen.add((chosen, rejected))
    assert len(seen) > 3  # picked at random, not always the first of each
    assert make_pair(RIGHT, [True] * 4, random.Random(0)) is None
    assert make_pair(WRONG, [False] * 4, random.Random(0)) is None


def _world(kinds: dict[str, tuple[str, str]]):
    """samples/contexts for ids q0..qN; kinds[id] = (short kind, long kind) with kind in mixed/right/wrong."""
    make = {"mixed": [RIGHT[0], WRONG[0], RIGHT[1], WRONG[1]], "right": RIGHT, "wrong": WRONG}
    samples = {c: [] for c in ("short", "long")}
    contexts = {c: [] for c in ("short", "long")}
    for qid, (ks, kl) in kinds.items():
        for ctx, kind in (("short", ks), ("long", kl)):
            samples[ctx].append({"id": qid, "ctx": ctx, "answers": GOLDS, "responses": make[kind]})
            contexts[ctx].append({"id": qid, "ctx": ctx, "question": f"question {qid}", "answers": GOLDS,
                                  "prompt": f"{ctx} prompt of {qid}"})
    return samples, contexts


KINDS = {"q0": ("right", "mixed"), "q1": ("mixed", "wrong"), "q2": ("mixed", "mixed"), "q3": ("wrong", "right"),
         "q4": ("mixed", "mixed"), "q5": ("right", "right")}


def test_build_pairs_rows_prompts_and_statistics():
    samples, contexts = _world(KINDS)
    rows, stats = build_pairs(samples, contexts, seed=3, num_pairs=100, chance=0.1)
    by_id = {r["id"]: r for r in rows}
    # all-right / all-wrong on both contexts: discarded; the rows keep the input order
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q4"]
    for r in rows:
        assert r["x_short"] == f"short prompt of {r['id']}" and r["x_long"] == f"long prompt of {r['id']}"
        assert r["answers"] == GOLDS and r["question"] == f"question {r['id']}"
        for ctx in ("short", "long"):
            kind = KINDS[r["id"]][0 if ctx == "short" else 1]
            if kind != "mixed":
                assert r[ctx] is None
            else:
                assert r[ctx]["chosen"] in RIGHT and r[ctx]["rejected"] in WRONG
    assert by_id["q0"]["short"] is None and by_id["q1"]["long"] is None
    s, lg = stats["short"], stats["long"]
    assert s["inputs"] == 6 and s["samples"] == 24 and s["pairs"] == 3 and s["yield"] == 0.5
    # short: right x2 (8) + mixed x3 (6) -> 14/24 right; long: right x2 (8) + mixed x3 (6) -> 14/24
    assert s["sampled_accuracy"] == round(14 / 24, 4) and lg["sampled_accuracy"] == round(14 / 24, 4)
    assert s["accuracy_over_chance"] == round(14 / 24 / 0.1, 2)
    assert s["all_right"] == 2 and lg["all_right"] == 2
    assert s["answer_format_rate"] == round(23 / 24, 4)  # one WRONG response lacks the marker
    assert stats["intersection"] == 2 and stats["selected"] == {"short": 3, "long": 3}


def test_num_pairs_caps_each_set_and_prefers_the_intersection():
    samples, contexts = _world(KINDS)
    rows, stats = build_pairs(samples, contexts, seed=3, num_pairs=2, chance=None)
    assert stats["selected"] == {"short": 2, "long": 2}
    # both slots of each set go to q2 and q4, which have a pair on both contexts
    assert [r["id"] for r in rows] == ["q2", "q4"]
    assert all(r["short"] and r["long"] for r in rows)
    picks = set()
    for seed in range(6):
        rows, stats = build_pairs(samples, contexts, seed=seed, num_pairs=2, chance=None, intersection=False)
        # without the intersection rule: any two of the three pairs of each set, chosen with the seed
        assert stats["selected"] == {"short": 2, "long": 2}
        assert sum(bool(r["short"]) for r in rows) == 2 and sum(bool(r["long"]) for r in rows) == 2
        picks.add(tuple((r["id"], bool(r["short"]), bool(r["long"])) for r in rows))
    assert len(picks) > 1
    assert stats["short"]["accuracy_over_chance"] is None


def test_build_pairs_is_a_function_of_the_seed():
    samples, contexts = _world(KINDS)
    assert build_pairs(samples, contexts, 3, 100)[0] == build_pairs(samples, contexts, 3, 100)[0]
    picks = {str(build_pairs(samples, contexts, s, 100)[0]) for s in range(8)}
    assert len(picks) > 1


def test_method_datasets_read_the_right_prompt_and_pair():
    samples, contexts = _world(KINDS)
    rows, _ = build_pairs(samples, contexts, seed=3, num_pairs=100)
    sets = method_datasets(rows)
    assert set(sets) == set(DATASETS)
    by = {r["id"]: r for r in rows}
    short_ids = [r["id"] for r in rows if r["short"]]
    long_ids = [r["id"] for r in rows if r["long"]]
    for name, ids, prompt, pair in [("short", short_ids, "x_short", "short"), ("long", long_ids, "x_long", "long"),
                                    ("expand", short_ids, "x_long", "short")]:
        assert [r["id"] for r in sets[name]] == ids, name
        for r in sets[name]:
            src = by[r["id"]]
            assert r == {"id": r["id"], "x": src[prompt], "y_w": src[pair]["chosen"], "y_l": src[pair]["rejected"]}
            sft = next(x for x in sets[f"sft_{name}"] if x["id"] == r["id"])
            assert sft == {"id": r["id"], "x": src[prompt], "y_w": src[pair]["chosen"]}
        assert len(sets[f"sft_{name}"]) == len(ids)
    # SoLo / SoLo-KL / LongPO: short-sampled pair, both prompts
    assert [r["id"] for r in sets["solo"]] == short_ids
    for r in sets["solo"]:
        src = by[r["id"]]
        assert r == {"id": r["id"], "x": src["x_short"], "x_long": src["x_long"], "y_w": src["short"]["chosen"],
                     "y_l": src["short"]["rejected"]}
        assert r["y_w"] in RIGHT and r["y_l"] in WRONG


@pytest.mark.parametrize("golds, expected", [(["Kerak", "Rakke"], 1), (["Kerak"], 0)])
def test_alias_only_answers_yield_a_pair_only_with_aliases(golds, expected):
    samples = {c: [{"id": "q", "ctx": c, "answers": golds, "responses": [_resp("Rakke", 0), _resp("Borke", 1)]}]
               for c in ("short", "long")}
    contexts = {c: [{"id": "q", "ctx": c, "question": "q ?", "answers": golds, "prompt": c}] for c in ("short", "long")}
    rows, stats = build_pairs(samples, contexts, 0, 10)
    assert stats["short"]["pairs"] == expected and len(rows) == expected


def test_statistics_of_single_inputs_and_their_rounding():
    """One sample, one input, a third: the divisions and the 4-digit rounding (found by the mutation run)."""
    samples = {"short": [{"id": "q0", "ctx": "short", "answers": GOLDS, "responses": [RIGHT[0]]}],
               "long": [{"id": "q0", "ctx": "long", "answers": GOLDS, "responses": [RIGHT[0], WRONG[0]]}]}
    contexts = {c: [{"id": "q0", "ctx": c, "question": "q ?", "answers": GOLDS, "prompt": c}] for c in ("short", "long")}
    _, stats = build_pairs(samples, contexts, 0, 10, chance=0.5)
    assert stats["chance_accuracy"] == 0.5
    assert stats["short"]["sampled_accuracy"] == 1.0 and stats["short"]["accuracy_over_chance"] == 2.0
    assert stats["short"]["answer_format_rate"] == 1.0 and stats["short"]["yield"] == 0.0
    assert stats["long"]["yield"] == 1.0 and stats["long"]["pairs"] == 1
    samples, contexts = _world({"q0": ("mixed", "mixed"), "q1": ("right", "right"), "q2": ("wrong", "wrong")})
    _, stats = build_pairs(samples, contexts, 0, 10)
    assert stats["short"]["yield"] == 0.3333 and stats["short"]["sampled_accuracy"] == 0.5


# --------------------------------------------------------------------- selection by hop count
def test_hop_count_reads_musiques_id_prefix():
    from solopo.pairs import hop_count

    ids = ("2hop__1_2", "3hop1__9", "4hop3__7", "12hop__x", "hop__1", "q7", 5)
    assert [hop_count(i) for i in ids] == ["2hop", "3hop", "4hop", "12hop", "unknown", "unknown", "unknown"]


HOP_IDS = [f"2hop__{k}" for k in range(40)] + [f"3hop1__{k}" for k in range(20)] + [f"4hop1__{k}" for k in range(10)]


def test_stratified_order_is_a_seeded_permutation_that_keeps_the_hop_mix_in_every_prefix():
    from collections import Counter

    from solopo.pairs import hop_count, stratified_order

    order = stratified_order(HOP_IDS, seed=3)
    assert sorted(order) == sorted(HOP_IDS)
    for n in range(7, 71, 7):
        mix = Counter(hop_count(i) for i in order[:n])
        assert all(abs(mix[h] - n * share) <= 2 for h, share in (("2hop", 4 / 7), ("3hop", 2 / 7), ("4hop", 1 / 7))), (n, mix)
    assert order == stratified_order(HOP_IDS, seed=3) and order != stratified_order(HOP_IDS, seed=4)
    assert [i for i in order if i.startswith("2hop")] != HOP_IDS[:40]  # each group shuffled, not in file order


def _pairable(ids: list[str], long_ids: set[str]) -> tuple[dict, dict]:
    """Every id has a pair on the short context; only `long_ids` also on the long one (its long samples are all right)."""
    right, wrong = "The answer is: X", "The answer is: Y"
    short = [{"id": i, "responses": [right, wrong], "answers": ["X"]} for i in ids]
    long = [{"id": i, "responses": [right, wrong] if i in long_ids else [right, right], "answers": ["X"]} for i in ids]
    ctxs = [{"id": i, "question": f"q {i}", "answers": ["X"], "prompt": f"p {i}"} for i in ids]
    return {"short": short, "long": long}, {"short": ctxs, "long": ctxs}


def test_selection_takes_the_intersection_tier_first_each_tier_seeded_and_says_so():
    both = set(HOP_IDS[::2])  # 35 questions pairable on both contexts
    samples, ctxs = _pairable(HOP_IDS, both)
    picks = {}
    for seed in (1, 2):
        rows, stats = build_pairs(samples, ctxs, seed=seed, num_pairs=40)
        chosen = [r["id"] for r in rows if r["short"]]
        assert set(chosen) >= both  # the intersection tier first (the default), then 5 of the rest
        picks[seed] = set(chosen) - both
        sub, _ = build_pairs(samples, ctxs, seed=seed, num_pairs=10)
        picks[seed, "both"] = {r["id"] for r in sub if r["short"]}
        assert picks[seed, "both"] <= both
    assert picks[1] != picks[2] and picks[1, "both"] != picks[2, "both"]  # both tiers depend on the seed
    assert stats["selection"] == "seeded random, stratified by hop count (intersection tier first)"
    assert stats["hop_mix"] == {"inputs": {"2hop": 40, "3hop": 20, "4hop": 10},
                                "short": {"2hop": 23, "3hop": 11, "4hop": 6}, "long": {"2hop": 20, "3hop": 10, "4hop": 5}}
    _, plain = build_pairs(samples, ctxs, seed=1, num_pairs=40, intersection=False)
    assert plain["selection"] == "seeded random, stratified by hop count"
