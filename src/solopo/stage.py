"""One pipeline stage as a Snakemake job: in this process, or inside the rule's software environment.

Every rule's `run:` block is one `stage("pipeline.contexts", ...)` call (workflow/rules/common.smk),
which lands here. Two ways to run it:

- **In-process** (no `--software-deployment-method`): the function is imported and called in the
  Snakemake process. The tiny preset runs this way: one `.venv`, jobs are threads of one process,
  torch and transformers load once. This is the path that has always run.
- **In the rule's env** (`--sdm conda`, or `--sdm conda apptainer`): Snakemake activates a rule's
  `conda:` env only for `shell()` commands, never for Python in a `run:` block. So the call is
  written to `<log>.call.yaml` and run as `python -m solopo stage <log>.call.yaml` through `shell()`
  inside the env, with `PYTHONPATH=<the workflow's src/>`: the job imports this package from the
  workflow's own source tree and needs nothing from the submitting environment. The env files hold
  only third-party pins (workflow/envs/*.yaml).

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

import importlib
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

# Snakemake marks the frame of a rule's run function with this local (snakemake.common).
RULEFUNC_MARKER = "__is_snakemake_rule_func"
# The run function's locals that snakemake's shell() reads to wrap a command in the job's env.
SHELL_CONTEXT = ("conda_env", "conda_base_path", "container_img", "singularity_args", "env_modules",
                 "shadow_dir", "threads", "resources", "jobid", "runtime_paths")


# set by common.smk in a job that a cluster scheduler started: there `mem_mb` is what the job has
CLUSTER_FLAG = "SOLOPO_MEM_FROM_RESOURCES"
# the job's mem_mb handed to a stage run in the rule's own environment (read by solopo.resources)
MEM_MB_VAR = "SOLOPO_MEM_MB"


class StageError(RuntimeError):
    pass


def cluster_mem_mb(rule_locals: dict) -> int | None:
    """The `mem_mb` resource of the rule whose run-function locals are given, in a cluster job only."""
    if os.environ.get(CLUSTER_FLAG) != "1":
        return None
    res = rule_locals.get("resources")
    mem = res.get("mem_mb") if res is not None else None
    return int(mem) if mem else None


def rule_context(depth: int = 2) -> dict:
    """The locals of the nearest enclosing rule run function (empty outside a Snakemake job)."""
    f = sys._getframe(depth)
    while f is not None:
        if f.f_locals.get(RULEFUNC_MARKER):
            return f.f_locals
        f = f.f_back
    return {}


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


def write_call(path: str | Path, func: str, args: tuple | list, kwargs: dict) -> Path:
    spec = {"function": func, "args": plain(list(args), "args"), "kwargs": plain(dict(kwargs), "kwargs")}
    text = yaml.safe_dump(spec, sort_keys=False)
    back = yaml.safe_load(text)
    # against the caller's values, not the plain copy: a tuple that would arrive as a list fails here
    if back["args"] != list(args) or back["kwargs"] != dict(kwargs):
        raise StageError(f"stage {func!r}: its arguments do not survive the round trip through {path} "
                         "(only str, int, float, bool, None, lists and dicts cross into a job's env)")
    path = Path(path)
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


def in_env(ctx: dict) -> bool:
    """Whether Snakemake deploys software for this job (conda_env/container_img are None otherwise)."""
    return bool(ctx.get("conda_env") or ctx.get("container_img"))


def forced_subprocess() -> bool:
    return os.environ.get("SOLOPO_STAGE_SUBPROCESS") == "1"


def command(call_file: str | Path, src_dir: str | Path, python: str = "python") -> str:
    """The job's command; `python` is the env's own (first on PATH once Snakemake activated the env)."""
    return f"PYTHONPATH={shlex.quote(str(src_dir))} {shlex.quote(python)} -m solopo stage {shlex.quote(str(call_file))}"


def dispatch(func: str, args: tuple, kwargs: dict, ctx: dict, shell: Callable, src_dir: str | Path,
             own_process: bool = False) -> None:
    """Run one stage for the rule whose run-function locals are `ctx` (see the module docstring);
    `own_process`: as `python -m solopo stage` even without an env (jobs on cluster nodes)."""
    env = in_env(ctx)
    if not env and not forced_subprocess() and not own_process:
        resolve(func)(*args, **kwargs)
        return
    src = Path(src_dir)
    if not (src / "solopo" / "__init__.py").is_file():
        raise StageError(f"{src}: the workflow's source tree (src/solopo) is missing; jobs in their own "
                         "environment import solopo from there")
    log = ctx.get("log") or []
    if not log:
        raise StageError(f"stage {func!r}: the rule has no log: file, which names its call file")
    call_file = write_call(f"{log[0]}.call.yaml", func, args, kwargs)
    # The names below are read by shell() from its caller's locals inside a run: block; passed
    # explicitly because this function, not the run block, is the caller.
    python = "python" if env else sys.executable
    cmd = command(call_file.resolve(), src.resolve(), python)
    mem = cluster_mem_mb(ctx)  # the job's memory for its up-front check (solopo.resources)
    if mem:
        cmd = f"{MEM_MB_VAR}={mem} {cmd}"
    shell(cmd, **{k: ctx[k] for k in SHELL_CONTEXT if k in ctx})
