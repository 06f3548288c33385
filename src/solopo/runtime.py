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
