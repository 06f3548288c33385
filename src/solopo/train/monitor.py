"""Per-step training progress: one line per optimizer step in the job log, and TensorBoard event
files or a Weights & Biases run (`train.report_to`: none | tensorboard | wandb).

Only rank 0 reports (the metrics it reports are already reduced over all ranks). The line is

    step 3/78 loss 0.6931 margin 0.0123 lr 1.00e-06 tokens/s 5120 (12.1 s)

where `margin` is the chosen-minus-rejected reward margin of the method's PO loss ("-" for SFT).
TensorBoard files are written while the job runs to `results/checkpoints/<run>/tensorboard/`
(`tensorboard --logdir results/checkpoints`), survive a killed job, and are copied into the model
folder (`results/train/<run>/model/tensorboard/`) when it is finished. A resumed
run asks TensorBoard to hide the events of the killed attempt past its checkpoint step
(`purge_step`), so a curve never shows a step twice; a run from scratch clears the folder.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

REPORT_TO = ("none", "tensorboard", "wandb")
MARGIN_KEYS = ("rewards/margins", "margin")


class StepLogger:
    """Reports training records `{"step": n, "loss": ..., "lr": ..., ...}` (see trainer.train)."""

    def __init__(self, report_to: str, log_dir: str | Path | None, total_steps: int, start_step: int = 0,
                 run_name: str | None = None, config: dict | None = None, enabled: bool = True) -> None:
        if report_to not in REPORT_TO:
            raise ValueError(f"train.report_to {report_to!r}: allowed values are {', '.join(REPORT_TO)}")
        self.total, self.enabled = total_steps, enabled
        self.writer = self.wandb_run = None
        if not enabled or report_to == "none":
            return
        if log_dir is None:
            raise ValueError(f"train.report_to {report_to}: no folder for the event files was given")
        log_dir = Path(log_dir)
        if report_to == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # torch.utils.tensorboard needs the `tensorboard` package
                raise RuntimeError("train.report_to: tensorboard needs the `tensorboard` package "
                                   "(pip install tensorboard), or set train.report_to: none") from e
            if start_step == 0 and log_dir.exists():
                shutil.rmtree(log_dir)  # a run from scratch: events of an earlier run would overlay its curves
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=start_step or None)
        else:
            try:
                import wandb
            except ImportError as e:
                raise RuntimeError("train.report_to: wandb needs the `wandb` package (pip install wandb) and "
                                   "WANDB_API_KEY or WANDB_MODE=offline, or set train.report_to: none") from e
            log_dir.mkdir(parents=True, exist_ok=True)
            self.wandb_run = wandb.init(project=os.environ.get("WANDB_PROJECT", "solopo"), name=run_name,
                                        dir=str(log_dir), config=config or {}, resume="allow",
                                        id=run_name.replace("/", "_") if run_name else None)

    def line(self, record: dict, tokens_per_s: float | None = None, seconds: float | None = None) -> str:
        margin = next((record[k] for k in MARGIN_KEYS if k in record), None)
        parts = [f"step {record['step']}/{self.total}", f"loss {record.get('loss', float('nan')):.4f}",
                 f"margin {margin:.4f}" if margin is not None else "margin -", f"lr {record.get('lr', 0.0):.2e}"]
        if tokens_per_s is not None:
            parts.append(f"tokens/s {tokens_per_s:.0f}")
        if seconds is not None:
            parts.append(f"({seconds:.1f} s)")
        return " ".join(parts)

    def log(self, record: dict, tokens_per_s: float | None = None, seconds: float | None = None) -> None:
        if not self.enabled:
            return
        log.info("%s", self.line(record, tokens_per_s, seconds))
        scalars = {f"train/{k}": float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        if tokens_per_s is not None:
            scalars["train/tokens_per_s"] = float(tokens_per_s)
        self._write(record["step"], scalars)

    def _write(self, step: int, scalars: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()  # a job killed at any point leaves its curves up to the last step
        if self.wandb_run is not None:
            self.wandb_run.log(scalars, step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
