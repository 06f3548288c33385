"""Context-window budget of each evaluation suite, and the backbone's long-context setting.

A suite's inputs need `suite_tokens(bench, cfg)` tokens at most: prompt (chat template
included) plus the generation budget. When that exceeds the backbone's native window
(`backbones[].context_window`, config.json's max_position_embeddings), the evaluation job
loads the model with the backbone's `long_context` setting (Qwen2.5: the official YaRN,
factor 4 over 32,768 -> 131,072) and that window as vLLM's `max_model_len`; else natively.
The plan is decided per (backbone, suite), is a Snakemake param of the evaluate rule (so the
dry-run shows it and a change reruns the job), and is written into the result's settings.

Upper bounds per suite (the backends check every real prompt against the window and fail
loudly; NIAH-Plus shortens its haystack to fit instead, `niah_plus.fit_context`):

* ruler: max(lengths): items are fitted so that prompt + template + decoding budget <= length
* longbench_v1 / longbench_v2: max_length (middle-truncated raw prompt) + CHAT_ALLOWANCE + generation
* niah_plus: max(lengths) (haystack) + INSTRUCTION_ALLOWANCE + CHAT_ALLOWANCE + max_new_tokens
* leaderboard: None (lm-eval's own short prompts; no long-context setting)
"""
from __future__ import annotations

from solopo.eval import BENCHES

# Chat wrapper around a user message: Qwen2.5's default system turn and markers (~30 tokens),
# Llama-3.1's system header with its dates (~30 tokens); rounded up.
CHAT_ALLOWANCE = 64
# NIAH-Plus instruction (stated twice in the official prompt) + question + "Answer:" (< 120 tokens).
INSTRUCTION_ALLOWANCE = 192


def suite_tokens(bench: str, cfg: dict) -> int | None:
    """Upper bound of prompt + generation tokens of one suite's inputs, or None (not ours to budget)."""
    if bench in BENCHES and BENCHES[bench].lengths and not cfg.get("lengths"):
        return None  # the schema reports the missing key
    if bench == "ruler":
        return max(int(x) for x in cfg["lengths"])
    if bench == "longbench_v1":
        return int(cfg.get("max_length", 31500)) + CHAT_ALLOWANCE + int(cfg.get("max_new_tokens", 1024))
    if bench == "longbench_v2":
        gen = max(int(cfg.get("max_new_tokens", 1024)), int(cfg.get("answer_max_new_tokens", 128)))
        return int(cfg.get("max_length", 120000)) + CHAT_ALLOWANCE + gen
    if bench == "niah_plus":
        from solopo.eval.niah_plus import default_max_new_tokens

        return (max(int(x) for x in cfg["lengths"]) + INSTRUCTION_ALLOWANCE + CHAT_ALLOWANCE
                + int(cfg.get("max_new_tokens", default_max_new_tokens(cfg))))
    return None


def long_context_plan(backbone: dict, bench: str, cfg: dict) -> dict:
    """{needed, native_window, window, rope_scaling, long_context} for evaluating `bench` on `backbone`.

    Raises ValueError (one line) when the suite exceeds every window the backbone has."""
    plan = _plan(backbone, bench, cfg)
    return {**plan, "summary": describe(plan)}


def _plan(backbone: dict, bench: str, cfg: dict) -> dict:
    need = suite_tokens(bench, cfg)
    native = backbone.get("context_window")
    plan = {"needed": need, "native_window": native, "window": native, "rope_scaling": None, "long_context": False}
    if need is None or native is None or need <= native:
        return plan
    lc = backbone.get("long_context")
    name = backbone.get("name", "?")
    if not lc:
        raise ValueError(f"eval.{bench}: inputs need up to {need} tokens (prompt + generation), more than backbone "
                         f"{name}'s context_window {native}, and it has no long_context setting; add one or "
                         f"shorten eval.{bench}")
    if need > int(lc["context_window"]):
        raise ValueError(f"eval.{bench}: inputs need up to {need} tokens, more than backbone {name}'s long-context "
                         f"window {lc['context_window']}; shorten eval.{bench}")
    return {**plan, "window": int(lc["context_window"]), "rope_scaling": dict(lc["rope_scaling"]), "long_context": True}


def describe(plan: dict) -> str:
    """One line for logs and the dry-run."""
    if plan["needed"] is None:
        return "context: not budgeted (lm-eval)"
    if plan["window"] is None:
        return f"context: {plan['needed']} tokens needed, backbone window not configured"
    if not plan["long_context"]:
        return f"context: native window {plan['window']} >= {plan['needed']} tokens needed"
    rs = plan["rope_scaling"]
    return (f"context: {rs['type']} x{rs['factor']:g} (window {plan['window']}) because {plan['needed']} tokens "
            f"needed > native {plan['native_window']}")
