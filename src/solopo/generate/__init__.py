"""Decoding backends behind one interface.

`hf` runs `transformers` `generate` (CPU or GPU); `vllm` is imported lazily and only
on machines that have it (the paper preset). Both take fully formatted prompt strings
(chat template already applied, see `solopo.generate.chat.format_chat`) and return,
per prompt, `n` decoded continuations (special tokens stripped).
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
