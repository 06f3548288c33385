"""Statistics over seeds and the seeds page (rule report_seeds; the toy-science preset's page).

Input: one record per (run, seed), built by `dag_records` from the pipeline's own artifacts — the
eval JSON and predictions of each (run, seed) (rule evaluate) and the trained model's manifest
(rule train: wall seconds, steps, tokens processed): the run's method and λ, its training cost and,
per benchmark, the per-item scores (RULER: 0/100 per item keyed by set, length and index;
LongBench v1: F1 per item).

Statistics, per run and score (RULER at each length, RULER overall, LongBench v1):
- the mean over seeds with a 95 % t-interval over seeds (what another seed of the same recipe gives);
- against each baseline, a paired bootstrap over test items: each item's score averaged over the
  seeds of each run (pooled seeds), the mean item difference, its 95 % percentile interval and a
  two-sided p-value (the share of resampled mean differences, centred on the observed one, at least
  as far from zero as the observed one). Item resampling is what the test set size resolves.

`answer_paragraph` turns the comparisons into the page's opening paragraph (which differences have
intervals excluding zero), so it changes when the numbers do.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

# two-sided 97.5 % t quantiles by degrees of freedom (no scipy needed)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042}


def t975(df: int) -> float:
    if df <= 0:
        return float("nan")
    if df > 30:
        return 1.96
    return T975[max(k for k in T975 if k <= df)]  # between table entries: the smaller df (wider interval)


def seed_interval(values: list[float]) -> dict:
    """Mean over seeds and its 95 % t-interval (half-width nan for a single seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "lo": None, "hi": None, "n_seeds": n, "sd": None}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n_seeds": n, "sd": sd}


def paired_bootstrap(a: dict[str, list[float]], b: dict[str, list[float]], resamples: int = 2000,
                     seed: int = 0) -> dict | None:
    """a, b: {item: [score per seed]}. Mean over shared items of (mean_seeds a - mean_seeds b), its 95 %
    percentile interval over item resamples, and the two-sided bootstrap p-value."""
    import numpy as np

    items = sorted(set(a) & set(b))
    if not items:
        return None
    d = np.array([sum(a[i]) / len(a[i]) - sum(b[i]) / len(b[i]) for i in items], dtype=float)
    obs = float(d.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(resamples, len(d)))
    boot = d[idx].mean(axis=1)
    lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    # under H0 (no difference) the centred resampling distribution is boot - obs
    p = float((1 + np.sum(np.abs(boot - obs) >= abs(obs))) / (resamples + 1)) if obs != 0 else 1.0
    return {"delta": obs, "lo": lo, "hi": hi, "p": p, "n_items": len(items),
            "resolved": bool(lo > 0 or hi < 0)}


# --------------------------------------------------------------------------------------------------
# Loading and aggregation
# --------------------------------------------------------------------------------------------------


def load_runs(records) -> dict[str, list[dict]]:
    """{run: [record per seed]} from per-(run, seed) records (dicts, or paths of JSON files holding one)."""
    out: dict[str, list[dict]] = {}
    recs = [r if isinstance(r, dict) else json.loads(Path(r).read_text()) for r in records]
    for rec in recs:
        out.setdefault(rec["run"], []).append(rec)
    for recs in out.values():
        recs.sort(key=lambda r: r["seed"])
    return out


def score_keys(runs: dict[str, list[dict]]) -> list[str]:
    """Score names: ruler@<length> for each length, ruler (all lengths), longbench_v1."""
    lengths = sorted({int(L) for recs in runs.values() for r in recs
                      for L in (r["eval"].get("ruler", {}).get("by_length") or {})})
    keys = [f"ruler@{L}" for L in lengths]
    if any("ruler" in r["eval"] for recs in runs.values() for r in recs):
        keys.append("ruler")
    if any("longbench_v1" in r["eval"] for recs in runs.values() for r in recs):
        keys.append("longbench_v1")
    return keys


