"""What the seeds page concludes, generated from its numbers (the page: solopo.report.science).

Three findings, each from paired bootstraps over test items (`science.comparisons` rows:
{run, baseline, score, delta, lo, hi, p, resolved}) and, for the last, the training logs:

- **Headroom**: does long-context training help on this testbed at all? The best of `report.headroom_runs`
  (default SFT-long and ORPO-long) against the untrained backbone at the longest RULER length. Without it
  every method can only lose, and no SoLo comparison says anything about SoLoPO.
- **SoLo against the long-context baselines** (ORPO-long and Expand-Long-ORPO) at that length.
- **The λ collapse**: for each SoLo-RA method with two or more λ > 0 (the paper's reading `solo_orpo`,
  the stop-gradient `solo_orpo_sg`), the score at its largest λ minus its smallest; and the RA gradient
  per side as the SoLo-RA losses log it (`ra_grad/short_chosen`, `ra_grad/long_chosen`: |∂RA/∂avg| per
  example, solopo.train.rewards.ra_gradient_metrics) with the chosen response's mean log-prob per token
  on the short side at the first and the last step.
"""
from __future__ import annotations

import json
from pathlib import Path

HEADROOM_RUNS = ("sft_long", "orpo_long")
LONG_BASELINES = ("orpo_long", "orpo_expand")


def longest_ruler_key(keys: list[str]) -> str | None:
    """`ruler@<L>` of the largest L among the page's score keys; None without RULER lengths."""
    lengths = [int(k.split("@")[1]) for k in keys if k.startswith("ruler@")]
    return f"ruler@{max(lengths)}" if lengths else None


def _row(comps: list[dict], run: str, baseline: str, key: str) -> dict | None:
    return next((c for c in comps if c["run"] == run and c["baseline"] == baseline and c["score"] == key), None)


def headroom(comps: list[dict], key: str | None, candidates=HEADROOM_RUNS, base: str = "base") -> dict:
    """The best candidate's paired difference from `base` at `key`; `holds` when its 95 % interval is
    above zero. `checked` is False when the page has no such comparison (no RULER, no base, no candidate)."""
    rows = [r for r in (_row(comps, c, base, key) for c in candidates) if r] if key else []
    if not rows:
        return {"checked": False, "key": key, "candidates": list(candidates)}
    best = max(rows, key=lambda r: r["delta"])
    return {"checked": True, "key": key, "run": best["run"], "delta": best["delta"], "lo": best["lo"],
            "hi": best["hi"], "p": best["p"], "holds": best["lo"] > 0, "candidates": list(candidates)}


def _diff(r: dict) -> str:
    return f"{r['delta']:+.1f} [{r['lo']:+.1f}, {r['hi']:+.1f}]"


def headroom_text(h: dict, label) -> str:
    if not h["checked"]:
        return (f"**Headroom: not checked** (the page has no comparison of {' or '.join(h['candidates'])} with the "
                "untrained backbone on RULER), so whether any method can gain here is unknown.")
    head = (f"{label(h['run'])} (the better of {', '.join(label(c) for c in h['candidates'])}) against the untrained "
            f"backbone at {h['key']}: {_diff(h)} (paired, 95 %)")
    if h["holds"]:
        return f"**Headroom: yes.** {head}: long-context training helps on this testbed, so the comparisons below can be read."
    return (f"**Headroom: no.** {head}: no long-context training rises above the untrained backbone at the longest "
            "length, so a method here can only lose and the SoLo comparisons below cannot be read as evidence for or "
            "against SoLoPO.")


def versus_long_baselines(comps: list[dict], key: str | None, solo_runs: list[str],
                          baselines=LONG_BASELINES) -> dict:
    """Per SoLo run, its paired differences from each long-context baseline at `key`, and the runs resolved
    better than all of them."""
    table = {run: {b: _row(comps, run, b, key) for b in baselines} for run in solo_runs} if key else {}
    table = {run: row for run, row in table.items() if any(row.values())}
    winners = [run for run, row in table.items() if row and all(r and r["lo"] > 0 for r in row.values())]
    return {"key": key, "baselines": list(baselines), "table": table, "winners": winners}


def versus_text(v: dict, label) -> str:
    if not v["table"]:
        return ""
    names = " and ".join(label(b) for b in v["baselines"])
    if v["winners"]:
        return (f"At {v['key']}, resolved better than {names}: " + "; ".join(
            f"{label(run)} (" + ", ".join(f"vs {label(b)} {_diff(r)}" for b, r in v["table"][run].items()) + ")"
            for run in v["winners"]) + ".")
    best = max(v["table"], key=lambda run: min(r["delta"] for r in v["table"][run].values() if r))
    return (f"At {v['key']}, no SoLo run is resolved better than {names}; the closest, {label(best)}: " + ", ".join(
        f"vs {label(b)} {_diff(r)}" for b, r in v["table"][best].items() if r) + ".")


