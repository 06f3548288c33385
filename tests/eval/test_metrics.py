"""Shared scorers (solopo.eval.metrics): table-driven cases from LongBench `metrics.py`, RULER's
`string_match_part` and the answer extraction."""
import pytest

from solopo.eval.metrics import extract_answer, normalize_answer, qa_f1_score, string_match_part, sub_em


@pytest.mark.parametrize("text, expected", [
    ("The Eiffel Tower.", "eiffel tower"),
    ("An apple, a day!", "apple day"),
    ("  Multiple   spaces\tand\nlines ", "multiple spaces and lines"),
    ("Theater of the Absurd", "theater of absurd"),  # articles only as whole words
    ("U.S.A.", "usa"),
    ("", ""),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize("pred, gold, expected", [
    ("The Eiffel Tower.", "Eiffel Tower", 1.0),
    ("Paris", "London", 0.0),
    ("eiffel tower paris", "Eiffel Tower", 0.8),        # P=2/3, R=1
    ("x x y", "x y y", 2 / 3),                         # Counter intersection: 1 x + 1 y
    ("the answer is Eiffel Tower", "Eiffel Tower", 2 / 3),  # P=2/4, R=1
    ("", "Eiffel Tower", 0.0),
    ("Eiffel Tower", "", 0.0),
    ("THE BEATLES!", "beatles", 1.0),
])
def test_qa_f1_score(pred, gold, expected):
    assert qa_f1_score(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize("output, expected", [
    ("The answer is: 1960.", "1960"),
    ("Step 1: the film was released in 1958.\nStep 2: ...\nThe answer is: 1960.", "1960"),
    ("The answer is: No answer.", "No answer"),
    ("**The answer is: Paris**", "Paris"),
    ("First I thought the answer is: Rome.\nBut checking again, the answer is Paris.", "Paris"),  # last occurrence
    ("THE ANSWER IS:   Marie Curie  ", "Marie Curie"),
    ("No marker here.\nJust a last line\n\n", "Just a last line"),  # fallback: last non-empty line
    ("", ""),
])
def test_extract_answer(output, expected):
    assert extract_answer(output) == expected


@pytest.mark.parametrize("prediction, golds, expected", [
    ("1960", ["1960"], True),
    ("the Beatles", ["Beatles"], True),                 # article
    ("PARIS!", ["paris"], True),                        # case and punctuation
    ("It is New York City", ["NYC", "New York City"], True),  # alias hit
    ("NYC", ["New York City"], False),                  # alias missing
    ("New", ["New York"], False),                       # one-directional: pred inside gold is not a match
    ("", ["Paris"], False),                             # empty prediction
    ("...", ["Paris"], False),                          # normalises to empty
    ("Paris", [""], False),                             # empty gold
    ("No answer", ["Paris"], False),
])
def test_sub_em(prediction, golds, expected):
    assert sub_em(prediction, golds) is expected


def test_gold_in_reasoning_but_wrong_final_answer():
    output = "Paris is the capital of France, but the question asks for the river.\nThe answer is: Seine."
    golds = ["Paris"]
    assert extract_answer(output) == "Seine"
    assert sub_em(extract_answer(output), golds) is False       # extracted: wrong
    assert string_match_part([output], [golds]) == 100.0        # whole-output RULER metric: "right"


def test_refusal_scores_zero():
    out = "The documents do not say.\nThe answer is: No answer."
    assert sub_em(extract_answer(out), ["1960"]) is False
    assert qa_f1_score(extract_answer(out), "1960") == 0.0


@pytest.mark.parametrize("preds, refs, expected", [
    (["The answer is PARIS"], [["paris"]], 100.0),
    (["paris", "rome"], [["Paris"], ["Paris"]], 50.0),
    (["a b"], [["a", "c"]], 100.0),                    # max over refs
    (["x", "y", "z"], [["x"], ["q"], ["q"]], 33.33),
    ([], [], 0.0),
])
def test_string_match_part(preds, refs, expected):
    assert string_match_part(preds, refs) == expected


def test_string_match_part_length_mismatch():
    with pytest.raises(ValueError):
        string_match_part(["a"], [])