def items_of(rec: dict, key: str) -> dict[str, float]:
    bench, _, length = key.partition("@")
    items = (rec["eval"].get(bench) or {}).get("items") or {}
    if length:
        return {k: v for k, v in items.items() if k.split("|")[1] == length}
    return items


def summary(runs: dict[str, list[dict]]) -> dict:
    """{run: {key: seed_interval(...)}, plus cost} — the per-seed score is the mean over items."""
    out = {}
    for run, recs in runs.items():
        row = {"method": recs[0]["method"], "lambda": recs[0].get("lambda"), "seeds": [r["seed"] for r in recs]}
        for key in score_keys(runs):
            vals = [sum(it.values()) / len(it) for it in (items_of(r, key) for r in recs) if it]
            if vals:
                row[key] = seed_interval(vals)
        costs = [r.get("train") or {} for r in recs]
        row["train_seconds"] = _mean([c.get("seconds") for c in costs])
        row["train_tokens"] = _mean([c.get("tokens") for c in costs])
        row["train_steps"] = _mean([c.get("steps") for c in costs])
        out[run] = row
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def comparisons(runs: dict[str, list[dict]], pairs: list[tuple[str, str]], resamples: int = 2000) -> list[dict]:
    """Paired bootstrap of run A against baseline B on every score key both have."""
    out = []
    for a, b in pairs:
        if a not in runs or b not in runs:
            continue
        for k, key in enumerate(score_keys(runs)):
            ia = [items_of(r, key) for r in runs[a]]
            ib = [items_of(r, key) for r in runs[b]]
            pa = {i: [x[i] for x in ia if i in x] for i in set().union(*ia)}
            pb = {i: [x[i] for x in ib if i in x] for i in set().union(*ib)}
            res = paired_bootstrap(pa, pb, resamples, seed=k)
            if res:
                out.append({"run": a, "baseline": b, "score": key, **res})
    return out


# --------------------------------------------------------------------------------------------------
# The answer and the page
# --------------------------------------------------------------------------------------------------


def _label(run: str, runs_meta: dict) -> str:
    from solopo.report.tables import method_label

    m = runs_meta.get(run) or {}
    return method_label(m.get("method", run), m.get("lambda"), m.get("default", True)) if m else run


def answer_paragraph(comps: list[dict], meta: dict, primary: str = "solo_orpo") -> str:
    """One paragraph from the numbers: which of the primary run's differences are resolved."""
    mine = [c for c in comps if c["run"] == primary]
    if not mine:
        return f"No comparison of {primary} was computed (no results)."
    res = [c for c in mine if c["resolved"]]
    unres = [c for c in mine if not c["resolved"]]

    def fmt(c):
        return (f"{c['score']} vs {_label(c['baseline'], meta)} {c['delta']:+.1f} "
                f"[{c['lo']:+.1f}, {c['hi']:+.1f}], p={c['p']:.3f}")

    better = [c for c in res if c["delta"] > 0]
    worse = [c for c in res if c["delta"] < 0]
    n_seeds = meta.get("_n_seeds")
    parts = [(f"**Answer (generated from the numbers below{f', {n_seeds} seeds' if n_seeds else ''}).** "
              f"Of {len(mine)} comparisons of {_label(primary, meta)} with its baselines (paired bootstrap over "
              f"test items, 95 % intervals), {len(res)} are resolved (interval excludes zero) and "
              f"{len(unres)} are not.")]
    if better:
        parts.append(f"{_label(primary, meta)} is better on: " + "; ".join(fmt(c) for c in better) + ".")
    if worse:
        parts.append("It is worse on: " + "; ".join(fmt(c) for c in worse) + ".")
    if unres:
        parts.append("Not resolved: " + "; ".join(fmt(c) for c in unres[:12])
                     + (f"; and {len(unres) - 12} more" if len(unres) > 12 else "") + ".")
    return " ".join(parts)


