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


def run_reduced(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`snakemake <args>` on the tiny preset plus REDUCED, with `workdir` as the working directory."""
    cfg = Path(workdir) / "reduced.yaml"
    if not cfg.exists():
        cfg.write_text(REDUCED)
    return subprocess.run([SNAKEMAKE, *args, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                           "--profile", str(ROOT / "profiles/local"), "--configfile", str(ROOT / "config/tiny.yaml"),
                           str(cfg)], capture_output=True, text=True, timeout=1500, env=ENV)
