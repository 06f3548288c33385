"""Decoding backends behind one interface.

`hf` runs `transformers` `generate` (CPU or GPU); `vllm` is imported lazily and only
on machines that have it (the paper preset). Both take fully formatted prompt strings
(chat template already applied, see `solopo.generate.chat.format_chat`) and return,
per prompt, `n` decoded continuations (special tokens stripped).

Two rules make the backends interchangeable (issue 14 items 4-5):

* `encode_prompts`: every backend decodes from token ids built exactly as training builds
  them (`add_special_tokens=False` on the chat-templated text). vLLM given *text* adds the
  tokenizer's special tokens again, a second BOS for Llama-3.1 whose template already has one.
* `decoding_params`: the complete decoding parameters, identical for every backend. Nothing
  comes from the checkpoint's `generation_config.json` (Qwen2.5's sets repetition_penalty
  1.05, top_k 20, top_p 0.8), which HF `generate` and vLLM would otherwise apply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    n: int = 1
    seed: int = 0
    batch_size: int = 8

    def __post_init__(self):
        # a YAML integer (`temperature: 2`) must mean 2.0: transformers rejects an int temperature
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))


def decoding_params(cfg: GenerationConfig) -> dict:
    """Backend-neutral decoding parameters: greedy when temperature is 0; every filter that a
    checkpoint could switch on is set explicitly to its neutral value."""
    greedy = cfg.temperature <= 0
    return {"n": cfg.n, "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed,
            "temperature": 0.0 if greedy else float(cfg.temperature), "top_p": 1.0 if greedy else float(cfg.top_p),
            "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}


def encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Token ids of chat-templated prompts exactly as training tokenises them (no added special tokens)."""
    return [list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]


def check_window(ids: list[list[int]], max_new_tokens: int, window: int | None) -> None:
    """A prompt + generation longer than the model's window is an error, never a silent cut."""
    if window is None:
        return
    worst = max((len(x) for x in ids), default=0)
    if worst + max_new_tokens > window:
        raise ValueError(f"prompt of {worst} tokens + max_new_tokens {max_new_tokens} exceeds the model window "
                         f"{window}; shorten the inputs or give the backbone a long_context setting")


class Backend(Protocol):
    tokenizer: object

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[list[str]]: ...


BACKENDS = ("hf", "vllm")


def load_backend(name: str, model_path: str, **kwargs) -> Backend:
    """Return a backend by name; raises ValueError naming the allowed values."""
    if name == "hf":
        from solopo.generate.hf import HFBackend

        return HFBackend(model_path, **kwargs)
    if name == "vllm":
        from solopo.generate.vllm import VLLMBackend

        return VLLMBackend(model_path, **kwargs)
    raise ValueError(f"generation backend {name!r}: allowed values are {', '.join(BACKENDS)}")
