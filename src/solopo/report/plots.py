"""Plots (matplotlib, Agg, PNG) from the eval JSONs, and from training logs for the RA mechanism.

- `plot_lambda_sweep`: one figure per SoLo method (and backbone), one panel per benchmark,
  score vs lambda (the SoLo-RA weight, alpha in the paper); the default run is a filled star.
- `plot_ruler_by_length`: one figure per backbone, RULER QA score vs context length, one panel per
  PO family (`facet_by_family`, also used by the toy-science report).

Both take the same `{run: {bench: result}}` and optional run metadata as `solopo.report.tables`.

- `plot_ra_mechanism`: from SoLo-RA runs' train_log.jsonl, over training steps, the size of the RA
  gradient on the short and the long side and the chosen response's per-token log-prob on each.
"""
from __future__ import annotations

import math
from pathlib import Path

from solopo.artifacts import atomic_path, read_jsonl, write_manifest
from solopo.report.tables import BENCH_LABEL, BENCH_ORDER, length_label, load_results, method_label, report_slice, run_info


def pyplot():
    """matplotlib.pyplot on the Agg backend (cluster nodes have no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_png(fig, path, plt) -> None:
    """Save `fig` as a PNG (atomically: a killed job leaves no half-written file) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def save_figure(fig, out_png: str, plt, slice_: dict, inputs: list[str]) -> None:
    """`write_png` with the PNG's manifest (config slice and inputs)."""
    write_manifest(out_png, slice_, inputs)
    write_png(fig, out_png, plt)


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
    plt = pyplot()
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
    save_figure(fig, out_png, plt, {"backbone": backbone, "method": method, **report_slice(meta, results)}, list(inputs))


# one panel per PO family; within a panel one colour per data regime, the SoLo default run thickest
FAMILIES = (("dpo", "DPO"), ("simpo", "SimPO"), ("orpo", "ORPO"), ("sft", "SFT / LongPO"))
REGIME_STYLE = {"short": ("tab:orange", "--"), "long": ("tab:red", "--"), "expand": ("tab:purple", "--"),
                "solo": ("tab:blue", "-"), "solo_both": ("tab:cyan", "-"), "solo_kl": ("tab:green", "-"),
                "solo_sg": ("tab:olive", "-"),
                "longpo": ("tab:brown", "-"), "base": ("black", ":")}


def family_of(method: str) -> tuple[str, str] | None:
    """(family, regime) of a method: dpo_long -> (dpo, long), solo_kl_orpo -> (orpo, solo_kl), solo_orpo_sg -> (orpo, solo_sg),
    sft_short -> (sft, short), longpo -> (sft, longpo) (the panel of the SFT baselines); base -> None."""
    if method == "base":
        return None
    if method == "longpo":
        return "sft", "longpo"
    for prefix, regime in (("solo_kl_", "solo_kl"), ("solo_", "solo")):
        if method.startswith(prefix):
            fam = method[len(prefix):]
            if fam.endswith("_both"):
                return fam[:-5], "solo_both"
            if fam.endswith("_sg"):
                return fam[:-3], "solo_sg"
            return fam, regime
    fam, _, data = method.rpartition("_")
    return (fam, data) if fam and data in ("short", "long", "expand") else None


