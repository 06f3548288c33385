"""Artifacts: atomic writes and manifests.

Every output is written under a temporary name in the same folder and renamed into
place, so an interrupted job never leaves a file that looks finished. Beside every
output lies `<output>.manifest.json` (for a folder: `<folder>/manifest.json`) with the
hash of the config slice that produced it, the hashes of its inputs, the git commit,
the package versions and the wall time. The manifest is written before the output is
renamed into place, so an output that exists always has its manifest.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "trl", "datasets", "snakemake", "accelerate", "deepspeed", "lm_eval", "vllm", "solopo")


class DataError(ValueError):
    """Malformed input data; the message names the file and line."""


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_obj(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def hash_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (names and bytes, sorted; manifests excluded)."""
    p = Path(path)
    if p.is_dir() and (p / "manifest.json").exists():
        # a folder artifact (model, benchmark data) is identified by its manifest, which
        # carries its own inputs' hashes: hashing multi-GB weights per job would dominate
        return "m:" + hashlib.sha256((p / "manifest.json").read_bytes()).hexdigest()[:14]
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and not f.name.endswith("manifest.json"))
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def manifest_path(output: str | os.PathLike) -> Path:
    p = Path(output)
    return p / "manifest.json" if p.is_dir() else p.with_name(p.name + ".manifest.json")


_GIT_COMMIT: str | None = None


def git_commit() -> str:
    global _GIT_COMMIT
    if _GIT_COMMIT is None:
        try:
            # The workflow's commit: jobs run in the workflow directory; the package may be an installed wheel.
            out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            commit = out.stdout.strip() if out.returncode == 0 else "unknown"
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, timeout=10).stdout.strip()
            _GIT_COMMIT = commit + ("-dirty" if dirty and commit != "unknown" else "")
        except (OSError, subprocess.SubprocessError):
            _GIT_COMMIT = "unknown"
    return _GIT_COMMIT


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(output: str, config_slice, inputs: Iterable[str] = (), started: float | None = None,
                   extra: dict | None = None) -> dict:
    inputs = [str(i) for i in inputs]
    return {
        "output": str(output),
        "config_hash": hash_obj(config_slice),
        "config": config_slice,
        "inputs": {i: hash_path(i) for i in inputs if Path(i).exists()},
        "git_commit": git_commit(),
        "versions": package_versions(),
        "wall_time_s": round(time.time() - started, 3) if started else None,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[:1],
        **(extra or {}),
    }


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path (file or folder) that is renamed to `path` on success, removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl(path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_manifest(output, config_slice, inputs: Iterable[str] = (), started: float | None = None,
                   extra: dict | None = None) -> dict:
    """Write the manifest for `output` (call before the output itself is renamed into place, or right after a folder)."""
    m = build_manifest(str(output), config_slice, inputs, started, extra)
    target = manifest_path(output) if Path(output).exists() and Path(output).is_dir() else Path(str(output) + ".manifest.json")
    write_json(target, m)
    return m


def iter_jsonl(path):
    """Yield (line number, object) of a JSONL file. A line that is not UTF-8 or not JSON raises
    DataError naming the file and the line; blank lines are skipped."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start} of the line): {e.reason}") from None
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line.rstrip("\r\n"))  # columns count within this line
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None


def read_jsonl(path) -> list[dict]:
    """Read a JSONL file; a malformed line raises DataError naming file and line."""
    return [obj for _, obj in iter_jsonl(path)]


def read_manifest(output) -> dict:
    return json.loads(manifest_path(output).read_text()) if manifest_path(output).exists() else \
        json.loads(Path(str(output) + ".manifest.json").read_text())
