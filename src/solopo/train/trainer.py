"""One trainer for every method: SFT, DPO/SimPO/ORPO (short, long, expand), SoLo-X
(chosen-only and both), SoLo-KL and LongPO.

A batch carries just the sequences its loss needs (`LossSpec.needs`):
- `chosen` = (x, y_w), `rejected` = (x, y_l) on the method's PO prompt x;
- `long_chosen` = (x_long, y_w), `long_rejected` = (x_long, y_l) for SoLoPO and LongPO.
The PO-prompt pair goes through the policy in one concatenated forward and the long
sequence(s) in a separate one (the paper's two-stage forward, App. G.4, in
`solopo.train.forward`), so the short pair is never padded to the long length; gradients
flow through both.

Reference log-probs (DPO family, LongPO) are not computed here: `compute_reference_logps`
runs once per (backbone, dataset) in its own rule and the trainer reads that artifact.

Checkpoints (`save_steps`) hold the weights (safetensors), the optimizer and scheduler
state (`torch.save`, reloaded with `weights_only=True`) and the step; the data order is a
function of the seed alone, so a run killed at any point and restarted from its last
checkpoint ends with the same weights as an uninterrupted run. `keep_checkpoints` bounds them.
A stop request (SIGTERM, Ctrl-C: solopo.runtime.STOP) is honoured at the next step boundary: a
checkpoint of that step is written (marked INTERRUPTED: a resume point only, deleted once a later
checkpoint is complete, so it never joins checkpoint selection) and the job fails with one line
naming it (`Interrupted`); the rerun resumes from it.
Multi-process DeepSpeed training is in `solopo.train.distributed`; per-step logging (job log,
TensorBoard, wandb) in `solopo.train.monitor`.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# The forward pass lives in solopo.train.forward; its names are re-exported here for the loops' callers.
from solopo.train.forward import (SEQUENCE_FIELDS, _collate, compute_reference_logps, policy_outputs,  # noqa: F401
                                  sequence_logps, tokenize_pair)
from solopo.train.losses import LossConfig, get_loss, get_method
from solopo.train.monitor import StepLogger

log = logging.getLogger(__name__)

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


def claim_checkpoint_dir(ckpt_dir: str | Path, fingerprint: str) -> None:
    """Make `ckpt_dir` hold only checkpoints of this run: `fingerprint` hashes everything the weights
    depend on (model, data, method, loss and optimiser settings, seed). Checkpoints written under
    another fingerprint (a changed config or dataset, or a finished earlier run) are deleted, so
    a rerun never resumes from them."""
    ckpt_dir = Path(ckpt_dir)
    stamp = ckpt_dir / "FINGERPRINT"
    if ckpt_dir.exists() and (not stamp.exists() or stamp.read_text().strip() != fingerprint):
        stale = sorted(p for p in ckpt_dir.iterdir() if p.name != "FINGERPRINT")
        if stale:
            log.warning("removing %d checkpoint(s) of other settings or data from %s", len(stale), ckpt_dir)
        for p in stale:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")


def complete_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Finished checkpoints (`COMPLETE` is written last), oldest first."""
    return sorted((p for p in Path(ckpt_dir).glob("step-*") if (p / "COMPLETE").exists()), key=lambda p: int(p.name[5:]))


def _resumable(ck: Path) -> bool:
    return (ck / "trainer_state.pt").exists() or (ck / "state").is_dir()


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    done = [p for p in complete_checkpoints(ckpt_dir) if _resumable(p)]
    return done[-1] if done else None


def prune_checkpoints(ckpt_dir: Path, keep: int, keep_weights: bool) -> None:
    """Bound the checkpoint folder: the newest `keep` checkpoints stay resumable; each older one
    is cut to its weights (`keep_weights`: checkpoint selection still scores it) or deleted.
    Called after a checkpoint is complete, so a kill in between leaves at least one to resume from."""
    if keep <= 0:
        return
    for ck in complete_checkpoints(ckpt_dir)[:-keep]:
        if keep_weights and (ck / "model.safetensors").exists():
            (ck / "trainer_state.pt").unlink(missing_ok=True)
            shutil.rmtree(ck / "state", ignore_errors=True)
        else:
            shutil.rmtree(ck)


INTERRUPTED = "INTERRUPTED"  # marks a checkpoint written on a stop request, off the save_steps schedule


def stop_requested() -> bool:
    """Whether a signal asked this process's jobs to stop (solopo.runtime.STOP)."""
    from solopo.runtime import STOP

    return STOP.is_set()


def stopped(step: int, total: int, ckpt: Path):
    """The one-line error of a training job that saved `ckpt` (step `step`) and stopped on a signal."""
    from solopo.runtime import Interrupted, stop_reason

    return Interrupted(f"interrupted ({stop_reason()}) after step {step} of {total}: saved checkpoint {ckpt}; "
                       "the rerun resumes from it")


def drop_interrupted(ckpt_dir: Path, below: int | None = None) -> None:
    """Delete stop-request checkpoints (of steps < `below`; all when None): once a later checkpoint
    (or the final model) exists they are no resume point, and checkpoint selection must see exactly
    the checkpoints of an uninterrupted run."""
    for ck in complete_checkpoints(ckpt_dir):
        if (ck / INTERRUPTED).exists() and (below is None or int(ck.name[5:]) < below):
            shutil.rmtree(ck)


