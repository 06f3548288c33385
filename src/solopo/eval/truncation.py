"""LongBench middle truncation, shared by LongBench v1 and v2.

Both official `pred.py` scripts truncate the *raw* filled prompt (before any chat
template) in the middle, because the instructions sit at both ends:

- v1 (`LongBench/pred.py`): tokenise the whole prompt with the tokenizer's default
  special tokens (`tokenizer(prompt, truncation=False).input_ids`); if it has more than
  `max_length` tokens, keep the first `int(max_length/2)` and the last
  `int(max_length/2)` tokens, decode **each half separately** with
  `skip_special_tokens=True` and concatenate the two strings.
- v2 (top-level `pred.py`): `tokenizer.encode(prompt)` (default special tokens); if
  longer than `max_len`, keep `ids[:max_len//2] + ids[-max_len//2:]` and decode the
  **joined list once** with `skip_special_tokens=True`. Note Python's precedence:
  `-max_len//2` is `(-max_len)//2`, so for an odd budget v2 keeps one more token at the
  end than at the start. For the even budgets used in practice (120,000) both styles
  keep the same tokens; the strings can still differ where the cut splits a word or a
  multi-byte character, which is why the style is selectable.

The special tokens the tokenizer adds by default (e.g. Llama 3's BOS) count towards
the budget and are dropped on decode, as in the official scripts.

Reads no config keys; callers pass `max_length` (LongBench v1: `eval.longbench_v1.max_length`,
LongBench v2: `eval.longbench_v2.max_length`).
"""
from __future__ import annotations

STYLES = ("v1", "v2")


def prompt_token_ids(prompt: str, tokenizer) -> list[int]:
    """Token ids of the whole prompt with the tokenizer's default special tokens, no truncation."""
    ids = tokenizer(prompt, truncation=False)["input_ids"]
    return list(ids)


def middle_truncate(prompt: str, tokenizer, max_length: int, style: str = "v1",
                    ids: list[int] | None = None) -> str:
    """Return `prompt` unchanged if it fits in `max_length` tokens, else its middle-truncated form.

    `style="v1"` (default) follows LongBench v1 `pred.py`; `style="v2"` follows LongBench v2
    `pred.py` (see the module docstring for the two small differences). `ids` may pass
    `prompt_token_ids(prompt, tokenizer)` when the caller already has them (long prompts).
    """
    if style not in STYLES:
        raise ValueError(f"middle_truncate style {style!r}: allowed values are {', '.join(STYLES)}")
    if max_length < 2:
        raise ValueError(f"middle_truncate: max_length must be >= 2, got {max_length}")
    if ids is None:
        ids = prompt_token_ids(prompt, tokenizer)
    if len(ids) <= max_length:
        return prompt
    if style == "v1":
        half = int(max_length / 2)
        return (tokenizer.decode(ids[:half], skip_special_tokens=True)
                + tokenizer.decode(ids[-half:], skip_special_tokens=True))
    kept = ids[: max_length // 2] + ids[-max_length // 2:]
    return tokenizer.decode(kept, skip_special_tokens=True)
