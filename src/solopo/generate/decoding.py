"""What every decoding backend shares: the generation settings, the backend-neutral decoding parameters,
the prompt encoding and the window check (the rules are in the package docstring, `solopo.generate`)."""
from __future__ import annotations

from dataclasses import dataclass


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
