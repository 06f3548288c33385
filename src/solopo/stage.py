"""One pipeline stage as a Snakemake job: in this process, or inside the rule's software environment.

Every rule's `run:` block is one `stage("pipeline.contexts", ...)` call (workflow/rules/common.smk)
whose result, when there is one, goes to Snakemake's `shell()` in that same block:

    run:
        if cmd := stage("pipeline.contexts", ...):
            shell(cmd)

Two ways to run a stage:

- **In-process** (no software deployment, a local run): `prepare` imports the function, calls it in the
  Snakemake process and returns None. The tiny preset runs this way: one `.venv`, jobs are threads of
  one process, torch and transformers load once.
- **As its own process**: Snakemake activates a rule's `conda:` env (or container) only for `shell()`
  commands, never for Python in a `run:` block. So `prepare` writes the call to a file under
  `logs/stage_calls/` and returns `python -m solopo stage <file>` with `PYTHONPATH=<the workflow's src/>`,
  which the run block hands to `shell()`: called there, `shell()` wraps it in the job's env through
  Snakemake's public interface (the run block's own locals), and formats `{resources.mem_mb}`. The job
  imports this package from the workflow's own source tree and needs nothing from the submitting
  environment; the env files hold only third-party pins (workflow/envs/*.yaml).

`SOLOPO_STAGE_SUBPROCESS=1` takes the second path without an env: the same call file and command,
run by this process's own Python. Tests use it to run the env path where no conda exists. A job on
a cluster node (Snakemake's remote execution, e.g. a SLURM job) always takes it (`own_process`):
only a job in the main thread of its own process can receive SIGTERM (scancel, preemption, the
profile's `--signal` ahead of the time limit), which `run_call` turns into a stop at the next step
boundary (solopo.runtime; training saves a checkpoint there) and an exit with one line and status
143 (130 for Ctrl-C).

The call file is YAML, not JSON, because configs have integer mapping keys (e.g. toy_world hop
weights) that JSON would turn into strings; the write checks that the file loads back equal to the
arguments, so a value that cannot cross the process boundary fails the job instead of changing it.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# set by common.smk in a job that a cluster scheduler started: there `mem_mb` is what the job has
CLUSTER_FLAG = "SOLOPO_MEM_FROM_RESOURCES"
# the job's mem_mb handed to a stage run in the rule's own environment (read by solopo.resources)
MEM_MB_VAR = "SOLOPO_MEM_MB"
# where the calls of jobs run as their own process are written (relative to the working directory)
CALLS_DIR = "logs/stage_calls"


class StageError(RuntimeError):
    pass


def resolve(func: str) -> Callable:
    """`pipeline.contexts` or `solopo.report.tables.write_tables` -> the function; only this package's."""
    name = func if func.startswith("solopo.") else f"solopo.{func}"
    module, _, attr = name.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise StageError(f"stage {func!r}: no such function in the solopo package ({e})") from e
    if not callable(fn):
        raise StageError(f"stage {func!r}: {name} is not a function")
    return fn


def plain(value: Any, where: str = "argument") -> Any:
    """Snakemake's str/list/dict subclasses (paths, Namedlists) as plain YAML types; anything else is an error."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {plain(k, f"{where} key"): plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise StageError(f"{where}: a {type(value).__name__} cannot be passed to a job in its own environment")


def call_text(func: str, args: tuple | list, kwargs: dict) -> str:
    """The call as YAML, checked to load back equal to the caller's values."""
    spec = {"function": func, "args": plain(list(args), "args"), "kwargs": plain(dict(kwargs), "kwargs")}
    text = yaml.safe_dump(spec, sort_keys=False)
    back = yaml.safe_load(text)
    # against the caller's values, not the plain copy: a tuple that would arrive as a list fails here
    if back["args"] != list(args) or back["kwargs"] != dict(kwargs):
        raise StageError(f"stage {func!r}: its arguments do not survive the round trip through its call file "
                         "(only str, int, float, bool, None, lists and dicts cross into a job's env)")
    return text


def write_call(path: str | Path, func: str, args: tuple | list, kwargs: dict) -> Path:
    path = Path(path)
    text = call_text(func, args, kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run_call(path: str | Path) -> Any:
    """`python -m solopo stage <file>`: run the call a rule wrote (inside the rule's env). SIGTERM and
    Ctrl-C stop the job at its next step boundary; it then exits with the job's one-line message."""
    from solopo import runtime

    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("function"), str):
        raise StageError(f"{path}: not a stage call file (needs `function`, `args`, `kwargs`)")
    fn = resolve(spec["function"])
    runtime.install_job_stop_handlers()
    try:
        return fn(*spec.get("args", []), **spec.get("kwargs", {}))
    except runtime.Interrupted as e:
        if not runtime.STOP.is_set():
            raise
        sys.stderr.write(f"{e}\n")  # the job log holds the traceback (solopo.pipeline.job)
        raise SystemExit(runtime.STOP_EXIT_CODES.get(runtime.stop_reason(), 1)) from None


def forced_subprocess() -> bool:
    return os.environ.get("SOLOPO_STAGE_SUBPROCESS") == "1"


def command(call_file: str | Path, src_dir: str | Path, python: str = "python") -> str:
    """The job's command; `python` is the env's own (first on PATH once Snakemake activated the env)."""
    return f"PYTHONPATH={shlex.quote(str(src_dir))} {shlex.quote(python)} -m solopo stage {shlex.quote(str(call_file))}"


def call_file_path(func: str, text: str, calls_dir: str | Path = CALLS_DIR) -> Path:
    """Where a call is written: named by its function and content, so each job has its own file."""
    return Path(calls_dir) / f"{func}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"


def prepare(func: str, args: tuple, kwargs: dict, src_dir: str | Path, *, deployed: bool,
            own_process: bool = False) -> str | None:
    """Run one stage (see the module docstring): in this process, returning None, or as its own process,
    returning the command for the rule's `shell()`. `deployed`: Snakemake deploys the rule's software
    (its env's `python` is first on PATH); `own_process`: a job on a cluster node, which must receive
    SIGTERM itself (solopo.runtime) even without an env."""
    if not deployed and not own_process and not forced_subprocess():
        resolve(func)(*args, **kwargs)
        return None
    src = Path(src_dir)
    if not (src / "solopo" / "__init__.py").is_file():
        raise StageError(f"{src}: the workflow's source tree (src/solopo) is missing; jobs in their own "
                         "environment import solopo from there")
    text = call_text(func, args, kwargs)
    call_file = write_call(call_file_path(func, text), func, args, kwargs)
    cmd = command(call_file.resolve(), src.resolve(), "python" if deployed else sys.executable)
    cmd = cmd.replace("{", "{{").replace("}", "}}")  # shell() formats the command with the run block's names
    if os.environ.get(CLUSTER_FLAG) == "1":  # a cluster job: its mem_mb is what it has (solopo.resources)
        cmd = f"{MEM_MB_VAR}={{resources.mem_mb}} {cmd}"
    return cmd
