"""Artifacts: atomic writes and manifests.

Every output is written under a temporary name in the same folder and renamed into
place, so an interrupted job never leaves a file that looks finished. Beside every
output lies `<output>.manifest.json` (for a folder: `<folder>/manifest.json`) with the
hash of the config slice that produced it, the hashes of its inputs, the git commit,
the package versions and the wall time, and the output's own content: `content.sha256` of a
file, `content.files` (sha256 each) and `content.digest` of a folder, so `solopo check --inputs`
can tell a changed byte. The manifest is written before the output is renamed into place, so an
output that exists always has its manifest: `write_manifest` called before the output is written
leaves the manifest pending, and the atomic write that renames the output into place records the
content of the finished temporary file (`seal`) and rewrites the manifest just before the rename.
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
import threading
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "trl", "datasets", "snakemake", "accelerate", "deepspeed", "lm_eval", "vllm", "solopo")


class DataError(ValueError):
    """Malformed input data; the message names the file and line."""


def load_manifest(path: str | os.PathLike) -> dict:
    """A manifest file's JSON object; a truncated or edited one raises DataError naming it."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: manifest is not valid JSON ({e}); delete it and rerun snakemake to rebuild "
                        "its artifact") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: manifest is a JSON {type(obj).__name__}, expected an object; delete it and rerun "
                        "snakemake to rebuild its artifact")
    return obj


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def hash_obj(obj) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# files inside a folder artifact that are not its content: its own manifest, Snakemake's timestamp
_NOT_CONTENT = ("manifest.json", ".snakemake_timestamp")


def content_files(folder: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of every file of a folder artifact (its content, weights included)."""
    p = Path(folder)
    return {str(f.relative_to(p)): sha256_file(f) for f in sorted(p.rglob("*"))
            if f.is_file() and f.name not in _NOT_CONTENT}


def content_digest(files: dict[str, str]) -> str:
    return hash_obj(files)


def hash_path(path: str | os.PathLike) -> str:
    """sha256 of a file; for a folder artifact, the content digest its manifest recorded when it was
    written (`c:<digest>`; `solopo check --inputs` and the model loaders re-verify it against the bytes),
    else a hash of its files' names and bytes."""
    p = Path(path)
    if p.is_dir() and (p / "manifest.json").exists():
        content = load_manifest(p / "manifest.json").get("content")
        if isinstance(content, dict) and "digest" in content:
            return "c:" + content["digest"]
        # an older manifest without a content digest: identified by the manifest itself
        return "m:" + hashlib.sha256((p / "manifest.json").read_bytes()).hexdigest()[:14]
    if p.is_file():
        return sha256_file(p)[:16]
    return files_hash(p)


def files_hash(folder: Path) -> str:
    """A hash of a folder's file names and bytes, manifests left out: how a folder without a content
    digest in its manifest is identified."""
    h = hashlib.sha256()
    for f in sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.endswith("manifest.json")):
        h.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def verify_folder(folder: str | os.PathLike) -> list[str]:
    """Problems of a folder artifact against the content its manifest recorded: one line per file,
    naming its path (changed bytes, missing, unexpected). Empty when intact or when no digest is recorded."""
    p = Path(folder)
    m = p / "manifest.json"
    content = load_manifest(m).get("content") if m.is_file() else None
    if not isinstance(content, dict) or "files" not in content:
        return []
    now = content_files(p)
    out = []
    for name, digest in content["files"].items():
        if name not in now:
            out.append(f"{p / name}: missing (recorded in {m})")
        elif now[name] != digest:
            out.append(f"{p / name}: content changed since it was written (sha256 {now[name][:12]}, {m} "
                       f"records {digest[:12]})")
    out += [f"{p / name}: not part of the artifact as written (not in {m})" for name in now if name not in content["files"]]
    return out


def file_content(path: str | os.PathLike) -> dict:
    """The content record of a file artifact: its sha256 and size."""
    return {"sha256": sha256_file(Path(path)), "bytes": Path(path).stat().st_size}


def verify_file(path: str | os.PathLike, manifest: dict, manifest_file: str | os.PathLike) -> list[str]:
    """Problems of a file artifact against the content its manifest recorded (one line; empty when intact
    or when the manifest records none)."""
    content = manifest.get("content")
    if not isinstance(content, dict) or "sha256" not in content:
        return []
    p = Path(path)
    if not p.is_file():
        return [f"{p}: missing (recorded in {manifest_file})"]
    now = sha256_file(p)
    if now == content["sha256"]:
        return []
    return [(f"{p}: content changed since it was written (sha256 {now[:12]}, {manifest_file} records "
             f"{str(content['sha256'])[:12]}); delete it and rerun snakemake to rebuild it")]


def recorded_content(manifest: dict) -> str | None:
    """'file' or 'folder' when the manifest records its artifact's own content, else None (older manifests)."""
    content = manifest.get("content")
    if isinstance(content, dict) and "sha256" in content:
        return "file"
    if isinstance(content, dict) and isinstance(content.get("files"), dict):
        return "folder"
    return None


def artifact_gone(artifact: Path, manifest: dict, manifest_file: str | os.PathLike) -> str | None:
    """Why the artifact of a manifest is gone (the file, or a file its folder manifest records), else None.
    Existence only, no hashing: `solopo check` without --inputs stays fast."""
    if not artifact.exists():
        return (f"the artifact is gone but its manifest {manifest_file} remains (a failed job or a deletion); "
                "rerun snakemake to rebuild it, or delete the manifest")
    content = manifest.get("content")
    files = content.get("files") if isinstance(content, dict) else None
    if artifact.is_dir() and isinstance(files, dict):
        gone = [name for name in files if not (artifact / name).is_file()]
        if gone:
            more = f" (+{len(gone) - 1} more)" if len(gone) > 1 else ""
            return (f"{artifact / gone[0]}{more} recorded in {manifest_file} is gone; delete the folder and rerun "
                    "snakemake to rebuild it")
    return None


