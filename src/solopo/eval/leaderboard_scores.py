"""lm-eval's output turned into our result (the subsets' scores, as solopo.eval.leaderboard's
docstring describes them) and per-sample predictions."""
from __future__ import annotations

import math
from typing import Any

from solopo.eval.leaderboard_tasks import SUBSETS

# Which raw metric is each subset's score.
SUBSET_METRIC: dict[str, str] = {
    "mmlu_pro": "acc",
    "bbh": "acc_norm",
    "math": "exact_match_original",
    "gpqa": "acc_norm",
    "ifeval": "inst_level_strict_acc",
}
IFEVAL_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc",
                  "prompt_level_loose_acc", "inst_level_loose_acc")
# The Open LLM Leaderboard's IFEval figure: mean of prompt- and instruction-level strict accuracy.
IFEVAL_LEADERBOARD = "leaderboard_strict_mean"
IFEVAL_CHOICES = IFEVAL_METRICS + (IFEVAL_LEADERBOARD,)
# MATH-hard: math-verify (lm-eval >= 0.4.9) and the original Minerva normalisation + sympy.
MATH_METRICS = ("exact_match", "exact_match_original")
# Table 4's figures (see the module docstring): the headline is what SoLoPO could have computed,
# the second the other scorer of the same outputs.
MATH_HEADLINE, MATH_SECOND = "exact_match_original", "exact_match"
IFEVAL_HEADLINE, IFEVAL_SECOND = "inst_level_strict_acc", "inst_level_loose_acc"


# --------------------------------------------------------------------------- aggregation

def jsonable(obj: Any) -> Any:
    """Recursively convert to JSON-serialisable values (unknown objects become their str())."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return jsonable(obj.item())
        except Exception:  # noqa: BLE001
            pass
    return str(obj)


def _metric(res: dict, task: str, metric: str) -> float:
    entry = res.get(task)
    if entry is None:
        raise KeyError(f"lm-eval results have no entry for {task!r}")
    for key in (f"{metric},none", metric):
        if key in entry and isinstance(entry[key], (int, float)) and not isinstance(entry[key], bool):
            return float(entry[key])
    raise KeyError(f"lm-eval results for {task!r} have no numeric {metric!r} (keys {sorted(entry)})")


def _n_samples(out: dict, name: str) -> int:
    """Samples evaluated for a task, or summed over a group's leaf subtasks."""
    ns = out.get("n-samples", {})
    if name in ns:
        return int(ns[name].get("effective", ns[name].get("original", 0)))
    subs = out.get("group_subtasks", {}).get(name)
    if subs:
        return sum(_n_samples(out, s) for s in subs)
    return 0


def _group_metric(out: dict, task: str, metric: str) -> float | None:
    """`metric` of a task, or the size-weighted mean over a group's subtasks when the group row lacks it
    (lm-eval's MATH group aggregates exact_match only); None when no subtask has it."""
    res = out["results"]
    try:
        return _metric(res, task, metric)
    except KeyError:
        pass
    rows = []
    for sub in out.get("group_subtasks", {}).get(task) or []:
        try:
            rows.append((_n_samples(out, sub), _metric(res, sub, metric)))
        except KeyError:
            return None
    total = sum(n for n, _ in rows)
    return sum(n * v for n, v in rows) / total if rows and total else None


def aggregate(out: dict, task_names: dict[str, str], ifeval_metric: str = IFEVAL_HEADLINE,
              skipped: dict[str, str] | None = None, math_metric: str = MATH_HEADLINE) -> dict:
    """Turn an lm-eval ``simple_evaluate`` output into our result dict (no samples).

    ``task_names`` maps the subsets that were run to their lm-eval task/group names.
    Group rows (BBH, MATH, GPQA) already hold lm-eval's size-weighted aggregate.
    """
    res = out["results"]
    subsets: dict[str, float] = {}
    ifeval_metrics: dict[str, float] = {}
    math_metrics: dict[str, float] = {}
    for sub in SUBSETS:
        if sub not in task_names:
            continue
        task = task_names[sub]
        if sub == "ifeval":
            for m in IFEVAL_METRICS:
                ifeval_metrics[m] = 100.0 * _metric(res, task, m)
            ifeval_metrics[IFEVAL_LEADERBOARD] = (ifeval_metrics["prompt_level_strict_acc"]
                                                  + ifeval_metrics["inst_level_strict_acc"]) / 2
            if ifeval_metric not in ifeval_metrics:
                raise ValueError(f"ifeval_metric must be one of {IFEVAL_CHOICES}, got {ifeval_metric!r}")
            subsets[sub] = ifeval_metrics[ifeval_metric]
        elif sub == "math":
            for m in MATH_METRICS:
                v = _group_metric(out, task, m)
                if v is not None:
                    math_metrics[m] = 100.0 * v
            if math_metric not in MATH_METRICS:
                raise ValueError(f"math_metric must be one of {MATH_METRICS}, got {math_metric!r}")
            if math_metric not in math_metrics:
                raise KeyError(f"lm-eval results for {task!r} have no numeric {math_metric!r}")
            subsets[sub] = math_metrics[math_metric]
        else:
            subsets[sub] = 100.0 * _metric(res, task, SUBSET_METRIC[sub])
    score = sum(subsets.values()) / len(subsets) if subsets else None
    raw = {k: out[k] for k in ("results", "groups", "group_subtasks", "n-samples", "n-shot",
                               "versions", "higher_is_better", "configs", "config") if k in out}
    return {
        "benchmark": "leaderboard",
        "score": score,
        "avg_over": list(subsets),
        "subsets": subsets,
        "ifeval_metrics": ifeval_metrics,
        "ifeval_metric": ifeval_metric,
        "math_metrics": math_metrics,
        "math_metric": math_metric,
        # which scorer each reported figure is (Table 4 prints the headline and the second figure of each)
        "metric_names": {"ifeval": ifeval_metric, "math": math_metric,
                         "ifeval_variant": IFEVAL_SECOND if ifeval_metric != IFEVAL_SECOND else IFEVAL_HEADLINE,
                         "math_variant": MATH_SECOND if math_metric != MATH_SECOND else MATH_HEADLINE},
        "n": {sub: _n_samples(out, task_names[sub]) for sub in subsets},
        "task_names": dict(task_names),
        "raw": jsonable(raw),
        "skipped": dict(skipped or {}),
    }


def flatten_samples(out: dict) -> list[dict]:
    """lm-eval per-sample logs -> one flat record per (task, doc)."""
    rows = []
    for task, samples in (out.get("samples") or {}).items():
        for s in samples:
            metrics = {m: s[m] for m in s.get("metrics", []) if m in s}
            resp = s.get("filtered_resps")
            if isinstance(resp, list) and len(resp) == 1 and isinstance(resp[0], str):
                resp = resp[0]  # generate_until: the one filtered string
            rows.append(jsonable({"task": task, "doc_id": s.get("doc_id"), "target": s.get("target"),
                                   "response": resp, "filter": s.get("filter"), "metrics": metrics}))
    return rows
