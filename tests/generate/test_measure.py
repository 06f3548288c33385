"""The evaluate job's measured prompts: token counts as the backends encode them, and the window."""
from solopo.generate import GenerationConfig, load_backend
from solopo.generate.chat import format_chat
from solopo.generate.decoding import encode_prompts
from solopo.generate.measure import MeasuredBackend


def test_prompt_tokens_are_the_encoded_lengths_in_item_order(tiny_lm_dir):
    backend = load_backend("hf", tiny_lm_dir, device="cpu", max_model_len=1024)
    prompts = [format_chat(backend.tokenizer, q) for q in ("Who is the leader of Arda?", "Where? " * 40)]
    measured = MeasuredBackend(backend)
    out = measured.generate(prompts, GenerationConfig(max_new_tokens=3))
    assert len(out) == 2 and all(len(o) == 1 for o in out)
    expected = [len(ids) for ids in encode_prompts(backend.tokenizer, prompts)]
    assert expected[1] > expected[0] + 40  # the long prompt is measured as long
    items = [{"target_length": 4096}, {"target_length": 8192}]
    summary = measured.summary(items)
    assert summary["window"] == 1024
    assert summary["calls"] == [{"max_new_tokens": 3, "prompt_tokens": expected, "min": min(expected),
                                 "max": max(expected), "mean": round(sum(expected) / 2, 1)}]
    assert summary["by_target_length"] == {"4096": {"min": expected[0], "max": expected[0], "n": 1},
                                           "8192": {"min": expected[1], "max": expected[1], "n": 1}}
    assert "by_target_length" not in measured.summary([{}, {}])  # items without lengths: per call only
