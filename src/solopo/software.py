"""Which software stack a job needs, and the error when it runs without it.

Every rule declares its conda env (workflow/envs/<env>.yaml): vLLM lives only in `generate`,
lm-eval only in `leaderboard`, DeepSpeed only in `train`, because their pins cannot share one
environment. A job that cannot import one of them is almost always a job that is not running in
its rule's env (Snakemake without `--sdm conda`, or a profile that deploys nothing), not a missing
`pip install`; the error says so and names the fix.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType

# module -> (the env that ships it, what needs it)
STACKS = {
    "vllm": ("generate", "sampling.backend / eval.backend 'vllm'"),
    "lm_eval": ("leaderboard", "the Open LLM Leaderboard evaluation (eval.benchmarks: leaderboard)"),
    "deepspeed": ("train", "train.deepspeed"),
}


class MissingStack(RuntimeError):
    pass


def missing_stack_message(module: str) -> str:
    env, what = STACKS[module]
    hint = "; or, on a CPU, set sampling.backend/eval.backend to 'hf'" if module == "vllm" else ""
    return (f"{what} needs `{module}`, which this job's Python ({sys.executable}) cannot import: the job is not "
            f"running in its rule's env (workflow/envs/{env}.yaml). Run through the profile "
            "(`snakemake --profile slurm <target>` deploys each rule's env) or add `--sdm conda` to the command; "
            f"`make envs-check` verifies that the env files resolve{hint}")


def require(module: str) -> ModuleType:
    """Import `module` (a key of STACKS) or stop with the cause and the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingStack(missing_stack_message(module)) from e
