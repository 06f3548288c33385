"""The pipeline's stages as plain functions, one per Snakemake rule (`stage("pipeline.<name>", ...)`).

Each rule's `run:` block is one call to a function here, inside `job(...)` (solopo.jobs), which sets
up the job's log file, times it and writes the manifests. On the tiny preset Snakemake runs these
in threads of one process (`--force-use-threads`), so torch/transformers load once. The stages
live in solopo.stages by what they build; this module is the names the rules and tests call.
"""
from __future__ import annotations

from solopo.jobs import job
from solopo.stages.bench import bench_data, evaluate
from solopo.stages.data import contexts, fetch_musique, tiny_model, toy_world
from solopo.stages.prefs import chance_accuracy, datasets, pairs, ref_logps, sample
from solopo.stages.resume import NOT_IN_FINGERPRINT, model_identity
from solopo.stages.train import (
           launch_deepspeed,
           loss_config,
           select_by_longbench_v1,
           train,
           train_config,
           training_tokens,
)

__all__ = ["NOT_IN_FINGERPRINT", "bench_data", "chance_accuracy", "contexts", "datasets", "evaluate", "fetch_musique",
           "job", "launch_deepspeed", "loss_config", "model_identity", "pairs", "ref_logps", "sample",
           "select_by_longbench_v1", "tiny_model", "toy_world", "train", "train_config", "training_tokens"]