def ra_plot_runs(meta: dict[str, dict]) -> list[str]:
    """The (run, seed) names whose training logs the RA-mechanism plot reads: the first seed's SoLo-RA runs
    (paper reading and stop-gradient) at λ > 0. `meta`: solopo.report.science.seeds_meta. Empty: no plot."""
    first = min((m["seed"] for m in meta.values() if m.get("seed") is not None), default=None)
    return [n for n, m in meta.items() if m.get("seed") == first and m["method"].startswith("solo_")
            and not m["method"].startswith("solo_kl_") and m.get("lambda")]


def lambda_pairs(meta: dict[str, dict]) -> list[tuple[str, str]]:
    """(largest-λ run, smallest-λ run) per SoLo-RA method with two or more λ > 0 (what `lambda_collapse` reads)."""
    by_method: dict[str, list[tuple[float, str]]] = {}
    for run, m in meta.items():
        if run.startswith("_") or not m.get("method", "").startswith("solo_") or m["method"].startswith("solo_kl_"):
            continue
        if m.get("lambda"):
            by_method.setdefault(m["method"], []).append((float(m["lambda"]), run))
    return [(max(v)[1], min(v)[1]) for v in by_method.values() if len(v) > 1]


def lambda_collapse(comps: list[dict], meta: dict[str, dict], key: str | None) -> list[dict]:
    """Per SoLo-RA method: the score at its largest λ minus at its smallest (paired); `collapses` when the
    interval is below zero."""
    out = []
    for hi_run, lo_run in lambda_pairs(meta):
        r = _row(comps, hi_run, lo_run, key) if key else None
        if r:
            out.append({"method": meta[hi_run]["method"], "lam_lo": meta[lo_run]["lambda"],
                        "lam_hi": meta[hi_run]["lambda"], "delta": r["delta"], "lo": r["lo"], "hi": r["hi"],
                        "p": r["p"], "collapses": r["hi"] < 0})
    return out


def ra_gradients(train_logs: dict[str, str]) -> dict[str, dict]:
    """{run: mean |∂RA/∂avg| per side over the steps, and the short side's chosen log-prob per token at the
    first and last step} from each run's train_log.jsonl (solopo.report.plots.ra_mechanism_series checks it)."""
    from solopo.report.plots import RA_AVG_LOGP, RA_GRAD, ra_mechanism_series

    out = {}
    for run, path in train_logs.items():
        recs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        s = ra_mechanism_series(recs, path)
        short, long_ = s[RA_GRAD["short"]], s[RA_GRAD["long"]]
        out[run] = {"grad_short": sum(short) / len(short), "grad_long": sum(long_) / len(long_),
                    "logp_short_first": s[RA_AVG_LOGP["short"]][0], "logp_short_last": s[RA_AVG_LOGP["short"]][-1],
                    "logp_long_first": s[RA_AVG_LOGP["long"]][0], "logp_long_last": s[RA_AVG_LOGP["long"]][-1]}
    return out


def collapse_text(collapse: list[dict], grads: dict[str, dict], meta: dict[str, dict], label, key: str | None) -> str:
    from solopo.report.tables import method_label

    parts = []
    for c in collapse:
        parts.append(f"{method_label(c['method'])}: λ {c['lam_lo']:g} → {c['lam_hi']:g} changes {key} by {_diff(c)} "
                     f"({'collapses' if c['collapses'] else 'no resolved drop'})")
    text = ("**The λ collapse.** " + "; ".join(parts) + ".") if parts else ""
    paper = [c for c in collapse if not c["method"].endswith("_sg")]
    stop = [c for c in collapse if c["method"].endswith("_sg")]
    if paper and stop:
        removed = any(c["collapses"] for c in paper) and not any(c["collapses"] for c in stop)
        text += (" The stop-gradient removes the collapse." if removed else
                 " The stop-gradient does not remove a collapse." if any(c["collapses"] for c in paper) else
                 " The paper's reading shows no resolved collapse to remove.")
    if grads:
        def fmt(run):
            g = grads[run]
            return (f"{label(run)}: |∂RA/∂avg| short {g['grad_short']:.2f}, long {g['grad_long']:.2f}; short-context "
                    f"chosen log-prob/token {g['logp_short_first']:.2f} → {g['logp_short_last']:.2f}")
        order = sorted(grads, key=lambda r: (meta.get(r, {}).get("method", r), meta.get(r, {}).get("lambda") or 0))
        text += " Logged in training (mean over steps, first seed): " + "; ".join(fmt(r) for r in order) + "."
        paper_runs = [r for r in order if not meta.get(r, {}).get("method", "").endswith("_sg")]
        if paper_runs:
            ratio = [grads[r]["grad_short"] / grads[r]["grad_long"] for r in paper_runs if grads[r]["grad_long"] > 0]
            if ratio:
                text += (f" In the paper's reading the short side gets {min(ratio):.1f}-{max(ratio):.1f}x the long side's "
                         "RA gradient per example" + (" (the suspected mechanism: the confident short side is pushed down "
                                                      "harder than the long side is pulled up)." if min(ratio) > 1 else
                                                      ", so the short side is not pushed harder than the long one."))
    return text.strip()
