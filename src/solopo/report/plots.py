"""Plots (matplotlib, Agg, PNG) from the eval JSONs alone.

- `plot_lambda_sweep`: one figure per SoLo method (and backbone), one panel per benchmark,
  score vs lambda (the SoLo-RA weight, alpha in the paper); the default run is a filled star.
- `plot_ruler_by_length`: one figure per backbone, RULER QA score vs context length, one line per run.

Both take the same `{run: {bench: result}}` and optional run metadata as `solopo.report.tables`.
"""
from __future__ import annotations

import math
from pathlib import Path

from solopo.artifacts import atomic_path, write_manifest
from solopo.report.tables import BENCH_LABEL, BENCH_ORDER, _len_label, load_results, method_label, report_slice, run_info


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_png: str, plt, slice_: dict, inputs: list[str]) -> None:
    write_manifest(out_png, slice_, inputs)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def sweep_points(results: dict, meta: dict | None, backbone: str, method: str) -> dict[str, list[tuple[float, float, bool, str]]]:
    """{bench: [(lambda, score, is_default, run)]} sorted by lambda, for one backbone's SoLo method."""
    out: dict[str, list] = {}
    for run in results:
        i = run_info(run, results, meta)
        if i.backbone != backbone or i.method != method or i.lam is None:
            continue
        for bench, res in results[run].items():
            if res.get("score") is not None:
                out.setdefault(bench, []).append((float(i.lam), float(res["score"]), i.default, run))
    return {b: sorted(v) for b, v in out.items()}


def plot_lambda_sweep(results: dict, meta: dict | None, backbone: str, method: str, out_png: str,
                      inputs: list[str] = ()) -> None:
    plt = _plt()
    pts = sweep_points(results, meta, backbone, method)
    benches = [b for b in BENCH_ORDER if b in pts] + sorted(set(pts) - set(BENCH_ORDER))
    n = max(len(benches), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.9 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(benches):]:
        ax.set_visible(False)
    for ax, bench in zip(flat, benches):
        xs, ys = [p[0] for p in pts[bench]], [p[1] for p in pts[bench]]
        ax.plot(xs, ys, "o-", color="tab:blue")
        for lam, score, default, _ in pts[bench]:
            if default:
                ax.plot([lam], [score], marker="*", markersize=14, color="tab:orange", zorder=3)
            ax.annotate(f"{score:.1f}", (lam, score), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
        ax.set_title(BENCH_LABEL.get(bench, bench), fontsize=10)
        ax.set_xlabel("λ (SoLo-RA weight)")
        if len(set(xs)) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 8:
            ax.set_xscale("log", base=2)
            ax.minorticks_off()
        ax.set_xticks(sorted(set(xs)))
        ax.set_xticklabels([f"{x:g}" for x in sorted(set(xs))])
        if len(set(xs)) == 1:
            ax.set_xlim(xs[0] * 0.5, xs[0] * 1.5) if xs[0] > 0 else ax.set_xlim(-1, 1)
        top = max(5.0, max(ys) * 1.2)
        ax.set_ylim(-0.05 * top, top)
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("score")
    if not benches:
        axes[0][0].text(0.5, 0.5, "no evaluated runs", ha="center", va="center", transform=axes[0][0].transAxes)
    title = method_label(method) + (f" on {backbone}" if backbone else "") + ": score vs λ (★ default run)"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out_png, plt, {"backbone": backbone, "method": method, **report_slice(meta, results)}, list(inputs))


def plot_ruler_by_length(results: dict, meta: dict | None, backbone: str, out_png: str, inputs: list[str] = ()) -> None:
    plt = _plt()
    runs = [r for r in sorted(results) if run_info(r, results, meta).backbone == backbone and "ruler" in results[r]]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    lengths: set[int] = set()
    cmap = plt.get_cmap("tab20")
    for k, run in enumerate(runs):
        by_len = {int(n): v for n, v in results[run]["ruler"].get("by_length", {}).items() if v is not None}
        if not by_len:
            continue
        xs = sorted(by_len)
        lengths |= set(xs)
        i = run_info(run, results, meta)
        style = "-" if i.method.startswith("solo_") or i.method == "base" else "--"
        lw = 2.2 if i.method == "base" or (i.method.startswith("solo_") and i.default) else 1.2
        ax.plot(xs, [by_len[x] for x in xs], style, marker="o", markersize=3.5, lw=lw, color=cmap(k % 20),
                label=f"{run} ({method_label(i.method, i.lam, i.default)})" if not i.default or i.method == "base"
                else f"{run}")
    if lengths:
        xs = sorted(lengths)
        if len(xs) > 1 and xs[-1] / xs[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([_len_label(x) for x in xs])
        ax.minorticks_off()
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 + len(runs) // 24)
    else:
        ax.text(0.5, 0.5, "no RULER results", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("RULER QA score")
    ax.set_title("RULER QA by context length" + (f": {backbone}" if backbone else ""), fontsize=11)
    ax.grid(alpha=0.3)
    top = max([v for r in runs for v in results[r]["ruler"].get("by_length", {}).values() if v is not None] + [1])
    ax.set_ylim(0, max(5, math.ceil(top * 1.1)))
    _save(fig, out_png, plt, {"backbone": backbone, **report_slice(meta, results)}, list(inputs))


def _log(log_path: str | None, text: str) -> None:
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(text + "\n")


def write_lambda_sweep(inputs: list[str], out_png: str, backbone: str, method: str, meta: dict | None = None,
                       log_path: str | None = None) -> None:
    results = load_results(inputs)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    plot_lambda_sweep(results, meta, backbone, method, out_png, [r["_path"] for rr in results.values() for r in rr.values()])
    pts = sweep_points(results, meta, backbone, method)
    _log(log_path, f"{out_png}: {method} on {backbone or 'primary'}: "
         + "; ".join(f"{b}: " + ", ".join(f"λ={lam:g} {s:.2f}" for lam, s, _, _ in v) for b, v in pts.items()))


def write_ruler_by_length(inputs: list[str], out_png: str, backbone: str, meta: dict | None = None,
                          log_path: str | None = None) -> None:
    results = load_results(inputs)
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    plot_ruler_by_length(results, meta, backbone, out_png, [r["_path"] for rr in results.values() for r in rr.values()])
    _log(log_path, f"{out_png}: {len(results)} runs")
