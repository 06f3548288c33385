"""Process-wide runtime helpers.

The tiny preset runs Snakemake jobs as threads of one process (`--force-use-threads`,
so torch and transformers are imported once). Anything that draws from torch's global
RNG therefore takes `TORCH_RNG_LOCK` and reseeds inside it, so results do not depend
on which jobs happen to run concurrently.
"""
from __future__ import annotations

import os
import threading

TORCH_RNG_LOCK = threading.RLock()
# transformers 5 builds models under a process-wide meta-device context; two threads loading
# at once corrupt each other's load ("Cannot copy out of meta tensor"). Loads take this lock.
MODEL_LOAD_LOCK = threading.RLock()

# Ctrl-C: the tiny preset runs jobs as threads of the Snakemake process, and Snakemake waits for
# running threads before it exits (~80 s for a training job). The SIGINT handler installed by the
# workflow sets STOP; job loops (progress updates, HF generate's stopping criterion) check it and
# raise Interrupted within a step, before anything is renamed into place. Training checks it at
# each step boundary first and writes a checkpoint there (solopo.train.trainer).
#
# SIGTERM (scancel, preemption, the profile's --signal ahead of a time limit) takes the same path,
# but only where a handler can be installed: in the main thread of a process that runs one job
# (`python -m solopo stage`, which every cluster job runs, and each DeepSpeed rank). Python installs
# signal handlers only from the main thread, and in the Snakemake process itself the scheduler
# installs its own SIGTERM handler ("Will exit after finishing currently running jobs"), so a job
# running as a thread of Snakemake (the local profile) does not see SIGTERM.
STOP = threading.Event()
_STOP_SIGNAL: list[str] = []  # the signal that set STOP first ("Ctrl-C" or "SIGTERM")
# Exit status of a job stopped by a signal (the shell's 128 + signal number).
STOP_EXIT_CODES = {"Ctrl-C": 130, "SIGTERM": 143}


class Interrupted(RuntimeError):
    pass


def request_stop(reason: str) -> None:
    """Ask every job loop of this process to stop at its next step boundary (what the handlers call)."""
    if not _STOP_SIGNAL:
        _STOP_SIGNAL.append(reason)
    STOP.set()


def clear_stop() -> None:
    """Forget a stop request (tests; a process that runs another job after a stopped one)."""
    _STOP_SIGNAL.clear()
    STOP.clear()


def stop_reason() -> str:
    """What asked to stop: "SIGTERM", "Ctrl-C", or (a DeepSpeed rank that follows another's) "stop request"."""
    return _STOP_SIGNAL[0] if _STOP_SIGNAL else "stop request"


def check_stop() -> None:
    if STOP.is_set():
        raise Interrupted(f"interrupted ({stop_reason()}): the job stopped; nothing was written under its output names")


def install_stop_handler() -> None:
    """Chain a SIGINT handler that sets STOP before the previous one (KeyboardInterrupt in the main thread)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    prev = signal.getsignal(signal.SIGINT)
    if getattr(prev, "_solopo_stop", False):
        return

    def handler(signum, frame):
        request_stop("Ctrl-C")
        if callable(prev):
            prev(signum, frame)
        else:
            raise KeyboardInterrupt

    handler._solopo_stop = True
    signal.signal(signal.SIGINT, handler)


def install_job_stop_handlers() -> bool:
    """In a process that runs one job in its main thread: SIGTERM and SIGINT set STOP and return, so
    the job loop stops at its next step boundary (training saves a checkpoint there) instead of
    dying mid-step. A second Ctrl-C stops at once (KeyboardInterrupt); a second SIGTERM (SLURM
    sends one at the time limit too) is ignored: the save under way finishes. Returns False, and
    installs nothing, outside the main thread (jobs as threads of Snakemake: see STOP above)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return False

    def on_term(signum, frame):
        request_stop("SIGTERM")

    def on_int(signum, frame):
        if STOP.is_set():
            raise KeyboardInterrupt
        request_stop("Ctrl-C")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)
    return True


OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1"


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {requested!r} was requested but no CUDA GPU is visible (torch.cuda.is_available() is False); "
            "use the tiny preset on CPU or run on a GPU node"
        )
    return requested


def hub_download(repo_id: str, filename: str, repo_type: str = "dataset", cache_dir: str | None = None) -> str:
    """`hf_hub_download` that gives up within a bounded time when the hub is unreachable.

    On its own, huggingface_hub retries an unreachable hub 5 times with a 60 s timeout each: a
    hub that accepts connections but never answers took ~400 s to fail (measured). Here one
    metadata request (timeout `HF_HUB_ETAG_TIMEOUT`, default 10 s; tried twice) goes first; if it
    fails, a cached copy is returned or its error raised (~20 s at most). Offline (HF_HUB_OFFLINE=1)
    the cache is used directly.
    """
    import huggingface_hub as hub

    if not is_offline():
        timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 10)
        url = hub.hf_hub_url(repo_id, filename, repo_type=repo_type)
        for attempt in range(2):
            try:
                hub.get_hf_file_metadata(url, timeout=timeout)
                break
            except Exception as e:  # noqa: BLE001 - network errors come in several types
                status = getattr(getattr(e, "response", None), "status_code", None)
                if attempt == 1 or (status is not None and 400 <= status < 500):  # unreachable, or not found/gated
                    cached = hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, repo_type=repo_type)
                    if isinstance(cached, str):
                        return cached
                    raise
    return hub.hf_hub_download(repo_id, filename, repo_type=repo_type, cache_dir=cache_dir)
