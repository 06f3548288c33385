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
import os
import shutil
import time
from pathlib import Path

import torch

from solopo.train.checkpoints import (
    INTERRUPTED,
    drop_interrupted,
    latest_checkpoint,
    prune_checkpoints,
    stop_requested,
    stopped,
)
from solopo.train.forward import add_lengths, mean_lengths, policy_outputs
from solopo.train.losses import LossConfig
from solopo.train.monitor import StepLogger
from solopo.train.setup import TrainConfig, method_loss, prepare_optimisation

log = logging.getLogger(__name__)


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
    spec, ref = method_loss(method, rows, ref)
    model, tok = load_model_and_tokenizer(model_path, cfg.device, cfg.dtype)
    device = next(model.parameters()).device
    order, total_steps, opt, sched = prepare_optimisation(model, len(rows), cfg, seed)
    ckpt_dir = Path(ckpt_dir)
    start, history = 0, []
    latest = latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
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
        lengths: dict[str, float] = {}
        for m in range(0, len(batch_idx), cfg.micro_batch_size):
            mb = batch_idx[m : m + cfg.micro_batch_size]
            mrows = [rows[i] for i in mb]
            po = policy_outputs(model, tok, mrows, needs, cfg.max_length, device,
                                [ref[i] for i in mb] if spec.needs_ref else None, full_nll)
            loss, metrics = spec.fn(po, loss_cfg)
            (loss * len(mb) / len(batch_idx)).backward()
            tokens += po.n_tokens
            add_lengths(lengths, po)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(mb) / len(batch_idx)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        record = {"step": step + 1, "lr": sched.get_last_lr()[0], "grad_norm": round(float(gnorm), 6),
                  **{k: round(v, 6) for k, v in sums.items()}, **mean_lengths(lengths)}
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
