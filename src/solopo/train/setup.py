"""What both training loops (`solopo.train.trainer`, one process; `solopo.train.distributed`, DeepSpeed)
set up before their first step: the settings, the loss with its reference log-probs in row order, the
seeded data order, the optimizer and its warm-up + cosine schedule."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from solopo.train.losses import LossSpec, get_loss, get_method


@dataclass
class TrainConfig:
    learning_rate: float = 5e-4
    epochs: int = 1
    batch_size: int = 8  # total batch (micro_batch_size x grad_accum)
    micro_batch_size: int = 4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 1024  # per sequence (prompt + response); longer prompts are cut from the left
    save_steps: int = 0  # 0 = only the final model
    # Resumable checkpoints (weights + optimizer/DeepSpeed state) kept on disk: the newest N. Older
    # ones are deleted, or cut to their weights (model.safetensors) when `keep_checkpoint_weights`
    # (checkpoint selection scores every checkpoint of the epoch). 0 keeps everything (the library
    # default; the workflow's is train.optim.keep_checkpoints, 2 when absent).
    keep_checkpoints: int = 0
    keep_checkpoint_weights: bool = False
    report_to: str = "none"  # none | tensorboard | wandb (solopo.train.monitor)
    collective_timeout_s: int = 1800  # multi-process: a rank stuck this long in a collective fails the job
    dtype: str = "auto"
    device: str = "auto"
    gradient_checkpointing: bool = False
    optimizer: str = "adamw"  # adamw | rmsprop (LongPO's release default, `--optim rmsprop`)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW for every method (SoLoPO D.1) except where the config names another (LongPO: RMSprop,
    as HF Trainer's `--optim rmsprop`: torch defaults plus the configured weight decay)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    raise ValueError(f"train optimizer {cfg.optimizer!r}: allowed values are adamw, rmsprop")


def _schedule(total: int, warmup_ratio: float):
    warm = max(1, int(round(warmup_ratio * total)))
    return lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm)))


def _order(n: int, epochs: int, seed: int) -> list[int]:
    order = []
    for e in range(epochs):
        idx = list(range(n))
        random.Random(f"{seed}-epoch{e}").shuffle(idx)
        order += idx
    return order


def prepare_optimisation(model, n_rows: int, cfg: TrainConfig, seed: int):
    """Gradient checkpointing, train mode, the seeded data order, the optimizer and its warm-up + cosine
    schedule: the set-up the single-process and the DeepSpeed loops share."""
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.train()
    order = _order(n_rows, cfg.epochs, seed)
    total_steps = max(1, math.ceil(len(order) / cfg.batch_size))
    opt = make_optimizer(model.parameters(), cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(total_steps, cfg.warmup_ratio))
    return order, total_steps, opt, sched


def method_loss(method: str, rows: list[dict], ref: list[dict] | None) -> tuple[LossSpec, list[dict] | None]:
    """The loss of `method` and, where it needs them, the reference log-prob rows in the order of `rows`."""
    spec = get_loss(get_method(method).loss)
    if spec.needs_ref:
        if ref is None:
            raise ValueError(f"method {method} needs reference log-probs (loss {spec.name})")
        by_id = {r["id"]: r for r in ref}
        ref = [by_id[r["id"]] for r in rows]
    return spec, ref
