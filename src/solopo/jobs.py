"""What every pipeline job shares: its log file, its progress bars and the config it records.

On the tiny preset Snakemake runs the jobs in threads of one process (`--force-use-threads`), so
a job's log handler keeps only its own thread's records and progress bars go to the job log.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("solopo")


class _ThreadFilter(logging.Filter):
    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record):
        return record.thread == self.thread


@contextlib.contextmanager
def job(log_path: str, name: str):
    """Route this thread's `solopo` log records to the rule's log file; log the wall time."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ThreadFilter())
    root = logging.getLogger("solopo")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    t0 = time.time()
    log.info("start %s", name)
    try:
        yield t0
        log.info("done %s in %.1f s", name, time.time() - t0)
    except Exception:
        log.exception("failed %s after %.1f s", name, time.time() - t0)
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def recorded_slice(cfg, direct: dict) -> dict:
    """What the manifest records: the rule's config slice (solopo.slices, the same value as its Snakemake
    params) when called from the workflow: a `Scoped` in-process, the plain slice in a rule's own env
    (solopo.stage passes plain data); `direct` when a test calls the stage with a whole config."""
    from solopo.slices import Scoped, without_runtime

    if isinstance(cfg, Scoped):
        return cfg.plain
    return direct if "backbones" in cfg else without_runtime(dict(cfg))


class _StoppableBar(tqdm):
    """A progress bar whose every update checks the Ctrl-C flag (solopo.runtime.STOP): each job loop
    (pre-training, contexts, sampling, reference log-probs, training steps) updates it per step."""

    def update(self, n=1):
        from solopo.runtime import check_stop

        check_stop()
        return super().update(n)


def progress_bar(total: int, desc: str, log_path: str | None = None):
    # Progress goes to the job log (threads would interleave bars on the terminal); the bar owns the
    # handle for the job's lifetime (tqdm never closes it; it is released with the bar).
    fh = open(log_path, "a") if log_path else None  # noqa: SIM115
    return _StoppableBar(total=total, desc=desc, file=fh, mininterval=5, disable=fh is None)
