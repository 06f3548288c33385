"""Decoding backends: the HF path for real, the vLLM path up to the engine call."""
import sys
import types

import pytest

from solopo.generate import GenerationConfig, load_backend
from solopo.generate.chat import format_chat
from solopo.generate.vllm import VLLMBackend, reshape_outputs, sampling_kwargs


def test_unknown_backend_names_allowed_values():
    with pytest.raises(ValueError, match="allowed values are hf, vllm"):
        load_backend("tgi", "x")


def test_vllm_sampling_kwargs_match_hf_semantics():
    assert sampling_kwargs(GenerationConfig(max_new_tokens=1024, temperature=0.85, top_p=0.9, n=32, seed=7)) == \
        {"n": 32, "max_tokens": 1024, "seed": 7, "temperature": 0.85, "top_p": 0.9, "top_k": 0, "min_p": 0.0,
         "repetition_penalty": 1.0}
    greedy = sampling_kwargs(GenerationConfig(max_new_tokens=32))
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and greedy["n"] == 1


def test_vllm_outputs_reshaped_per_prompt_in_order():
    ro = lambda *texts: types.SimpleNamespace(outputs=[types.SimpleNamespace(text=t) for t in texts])  # noqa: E731
    assert reshape_outputs([ro("a1", "a2"), ro("b1", "b2")]) == [["a1", "a2"], ["b1", "b2"]]


def test_vllm_backend_calls_engine_with_mapped_params(monkeypatch, tmp_path):
    calls = {}
    # a folder with Qwen2.5-7B-Instruct's rope fields: the YaRN override reads rope_theta and the window there
    (tmp_path / "config.json").write_text('{"max_position_embeddings": 32768, "rope_theta": 1000000.0}')

    class FakeLLM:
        def __init__(self, **kw):
            calls["init"] = kw

        def get_tokenizer(self):
            return lambda text, add_special_tokens: {"input_ids": [ord(c) for c in text]}

        def generate(self, prompts, params, use_tqdm):
            calls["generate"] = (prompts, params)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="".join(map(chr, p["prompt_token_ids"]))
                                                                         + "!")] * params["n"]) for p in prompts]

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = FakeLLM, lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    b = VLLMBackend(str(tmp_path), tensor_parallel_size=2, max_model_len=131072,
                    rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
    out = b.generate(["p1", "p2"], GenerationConfig(max_new_tokens=5, temperature=0.5, n=2, seed=3))
    assert out == [["p1!", "p1!"], ["p2!", "p2!"]]
    assert calls["init"]["tensor_parallel_size"] == 2 and calls["init"]["trust_remote_code"] is False
    # vLLM 0.32's form (tests/vllm/test_engine_config.py builds its engine configuration from it)
    assert calls["init"]["hf_overrides"] == {
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                            "rope_theta": 1000000.0}, "max_position_embeddings": 131072}
    assert calls["init"]["max_model_len"] == 131072
    assert calls["generate"][1] == {"n": 2, "max_tokens": 5, "seed": 3, "temperature": 0.5, "top_p": 1.0, "top_k": 0,
                                    "min_p": 0.0, "repetition_penalty": 1.0}
    assert calls["init"]["generation_config"] == "vllm"


def test_hf_sampling_is_seeded_and_greedy_is_deterministic(tiny_lm_dir):
    b = load_backend("hf", tiny_lm_dir, device="cpu")
    prompts = [format_chat(b.tokenizer, "Question: who ?"), format_chat(b.tokenizer, "Another question ?")]
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, n=3, seed=11, batch_size=2)
    a, again = b.generate(prompts, cfg), b.generate(prompts, cfg)
    assert a == again and len(a) == 2 and all(len(x) == 3 for x in a)
    other = b.generate(prompts, GenerationConfig(max_new_tokens=8, temperature=1.0, n=3, seed=12, batch_size=2))
    assert other != a
    g = GenerationConfig(max_new_tokens=8)
    assert b.generate(prompts, g) == b.generate(prompts, g)


def test_long_padded_batches_on_a_cpu_are_generated_one_prompt_at_a_time():
    """A padded batch's attention on a CPU materialises batch x heads x length^2 floats: RULER's 32K prompts
    at batch 8 asked for 29 GB in the paper rehearsal. Such a batch is split into one call per prompt."""
    from solopo.generate.hf import CPU_PADDED_ATTENTION_BYTES, padded_groups

    assert padded_groups([31000, 32000, 30500], 2, "cpu") == [[0], [1], [2]]  # 3 x 2 x 32000^2 x 4 B = 24.6 GB
    assert padded_groups([31000, 32000, 30500], 2, "cuda") == [[0, 1, 2]]  # CUDA's kernel takes the mask
    assert padded_groups([900, 1024, 700] * 3, 4, "cpu") == [list(range(9))]  # the tiny preset: 151 MB
    assert padded_groups([128000], 2, "cpu") == [[0]]
    n = int((CPU_PADDED_ATTENTION_BYTES / (2 * 2 * 4)) ** 0.5)  # the largest length two prompts may share
    assert padded_groups([n, n], 2, "cpu") == [[0, 1]] and padded_groups([n + 1, n], 2, "cpu") == [[0], [1]]


def test_a_split_batch_gives_the_same_greedy_outputs(tiny_lm_dir, monkeypatch):
    from solopo.generate import hf

    backend = load_backend("hf", tiny_lm_dir, device="cpu")
    prompts = [format_chat(backend.tokenizer, q) for q in ("Who leads Arda?", "Where does the leader of Arda live? " * 3)]
    cfg = GenerationConfig(max_new_tokens=6, batch_size=2)
    together = backend.generate(prompts, cfg)
    calls = []
    real = backend.model.generate
    monkeypatch.setattr(backend.model, "generate", lambda **kw: calls.append(kw["input_ids"].shape[0]) or real(**kw))
    monkeypatch.setattr(hf.padded_groups, "__defaults__", (0,))  # a budget of 0 bytes: every batch is split
    assert backend.generate(prompts, cfg) == together and calls == [1, 1]