def facet_by_family(curves: list[dict], out_png: str, title: str, ylabel: str, plt=None) -> None:
    """curves: [{"method", "label", "x": [...], "y": [...], "lo": [...] | None, "hi": [...] | None,
    "default": bool}] -> one panel per PO family (the base model, if present, drawn in every panel);
    lo/hi draw an interval band. Panels without curves are left out."""
    plt = plt or pyplot()
    base = [c for c in curves if c["method"] == "base"]
    panels = []
    for fam, fam_label in FAMILIES:
        members = sorted(((c, family_of(c["method"])[1]) for c in curves if (family_of(c["method"]) or ("",))[0] == fam),
                         key=lambda cr: (list(REGIME_STYLE).index(cr[1]), not cr[0].get("default", True)))
        if members:
            panels.append((fam_label, members))
    n = max(1, len(panels))
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    xs_all = sorted({x for c in curves for x in c["x"]})
    top = max([v for c in curves for v in (c.get("hi") or c["y"]) if v is not None] + [1])
    for ax, (fam_label, members) in zip(flat, panels):
        for c, regime in [(b, "base") for b in base] + members:
            colour, ls = REGIME_STYLE[regime]
            lw = 2.4 if regime == "solo" and c.get("default", True) else 1.3
            ax.plot(c["x"], c["y"], ls, marker="o", markersize=3.5, lw=lw, color=colour, label=c["label"],
                    alpha=1.0 if c.get("default", True) else 0.55)
            if c.get("lo") and c.get("hi"):
                ax.fill_between(c["x"], c["lo"], c["hi"], color=colour, alpha=0.15, lw=0)
        ax.set_title(fam_label, fontsize=10)
        if len(xs_all) > 1 and xs_all[-1] / xs_all[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs_all)
        ax.set_xticklabels([length_label(x) for x in xs_all])
        ax.minorticks_off()
        ax.set_xlabel("context length (tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for row in axes:
        row[0].set_ylabel(ylabel)
    if not panels:
        flat[0].set_visible(True)
        flat[0].text(0.5, 0.5, "no results", ha="center", va="center", transform=flat[0].transAxes)
    flat[0].set_ylim(0, max(5, math.ceil(top * 1.1)))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_ruler_by_length(results: dict, meta: dict | None, backbone: str, out_png: str, inputs: list[str] = ()) -> None:
    """RULER QA score vs context length, one panel per PO family: the family's short / long / expand
    baselines against its SoLo variants, the base model in every panel (λ-sweep runs other than the
    default are left to the λ plot)."""
    plt = pyplot()
    curves = []
    for run in sorted(results):
        i = run_info(run, results, meta)
        if i.backbone != backbone or "ruler" not in results[run] or not i.default:
            continue
        by_len = {int(n): v for n, v in results[run]["ruler"].get("by_length", {}).items() if v is not None}
        if by_len and (i.method == "base" or family_of(i.method)):
            xs = sorted(by_len)
            curves.append({"method": i.method, "label": method_label(i.method, i.lam, i.default), "x": xs,
                           "y": [by_len[x] for x in xs]})
    fig = facet_by_family(curves, out_png, "RULER QA by context length" + (f": {backbone}" if backbone else ""),
                          "RULER QA score", plt)
    save_figure(fig, out_png, plt, {"backbone": backbone, **report_slice(meta, results)}, list(inputs))


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


# --------------------------------------------------------------------------- the SoLo-RA mechanism
# Logged per step by the SoLo-RA losses (solopo.train.rewards.ra_gradient_metrics): how hard the RA
# term pushes the chosen response's length-averaged log-prob on each side, and those log-probs.
RA_GRAD = {"short": "ra_grad/short_chosen", "long": "ra_grad/long_chosen"}
RA_AVG_LOGP = {"short": "avg_logps/short_chosen", "long": "avg_logps/long_chosen"}


def ra_mechanism_series(records: list[dict], source: str) -> dict[str, list[float]]:
    """{"step": [...], key: [...]} for the RA_GRAD and RA_AVG_LOGP keys of a train_log.jsonl's records.
    A record without one of them (a run without the RA term, or logged before they existed) stops with
    one line naming `source`, the step and the key, instead of a curve with holes."""
    keys = list(RA_GRAD.values()) + list(RA_AVG_LOGP.values())
    out: dict[str, list[float]] = {"step": [], **{k: [] for k in keys}}
    for i, rec in enumerate(records):
        missing = [k for k in ["step"] + keys if not isinstance(rec.get(k), (int, float))]
        if missing:
            raise ValueError(f"{source}: record {i + 1} (step {rec.get('step', '?')}) has no number under {missing[0]!r}; "
                             "the RA mechanism is logged by the SoLo-RA runs (solo_dpo, solo_simpo, solo_orpo and _both)")
        for k in ["step"] + keys:
            out[k].append(float(rec[k]))
    if not out["step"]:
        raise ValueError(f"{source}: no training records")
    return out


def plot_ra_mechanism(series: dict[str, dict[str, list[float]]], out_png: str, title: str,
                      inputs: list[str] = (), slice_: dict | None = None) -> None:
    """Two panels over training steps, one colour per run (e.g. one per λ): left |∂RA/∂avg| on the
    short (solid) and long (dashed) side, right the chosen response's length-averaged log-prob avg on
    each side. `series`: {label: ra_mechanism_series(...)}."""
    plt = pyplot()
    fig, (ax_g, ax_p) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, s) in enumerate(series.items()):
        c = colours[i % len(colours)]
        for side, ls in (("short", "-"), ("long", "--")):
            ax_g.plot(s["step"], s[RA_GRAD[side]], ls, color=c, lw=1.4, label=f"{label} {side}")
            ax_p.plot(s["step"], s[RA_AVG_LOGP[side]], ls, color=c, lw=1.4, label=f"{label} {side}")
    ax_g.set_ylabel("|∂RA/∂avg| per example (RA term, no λ)")
    ax_p.set_ylabel("avg = log π(y_w|x) / |y_w|")
    for ax, name in ((ax_g, "RA gradient per side"), (ax_p, "chosen log-prob per token")):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title + " (solid: x_short, dashed: x_long)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out_png, plt, slice_ or {"runs": list(series)}, list(inputs))


def write_ra_mechanism(logs: dict[str, str], out_png: str, title: str, log_path: str | None = None) -> None:
    """`logs`: {label: path of a run's train_log.jsonl} -> the RA-mechanism figure and its manifest."""
    series = {label: ra_mechanism_series(read_jsonl(path), path) for label, path in logs.items()}
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    plot_ra_mechanism(series, out_png, title, list(logs.values()), {"runs": dict(logs)})
    _log(log_path, f"{out_png}: " + "; ".join(
        f"{label}: last |∂RA/∂avg| short {s[RA_GRAD['short']][-1]:.3g} long {s[RA_GRAD['long']][-1]:.3g}"
        for label, s in series.items()))
