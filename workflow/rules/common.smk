import os
import sys
from pathlib import Path

from solopo import paths, slices
from solopo.config import ConfigError, run_table, seed_tag, seeded_runs, split_seed_tag, train_seeds, validate_config
from solopo.stage import prepare
from solopo.eval.budget import long_context_plan
# the benchmark table under a name no rule file reuses (the rule files share one namespace)
from solopo.eval import BENCHES as BENCHMARK_TABLE
from solopo.eval import BENCHMARKS
from solopo.pairs import DATASETS
from solopo.train.losses import get_loss, get_method

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
if workflow.remote_exec:
    # A job on a cluster node (not a localrule): nodes are assumed offline, so every such job reads
    # only the local copies the download rules made (resources/) and never waits on the hub.
    # The scheduler enforces the rule's mem_mb here: jobs check their predicted memory against it
    # (SOLOPO_MEM_FROM_RESOURCES is solopo.stage.CLUSTER_FLAG).
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "SOLOPO_MEM_FROM_RESOURCES": "1"})

try:
    validate_config(config)
except ConfigError as e:
    sys.stderr.write(f"{e}\n")
    sys.exit(1)


onstart:
    # A read-only results folder (e.g. a read-only mount) stops the run here in one line, before
    # Snakemake's own removal of old outputs raises a traceback from inside its scheduler.
    from solopo.artifacts import unwritable_dir

    _problem = unwritable_dir(f for job in workflow.dag.needrun_jobs() for f in [*job.output, *job.log])
    if not _problem:
        # a sample/train/evaluate job predicted not to fit its memory, before its old outputs are removed
        from solopo.resources import preflight

        _problem = preflight(workflow.dag.needrun_jobs(), lambda job: model_of_job(job), workflow.local_exec)
    if _problem:
        sys.stderr.write(f"{_problem}\n")
        sys.exit(1)


# Ctrl-C stops running job threads within a step (solopo.runtime.STOP), not after the job
from solopo.runtime import install_stop_handler

install_stop_handler()

# Software environments, one per stack (workflow/envs/*.yaml; paths relative to this rules folder).
# Used only with --sdm conda: then each job runs `python -m solopo stage` in its rule's env (solopo.stage).
ENVS = {name: f"../envs/{name}.yaml" for name in ("base", "generate", "leaderboard", "train")}
SRC_DIR = Path(str(workflow.current_basedir)).resolve().parents[1] / "src"


# Whether Snakemake deploys each rule's software (conda, apptainer): the workflow's deployment settings.
DEPLOYED = bool(workflow.deployment_settings.deployment_method)


def stage(func, *args, **kwargs):
    """The body of every rule: solopo.<func>(*args, **kwargs) run here (returns None), or the command that
    runs it as its own process, for the rule's run block to hand to shell(): in the rule's env when
    Snakemake deploys one, and always on a cluster node, so that SIGTERM (scancel, preemption, the time
    limit) reaches the job and training saves a checkpoint before it exits (solopo.stage, solopo.runtime)."""
    return prepare(func, args, kwargs, SRC_DIR, deployed=DEPLOYED, own_process=workflow.remote_exec)


def eval_env(wildcards):
    return ENVS[BENCHMARK_TABLE[wildcards.bench].env]


# every (run, seed): a further seed of train.seeds adds `<run>@s<seed>` per trained run (solopo.config)
RUNS = seeded_runs(config)
DEFAULT_RUNS = run_table(config)  # the first seed's runs: what the paper tables show
SEED_TAGS = [seed_tag(None)] + [seed_tag(s) for s in train_seeds(config)[1:]]
BACKBONES = {b["name"]: b for b in config["backbones"]}
PRIMARY = config["backbones"][0]["name"]
SEED = config["seed"]


def _alt(values):
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


wildcard_constraints:
    backbone=_alt(BACKBONES),
    ctx=paths.WILDCARD_RE["ctx"],
    dataset=_alt(DATASETS),
    run=_alt(RUNS),
    seedtag="|".join(re.escape(t) for t in SEED_TAGS[1:]) + "|",  # "" = the first seed
    bench=_alt(BENCHMARKS),


# Each job gets its config slice (solopo.slices) as `params` cfg: Snakemake reruns a job when a
# value in it changes, and the job sees only that slice. Manifests (`<file>.manifest.json`) are
# declared outputs, so a failed rerun cannot leave an old manifest beside a deleted artifact.
def m(path):
    """The manifest written beside a file artifact."""
    return paths.manifest(path)


def model_path(backbone):
    """The backbone's local folder: built (tiny_model), given as a folder, or downloaded from the hub
    by rule download_model into resources/models/<backbone> (jobs on cluster nodes are offline)."""
    b = BACKBONES[backbone]
    if b.get("build") or Path(b["model"]).is_dir():
        return b["model"]
    return paths.fill(paths.DOWNLOADED_MODEL, backbone=backbone)


def model_of_job(job):
    """The model folder a sample/train/evaluate job loads (solopo.resources.preflight)."""
    if job.rule.name == "evaluate":
        return run_model_dir(job.wildcards.run)
    if job.rule.name == "train":
        return model_path(RUNS[job.wildcards.run].backbone)
    return model_path(job.wildcards.backbone)


def model_input(backbone):
    """The model folder when it is local (built here or given as a folder): an input, so that a rebuilt or
    swapped model reruns its dependents (the folder's file listing is also in the params, see slices.fingerprint)."""
    b = BACKBONES[backbone]
    return [model_path(backbone)]


