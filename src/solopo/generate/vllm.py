"""vLLM backend. vLLM lives in the generate env (workflow/envs/generate.yaml); it is imported on first use.

Everything up to the engine call (sampling parameters, prompt order, output
reshaping) lives in plain functions tested without vLLM installed.
"""
from __future__ import annotations

from solopo.generate.decoding import GenerationConfig, check_window, decoding_params, encode_prompts
from solopo.generate.long_context import model_rope_overrides


def sampling_kwargs(cfg: GenerationConfig) -> dict:
    """vLLM `SamplingParams` keyword arguments: `decoding_params`, renamed (max_new_tokens -> max_tokens)."""
    kw = decoding_params(cfg)
    kw["max_tokens"] = kw.pop("max_new_tokens")
    return kw


def token_prompts(tokenizer, prompts: list[str]) -> list[dict]:
    """vLLM `TokensPrompt`s: the training tokenisation, so vLLM adds no second BOS."""
    return [{"prompt_token_ids": ids} for ids in encode_prompts(tokenizer, prompts)]


def reshape_outputs(request_outputs) -> list[list[str]]:
    """vLLM returns one RequestOutput per prompt, each with `.outputs[i].text`."""
    return [[o.text for o in ro.outputs] for ro in request_outputs]


def engine_kwargs(model_path: str, trust_remote_code: bool = False, tensor_parallel_size: int = 1,
                  max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                  rope_scaling: dict | None = None) -> dict:
    """`vllm.LLM` / `EngineArgs` keyword arguments (scripts/vllm_check.py builds vLLM's engine
    configuration from exactly these). The long-context setting becomes `hf_overrides` in the form
    vLLM 0.32 accepts (solopo.generate.long_context), checked against the window asked for."""
    kw = {"model": model_path, "trust_remote_code": trust_remote_code, "tensor_parallel_size": tensor_parallel_size,
          "max_model_len": max_model_len, "gpu_memory_utilization": gpu_memory_utilization,
          # vLLM's neutral defaults, not the checkpoint's generation_config.json
          "generation_config": "vllm"}
    overrides = model_rope_overrides(model_path, rope_scaling, max_model_len)
    if overrides:
        kw["hf_overrides"] = overrides
    return kw


class VLLMBackend:
    def __init__(self, model_path: str, trust_remote_code: bool = False, tensor_parallel_size: int = 1,
                 max_model_len: int | None = None, gpu_memory_utilization: float = 0.9,
                 rope_scaling: dict | None = None, **_):
        from solopo.software import require

        LLM = require("vllm").LLM

        self.llm = LLM(**engine_kwargs(model_path, trust_remote_code, tensor_parallel_size, max_model_len,
                                       gpu_memory_utilization, rope_scaling))
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = max_model_len

    def generate(self, prompts: list[str], cfg: GenerationConfig, progress=None) -> list[list[str]]:
        from vllm import SamplingParams

        requests = token_prompts(self.tokenizer, prompts)
        check_window([r["prompt_token_ids"] for r in requests], cfg.max_new_tokens, self.max_model_len)
        outs = self.llm.generate(requests, SamplingParams(**sampling_kwargs(cfg)), use_tqdm=progress is not None)
        return reshape_outputs(outs)