def _save_checkpoint(model, opt, sched, step: int, ckpt_dir: Path, history: list[dict],
                     interrupted: bool = False) -> None:
    from safetensors.torch import save_file

    final = ckpt_dir / f"step-{step}"
    tmp = ckpt_dir / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # tied embeddings share storage; safetensors wants one copy
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, tmp / "model.safetensors")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step}, tmp / "trainer_state.pt")
    (tmp / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    if interrupted:  # off the save_steps schedule: a resume point only (drop_interrupted)
        (tmp / INTERRUPTED).write_text(str(step))
    (tmp / "COMPLETE").write_text(str(step))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _load_checkpoint(model, opt, sched, path: Path) -> tuple[int, list[dict]]:
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(path / "model.safetensors"), strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise RuntimeError(f"checkpoint {path} does not match the model: missing {missing}, unexpected {unexpected}")
    if "lm_head.weight" in missing:
        model.tie_weights()
    state = torch.load(path / "trainer_state.pt", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    history = [json.loads(x) for x in (path / "history.jsonl").read_text().splitlines() if x.strip()]
    return int(state["step"]), history


def _prepare(method: str, rows: list[dict], ref: list[dict] | None):
    spec = get_loss(get_method(method).loss)
    if spec.needs_ref:
        if ref is None:
            raise ValueError(f"method {method} needs reference log-probs (loss {spec.name})")
        by_id = {r["id"]: r for r in ref}
        ref = [by_id[r["id"]] for r in rows]
    return spec, ref


def train(model_path: str, rows: list[dict], method: str, loss_cfg: LossConfig, cfg: TrainConfig, seed: int,
          out_dir: str | Path, ckpt_dir: str | Path, ref: list[dict] | None = None, progress=None,
          stop_after_step: int | None = None, deepspeed: str | None = None, log_dir: str | Path | None = None,
          run_name: str | None = None) -> dict:
    """Train `method` on `rows`; write the final model to `out_dir` (a temporary folder the caller renames).

    With `deepspeed` (a ZeRO config name) the loop runs through DeepSpeed's engine, one process per
    GPU (launched by `accelerate launch`, see `solopo.train.distributed`). `log_dir` receives the
    TensorBoard/wandb files of `cfg.report_to` (default: `ckpt_dir/tensorboard`)."""
    from solopo.generate.hf import load_model_and_tokenizer

    log_dir = Path(log_dir) if log_dir is not None else Path(ckpt_dir) / "tensorboard"
    if deepspeed and deepspeed != "none":
        from solopo.train.distributed import train_deepspeed

        return train_deepspeed(model_path, rows, method, loss_cfg, cfg, seed, out_dir, ckpt_dir, ref, progress,
                               stop_after_step, deepspeed, log_dir, run_name)
    t0 = time.time()
    spec, ref = _prepare(method, rows, ref)
    model, tok = load_model_and_tokenizer(model_path, cfg.device, cfg.dtype)
    device = next(model.parameters()).device
    order, total_steps, opt, sched = prepare_optimisation(model, len(rows), cfg, seed)
    ckpt_dir = Path(ckpt_dir)
    start, history = 0, []
    latest = _latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
    if latest is not None:
        start, history = _load_checkpoint(model, opt, sched, latest)
        log.info("resuming %s from %s (step %d of %d)", method, latest, start, total_steps)
    if progress is not None:
        progress.total = total_steps
        progress.update(start)
    monitor = StepLogger(cfg.report_to, log_dir, total_steps, start, run_name, {"method": method, **vars(cfg)})
    needs = spec.needs
    full_nll = "long_chosen_full_nll" in needs
    for step in range(start, total_steps):
        t_step, tokens = time.time(), 0
        batch_idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        sums: dict[str, float] = {}
        for m in range(0, len(batch_idx), cfg.micro_batch_size):
            mb = batch_idx[m : m + cfg.micro_batch_size]
            mrows = [rows[i] for i in mb]
            po = policy_outputs(model, tok, mrows, needs, cfg.max_length, device,
                                [ref[i] for i in mb] if spec.needs_ref else None, full_nll)
            loss, metrics = spec.fn(po, loss_cfg)
            (loss * len(mb) / len(batch_idx)).backward()
            tokens += po.n_tokens
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(mb) / len(batch_idx)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        record = {"step": step + 1, "lr": sched.get_last_lr()[0], "grad_norm": round(float(gnorm), 6),
                  **{k: round(v, 6) for k, v in sums.items()}}
        history.append(record)
        seconds = time.time() - t_step
        monitor.log(record, tokens / max(seconds, 1e-9), seconds)
        scheduled = bool(cfg.save_steps) and ((step + 1) % cfg.save_steps == 0 or step + 1 == total_steps)
        stop = stop_requested()  # read once: the save and the exit below must agree
        if scheduled or stop:
            _save_checkpoint(model, opt, sched, step + 1, ckpt_dir, history, interrupted=not scheduled)
            drop_interrupted(ckpt_dir, below=step + 1)
            prune_checkpoints(ckpt_dir, cfg.keep_checkpoints, cfg.keep_checkpoint_weights)
        if stop:
            monitor.close()
            raise stopped(step + 1, total_steps, ckpt_dir / f"step-{step + 1}")
        if progress is not None:
            progress.update(1)
        if stop_after_step is not None and step + 1 >= stop_after_step:
            monitor.close()
            raise KeyboardInterrupt(f"stopped after step {step + 1} (test hook)")
    monitor.close()
    drop_interrupted(ckpt_dir)
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    with open(out_dir / "train_log.jsonl", "w") as fh:
        fh.writelines(json.dumps(h) + "\n" for h in history)
    return {"method": method, "loss": spec.name, "steps": total_steps, "examples": len(rows),
            "final_loss": history[-1]["loss"] if history else None, "resumed_from_step": start,
            "train_seconds": round(time.time() - t0, 2),
            "checkpoints": sorted(p.name for p in ckpt_dir.glob("step-*")) if ckpt_dir.exists() else []}
