"""Checkpoint selection as in the paper (SoLoPO D.1): keep the checkpoints of the single
epoch and select the one with the best LongBench v1 QA score (`train.select_checkpoint:
longbench_v1`); `final` keeps the last weights."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def checkpoint_state(ckpt: Path) -> dict[str, torch.Tensor]:
    """Full-precision weights of one checkpoint: ours (safetensors) or DeepSpeed ZeRO's."""
    if (ckpt / "model.safetensors").exists():
        from safetensors.torch import load_file

        return load_file(ckpt / "model.safetensors")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(ckpt / "state" / "pytorch_model"))


def select_checkpoint(model, checkpoints: list[Path], score: Callable[[object], float]) -> dict:
    """Score every checkpoint with `score(model)` after loading its weights; leave the best
    loaded in `model` (ties go to the later step). Returns {"scores": {...}, "selected": name}."""
    scores: dict[str, float] = {}
    for ck in checkpoints:
        model.load_state_dict(checkpoint_state(ck), strict=False)
        model.tie_weights()
        scores[ck.name] = float(score(model))
        log.info("checkpoint %s: LongBench v1 avg %.2f", ck.name, scores[ck.name])
    best = max(checkpoints, key=lambda c: (scores[c.name], int(c.name.split("-")[-1])))
    model.load_state_dict(checkpoint_state(best), strict=False)
    model.tie_weights()
    return {"scores": scores, "selected": best.name}
