"""Issue 14, evaluation items: each test fails on the code before the fix (checked once)."""
from __future__ import annotations

from solopo.eval import longbench_v2 as lb2
from solopo.eval.metrics import extract_answer
from tests.eval.helpers import FakeBackend, river_records, tiny_tokenizer


# ----------------------------------------------------------------------------- item 7
def test_answer_on_the_line_after_the_marker_is_extracted():
    assert extract_answer("Step 1 ... Step 2 ...\nThe answer is:\nHouston Baptist University.") == \
        "Houston Baptist University"
    assert extract_answer("so.\n**The answer is:**\n\n  1960\n") == "1960"
    assert extract_answer("The answer is: 1960\nDone") == "1960"  # same-line answers unchanged


def test_longbench_v2_re_asks_empty_outputs_and_keeps_them_in_the_denominator(tmp_path):
    [path] = lb2.build_fixture(river_records(), tmp_path, {"fixture_items": 3}, seed=0)
    items = lb2.load_items(path, {})
    tok = tiny_tokenizer([it["question"] for it in items])

    def respond(prompt, k):
        it = next(i for i in items if i["question"] in prompt)
        if it is items[0]:
            return ""  # never answers
        if it is items[1] and k < 2:
            return "  "  # answers on the third ask
        return f"The correct answer is ({it['answer']})"

    backend = FakeBackend(tok, respond)
    result, preds = lb2.evaluate(backend, items, {"max_length": 10_000})  # default retries
    assert len(backend.calls) == 1 + lb2.EMPTY_RETRIES == 6
    assert preds[1]["judge"] and not preds[0]["judge"]
    assert result["n"] == 3 and result["n_empty"] == 1 and result["overall"] == 66.7  # not 100 over 2