def _ci(x: dict | None, nd: int = 1) -> str:
    if not x:
        return "–"
    if x["lo"] is None:
        return f"{x['mean']:.{nd}f}"
    return f"{x['mean']:.{nd}f} [{x['lo']:.{nd}f}, {x['hi']:.{nd}f}]"


DEFAULT_TITLE = "Scores over seeds: mean, seed intervals and paired comparisons"


def markdown(summ: dict, comps: list[dict], meta: dict, keys: list[str], answer: str, settings: dict,
             plots: list[str]) -> str:
    tuned = ("tuned on a held-out dev split" if settings.get("lr_tuned_on_dev")
             else "NOT tuned on a dev split: set report.lr_tuned_on_dev once they are")
    L = [f"# {settings.get('title') or DEFAULT_TITLE}", "", answer, "",
         f"Learning rates: {settings.get('learning_rates')} ({tuned}).",
         (f"Seeds {settings.get('seeds', '–')} vary the pair selection and the training data order; the backbone, "
          "the samples and the test items are shared (one sampling job per context length)."),
         f"Training-set sizes (rows) per seed: {settings.get('training_set_sizes', '–')}.", "",
         "## Scores (mean over seeds [95 % t-interval over seeds]) and training cost", "",
         "| run | " + " | ".join(keys) + " | train s | tokens | steps |",
         "|---|" + "---|" * (len(keys) + 3)]
    for run, row in summ.items():
        tok = f"{row['train_tokens']:,.0f}" if row.get("train_tokens") else "–"
        secs = f"{row['train_seconds']:.0f}" if row.get("train_seconds") else "–"
        steps = f"{row['train_steps']:.0f}" if row.get("train_steps") else "–"
        L.append(f"| {_label(run, meta)} | " + " | ".join(_ci(row.get(k)) for k in keys) + f" | {secs} | {tok} | {steps} |")
    L += ["", "## Paired bootstrap over items (seeds pooled): run − baseline", "",
          "| run | baseline | score | Δ | 95 % interval | p | resolved |", "|---|---|---|---|---|---|---|"]
    for c in comps:
        L.append(f"| {_label(c['run'], meta)} | {_label(c['baseline'], meta)} | {c['score']} | {c['delta']:+.2f} | "
                 f"[{c['lo']:+.2f}, {c['hi']:+.2f}] | {c['p']:.3f} | {'yes' if c['resolved'] else 'no'} |")
    L += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(L) + "\n"


