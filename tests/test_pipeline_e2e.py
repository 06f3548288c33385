"""The tiny end-to-end run (slow): every stage for real on a reduced tiny config.

Checks: the pipeline finishes, every artifact has its manifest, pair statistics report
accuracy against chance beside the yield, a second run has nothing to do, and deleting
one eval JSON reruns exactly that job.
"""
import json
import re
from pathlib import Path

import pytest

from tests.reduced_pipeline import run_reduced as _sm


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tmp_path):
    out = _sm(tmp_path, "all")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    res = tmp_path / "results"
    stats = json.loads((res / "pairs/tiny/pair_stats.json").read_text())
    for ctx in ("short", "long"):
        s = stats[ctx]
        assert s["inputs"] == 24 and s["samples"] == 24 * 8
        assert 0 <= s["sampled_accuracy"] <= 1 and s["accuracy_over_chance"] is not None
        assert s["yield"] == pytest.approx(s["pairs"] / s["inputs"], abs=1e-4)
    assert stats["chance_accuracy"] == pytest.approx(1 / 15)
    evals = sorted(p for p in res.glob("eval/*.json") if not p.name.endswith("manifest.json"))
    assert len(evals) == 5 * 2
    for e in evals:
        r = json.loads(e.read_text())
        assert 0 <= r["score"] <= 100 and r["run"] in e.name
    # every artifact carries its manifest
    files = [p for p in res.rglob("*") if p.is_file() and "manifest" not in p.name and "checkpoints" not in p.parts
             and not any(part in ("model", "tiny", "sources") or part.startswith("longbench") for part in p.relative_to(res).parts[:-1])]
    missing = [str(p) for p in files if not Path(str(p) + ".manifest.json").exists()]
    assert not missing, missing
    for d in [res / "models/tiny", *res.glob("train/*/model"), *res.glob("benchmarks/**/ruler")]:
        m = json.loads((d / "manifest.json").read_text())
        assert {"config_hash", "inputs", "git_commit", "versions", "wall_time_s"} <= m.keys()
    sel = json.loads((res / "train/solo_orpo/model/checkpoint_selection.json").read_text())
    assert sel["selected"] in sel["scores"] and len(sel["scores"]) >= 1
    # nothing to do on a rerun; one deleted eval reruns only that job
    again = _sm(tmp_path, "all", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-2000:]
    (res / "eval/solo_orpo_ruler.json").unlink()
    one = _sm(tmp_path, "results/eval/solo_orpo_ruler.json")
    assert one.returncode == 0, one.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", one.stdout + one.stderr, re.M))
    assert counts.get("evaluate") == "1" and counts.get("total") == "1", counts