def scoped(params, rule):
    """The job's view of the config: its params slice; reading any other key raises (solopo.slices)."""
    return slices.scoped(params.cfg, config, rule)


def backend_kwargs(backbone):
    return {"trust_remote_code": BACKBONES[backbone].get("trust_remote_code", False)}


def run_of(wildcards):
    return RUNS[wildcards.run]


def run_model_dir(run):
    r = RUNS[run]
    return model_path(r.backbone) if r.method == "base" else paths.fill(paths.TRAIN_MODEL, run=run)


def train_inputs(wildcards):
    r = run_of(wildcards)
    spec = get_loss(get_method(r.method).loss)
    dataset = get_method(r.method).dataset
    pset = {"backbone": r.backbone, "seedtag": seed_tag(r.seed), "dataset": dataset}  # the run's seed's pairs
    inputs = {"data": paths.fill(paths.DATASET, **pset), "model": model_input(r.backbone)}
    if spec.needs_ref:
        inputs["ref"] = paths.fill(paths.REF_LOGPS, **pset)
    if config["train"].get("select_checkpoint", "final") == "longbench_v1":
        inputs["bench"] = paths.fill(paths.BENCH_DATA, bench="longbench_v1")
    return inputs


def train_params(wildcards):
    """The config slice a run depends on; a change reruns that run only (Snakemake params trigger)."""
    return slices.train(config, run_of(wildcards))


def bench_data_dir(bench, backbone):
    if not BENCHMARK_TABLE[bench].has_data:
        return []
    if BENCHMARK_TABLE[bench].per_backbone:  # built with the backbone's tokenizer
        return paths.fill(paths.BENCH_DATA_TOKENIZED, backbone=backbone, bench=bench)
    return paths.fill(paths.BENCH_DATA, bench=bench)


def eval_inputs(wildcards):
    r = run_of(wildcards)
    inputs = {"data": bench_data_dir(wildcards.bench, r.backbone)}
    inputs["model"] = model_input(r.backbone) if r.method == "base" else run_model_dir(wildcards.run)
    inputs["prefetched"] = leaderboard_input(wildcards.bench)  # download.smk
    return inputs


def train_runs():
    return [n for n, r in RUNS.items() if r.method != "base"]


def get_final_output():
    out = [paths.fill(paths.PAIR_STATS, backbone=b, seedtag=t) for b in BACKBONES for t in SEED_TAGS]
    out += expand(paths.EVAL_JSON, run=list(RUNS), bench=config["eval"]["benchmarks"])
    out += REPORT_OUTPUTS
    if len(SEED_TAGS) > 1:
        out += SEEDS_PAGE  # science.smk: means over seeds, paired bootstraps
    return out


def run_contexts(input, output, params, wildcards, log):
    cfg = scoped(params, "contexts")
    return stage("pipeline.contexts", input.musique, model_path(wildcards.backbone), output.short, output.long, cfg,
          cfg["seed"], log[0], cfg["backbone"]["trust_remote_code"])


def run_bench_data_tokenized(input, output, params, wildcards, log):
    cfg = scoped(params, "bench_data")
    return stage("pipeline.bench_data", wildcards.bench, input.dev, model_path(wildcards.backbone), output[0], cfg,
                 cfg["seed"], log[0], input.sources or None)


def run_sample(input, output, params, wildcards, log):
    cfg = scoped(params, "sample")
    return stage("pipeline.sample", input.contexts, model_path(wildcards.backbone), output.samples, cfg, cfg["seed"], log[0],
          {"trust_remote_code": cfg["backbone"]["trust_remote_code"]}, input.records[0] if input.records else None)


def run_train(input, output, params, wildcards, log):
    r = RUNS[wildcards.run]
    cfg = slices.scoped(params.run, config, "train")
    return stage("pipeline.train", input.data, input.get("ref"), model_path(r.backbone), output.model, wildcards.run, r.method,
          r.lam, cfg, cfg["seed"], log[0], input.get("bench"))


def eval_long_context(wildcards):
    """The backbone's long-context setting for this suite, or the native window (solopo.eval.budget)."""
    r = RUNS[wildcards.run]
    return long_context_plan(BACKBONES[r.backbone], wildcards.bench, config["eval"][wildcards.bench])


def run_tune_evaluate(input, output, params, wildcards, log):
    """Rule tune_evaluate (science.smk): a tuning probe's model on the dev RULER set."""
    cfg = scoped(params, "evaluate")
    return stage("pipeline.evaluate", "ruler", input.model, input.data, output.json, wildcards.trun, cfg, cfg["seed"],
                 log[0], dict(params.kw))


def run_evaluate(input, output, params, wildcards, log):
    cfg = scoped(params, "evaluate")
    kw = {"trust_remote_code": cfg["backbone"]["trust_remote_code"], "long_context": dict(params.long_context)}
    return stage("pipeline.evaluate", wildcards.bench, run_model_dir(wildcards.run), input.get("data") or None, output.json,
          wildcards.run, cfg, cfg["seed"], log[0], kw)


def ruler_sources_input(bench):
    """RULER from the released sources reads the copy made by download_ruler; fixtures need none."""
    return paths.RULER_SOURCES if bench == "ruler" and config["eval"]["ruler"].get("source") == "hub" else []


def leaderboard_input(bench):
    """The leaderboard's hub datasets are fetched once on the submitting host (download_leaderboard)."""
    return paths.LEADERBOARD_PREFETCHED if bench == "leaderboard" and config["eval"]["leaderboard"].get("source") == "hub" else []