def plot_all(summ: dict, meta: dict, keys: list[str], out_dir: Path, stem: str = "seeds") -> list[str]:
    """Score vs length per family (intervals), the λ curve (intervals), long-context score vs cost:
    `<stem>_ruler_by_length.png`, `<stem>_lambda.png`, `<stem>_cost.png` in `out_dir`."""
    from solopo.report.plots import facet_by_family, pyplot, write_png

    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    lengths = [int(k.split("@")[1]) for k in keys if k.startswith("ruler@")]
    curves = []
    for run, row in summ.items():
        m = meta.get(run) or {"method": row["method"], "default": True}
        if not m.get("default", True) or not lengths:
            continue
        pts = [(L, row.get(f"ruler@{L}")) for L in lengths if row.get(f"ruler@{L}")]
        curves.append({"method": row["method"], "label": _label(run, meta), "x": [p[0] for p in pts],
                       "y": [p[1]["mean"] for p in pts],
                       "lo": [p[1]["lo"] if p[1]["lo"] is not None else p[1]["mean"] for p in pts],
                       "hi": [p[1]["hi"] if p[1]["hi"] is not None else p[1]["mean"] for p in pts]})
    p = out_dir / f"{stem}_ruler_by_length.png"
    fig = facet_by_family(curves, str(p), "RULER QA vs context length (mean over seeds, 95 % interval)", "RULER QA", plt)
    write_png(fig, p, plt)
    paths.append(str(p))

    # λ curve of SoLo-ORPO: every score key, intervals over seeds
    lam_runs = sorted(((row["lambda"], run) for run, row in summ.items()
                       if row["method"] == "solo_orpo" and row["lambda"] is not None))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * max(1, len(keys)), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        xs = [lam for lam, run in lam_runs if summ[run].get(key)]
        ys = [summ[run][key] for lam, run in lam_runs if summ[run].get(key)]
        if xs:
            err = [[y["mean"] - (y["lo"] if y["lo"] is not None else y["mean"]) for y in ys],
                   [(y["hi"] if y["hi"] is not None else y["mean"]) - y["mean"] for y in ys]]
            ax.errorbar(xs, [y["mean"] for y in ys], yerr=err, fmt="o-", capsize=3, color="tab:blue")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{x:g}" for x in xs])
            ax.set_ylim(0, max(5.0, 1.1 * max(y["hi"] if y["hi"] is not None else y["mean"] for y in ys)))
        ax.set(title=key, xlabel="λ (SoLo-RA weight)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score")
    fig.suptitle("SoLo-ORPO: score vs λ (mean over seeds, 95 % interval)", fontsize=10)
    fig.tight_layout()
    p = out_dir / f"{stem}_lambda.png"
    write_png(fig, p, plt)
    paths.append(str(p))

    # the longest RULER length against the training tokens
    key = f"ruler@{max(lengths)}" if lengths else (keys[0] if keys else None)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run, row in summ.items():
        if key and row.get(key) and row.get("train_tokens"):
            y = row[key]
            yerr = [[y["mean"] - y["lo"]], [y["hi"] - y["mean"]]] if y["lo"] is not None else None
            ax.errorbar([row["train_tokens"] / 1e6], [y["mean"]], yerr=yerr, fmt="o", capsize=3)
            ax.annotate(_label(run, meta), (row["train_tokens"] / 1e6, y["mean"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 3))
    ax.set(xlabel="training tokens processed (millions, mean over seeds)", ylabel=f"{key} score",
           title=f"{key} vs training cost (mean over seeds, 95 % interval)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out_dir / f"{stem}_cost.png"
    write_png(fig, p, plt)
    paths.append(str(p))
    return paths


def write_report(records, out_md: str | Path, settings: dict, baselines: list[str], primary: str = "solo_orpo",
                 resamples: int = 2000, train_logs: dict[str, str] | None = None) -> dict:
    """Statistics + page + plots (named after the page: `<stem>_*.png`); also `<out_md>.json` with
    every number. `records`: per-(run, seed) records (`dag_records`) or JSON files holding one each.
    `train_logs`: {run: train_log.jsonl} of SoLo-RA runs (`findings.ra_plot_runs`): the RA-mechanism plot
    and the logged gradients in the findings. The page opens with the findings (solopo.report.findings)."""
    from solopo.report import findings
    from solopo.report.plots import write_ra_mechanism

    runs = load_runs(records)
    meta = {run: {"method": recs[0]["method"], "lambda": recs[0].get("lambda"), "default": recs[0].get("default", True)}
            for run, recs in runs.items()}
    meta["_n_seeds"] = max((len(v) for v in runs.values()), default=0)
    keys = score_keys(runs)
    summ = summary(runs)
    solo = [r for r in runs if runs[r][0]["method"].startswith("solo_")]
    headroom_runs = settings.get("headroom_runs") or list(findings.HEADROOM_RUNS)
    pairs = [(a, b) for a in solo for b in list(baselines) + list(findings.LONG_BASELINES) if b in runs]
    pairs += [(a, primary) for a in solo if a != primary and primary in runs]
    pairs += [(h, "base") for h in headroom_runs if h in runs] + findings.lambda_pairs(meta)
    comps = comparisons(runs, list(dict.fromkeys(pairs)), resamples)
    shown = [c for c in comps if (c["run"], c["baseline"]) in
             {(a, b) for a in solo for b in baselines} | {(a, primary) for a in solo}]
    label = lambda run: _label(run, meta)  # noqa: E731
    longest = findings.longest_ruler_key(keys)
    room = findings.headroom(comps, longest, headroom_runs)
    versus = findings.versus_long_baselines(comps, longest, solo)
    collapse = findings.lambda_collapse(comps, meta, "ruler" if "ruler" in keys else longest)
    grads = findings.ra_gradients(train_logs or {})
    answer = "\n\n".join(t for t in (
        findings.headroom_text(room, label), answer_paragraph(shown, meta, primary), findings.versus_text(versus, label),
        findings.collapse_text(collapse, grads, meta, label, "ruler" if "ruler" in keys else longest)) if t)
    out_md = Path(out_md)
    plots = plot_all(summ, meta, keys, out_md.parent, out_md.stem)
    if train_logs:
        ra_png = out_md.parent / f"{out_md.stem}_ra_mechanism.png"
        write_ra_mechanism({label(r): p for r, p in train_logs.items()}, str(ra_png),
                           "SoLo-RA: the RA gradient and the chosen log-prob per side over training (first seed)")
        plots.append(str(ra_png))
    out_md.write_text(markdown(summ, shown, meta, keys, answer, settings, plots))
    result = {"summary": summ, "comparisons": comps, "answer": answer, "keys": keys, "settings": settings,
              "plots": plots, "headroom": room, "versus_long_baselines": versus, "lambda_collapse": collapse,
              "ra_gradients": grads}
    Path(str(out_md) + ".json").write_text(json.dumps(result, indent=2, default=str))
    return result


# --------------------------------------------------------------------------------------------------
# Records from the pipeline's artifacts (rule report_seeds)
# --------------------------------------------------------------------------------------------------

# The suites with per-item scores the paired bootstrap needs (solopo.eval.BENCHES, `item_scores`),
# in the page's column order.
SEED_BENCHES = ("ruler", "longbench_v1")


def item_scores(bench: str, result: dict, preds: list[dict]) -> dict[str, float]:
    """{item key: score} of one evaluation, from its suite's `item_scores` entry point (RULER: 0/100 per
    item by its primary metric; LongBench v1: the item's F1)."""
    from solopo.eval import BENCHES

    if bench not in SEED_BENCHES or not BENCHES[bench].item_scores:
        raise ValueError(f"{bench}: no per-item scores for the seeds page; allowed: {', '.join(SEED_BENCHES)}")
    return BENCHES[bench].module.item_scores(result, preds)


def _read_eval(path: str) -> dict:
    from solopo.artifacts import DataError

    try:
        res = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable eval JSON ({e}); delete it and rerun snakemake to re-evaluate") from None
    if not isinstance(res, dict) or "benchmark" not in res or "run" not in res:
        raise DataError(f"{path}: not an eval JSON (no benchmark/run keys); delete it and rerun snakemake")
    return res


def _train_cost(model_dir: str | None) -> dict | None:
    """Wall seconds, steps, tokens and final loss of a training from its model folder's manifest."""
    if not model_dir:
        return None
    from solopo.artifacts import DataError

    man = Path(model_dir) / "manifest.json"
    try:
        stats = json.loads(man.read_text())["stats"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise DataError(f"{man}: no training statistics ({e!r}); rerun the run's training") from None
    return {"seconds": stats.get("train_seconds"), "steps": stats.get("steps"), "tokens": stats.get("tokens"),
            "final_loss": stats.get("final_loss"), "rows": stats.get("examples")}


def dag_records(evals: list[str], models: dict[str, str], meta: dict[str, dict]) -> list[dict]:
    """One record per (run, seed). `evals`: eval JSON paths (`results/eval/<run>_<bench>.json`, the
    predictions beside each); `models`: {run name: trained model folder}; `meta`: {run name (with its
    seed tag): {run, seed, method, lambda, default}} (solopo.config.seeded_runs, via the rule's params)."""
    from solopo.artifacts import read_jsonl

    recs: dict[str, dict] = {}
    for path in evals:
        res = _read_eval(path)
        name, bench = res["run"], res["benchmark"]
        if name not in meta:
            raise ValueError(f"{path}: run {name!r} is not in the config's run table")
        if bench not in SEED_BENCHES:
            continue
        preds = read_jsonl(str(path).replace(".json", ".predictions.jsonl"))
        items = item_scores(bench, res, preds)
        m = meta[name]
        rec = recs.setdefault(name, {"run": m["run"], "seed": m["seed"], "method": m["method"], "lambda": m["lambda"],
                                     "default": m["default"], "eval": {}, "train": _train_cost(models.get(name))})
        rec["eval"][bench] = {"score": res.get("score"), "items": items}
        if bench == "ruler":  # the lengths the page's per-length columns come from (score_keys)
            by_len: dict[str, list[float]] = {}
            for key, v in items.items():
                by_len.setdefault(key.split("|")[1], []).append(v)
            rec["eval"][bench]["by_length"] = {L: sum(v) / len(v) for L, v in by_len.items()}
    return sorted(recs.values(), key=lambda r: (r["run"], r["seed"]))


def seeds_meta(config: dict) -> dict[str, dict]:
    """{run name with seed tag: {run, seed, method, lambda, default}} for every (run, seed) of the config."""
    from solopo.config import run_seed, seeded_runs, split_seed_tag

    primary = config["backbones"][0]["name"]
    out = {}
    for name, r in seeded_runs(config).items():
        base = split_seed_tag(name)[0]
        prefix = "" if r.backbone == primary else f"{r.backbone}__"
        out[name] = {"run": base, "seed": None if r.method == "base" else run_seed(config, r), "method": r.method,
                     "lambda": r.lam, "default": base == prefix + r.method}
    return out


def page_settings(config: dict) -> dict:
    """What the page states and compares: report.* with defaults, the learning rates and the seeds."""
    from solopo.config import train_seeds

    rep = config.get("report") or {}
    o = config["train"]["optim"]
    return {"title": rep.get("title", DEFAULT_TITLE), "baselines": list(rep.get("baselines", ["base"])),
            "primary": rep.get("primary", "solo_orpo"), "bootstrap_resamples": int(rep.get("bootstrap_resamples", 2000)),
            "lr_tuned_on_dev": bool(rep.get("lr_tuned_on_dev", False)), "seeds": train_seeds(config),
            "headroom_runs": list(rep.get("headroom_runs", ["sft_long", "orpo_long"])),
            "learning_rates": {"sft": o.get("sft_learning_rate", o["learning_rate"]), "po": o["learning_rate"],
                               **({"solo": o["solo_learning_rate"]} if "solo_learning_rate" in o else {})}}


def write_seeds_page(evals: list[str], models: dict[str, str], out_md: str, meta: dict, settings: dict,
                     log_path: str | None = None) -> dict:
    """The body of rule report_seeds: records from the DAG's artifacts, statistics, page and plots."""
    import logging

    from solopo.jobs import job

    with job(log_path, "report_seeds") if log_path else _nullcontext():
        if not evals:
            raise ValueError(f"eval.benchmarks: the seeds page needs per-item scores of {' or '.join(SEED_BENCHES)}; "
                             "allowed: a list that holds one of them when train.seeds has more than one seed")
        recs = dag_records(evals, models, meta)
        sizes: dict = {}
        for r in recs:
            if r["train"] and r["train"].get("rows") is not None:
                sizes.setdefault(r["seed"], {})[r["method"]] = r["train"]["rows"]
        page = {k: settings[k] for k in ("title", "learning_rates", "lr_tuned_on_dev", "seeds", "headroom_runs")}
        from solopo.report.findings import ra_plot_runs

        logs = {meta[n]["run"]: str(Path(models[n]) / "train_log.jsonl") for n in ra_plot_runs(meta)}
        res = write_report(recs, out_md, {**page, "training_set_sizes": sizes}, settings["baselines"],
                           settings["primary"], settings["bootstrap_resamples"], logs)
        logging.getLogger("solopo").info("seeds page %s: %s", out_md, res["answer"])
        return res


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()
