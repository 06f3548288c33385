"""What `make lint` and `make envs-check` check, as tests: inside the test command they run beside the
other tests instead of before them (the resolution mostly waits on the package index).

- ruff (pyflakes, pycodestyle, isort; pyproject.toml) finds nothing in src, tests and scripts;
- `snakemake --lint` is clean on the paper preset (the tiny preset: tests/test_workflow.py);
- every workflow/envs/*.yaml resolves for Linux x86-64 and agrees with requirements.txt (scripts/envs_check.py).
"""
import subprocess
import sys
from pathlib import Path

from tests.reduced_pipeline import ENV, ROOT, SNAKEMAKE

BIN = Path(sys.executable).parent


def test_ruff_finds_nothing():
    out = subprocess.run([str(BIN / "ruff"), "check", "src", "tests", "scripts"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_snakemake_lint_is_clean_on_the_paper_preset():
    out = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert out.returncode == 0 and "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr, \
        (out.stdout + out.stderr)[-4000:]


def test_every_env_file_resolves():
    out = subprocess.run([sys.executable, str(ROOT / "scripts/envs_check.py")], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
