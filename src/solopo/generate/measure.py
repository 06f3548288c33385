"""What an evaluation really gave the model: the token count of every prompt and the window it ran in.

`MeasuredBackend` wraps a generation backend for one evaluation job and encodes each prompt exactly as
the backends do (`encode_prompts`: the chat-templated text, no added special tokens), so the evaluate
job's manifest can say how long its prompts were in the backbone's own tokenizer, not how long the
config meant them to be.
"""
from __future__ import annotations

from solopo.generate.decoding import GenerationConfig, encode_prompts


class MeasuredBackend:
    """`backend` with the prompt tokens of every `generate` call recorded (`summary`)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[dict] = []

    def __getattr__(self, name: str):
        return getattr(self.backend, name)  # tokenizer, max_model_len, ...: the wrapped backend's

    def generate(self, prompts: list[str], cfg: GenerationConfig, progress=None) -> list[list[str]]:
        lengths = [len(ids) for ids in encode_prompts(self.backend.tokenizer, prompts)]
        self.calls.append({"max_new_tokens": cfg.max_new_tokens, "prompt_tokens": lengths})
        if progress is None:
            return self.backend.generate(prompts, cfg)
        return self.backend.generate(prompts, cfg, progress)

    def summary(self, items: list[dict] | None = None) -> dict:
        """The manifest's `prompts`: the window (None: the model's own), per call its prompts' token counts (in
        item order) with min/max/mean; with `items` carrying a `target_length` (RULER), the first call's counts
        per target length as well."""
        calls = [{**c, "min": min(c["prompt_tokens"], default=0), "max": max(c["prompt_tokens"], default=0),
                  "mean": round(sum(c["prompt_tokens"]) / max(len(c["prompt_tokens"]), 1), 1)} for c in self.calls]
        out: dict = {"window": getattr(self.backend, "max_model_len", None), "calls": calls}
        if items and calls and len(calls[0]["prompt_tokens"]) == len(items) and all("target_length" in it for it in items):
            by_length: dict[str, list[int]] = {}
            for it, n in zip(items, calls[0]["prompt_tokens"]):
                by_length.setdefault(str(it["target_length"]), []).append(n)
            out["by_target_length"] = {k: {"min": min(v), "max": max(v), "n": len(v)} for k, v in by_length.items()}
        return out
