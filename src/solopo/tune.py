"""Learning-rate tuning on a held-out dev split, as DAG jobs (rules in workflow/rules/science.smk).

`report.tune` names probe methods (one per family: an SFT method tunes `train.optim.sft_learning_rate`,
a SoLo method `train.optim.solo_learning_rate`, any other `train.optim.learning_rate`) and a grid of rates. Each (probe, rate) is trained by
`pipeline.train` on the first seed's training set and evaluated by `pipeline.evaluate` on a RULER set
built from dev questions that are neither training nor test questions (toy world, seed + 37); `choose`
writes the best rate per family. The choice is copied into the preset by hand (the preset records
what was measured), so a tuning run never silently changes the experiment.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("solopo")

# Another draw of the toy world than training (seed + 11) and test (seed + 23) questions.
TUNE_SEED_OFFSET = 37
TUNE_ID_OFFSET = 2 * 10**6
# The dev questions are the first `dev_questions` of a draw this many times larger whose text no test
# question has: the toy world's question texts repeat (one template per hop count and person), so a
# test set of 300 leaves ~0.2 of a draw usable.
TUNE_DRAW_FACTOR = 8


def rate_key(method: str) -> str:
    """The train.optim key of a training method's learning rate (the family a probe tunes): SFT methods
    `sft_learning_rate`, SoLo methods (solo_*, solo_kl_*) `solo_learning_rate` (unset: `learning_rate`),
    the other PO methods `learning_rate`. LongPO keeps its own (train.longpo)."""
    if method.startswith("sft"):
        return "sft_learning_rate"
    return "solo_learning_rate" if method.startswith("solo_") else "learning_rate"


def tune_runs(config: dict) -> dict[str, dict]:
    """{`tune_<probe>@lr<rate>`: {method, lr, key}} for every probe and rate of report.tune ({} without it)."""
    t = (config.get("report") or {}).get("tune")
    if not t:
        return {}
    return {f"tune_{m}@lr{float(lr):g}": {"method": m, "lr": float(lr), "key": rate_key(m)}
            for m in t["probes"] for lr in t["grid"]}


def train_slice(train_slice_: dict, run: dict) -> dict:
    """A probe's training slice: the method's own slice with its family's learning rate replaced."""
    import copy

    out = copy.deepcopy(train_slice_)
    out["train"]["optim"][run["key"]] = run["lr"]
    return out


def tune_questions(out: str, test_questions: str, cfg: dict, seed: int, n: int, log_path: str) -> None:
    """The dev questions: `n` toy-world questions of their own draw, none with the text of a test
    question (`test_questions`: the file the test fixtures are built from; a small toy world repeats
    question texts across draws)."""
    from solopo.artifacts import read_jsonl, write_jsonl, write_manifest
    from solopo.data.toy_world import generate_records, hop_weights
    from solopo.jobs import job
    from solopo.slices import Scoped

    with job(log_path, "tune_questions") as t0:
        tm = cfg["tiny_model"]
        test = {r["question"] for r in read_jsonl(test_questions)}
        pool = generate_records(TUNE_DRAW_FACTOR * n, seed + TUNE_SEED_OFFSET, hop_weights(tm), tm["entities"], id_offset=TUNE_ID_OFFSET)
        rows = [r for r in pool if r["question"] not in test][:n]
        if len(rows) < n:
            raise ValueError(f"report.tune.dev_questions: {n} questions unlike every test question are not in a draw of "
                             f"{len(pool)} (the toy world is too small); allowed: at most {len(rows)}")
        recorded = cfg.plain if isinstance(cfg, Scoped) else {"tiny_model": dict(tm), "seed": seed}
        write_manifest(out, recorded, [test_questions], t0, {"records": len(rows), "n": n,
                                                             "dropped_as_test_questions": sum(r["question"] in test for r in pool)})
        write_jsonl(out, rows)


def choose(evals: list[str], out: str, runs: dict[str, dict], log_path: str | None = None) -> dict:
    """Per learning-rate key, the grid rate with the best dev RULER score (ties: the first in the grid)."""
    import contextlib

    from solopo.artifacts import write_json
    from solopo.jobs import job

    with job(log_path, "toy_science_tune") if log_path else contextlib.nullcontext():
        return _choose(evals, out, runs, write_json)


def _choose(evals: list[str], out: str, runs: dict[str, dict], write_json) -> dict:
    scores = {}
    for path in evals:
        res = json.loads(Path(path).read_text())
        if res.get("run") not in runs:
            raise ValueError(f"{path}: run {res.get('run')!r} is not a tuning run of report.tune")
        scores[res["run"]] = float(res["score"])
    chosen: dict[str, dict] = {}
    for name, r in runs.items():  # grid order: a later rate must score strictly higher to win
        best = chosen.get(r["key"])
        if best is None or scores[name] > best["dev_score"]:
            chosen[r["key"]] = {"value": r["lr"], "probe": r["method"], "dev_score": scores[name]}
    result = {"dev_scores": scores, "chosen": chosen,
              "note": "copy the chosen values into train.optim of the preset and set report.lr_tuned_on_dev"}
    write_json(out, result)
    log.info("tuning: %s", chosen)
    return result


def tune_bench_slice(bench_slice: dict, dev_items: int) -> dict:
    """The dev RULER set's slice: the test set's RULER settings with `dev_items` questions per set."""
    import copy

    out = copy.deepcopy(bench_slice)
    out["eval"]["ruler"]["num_samples"] = int(dev_items)
    return out
