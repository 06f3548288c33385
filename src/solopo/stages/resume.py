"""Resume keys: what an interrupted job's leftovers (sample shards, checkpoints, partial generations)
must match for its rerun to reuse them. A key changes exactly when the result would."""
from __future__ import annotations

from pathlib import Path

from solopo import artifacts

# TrainConfig fields that change what is kept or reported, never the weights (not in the resume fingerprint)
NOT_IN_FINGERPRINT = ("save_steps", "keep_checkpoints", "keep_checkpoint_weights", "report_to", "collective_timeout_s")


def model_identity(model: str) -> str:
    """What a model argument stands for, for resume keys: the manifest hash of a folder built here,
    else the file listing (name, size, mtime) of a local folder, else the hub id."""
    p = Path(model)
    if (p / "manifest.json").is_file():
        return artifacts.hash_path(p)
    if p.is_dir():
        return f"{model}:" + artifacts.hash_obj(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                                       for f in p.iterdir() if f.is_file()))
    return model


def sample_key(model: str, backend: str, backend_kwargs: dict) -> str:
    """Sample shards: the model and how it is run (the sampling settings are in the shard file)."""
    return artifacts.hash_obj({"model": model_identity(model), "backend": backend, "backend_kwargs": backend_kwargs})


def train_key(model: str, dataset_path: str, ref_path: str | None, method: str, lam: float | None, lcfg, tcfg,
              seed: int, deepspeed: str) -> str:
    """A run's checkpoint folder: everything that changes its weights."""
    return artifacts.hash_obj({
        "model": model_identity(model), "data": artifacts.hash_path(dataset_path),
        "ref": artifacts.hash_path(ref_path) if ref_path else None, "method": method, "lambda": lam,
        "loss": vars(lcfg), "optim": {k: v for k, v in vars(tcfg).items() if k not in NOT_IN_FINGERPRINT},
        "seed": seed, "deepspeed": deepspeed})


def eval_key(model_dir: str, backend: str, kwargs: dict, bench: str, settings: dict, seed: int) -> str:
    """An evaluation's finished generations (solopo.partial)."""
    return artifacts.hash_obj({"model": model_identity(model_dir), "backend": backend, "kwargs": kwargs,
                               "bench": bench, "settings": settings, "seed": seed})
