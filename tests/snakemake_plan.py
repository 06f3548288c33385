"""Snakemake's own planning, in-process: which jobs would run, and why (for the staleness tests).

A results tree is made without running anything: every output of the DAG is created empty, its
manifest is written with the slice `solopo check` expects, and Snakemake's `touch` executor
records its metadata (params, inputs, code), exactly as after a real run. Then, per changed
config, `plan()` builds the DAG the way `snakemake -n` does and returns every job Snakemake would
run with its reason. In-process, so torch and the workflow modules load once: a plan takes well
under a second instead of ~8 s for a `snakemake -n` process.
"""
from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Job:
    rule: str
    outputs: list[str]
    inputs: list[str]
    dirs: list[str]
    params: dict
    params_changed: bool
    downstream: bool  # planned because an input is rebuilt (or an output is new)
    reason: str


def _settings():
    from snakemake.settings import types as t

    return t


def _workflow(api, workdir: Path, config: dict | None, deployment=None):
    t = _settings()
    # the whole config as `--config` would pass it (over config/config.yaml): no YAML file to parse per plan;
    # None: config/config.yaml alone (the paper preset)
    settings = t.ConfigSettings(config=copy.deepcopy(config)) if config is not None else t.ConfigSettings()
    extra = {"deployment_settings": deployment} if deployment is not None else {}
    return api.workflow(t.ResourceSettings(cores=2), settings, snakefile=ROOT / "Snakefile", workdir=Path(workdir),
                        **extra)


@contextlib.contextmanager
def planned_workflow(workdir: Path, config: dict | None, targets=("all",), deployment=None):
    """Snakemake's workflow with its DAG built as `snakemake -n <targets>` builds it (envs not created)."""
    from snakemake.api import SnakemakeApi

    t = _settings()
    with SnakemakeApi(t.OutputSettings(quiet={t.Quietness.ALL})) as api:
        wf = _workflow(api, workdir, config, deployment)
        wf.dag(t.DAGSettings(targets=frozenset(targets)))
        w = wf._workflow
        # what DAGApi.execute_workflow + Workflow.execute do before scheduling (snakemake 9)
        w.execution_settings = t.ExecutionSettings(lock=False)
        w.remote_execution_settings = t.RemoteExecutionSettings()
        w.scheduling_settings = t.SchedulingSettings()
        w.group_settings = t.GroupSettings()
        w._prepare_dag(forceall=False, ignore_incomplete=False, lock_warn_only=True, nolock=True)
        w._build_dag()
        w.async_run(w.dag.postprocess(update_needrun=False, check_initial=True))
        yield w


def plan(workdir: Path, config: dict, targets=("all",)) -> dict[str, Job]:
    """The jobs `snakemake -n <targets>` would run in `workdir` with `config`, keyed by first output."""
    with planned_workflow(workdir, config, targets) as w:
        out = {}
        for j in w.dag.needrun_jobs():
            if not j.output:
                continue
            reason = w.dag.reason(j)
            out[str(j.output[0])] = Job(j.rule.name, [str(o) for o in j.output], [str(i) for i in j.input],
                                        [str(o) for o in j.output if o.is_directory], dict(j.params.items()),
                                        bool(reason.params_changed),
                                        bool(reason.updated_input_run or reason.updated_input or reason.missing_output),
                                        str(reason))
        return out


def touch(workdir: Path, config: dict, targets=("all",)) -> None:
    """Snakemake's `--touch --forceall`: records every job's metadata as after a real run."""
    from snakemake.api import SnakemakeApi

    t = _settings()
    with SnakemakeApi(t.OutputSettings(quiet={t.Quietness.ALL})) as api:
        wf = _workflow(api, workdir, config)
        wf.dag(t.DAGSettings(targets=frozenset(targets), forceall=True)).execute_workflow(
            executor="touch", execution_settings=t.ExecutionSettings(lock=False))


def build_tree(workdir: Path, config: dict, targets=("all",)) -> dict[str, Job]:
    """An up-to-date results tree for `config`: empty outputs, the manifests the pipeline writes
    (the slice `solopo check` expects, the recorded input hashes), Snakemake metadata."""
    from solopo.artifacts import build_manifest
    from solopo.report.provenance import Expected

    jobs = plan(workdir, config, targets)
    exp = Expected(config)
    for job in jobs.values():
        for out in job.outputs:
            p = Path(workdir) / out
            p.parent.mkdir(parents=True, exist_ok=True)
            if out in job.dirs:
                p.mkdir(exist_ok=True)
            elif not out.endswith(".manifest.json"):
                p.write_text("{}\n")
    with contextlib.chdir(workdir):  # manifests after all outputs exist, so that input hashes are recorded
        for job in _topological(jobs):
            for out in job.outputs:
                if out.endswith(".manifest.json"):
                    continue
                _, slice_ = exp.expected(out)
                m = Path(f"{out}/manifest.json" if out in job.dirs else f"{out}.manifest.json")
                m.write_text(json.dumps(build_manifest(out, slice_, job.inputs), default=str))
    touch(workdir, config, targets)
    return jobs


def _topological(jobs: dict[str, Job]) -> list[Job]:
    """Producers before consumers, so that a recorded input hash is that of the finished input."""
    producer = {o: j for j in jobs.values() for o in j.outputs}
    done: set[int] = set()
    order: list[Job] = []

    def visit(j: Job) -> None:
        if id(j) in done:
            return
        done.add(id(j))
        for i in j.inputs:
            if i in producer:
                visit(producer[i])
        order.append(j)

    for j in jobs.values():
        visit(j)
    return order
