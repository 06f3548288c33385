"""The reduced tiny config and a Snakemake runner shared by the slow pipeline tests."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

REDUCED = """
tiny_model: {steps: 60}
data: {toy: {train_questions: 24, dev_questions: 12}}
train:
  methods: [sft_short, orpo_short, solo_orpo, dpo_short]
  lambdas: {solo_orpo: [1.0]}
  select_checkpoint: longbench_v1
  optim: {save_steps: 1}
eval:
  benchmarks: [ruler, longbench_v1]
  ruler: {num_samples: 2}
"""

# A backbone that reads its context, as cheap as measured to be competent: REDUCED's 60 steps leave
# the model at chance, so an e2e run on it cannot tell a working pipeline from a broken one.
# Measured (2026-12-03, sampled accuracy short / long, chance 0.067): 1,500 steps of 16 conversations
# 0.79 / 0.33 in 288 s; 1,200 of 12 0.49 / 0.24 in 140 s; 1,200 of 8 0.42 / 0.18 (2/3 of the work of
# 1,200 of 12); still at chance: 1,500 of 8, 1,000 of 16, 700-900 of 16 at 2-3x the learning rate
# (the copy circuit forms late and suddenly).
# One thread: the e2e runs it beside other jobs, and two OpenMP threads on a busy 2-core machine
# spin-wait (measured 3.5 s/step against 0.8 s/step with one thread under the same load).
COMPETENT_BACKBONE = """
tiny_model: {steps: 1200, batch_size: 8, max_distractors: 4, threads: 1}
"""


def run_reduced(workdir: Path, *args: str, extra: str | None = None) -> subprocess.CompletedProcess:
    """`snakemake <args>` on the tiny preset plus REDUCED (plus `extra`, a YAML override), with
    `workdir` as the working directory."""
    cfgs = [Path(workdir) / "reduced.yaml"]
    if not cfgs[0].exists():
        cfgs[0].write_text(REDUCED)
    if extra is not None:
        cfgs.append(Path(workdir) / "extra.yaml")
        cfgs[1].write_text(extra)
    return subprocess.run([SNAKEMAKE, *args, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                           "--profile", str(ROOT / "profiles/local"), "--configfile", str(ROOT / "config/tiny.yaml"),
                           *map(str, cfgs)], capture_output=True, text=True, timeout=2400, env=ENV)


# Files that differ between two correct runs: manifests and pre-training stats hold wall times and
# timestamps, TensorBoard event files the wall time and host name; checkpoints are working state.
VARYING = ("manifest.json", "pretrain_stats.json")


def comparable_files(res: Path) -> dict[str, Path]:
    """The files of a results tree that two runs of the same config must produce byte-identical."""
    return {str(p.relative_to(res)): p for p in sorted(res.rglob("*"))
            if p.is_file() and not p.name.endswith(VARYING) and "checkpoints" not in p.parts
            and "tensorboard" not in p.parts}
