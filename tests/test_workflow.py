"""The Snakemake DAG: paper dry-run through the slurm profile, single targets, lint."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _sm(*args, timeout=300):
    return subprocess.run([SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_paper_preset_dry_run_lists_every_job_with_gpu_training(tmp_path):
    out = _sm("--profile", "slurm", "all", "-n", "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile"),
              "--configfile", str(ROOT / "config/config.yaml"))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", text, re.M))
    # 22 methods on Qwen + 6 on Llama; base + trained runs x 5 benchmarks on both backbones
    assert int(counts["train"]) == 28
    assert int(counts["evaluate"]) == (23 + 7) * 5
    assert int(counts["sample"]) == 4 and int(counts["fetch_musique"]) == 1
    train_blocks = [b for b in text.split("\n\n") if "rule train:" in b]
    assert train_blocks and all("gpu=4" in b for b in train_blocks)
    # every job whose inputs exceed the native window shows the long-context setting
    yarn = re.findall(r"evaluate (\S+) on (\S+): context: yarn x4 \(window 131072\)", text)
    assert len(yarn) == 23 * 2 and {b for _, b in yarn} == {"longbench_v2", "niah_plus"}
    assert not any(r.startswith("llama31_8b__") for r, _ in yarn)


def test_single_target_builds_only_what_it_needs(tmp_path):
    out = _sm("-n", "results/eval/solo_orpo_ruler.json", "--configfile", "config/tiny.yaml",
              "--directory", str(tmp_path), "--snakefile", str(ROOT / "Snakefile"))
    assert out.returncode == 0, out.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, re.M))
    assert counts.get("evaluate") == "1" and counts.get("train") == "1"
    assert "report_tables" not in counts and "ref_logps" not in counts


def _lint(snakefile: Path):
    return _sm("--lint", "--snakefile", str(snakefile), "--configfile", str(ROOT / "config/tiny.yaml"), timeout=120)


def _lint_clean(out) -> bool:
    # a workflow that does not parse prints no "Lints for" at all: the return code must be checked too
    return out.returncode == 0 and "Lints for" not in out.stdout + out.stderr


def test_lint_is_clean():
    out = _lint(ROOT / "Snakefile")
    assert _lint_clean(out), (out.stdout + out.stderr)[-3000:]


def test_lint_is_clean_on_the_toy_science_preset():
    """The toy-science preset adds the seeds page and the tuning rules (workflow/rules/science.smk)."""
    out = _sm("--lint", "--snakefile", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config/tiny.yaml"),
              str(ROOT / "config/toy_science.yaml"), timeout=120)
    assert _lint_clean(out), (out.stdout + out.stderr)[-3000:]


def test_lint_check_fails_on_a_workflow_that_does_not_parse(tmp_path):
    broken = tmp_path / "Snakefile"
    broken.write_text('rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n\nrule broken(:\n')
    out = _lint(broken)
    assert not _lint_clean(out)
    assert "Lints for" not in out.stdout + out.stderr  # the old check (no lints printed) would have passed