def content_problem(artifact: Path, manifest: dict, manifest_file: str | os.PathLike) -> str | None:
    """The artifact's bytes against the content its manifest recorded: the problem (one line), or None."""
    problems = verify_folder(artifact) if artifact.is_dir() else verify_file(artifact, manifest, manifest_file)
    if not problems:
        return None
    return "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")


# full re-hash of a model folder before loading up to this size; above it (paper-size weights,
# hashed ~1 min per load) only the safetensors structure is checked and `solopo check --inputs` hashes
VERIFY_MAX_BYTES = int(float(os.environ.get("SOLOPO_VERIFY_MAX_GB", "2")) * 2**30)


def _safetensors_problem(f: Path) -> str | None:
    """A structural check of a .safetensors file: header length, header JSON, tensor offsets within the file."""
    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return f"{f}: damaged safetensors file ({size} bytes, shorter than its 8-byte header length)"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"{f}: damaged safetensors file (header of {n} bytes in a file of {size} bytes)"
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return f"{f}: damaged safetensors file (header is not JSON: {e})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
               and "data_offsets" in t), default=0)
    if 8 + n + end != size:
        return f"{f}: damaged safetensors file (tensors end at byte {8 + n + end}, the file has {size}: truncated or padded)"
    return None


def check_model_folder(path: str | os.PathLike) -> None:
    """Before a model folder is loaded: raise DataError naming the damaged file. A folder built here
    is re-hashed against its manifest (up to VERIFY_MAX_BYTES); every .safetensors file is checked
    structurally. A hub id (not a folder) passes."""
    p = Path(path)
    if not p.is_dir():
        return
    total = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    if total <= VERIFY_MAX_BYTES:
        problems = verify_folder(p)
        if problems:
            raise DataError(problems[0] + "; the model is damaged: delete the folder and rerun snakemake to rebuild it")
    for f in sorted(p.glob("*.safetensors")):
        problem = _safetensors_problem(f)
        if problem:
            raise DataError(problem)


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
    """The manifest of `output`; when `output` is a file that exists now, with its content record
    (a folder's content is recorded by `write_folder_manifest`, a pending file's by `seal`)."""
    inputs = [str(i) for i in inputs]
    content = {"content": file_content(output)} if Path(output).is_file() else {}
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
        **content,
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
        seal(tmp, path)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def unwritable_dir(outputs: Iterable[str | os.PathLike]) -> str | None:
    """One line naming the first folder an output would be written into that cannot be written (a
    read-only mount, permissions), else None. Each output's nearest existing folder is looked at: the
    output (and its temporary twin) is created there, and Snakemake removes an old one from there."""
    seen: set[Path] = set()
    for out in outputs:
        d = Path(out).parent
        while not d.exists() and d != d.parent:
            d = d.parent
        if d in seen:
            continue
        seen.add(d)
        if not os.access(d, os.W_OK | os.X_OK):
            return (f"{d}: not writable (a read-only mount or its permissions), and this run writes {out} there; "
                    "allowed: a writable results folder (remount it read-write, or run in a writable copy of the workflow)")
    return None


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


def write_folder_manifest(tmp: str | os.PathLike, output: str | os.PathLike, config_slice, inputs: Iterable[str] = (),
                          started: float | None = None, extra: dict | None = None) -> dict:
    """The manifest of a folder artifact still under its temporary name `tmp`, with the content
    digest of its files (sha256 each, computed once here; re-verified by `verify_folder`)."""
    m = build_manifest(str(output), config_slice, inputs, started, extra)
    files = content_files(tmp)
    m["content"] = {"digest": content_digest(files), "files": files}
    Path(tmp, "manifest.json").write_text(json.dumps(m, indent=2))
    return m


# manifests written by `write_manifest` whose file is not yet in place: {absolute output path: (manifest
# file, manifest)}; a lock, since local jobs run as threads of one process (each with its own outputs)
_PENDING: dict[str, tuple[Path, dict]] = {}
_PENDING_LOCK = threading.Lock()


def write_manifest(output, config_slice, inputs: Iterable[str] = (), started: float | None = None,
                   extra: dict | None = None) -> dict:
    """Write the manifest for `output` (call before the output itself is renamed into place, or right after a folder).
    A file output's manifest stays pending: the atomic write that puts the file in place records its content."""
    m = build_manifest(str(output), config_slice, inputs, started, extra)
    is_dir = Path(output).exists() and Path(output).is_dir()
    target = manifest_path(output) if is_dir else Path(str(output) + ".manifest.json")
    write_json(target, m)
    if not is_dir:
        with _PENDING_LOCK:
            _PENDING[os.path.abspath(output)] = (target, m)
    return m


def seal(tmp: str | os.PathLike, output: str | os.PathLike) -> None:
    """Just before the finished temporary file `tmp` is renamed to `output`: when `output`'s manifest is
    pending, record `tmp`'s content in it and rewrite it (so the manifest matches the bytes put in place)."""
    with _PENDING_LOCK:
        pending = _PENDING.pop(os.path.abspath(output), None)
    if pending is None or not Path(tmp).is_file():
        return
    target, m = pending
    write_json(target, {**m, "content": file_content(tmp)})


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
    return load_manifest(manifest_path(output) if manifest_path(output).exists() else Path(str(output) + ".manifest.json"))
