"""Scorers against a second implementation.

LongBench v1's `qa_f1_score` / `normalize_answer` and RULER's prediction clean-up ship inside
lm-eval (`lm_eval/tasks/longbench/metrics.py`, `lm_eval/tasks/ruler/common_utils.py`). Importing
those modules needs jieba/fuzzywuzzy/rouge (longbench) or a tokenizer download path (ruler), so the
functions are taken from lm-eval's installed source with `ast` and run as shipped. They are compared
with ours on thousands of generated strings that mix repeated words, articles, punctuation, case,
unicode letters, unicode punctuation and unicode whitespace. Hand cases then pin the behaviours that
separate a multiset F1 from a set F1, and the normalisation details.
"""
from __future__ import annotations

import ast
import random
import re
import string
from collections import Counter
from pathlib import Path

import pytest

from solopo.eval.metrics import normalize_answer, qa_f1_score, ruler_postprocess, string_match_part, sub_em


def _lm_eval_functions(relpath: str, names: tuple[str, ...]) -> dict:
    import importlib.util

    root = Path(importlib.util.find_spec("lm_eval").origin).parent
    tree = ast.parse((root / relpath).read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert sorted(d.name for d in defs) == sorted(names), f"lm-eval {relpath} no longer defines {names}"
    namespace = {"re": re, "string": string, "Counter": Counter, "Union": object}
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(root / relpath), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def longbench():
    return _lm_eval_functions("tasks/longbench/metrics.py", ("normalize_answer", "f1_score", "qa_f1_score"))


@pytest.fixture(scope="module")
def ruler():
    return _lm_eval_functions("tasks/ruler/common_utils.py", ("postprocess_pred",))


WORDS = ["the", "The", "THE", "a", "A", "an", "An", "theater", "another", "paris", "Paris", "PARIS", "x", "y", "new",
         "york", "1960", "3.14", "U.S.A.", "don't", "co-op", "Zürich", "zurich", "straße", "STRASSE", "東京", "naïve",
         "Ǆemal", "İstanbul", "café", "e\u0301", "ﬁsh", "Ω", "🙂", "'s", "—", "“quoted”", "«fr»", "…", "-", "(", ")",
         ",", ".", "!", "?", ";", ":", "\"", "'", "[", "]", "_", "@", "#", "$", "%", "&", "*", "+", "=", "/", "\\",
         "^", "`", "{", "}", "|", "~", "<", ">"]
SPACES = [" ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2009", ""]


def _random_string(rng: random.Random, pool: list[str]) -> str:
    return "".join(rng.choice(pool) + rng.choice(SPACES) for _ in range(rng.randint(0, 7)))


def test_qa_f1_and_normalisation_equal_lm_evals_longbench_on_generated_strings(longbench):
    rng = random.Random(1811)
    nonzero = partial = 0
    for _ in range(5000):
        # gold from a narrow pool and predictions that often repeat its words: many partial overlaps
        gold = _random_string(rng, WORDS[:20] + WORDS[rng.randrange(len(WORDS)):][:6])
        pred = _random_string(rng, gold.split() + WORDS[:8] or WORDS) if rng.random() < 0.7 else _random_string(rng, WORDS)
        assert normalize_answer(pred) == longbench["normalize_answer"](pred), repr(pred)
        ours, theirs = qa_f1_score(pred, gold), longbench["qa_f1_score"](pred, gold)
        assert ours == theirs, (pred, gold, ours, theirs)
        nonzero += ours > 0
        partial += 0 < ours < 1
    assert nonzero > 1000 and partial > 500  # the comparison exercised real overlaps, not only zeros


def test_ruler_postprocess_equals_lm_evals(ruler):
    rng = random.Random(7)
    for _ in range(2000):
        pred = "".join(rng.choice(WORDS + SPACES + ["\x00", "\x07", "\x1f", "\r", "\x7f"]) for _ in range(rng.randint(0, 9)))
        assert ruler_postprocess(pred) == ruler["postprocess_pred"]([pred])[0], repr(pred)


@pytest.mark.parametrize("pred, gold, expected", [
    # multiset, not set: a repeated word counts as often as it occurs on both sides
    ("x x", "x x", 1.0),                    # set F1 would give 1/2 (1 common of 2 and 2)
    ("x x", "x", 2 / 3),                    # P=1/2, R=1; set F1 on set sizes gives 1.0
    ("x x y", "x y", 0.8),                  # P=2/3, R=1
    ("york new york", "new york", 0.8),
    ("x y x y", "x x y y", 1.0),
    ("paris paris paris", "paris", 0.5),    # P=1/3, R=1
    # normalisation: articles as whole words only, punctuation removed before articles
    ("the theater", "theater", 1.0),
    ("another", "other", 0.0),
    ("a.n apple", "apple", 1.0),            # punctuation goes first: "a.n" -> "an", then the article goes
    ("an apple a day", "apple day", 1.0),
    ("U.S.A.", "USA", 1.0),
    ("don't", "dont", 1.0),
    ("co-op", "coop", 1.0),
    # unicode: no accent folding, unicode punctuation is not ASCII punctuation, unicode spaces split
    ("Zürich", "zurich", 0.0),
    ("“Paris”", "Paris", 0.0),
    ("new\u00a0york", "new york", 1.0),
    ("東京", "東京", 1.0),
    ("STRASSE", "straße", 0.0),
])
def test_qa_f1_hand_cases(pred, gold, expected, longbench):
    assert qa_f1_score(pred, gold) == pytest.approx(expected)
    assert longbench["qa_f1_score"](pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize("prediction, golds, expected", [
    ("Zürich", ["Zurich"], False),          # no accent folding (SQuAD normalisation)
    ("“Paris”", ["Paris"], True),           # substring after normalisation
    ("the the Paris", ["Paris"], True),
    ("Parisian", ["Paris"], True),          # substring, not token match (one-directional)
    ("an", ["a"], False),                   # both normalise to "" / articles only
    ("Rakke", ["Kerak", "Rakke"], True),    # toy-world alias
    ("Kerak-Rakke", ["kerakrakke"], True),  # punctuation removed inside words
])
def test_sub_em_hand_cases(prediction, golds, expected):
    assert sub_em(prediction, golds) is expected


@pytest.mark.parametrize("preds, refs, expected", [
    (["Zürich"], [["zürich"]], 100.0),
    (["STRASSE"], [["straße"]], 0.0),
    (["ok", "ok", "no"], [["ok"], ["OK"], ["ok"]], 66.67),
    (["The answer is: Rakke"], [["Kerak", "Rakke"]], 100.0),
])
def test_string_match_part_hand_cases(preds, refs, expected):
    assert string_match_part(preds, refs) == expected


# ---------------------------------------------------------------- cases found by the mutation run (docs/mutation.md)
@pytest.mark.parametrize("output, expected", [
    ("The answer is: Paris\nmore text", "Paris"),            # only the rest of the marker's line
    ("The answer is: Paris\nmore\nand more", "Paris"),
    ("no marker\nsecond line\nthird line", "third line"),   # fallback: the last line, not the second
    ('The answer is: "Paris"', "Paris"),                    # quotes stripped
    ("The answer is: ‘Xavier’", "Xavier"),                   # only quotes/asterisks, not letters
    ("The answer is: *XTC*", "XTC"),
    ("The answer is: Paris .", "Paris"),                     # trailing period and the space before it
    ("The answer is:\nParis", "Paris"),                      # the answer on the next line
    ("The answer is: **\n**\n\nParis\nRome", "Paris"),       # the next line with more than asterisks
    ("The answer is:  \n  \n", ""),                           # nothing follows
    ("The answer is:\nXavier", "Xavier"),
    ("The answer is:\nXX\nParis", "XX"),                      # letters are not stripped when looking ahead
    ("The answer is: X\nParis", "X"),
])
def test_extract_answer_line_and_strip_cases(output, expected):
    from solopo.eval.metrics import extract_answer

    assert extract_answer(output) == expected


def test_has_answer_marker():
    from solopo.eval.metrics import has_answer_marker

    assert has_answer_marker("so THE ANSWER IS Paris") and has_answer_marker("The answer is: x")
    assert not has_answer_marker("Paris") and not has_answer_marker("answer: Paris")


def test_string_match_part_empty_reference_list_and_length_mismatch():
    assert string_match_part(["x", "y"], [[], ["y"]]) == 50.0
    with pytest.raises(ValueError, match=r"^string_match_part: 2 predictions but 1 reference lists$"):
        string_match_part(["x", "y"], [["x"]])
