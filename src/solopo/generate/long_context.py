"""The backbone's long-context setting as the config override vLLM and transformers accept.

config/config.yaml writes the setting as the model card does (Qwen2.5-7B-Instruct README, "Processing
Long Texts": `"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}`,
to be added to config.json). Handed on as `rope_scaling`, both libraries get it wrong today:

* vLLM 0.32 (`vllm/config/model.py` `_get_and_verify_max_len`) reads `rope_parameters[...]["rope_type"]`:
  an override in the old `type` spelling raises `KeyError: 'rope_type'`; spelt `rope_type` it is
  accepted but the window stays at config.json's 32,768, since vLLM takes YaRN's
  `max_position_embeddings` as already scaled (as transformers' `_compute_yarn_parameters` does).
* transformers 5 (`modeling_rope_utils.RotaryEmbeddingConfigMixin`) keeps every rope setting,
  rope_theta included, in `config.rope_parameters`; a dict put there without `rope_theta` loses the
  model's base frequency (transformers 5.23 then fails building the rotary embedding; vLLM 0.32
  accepts it and falls back to the model class's default theta: right for Qwen2 by chance only).

So the override is the transformers-5 form, complete: `rope_parameters` with `rope_type` and the
model's own `rope_theta`, and, for the rope types that expect it (YaRN, llama3),
`max_position_embeddings` scaled to the extended window. Both libraries apply it the same way:
vLLM's `hf_overrides` dict is `config.update(...)`, the HF backend sets the same attributes.
"""
from __future__ import annotations

import json
from pathlib import Path

from solopo.artifacts import DataError

# Rope types whose max_position_embeddings is the extended window (transformers' YaRN and llama3
# code read the native one from `original_max_position_embeddings`; vLLM multiplies by `factor`
# only for the others, e.g. linear and dynamic, whose max_position_embeddings stays native).
SCALED_WINDOW_TYPES = ("yarn", "llama3")


def read_model_config(model_path: str) -> tuple[dict, str]:
    """(config.json of a local model folder, its path for messages)."""
    path = Path(str(model_path)) / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing; the long-context setting needs the model's config.json "
                        "(a local model folder)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON file ({type(e).__name__}: {e})") from None
    if not isinstance(cfg, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(cfg).__name__}")
    return cfg, str(path)


def model_rope(model_cfg: dict, where: str) -> tuple[str, float]:
    """(rope type, rope_theta) of a config.json, written by transformers 4 (top-level `rope_theta`,
    `rope_scaling`) or 5 (`rope_parameters`)."""
    params = model_cfg.get("rope_parameters") or {}
    scaling = model_cfg.get("rope_scaling") or {}
    if not isinstance(params, dict) or not isinstance(scaling, dict):
        raise DataError(f"{where}: rope_parameters/rope_scaling must be JSON objects")
    if any(isinstance(v, dict) for v in params.values()):
        raise DataError(f"{where}: rope_parameters per layer type are not supported by the long-context setting")
    kind = params.get("rope_type") or params.get("type") or scaling.get("rope_type") or scaling.get("type") or "default"
    theta = params.get("rope_theta", model_cfg.get("rope_theta"))
    if not isinstance(theta, (int, float)) or isinstance(theta, bool) or theta <= 0:
        raise DataError(f"{where}: no positive rope_theta (top level or in rope_parameters); the long-context "
                        "override must keep the model's own base frequency")
    return str(kind), float(theta)


def rope_overrides(rope_scaling: dict, model_cfg: dict, where: str = "config.json",
                   window: int | None = None) -> dict:
    """The config override for the long-context setting `rope_scaling` (config.yaml form: `type` or
    `rope_type`, factor, ...) on the model whose config.json is `model_cfg`; `window` is the context
    window the evaluation asks for (checked against what the scaling reaches)."""
    rs = dict(rope_scaling)
    kinds = {rs.pop(k) for k in ("type", "rope_type") if k in rs}
    if len(kinds) != 1:
        raise ValueError(f"backbones[].long_context.rope_scaling: needs one `type` (e.g. yarn), got {sorted(kinds)}")
    kind = kinds.pop()
    factor = rs.get("factor")
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 1:
        raise ValueError(f"backbones[].long_context.rope_scaling.factor: {factor!r}; allowed: a number > 1")
    current, theta = model_rope(model_cfg, where)
    if current != "default":
        # stacking a second scaling on e.g. Llama-3.1's llama3 rope would silently change its positions
        raise DataError(f"{where}: the model already has rope scaling {current!r}; a long_context setting on "
                        "top of it is not supported (set backbones[].long_context: null)")
    native = model_cfg.get("max_position_embeddings")
    if not isinstance(native, int) or isinstance(native, bool) or native < 1:
        raise DataError(f"{where}: max_position_embeddings missing or not a positive integer")
    original = rs.setdefault("original_max_position_embeddings", native)
    if kind in SCALED_WINDOW_TYPES and original != native:
        raise DataError(f"{where}: max_position_embeddings {native} differs from backbones[].long_context."
                        f"rope_scaling.original_max_position_embeddings {original}; the factor extends the "
                        "native window, so they must be equal")
    reach = int(original * factor)
    if window is not None and window > reach:
        raise ValueError(f"backbones[].long_context.context_window: {window} is beyond what rope scaling "
                         f"{kind} x{factor:g} reaches from {original} ({reach}); allowed: <= {reach}")
    out: dict = {"rope_parameters": {"rope_type": kind, **rs, "rope_theta": theta}}
    if kind in SCALED_WINDOW_TYPES:
        out["max_position_embeddings"] = reach
    return out


def model_rope_overrides(model_path: str, rope_scaling: dict | None, window: int | None = None) -> dict:
    """`rope_overrides` for a local model folder; {} without a long-context setting."""
    if not rope_scaling:
        return {}
    cfg, where = read_model_config(model_path)
    return rope_overrides(rope_scaling, cfg, where, window)
