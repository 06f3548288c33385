"""The tiny end-to-end run (slow): every stage for real, on a backbone that can fail.

The reduced config pre-trains a backbone that reads its context (`COMPETENT_BACKBONE` in
tests/reduced_pipeline.py), so the run can assert science, not ranges: the sampled accuracy
is well above chance, every chosen response is right and every rejected one wrong, SoLo runs
log a non-zero alignment term (a long forward that read the short prompt would log 0), the
answer aliases of the toy world reach the labels, and every artifact in the tree carries a
manifest. Then: a second run has nothing to do, and deleting one eval JSON reruns exactly that job.
"""
import json
import re
from pathlib import Path

import pytest

from solopo.eval.metrics import extract_answer, normalize_answer, sub_em
from tests.reduced_pipeline import COMPETENT_BACKBONE, run_reduced


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _manifest_gaps(res: Path) -> list[str]:
    """Files under results/ covered neither by `<file>.manifest.json` nor by a `manifest.json` of a
    directory artifact they lie in. Only the resumable training state (results/checkpoints, deleted
    or reused by fingerprint, never an input of another rule), TensorBoard event files (training
    monitoring, never read by a rule) and Snakemake's own markers are exempt."""
    gaps = []
    for p in sorted(res.rglob("*")):
        rel = p.relative_to(res)
        if not p.is_file() or p.name.endswith("manifest.json") or p.name == ".snakemake_timestamp":
            continue
        if rel.parts[0] == "checkpoints" or "tensorboard" in rel.parts[:-1]:
            continue
        if Path(str(p) + ".manifest.json").exists():
            continue
        if any((res / Path(*rel.parts[:k]) / "manifest.json").exists() for k in range(1, len(rel.parts))):
            continue
        gaps.append(str(rel))
    return gaps


@pytest.mark.slow
def test_tiny_pipeline_end_to_end(tmp_path):
    out = run_reduced(tmp_path, "all", extra=COMPETENT_BACKBONE)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    res = tmp_path / "results"
    stats = json.loads((res / "pairs/tiny/pair_stats.json").read_text())
    chance = stats["chance_accuracy"]
    assert chance == pytest.approx(1 / 15)
    for ctx in ("short", "long"):
        s = stats[ctx]
        assert s["inputs"] == 24 and s["samples"] == 24 * 8
        assert s["yield"] == pytest.approx(s["pairs"] / s["inputs"], abs=1e-4)
    # the backbone reads its context: far above a uniform guess on short contexts, above it on long ones
    # (measured: 0.42 short = 6.3x chance, 0.18 long = 2.7x chance)
    assert stats["short"]["sampled_accuracy"] >= 3 * chance, stats
    assert stats["long"]["sampled_accuracy"] > chance, stats
    assert stats["short"]["pairs"] + stats["long"]["pairs"] >= 6, stats  # a competent model is often all-right

    # pairs: chosen right and rejected wrong on every context, by the answers the contexts carry
    pairs = _jsonl(res / "pairs/tiny/pairs.jsonl")
    assert pairs
    for row in pairs:
        assert len(row["answers"]) == 2  # toy-world answer + alias
        for ctx in ("short", "long"):
            if row[ctx]:
                chosen, rejected = extract_answer(row[ctx]["chosen"]), extract_answer(row[ctx]["rejected"])
                assert sub_em(chosen, row["answers"]) and not sub_em(rejected, row["answers"]), (ctx, row)
    # aliases end to end: questions whose context names the answer by its alias get alias answers from
    # the model, which are right only through the alias (measured: 40 of 40 samples on 5 such questions)
    aliased = 0
    for ctx in ("short", "long"):
        for row in _jsonl(res / f"samples/tiny/{ctx}.jsonl"):
            for out in row["responses"]:
                ans = extract_answer(out)
                if normalize_answer(ans) == normalize_answer(row["answers"][1]):
                    aliased += 1
                    assert sub_em(ans, row["answers"]) and not sub_em(ans, row["answers"][:1])
    assert aliased >= 1, "no sampled response answered with an alias: the alias path was not exercised"
    solo = _jsonl(res / "datasets/tiny/solo.jsonl")
    by_id = {r["id"]: r for r in pairs}
    for r in solo:
        assert r["x"] != r["x_long"] and len(r["x_long"]) > len(r["x"])
        assert r["y_w"] == by_id[r["id"]]["short"]["chosen"] and r["y_l"] == by_id[r["id"]]["short"]["rejected"]

    # SoLo: the alignment term compares x_short with x_long, never 0 on a step
    log = _jsonl(res / "train/solo_orpo/model/train_log.jsonl")
    assert log and all(step["ra_term"] > 0 for step in log), log

    evals = sorted(p for p in res.glob("eval/*.json") if not p.name.endswith("manifest.json"))
    assert len(evals) == 5 * 2
    for e in evals:
        r = json.loads(e.read_text())
        assert 0 <= r["score"] <= 100 and r["run"] in e.name
    assert json.loads((res / "eval/base_ruler.json").read_text())["score"] > 0

    # every artifact in the tree carries its manifest
    assert _manifest_gaps(res) == []
    for d in [res / "models/tiny", *res.glob("train/*/model"), *res.glob("benchmarks/**/ruler")]:
        m = json.loads((d / "manifest.json").read_text())
        assert {"config_hash", "inputs", "git_commit", "versions", "wall_time_s"} <= m.keys()
    sel = json.loads((res / "train/solo_orpo/model/checkpoint_selection.json").read_text())
    assert sel["selected"] in sel["scores"] and len(sel["scores"]) >= 1

    # nothing to do on a rerun; one deleted eval reruns only that job
    again = run_reduced(tmp_path, "all", "-n", extra=COMPETENT_BACKBONE)
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-2000:]
    (res / "eval/solo_orpo_ruler.json").unlink()
    one = run_reduced(tmp_path, "results/eval/solo_orpo_ruler.json", extra=COMPETENT_BACKBONE)
    assert one.returncode == 0, one.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", one.stdout + one.stderr, re.M))
    assert counts.get("evaluate") == "1" and counts.get("total") == "1", counts


def test_manifest_check_sees_files_in_backbone_folders(tmp_path):
    """The check itself: a file without a manifest under pairs/tiny/ is reported (it used to be skipped)."""
    res = tmp_path / "results"
    (res / "pairs/tiny").mkdir(parents=True)
    (res / "pairs/tiny/pairs.jsonl").write_text("{}\n")
    (res / "models/tiny").mkdir(parents=True)
    (res / "models/tiny/model.safetensors").write_text("x")
    (res / "models/tiny/manifest.json").write_text("{}")
    (res / "checkpoints/run/step-1").mkdir(parents=True)
    (res / "checkpoints/run/step-1/COMPLETE").write_text("1")
    assert _manifest_gaps(res) == ["pairs/tiny/pairs.jsonl"]
    (res / "pairs/tiny/pairs.jsonl.manifest.json").write_text("{}")
    assert _manifest_gaps(res) == []
