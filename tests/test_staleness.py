"""Staleness: every config value and external file an artifact depends on makes Snakemake rerun it.

Key by key, for every leaf key of config/tiny.yaml: change it, let Snakemake plan (its real DAG and
params/input triggers, tests/snakemake_plan.py) and assert that the jobs it reruns because their
params changed are exactly the artifacts `solopo check` flags as stale under the new config, and
that a key which some artifact records is never ignored. Then the external inputs: a local MuSiQue
file and a local model folder, edited or swapped under the same name.
"""
from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from solopo.config import SCHEMA_PATH, ConfigError, validate_config
from solopo.report.provenance import check, load_config
from solopo.slices import RUNTIME_ONLY
from tests.snakemake_plan import ROOT, build_tree, plan

TARGETS = ("all", "results/bench/efficiency.json")
# fewer runs than tiny.yaml (every run of a method has the same slice keys), every benchmark
REDUCED = {"train": {"methods": ["dpo_short", "solo_orpo", "longpo"],  # dpo: reference log-probs
                     "lambdas": {"solo_orpo": [1.0, 4.0]}}}

# leaf keys that change which jobs exist rather than a job's settings; each is covered elsewhere
STRUCTURAL = {
    "preset": "only sets the GPU resources of the train rule (no artifact depends on it)",
    "data.source": "switches rule toy_world for fetch_musique (test_local_musique_file_is_an_input)",
    "backbones[0].name": "renames every path of the backbone (new artifacts, nothing stale)",
    "backbones[0].model": "a built backbone's folder is an output of rule tiny_model (test_local_model_folder_...)",
    "backbones[0].build": "switches the model from built to given (test_local_model_folder_...)",
    "data.skip_malformed": "read by fetch_musique only, not by the toy world (test_local_musique_file_is_an_input)",
    "train.longpo.lr_scheduler": "the schema allows one value (cosine): it cannot change",
    **{k: "a run-time setting that cannot change an artifact (solopo.slices.RUNTIME_ONLY)" for k in RUNTIME_ONLY},
}
# mutations for values that the generic rule below cannot change into something valid
MUTATIONS = {
    "backbones[0].long_context": {"rope_scaling": {"type": "yarn", "factor": 2.0, "original_max_position_embeddings": 1024},
                                  "context_window": 2048},
    "sampling.backend": "vllm",
    "eval.backend": "vllm",
    "train.deepspeed": "zero2",
    "train.select_checkpoint": "longbench_v1",
    "train.optim.dtype": "bfloat16",
    "eval.leaderboard.dtype": "bfloat16",
    "bench.efficiency.device": "cuda",
    "bench.efficiency.dtype": "bfloat16",
    "bench.efficiency.memory": "inprocess",
}


def _config() -> dict:
    cfg = load_config([ROOT / "config/tiny.yaml"], ROOT / "config/config.yaml")
    cfg["train"].update(REDUCED["train"])
    validate_config(cfg)  # as the workflow does (YAML integers become floats where the schema says number)
    return cfg


