"""The checkpoint folder of a training run: what a rerun may resume from, how many checkpoints stay, and
the stop-request checkpoint (a SIGTERM or Ctrl-C honoured at a step boundary, solopo.runtime.STOP).
Shared by the single-process trainer and the DeepSpeed loop; each writes its checkpoints its own way."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


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


def resumable(ck: Path) -> bool:
    """Whether a checkpoint holds the optimizer state a resume needs (not only its weights)."""
    return (ck / "trainer_state.pt").exists() or (ck / "state").is_dir()


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete, resumable checkpoint, or None."""
    done = [p for p in complete_checkpoints(ckpt_dir) if resumable(p)]
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
