"""solopo.partial: an evaluation's finished generations are reused by its rerun, and only by a
rerun of the same job (model, settings) and the same prompts and decoding."""
import json

from solopo.generate import GenerationConfig
from solopo.partial import ResumableBackend


class _Counting:
    """A backend that answers each prompt with its upper-case text and counts its calls."""

    tokenizer = "tok"

    def __init__(self):
        self.calls = 0

    def generate(self, prompts, cfg):
        self.calls += 1
        return [[p.upper()] for p in prompts]


GREEDY = GenerationConfig(max_new_tokens=4, temperature=0.0, seed=1, batch_size=2)


def test_a_rerun_reuses_finished_generations_of_the_same_job_only(tmp_path):
    path = tmp_path / "base_ruler.json.partial"
    first = _Counting()
    assert ResumableBackend(first, path, "job-1").generate(["a", "b"], GREEDY) == [["A"], ["B"]]
    assert first.calls == 1 and len(path.read_text().splitlines()) == 2  # the job key, one piece

    again = _Counting()
    wrapped = ResumableBackend(again, path, "job-1")
    assert wrapped.tokenizer == "tok"  # the wrapped backend's attributes
    assert wrapped.generate(["a", "b"], GREEDY) == [["A"], ["B"]] and again.calls == 0
    other_prompts = wrapped.generate(["a", "c"], GREEDY)
    other_seed = wrapped.generate(["a", "b"], GenerationConfig(max_new_tokens=4, temperature=0.7, seed=2, batch_size=2))
    assert other_prompts == [["A"], ["C"]] and other_seed == [["A"], ["B"]] and again.calls == 2

    changed = _Counting()  # another model or benchmark setting: the file is discarded, never reused
    assert ResumableBackend(changed, path, "job-2").generate(["a", "b"], GREEDY) == [["A"], ["B"]]
    assert changed.calls == 1 and json.loads(path.read_text().splitlines()[0]) == {"job": "job-2"}

    wrapped = ResumableBackend(_Counting(), path, "job-2")
    wrapped.finish()
    assert not path.exists()


def test_a_torn_last_line_is_generated_again(tmp_path):
    path = tmp_path / "x.json.partial"
    ResumableBackend(_Counting(), path, "k").generate(["a"], GREEDY)
    with open(path, "a") as fh:
        fh.write('{"key": "abc", "outp')  # a job killed while writing
    again = _Counting()
    assert ResumableBackend(again, path, "k").generate(["a", "b"], GREEDY) == [["A"], ["B"]] and again.calls == 1