def _leaves(node, path=()):
    """(path, value) of every leaf of a YAML tree; lists of scalars are leaves, lists of dicts are walked."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    else:
        yield path, node


def _name(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _get(cfg, path):
    for p in path:
        cfg = cfg[p]
    return cfg


def _set(cfg, path, value):
    for p in path[:-1]:
        cfg = cfg[p]
    cfg[path[-1]] = value


def _candidates(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value * 2, value - 1, value // 2]
    if isinstance(value, float):
        return [v for v in (value / 2, value * 1.5, value + 0.1) if v != value]
    if isinstance(value, str):
        return [value + "_x"]
    if isinstance(value, list):
        return [value[:-1], value + value[-1:]] if len(value) > 1 else [value + value, []]
    if isinstance(value, dict):
        return [{"x": 1}]
    if value is None:
        return [2, "x"]
    raise AssertionError(value)


def _schema_enum(path) -> list:
    """The other values the schema allows at `path` (an `enum`), if any."""
    root = yaml.safe_load(SCHEMA_PATH.read_text())
    node = root
    for p in path:
        if "$ref" in node:
            node = root["$defs"][node["$ref"].split("/")[-1]]
        node = node.get("items", {}) if isinstance(p, int) else (node.get("properties") or {}).get(p) or {}
    return list(node.get("enum") or [])


def mutate(base: dict, path) -> dict:
    """`base` with the value at `path` changed into another value the config validation accepts."""
    name = _name(path)
    value = _get(base, path)
    enum = [v for v in _schema_enum(path) if v != value]
    for cand in [MUTATIONS[name]] if name in MUTATIONS else enum or _candidates(value):
        cfg = copy.deepcopy(base)
        _set(cfg, path, cand)
        try:
            validate_config(cfg)
        except ConfigError:
            continue
        if name.startswith("bench.efficiency"):
            from solopo.bench.efficiency import settings

            try:
                settings(cfg["bench"]["efficiency"])
            except ValueError:
                continue
        return cfg
    raise AssertionError(f"{name}: no valid mutation among {_candidates(_get(base, path))}; add one to MUTATIONS")


def tiny_leaf_keys():
    return [p for p, _ in _leaves(yaml.safe_load((ROOT / "config/tiny.yaml").read_text()))]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    work = tmp_path_factory.mktemp("staleness")
    base = _config()
    jobs = build_tree(work, base, TARGETS)
    return work, base, jobs


def _artifacts(job) -> set[str]:
    return {o for o in job.outputs if not o.endswith(".manifest.json")}


def test_each_job_writes_the_slice_check_expects(tree):
    """What a job records (its params, solopo.slices) is what `solopo check` recomputes."""
    from solopo.report.provenance import Expected

    work, base, jobs = tree
    exp = Expected(base)
    assert {j.rule for j in jobs.values()} >= {"toy_world", "tiny_model", "contexts", "sample", "pairs", "datasets",
                                               "ref_logps", "train", "bench_data", "bench_data_tokenized", "evaluate",
                                               "report_tables", "efficiency"}
    for job in jobs.values():
        recorded = job.params.get("cfg", job.params.get("run"))
        if job.rule in ("efficiency",) or recorded is None:
            continue
        for out in _artifacts(job):
            assert exp.expected(out)[1] == recorded, out
    assert plan(work, base, TARGETS) == {}, "a freshly built tree must be up to date"


def test_every_key_reruns_exactly_what_records_it(tree):
    """The staleness acceptance test: for every leaf key of config/tiny.yaml, Snakemake's params
    trigger and `solopo check` agree on the affected artifacts, and no recorded key is ignored."""
    work, base, _ = tree
    t0, disagreements, ignored, unchangeable, report = time.time(), [], [], [], {}
    keys = tiny_leaf_keys()
    assert len(keys) > 100
    for path in keys:
        name = _name(path)
        if name in STRUCTURAL:
            continue
        try:
            cfg = mutate(base, path)
        except AssertionError as e:
            unchangeable.append(str(e))
            continue
        jobs = plan(work, cfg, TARGETS)
        planned = set().union(*[_artifacts(j) for j in jobs.values()])
        by_params = set().union(*[_artifacts(j) for j in jobs.values() if j.params_changed])
        unexplained = set().union(*[_artifacts(j) for j in jobs.values() if not j.params_changed and not j.downstream])
        by_check = {f.path for f in check(cfg, work) if f.status == "stale"}
        report[name] = len(planned)
        # Snakemake may report only "updated input" for a job whose params changed too, so: what check
        # flags is planned, what Snakemake reruns for its params check flags, the rest is downstream
        if not by_check <= planned or not by_params <= by_check or unexplained:
            disagreements.append(f"{name}: stale but not planned {sorted(by_check - planned)[:4]}, params changed "
                                 f"but not stale {sorted(by_params - by_check)[:4]}, unexplained {sorted(unexplained)[:4]}")
        if not by_check:
            ignored.append(name)
    assert not unchangeable, "\n".join(unchangeable)
    assert not disagreements, "\n".join(disagreements)
    assert not ignored, f"changing these keys reruns nothing: {ignored}"
    print(f"{len(report)} keys in {time.time() - t0:.0f} s")
    (work / "staleness_report.json").write_text(json.dumps(report, indent=1))


@pytest.mark.parametrize("key,must,must_not", [
    ("seed", {"results/data/musique_train.jsonl", "results/contexts/tiny/short.jsonl", "results/samples/tiny/long.jsonl",
              "results/pairs/tiny/pairs.jsonl", "results/train/solo_orpo/model", "results/eval/base_ruler.json"},
     {"results/models/tiny"}),  # the tiny backbone has its own seed
    ("data.toy.train_questions", {"results/data/musique_train.jsonl"}, {"results/models/tiny"}),
    ("tiny_model.steps", {"results/models/tiny"}, {"results/data/musique_train.jsonl"}),
    ("eval.ruler.num_samples", {"results/benchmarks/tiny/ruler", "results/eval/base_ruler.json"},
     {"results/eval/base_longbench_v1.json", "results/train/solo_orpo/model"}),
    # read by the SoLo-RA runs only (solopo.slices.has_ra_term): the vanilla and LongPO runs stay
    ("train.loss.ra_stop_grad_short", {"results/train/solo_orpo/model", "results/eval/solo_orpo_ruler.json"},
     {"results/train/dpo_short/model", "results/train/longpo/model", "results/models/tiny"}),
])
def test_examples_of_the_issue(tree, key, must, must_not):
    work, base, _ = tree
    jobs = plan(work, mutate(base, tuple(key.split("."))), TARGETS)
    changed = set().union(*[_artifacts(j) for j in jobs.values()])
    assert must <= changed and not must_not & changed, (key, sorted(changed))


# --------------------------------------------------------------------------- external inputs
def _older(path: Path) -> None:
    """Give a file an mtime in the past, like `cp -p` of an old copy (mtime alone would miss it)."""
    old = time.time() - 10 * 86400
    os.utime(path, (old, old))


@pytest.fixture
def external(tmp_path_factory):
    work = tmp_path_factory.mktemp("external")
    line = '{"id": "2hop__1", "question": "q?", "answer": "a", "answer_aliases": [], "answerable": true, ' \
           '"paragraphs": [{"idx": 0, "title": "t", "paragraph_text": "p", "is_supporting": true}]}\n'
    for split in ("train", "dev"):
        (work / f"musique_{split}.jsonl").write_text(line)
    model = work / "models" / "given"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "qwen2"}')
    (model / "model.safetensors").write_bytes(b"\0" * 4096)
    cfg = _config()
    cfg["data"]["source"] = "local"
    cfg["data"]["musique"] = {"hub_id": "x/y", "train_file": "musique_train.jsonl", "dev_file": "musique_dev.jsonl"}
    cfg["backbones"] = [{"name": "given", "model": "models/given"}]
    cfg["eval"]["benchmarks"] = ["ruler"]
    cwd = os.getcwd()
    os.chdir(work)  # validate_config checks local paths relative to the working directory
    try:
        validate_config(cfg)
        build_tree(work, cfg)
    finally:
        os.chdir(cwd)
    return work, cfg


def test_local_musique_file_is_an_input(external):
    work, cfg = external
    f = work / "musique_train.jsonl"
    f.write_text(f.read_text().replace('"answer": "a"', '"answer": "b"'))
    _older(f)
    jobs = plan(work, cfg)
    assert "results/data/musique_train.jsonl" in jobs and jobs["results/data/musique_train.jsonl"].params_changed
    assert "results/eval/base_ruler.json" in jobs  # and everything downstream
    stale = {x.path: x for x in check(cfg, work, inputs=True) if x.status != "ok"}
    assert "results/data/musique_train.jsonl" in stale, stale
    skip = copy.deepcopy(cfg)
    skip["data"]["skip_malformed"] = True
    assert plan(work, skip)["results/data/musique_train.jsonl"].params_changed


def test_local_model_folder_swapped_under_the_same_name_reruns_its_dependents(external):
    work, cfg = external
    w = work / "models" / "given" / "model.safetensors"
    w.write_bytes(b"\1" * 4096)  # same name, same size, other weights, an old mtime
    _older(w)
    jobs = plan(work, cfg)
    changed = {o for j in jobs.values() for o in j.outputs}
    assert jobs["results/contexts/given/short.jsonl"].params_changed
    assert {"results/contexts/given/short.jsonl", "results/samples/given/short.jsonl",
            "results/eval/base_ruler.json", "results/train/solo_orpo/model"} <= changed, sorted(changed)


def test_a_job_cannot_read_a_key_outside_its_slice():
    """The job's view of the config (solopo.slices.Scoped): a key its rule does not declare raises,
    even through `.get(key, default)`, so Snakemake's params always cover what the job read."""
    from solopo import slices

    cfg = _config()
    view = slices.scoped(slices.contexts(cfg, "tiny"), cfg, "contexts")
    assert view["data"]["long_tokens"] == cfg["data"]["long_tokens"] and view["seed"] == cfg["seed"]
    for read in (lambda: view["data"]["toy"], lambda: view["data"].get("toy", {}), lambda: "sampling" in view,
                 lambda: view.get("sampling")):
        with pytest.raises(slices.SliceError, match=r"config key (data\.toy|sampling) is read by rule contexts but is "
                                                    r"not in its params \(solopo\.slices\.contexts\)"):
            read()
    assert view.get("no_such_key", 1) == 1  # absent from the whole config: the default, as before


