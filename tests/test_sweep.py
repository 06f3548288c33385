"""Lambda sweeps through Snakemake's own dry-run (slow: one real reduced tiny run first).

After a finished run with `train.lambdas.solo_orpo: [1.0, 0.5]`:
(a) adding a value schedules only the new run's training and evaluation (+ report jobs);
(b) removing a value deletes nothing and schedules only report jobs;
(c) changing the default value reruns exactly that run's training and evaluation, never
    contexts/sample/pairs/datasets; `solopo check` flags the same training artifact.
Also: `solopo check` finds every manifest of the real run up to date, and `--report` builds.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")

REDUCED = """
tiny_model: {steps: 60}
data: {toy: {train_questions: 24, dev_questions: 12}}
train:
  methods: [solo_orpo]
  lambdas: {solo_orpo: %s}
eval:
  benchmarks: [ruler]
  runs_include_base: false
  ruler: {num_samples: 2}
"""
REPORT_RULES = {"report_tables", "report_lambda_plot", "report_ruler_plot"}
UPSTREAM = {"toy_world", "tiny_model", "fetch_musique", "contexts", "sample", "pairs", "datasets", "ref_logps",
            "bench_data", "bench_data_tokenized"}


def _sm(workdir: Path, lambdas: str, *args):
    cfg = workdir / f"reduced_{abs(hash(lambdas))}.yaml"
    cfg.write_text(REDUCED % lambdas)
    return subprocess.run([SNAKEMAKE, *args, "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory",
                           str(workdir), "--profile", str(ROOT / "profiles/local"), "--configfile",
                           str(ROOT / "config/tiny.yaml"), str(cfg)], capture_output=True, text=True, timeout=1500)


def jobs(text: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry-run lists."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        m = re.search(r"^(?:local)?rule (\w+):$", block, re.M)
        msg = re.search(r"^Job \d+: evaluate (\S+) on (\w+):", block, re.M)  # rule evaluate prints its message
        if msg:
            out.append(("evaluate", {"run": msg.group(1), "bench": msg.group(2)}))
            continue
        if not m or m.group(1) == "all":
            continue
        wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        out.append((m.group(1), dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}))
    return out


def _dry(workdir, lambdas):
    out = _sm(workdir, lambdas, "all", "-n")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return jobs(out.stdout + out.stderr)


def _check(workdir, lambdas):
    cfg = workdir / "check.yaml"
    cfg.write_text(REDUCED % lambdas)
    out = subprocess.run([str(BIN / "solopo"), "check", "--configfile", str(ROOT / "config/tiny.yaml"), str(cfg),
                          "-d", str(workdir), "--base-config", str(ROOT / "config/config.yaml"), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr
    return {f["path"]: f for f in json.loads(out.stdout)}


@pytest.mark.slow
def test_lambda_sweep_schedules_only_what_changed(tmp_path):
    first = _sm(tmp_path, "[1.0, 0.5]", "all")
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    res = tmp_path / "results"
    assert (res / "train/solo_orpo_lam0.5/model/manifest.json").exists()
    assert _dry(tmp_path, "[1.0, 0.5]") == []
    # the manifests agree with the config that made them (solopo check recomputes every slice)
    findings = _check(tmp_path, "[1.0, 0.5]")
    assert findings and {f["status"] for f in findings.values()} == {"ok"}, \
        [f for f in findings.values() if f["status"] != "ok"]
    assert json.loads((res / "train/solo_orpo/model/manifest.json").read_text())["config"]["lambda"] == 1.0

    # (a) one more value: its training and evaluation, plus the report
    a = _dry(tmp_path, "[1.0, 0.5, 2.0]")
    rules = {r for r, _ in a}
    assert sorted((r, w.get("run")) for r, w in a if r not in REPORT_RULES) == [
        ("evaluate", "solo_orpo_lam2.0"), ("train", "solo_orpo_lam2.0")]
    assert "report_tables" in rules and not rules & UPSTREAM

    # (b) one value fewer: nothing but the report, and (run for real) no file removed
    b = _dry(tmp_path, "[1.0]")
    assert b and {r for r, _ in b} <= REPORT_RULES
    before = sorted(p for p in res.rglob("*") if "lam0.5" in str(p))
    real = _sm(tmp_path, "[1.0]", "all")
    assert real.returncode == 0, real.stderr[-3000:]
    assert before and sorted(p for p in res.rglob("*") if "lam0.5" in str(p)) == before
    assert "solo_orpo_lam0.5" not in (res / "report/lambda_sweep.md").read_text()
    assert _check(tmp_path, "[1.0]")["results/eval/solo_orpo_lam0.5_ruler.json"]["status"] == "orphan"
    # the HTML report builds offline from this tree, with the tables as items
    html = res / "report" / "report.html"
    rep = _sm(tmp_path, "[1.0]", "--report", str(html))
    assert rep.returncode == 0, rep.stderr[-3000:]
    page = html.read_text()
    assert html.stat().st_size > 100_000 and "table3.html" in page and "lambda_sweep.html" in page

    # (c) a new default value: exactly that run's training and evaluation (+ report), nothing upstream
    c = _dry(tmp_path, "[3.0, 0.5]")
    assert sorted((r, w.get("run")) for r, w in c if r not in REPORT_RULES) == [
        ("evaluate", "solo_orpo"), ("train", "solo_orpo")]
    assert not {r for r, _ in c} & UPSTREAM
    stale = {p for p, f in _check(tmp_path, "[3.0, 0.5]").items() if f["status"] != "ok"}
    assert "results/train/solo_orpo/model" in stale
    assert {p for p in stale if not p.startswith("results/report/")} == {"results/train/solo_orpo/model"}
