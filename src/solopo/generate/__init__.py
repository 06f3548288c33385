"""Decoding backends behind one interface.

`hf` runs `transformers` `generate` (CPU or GPU); `vllm` is imported lazily and only
on machines that have it (the paper preset). Both take fully formatted prompt strings
(chat template already applied, see `solopo.generate.chat.format_chat`) and return,
per prompt, `n` decoded continuations (special tokens stripped).

Two rules make the backends interchangeable:

* `encode_prompts`: every backend decodes from token ids built exactly as training builds
  them (`add_special_tokens=False` on the chat-templated text). vLLM given *text* adds the
  tokenizer's special tokens again, a second BOS for Llama-3.1 whose template already has one.
* `decoding_params`: the complete decoding parameters, identical for every backend. Nothing
  comes from the checkpoint's `generation_config.json` (Qwen2.5's sets repetition_penalty
  1.05, top_k 20, top_p 0.8), which HF `generate` and vLLM would otherwise apply.
"""
from __future__ import annotations

from typing import Protocol

# the backends import these from solopo.generate.decoding (this package's factory imports the backends)
from solopo.generate.decoding import GenerationConfig, check_window, decoding_params, encode_prompts  # noqa: F401


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