def test_what_a_job_records_is_its_params():
    """The manifest gets `Scoped.plain` (in-process) or the plain view without run-time settings (a job
    in its own env, solopo.stage): both must equal the slice Snakemake holds as params."""
    from solopo import slices
    from solopo.config import run_table

    cfg = _config()
    cfg["train"]["report_to"], cfg["train"]["collective_timeout_s"] = "none", 60
    run = run_table(cfg)["solo_orpo"]
    for rule, slice_ in {"toy_world": slices.toy_world(cfg), "tiny_model": slices.tiny_model(cfg),
                         "contexts": slices.contexts(cfg, "tiny"), "sample": slices.sample(cfg, "tiny"),
                         "pairs": slices.pairs(cfg, "tiny"), "datasets": slices.datasets(cfg, "tiny"),
                         "ref_logps": slices.ref_logps(cfg, "tiny"), "train": slices.train(cfg, run),
                         "evaluate": slices.evaluate(cfg, run, "ruler"), "bench_data": slices.bench_data(cfg, "ruler", "tiny")
                         }.items():
        view = slices.scoped(slice_, cfg, rule)
        assert view["train"]["report_to"] == "none"  # readable by every job
        assert view.plain == slice_, rule
        assert slices.without_runtime(dict(view)) == slice_, rule
