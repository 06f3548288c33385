import os
import sys

from solopo import slices
from solopo.config import ConfigError, run_table, validate_config
from solopo.eval import BENCHMARKS
from solopo.pairs import DATASETS
from solopo.train.losses import get_loss, get_method

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

try:
    validate_config(config)
except ConfigError as e:
    sys.stderr.write(f"{e}\n")
    sys.exit(1)

# Ctrl-C stops running job threads within a step (solopo.runtime.STOP), not after the job
from solopo.runtime import install_stop_handler

install_stop_handler()

RUNS = run_table(config)
BACKBONES = {b["name"]: b for b in config["backbones"]}
PRIMARY = config["backbones"][0]["name"]
SEED = config["seed"]


def _alt(values):
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


wildcard_constraints:
    backbone=_alt(BACKBONES),
    ctx="short|long",
    dataset=_alt(DATASETS),
    run=_alt(RUNS),
    bench=_alt(BENCHMARKS),


# Each job gets its config slice (solopo.slices) as `params` cfg: Snakemake reruns a job when a
# value in it changes, and the job sees only that slice. Manifests (`<file>.manifest.json`) are
# declared outputs, so a failed rerun cannot leave an old manifest beside a deleted artifact.
def m(path):
    """The manifest written beside a file artifact."""
    return f"{path}.manifest.json"


def model_path(backbone):
    """A local folder or a hub id; the tiny backbone is built by rule tiny_model."""
    return BACKBONES[backbone]["model"]


def model_input(backbone):
    """The model folder when it is local (built here or given as a folder): an input, so that a rebuilt or
    swapped model reruns its dependents (the folder's file listing is also in the params, see slices.fingerprint)."""
    b = BACKBONES[backbone]
    return [b["model"]] if b.get("build") or slices.external_model(b) else []


def scoped(params, rule):
    """The job's view of the config: its params slice; reading any other key raises (solopo.slices)."""
    return slices.scoped(params.cfg, config, rule)


def backend_kwargs(backbone):
    return {"trust_remote_code": BACKBONES[backbone].get("trust_remote_code", False)}


def run_of(wildcards):
    return RUNS[wildcards.run]


def run_model_dir(run):
    r = RUNS[run]
    return model_path(r.backbone) if r.method == "base" else f"results/train/{run}/model"


def train_inputs(wildcards):
    r = run_of(wildcards)
    spec = get_loss(get_method(r.method).loss)
    dataset = get_method(r.method).dataset
    inputs = {"data": f"results/datasets/{r.backbone}/{dataset}.jsonl", "model": model_input(r.backbone)}
    if spec.needs_ref:
        inputs["ref"] = f"results/ref_logps/{r.backbone}/{dataset}.jsonl"
    if config["train"].get("select_checkpoint", "final") == "longbench_v1":
        inputs["bench"] = "results/benchmarks/longbench_v1"
    return inputs


def train_params(wildcards):
    """The config slice a run depends on; a change reruns that run only (Snakemake params trigger)."""
    return slices.train(config, run_of(wildcards))


def bench_data_dir(bench, backbone):
    if bench == "leaderboard":
        return []
    if bench in ("ruler", "niah_plus"):
        return f"results/benchmarks/{backbone}/{bench}"
    return f"results/benchmarks/{bench}"


def eval_inputs(wildcards):
    r = run_of(wildcards)
    inputs = {"data": bench_data_dir(wildcards.bench, r.backbone)}
    inputs["model"] = [] if r.method == "base" and not BACKBONES[r.backbone].get("build") else run_model_dir(wildcards.run)
    return inputs


def train_runs():
    return [n for n, r in RUNS.items() if r.method != "base"]


def get_final_output():
    out = [f"results/pairs/{b}/pair_stats.json" for b in BACKBONES]
    out += expand("results/eval/{run}_{bench}.json", run=list(RUNS), bench=config["eval"]["benchmarks"])
    out += REPORT_OUTPUTS
    return out


def run_contexts(input, output, params, wildcards, log):
    from solopo import pipeline

    cfg = scoped(params, "contexts")
    b = cfg["backbone"]
    pipeline.contexts(input.musique, b["model"], output.short, output.long, cfg, cfg["seed"], log[0],
                      b["trust_remote_code"])


def run_sample(input, output, params, wildcards, log):
    from solopo import pipeline

    cfg = scoped(params, "sample")
    pipeline.sample(input.contexts, model_path(wildcards.backbone), output.samples, cfg, cfg["seed"], log[0],
                    {"trust_remote_code": cfg["backbone"]["trust_remote_code"]})


def run_train(input, output, params, wildcards, log):
    from solopo import pipeline

    r = RUNS[wildcards.run]
    cfg = slices.scoped(params.run, config, "train")
    pipeline.train(input.data, input.get("ref"), model_path(r.backbone), output.model, wildcards.run, r.method, r.lam,
                   cfg, cfg["seed"], log[0], input.get("bench"))


def run_evaluate(input, output, params, wildcards, log):
    from solopo import pipeline

    r = RUNS[wildcards.run]
    cfg = scoped(params, "evaluate")
    kw = {"trust_remote_code": cfg["backbone"]["trust_remote_code"],
          "yarn": cfg["backbone"].get("yarn_for_longbench_v2", False)}
    pipeline.evaluate(wildcards.bench, run_model_dir(wildcards.run), input.get("data") or None, output.json,
                      wildcards.run, cfg, cfg["seed"], log[0], kw)
