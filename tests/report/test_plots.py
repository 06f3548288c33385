"""Plots from hand-made eval JSONs: PNGs with manifests, the right points per lambda."""
import json
from pathlib import Path

import pytest

from solopo.report import plots, tables

PNG = b"\x89PNG\r\n\x1a\n"


def _evals(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    runs = {"base": None, "orpo_long": None, "solo_orpo": 1.0, "solo_orpo_lam0.5": 0.5, "solo_orpo_lam4": 4.0,
            "solo_dpo": 3.0, "llama__solo_orpo": 4.0}
    paths = []
    for i, run in enumerate(runs):
        for bench, doc in (("ruler", {"score": 10.0 + i, "by_length": {"256": 12.0 + i, "512": 8.0 + i}}),
                           ("longbench_v1", {"score": 20.0 + i, "s_doc": 1.0, "m_doc": 2.0, "avg": 20.0 + i})):
            p = folder / f"{run}_{bench}.json"
            p.write_text(json.dumps({"benchmark": bench, "run": run, **doc}))
            paths.append(str(p))
    return paths


META = {"runs": {"solo_orpo": {"backbone": "", "method": "solo_orpo", "lambda": 1.0, "default": True}},
        "backbones": {}}


def test_sweep_points_per_benchmark_sorted_by_lambda(tmp_path):
    results = tables.load_results(_evals(tmp_path / "e"))
    pts = plots.sweep_points(results, META, "", "solo_orpo")
    assert set(pts) == {"ruler", "longbench_v1"}
    assert [(lam, default, run) for lam, _, default, run in pts["ruler"]] == [
        (0.5, False, "solo_orpo_lam0.5"), (1.0, True, "solo_orpo"), (4.0, False, "solo_orpo_lam4")]
    assert pts["ruler"][1][1] == 12.0  # solo_orpo is the 3rd run: score 10 + 2
    # another backbone's runs and other methods stay out
    assert all(run.startswith("solo_orpo") for p in pts.values() for *_, run in p)


def test_lambda_sweep_and_ruler_plots_are_pngs_with_manifests(tmp_path):
    paths = _evals(tmp_path / "e")
    out = tmp_path / "report"
    plots.write_lambda_sweep(paths, str(out / "lambda_sweep_solo_orpo.png"), "", "solo_orpo", META)
    plots.write_ruler_by_length(paths, str(out / "ruler_by_length_tiny.png"), "")
    plots.write_lambda_sweep(paths, str(out / "lambda_sweep_llama__solo_orpo.png"), "llama", "solo_orpo")
    for name in ("lambda_sweep_solo_orpo.png", "ruler_by_length_tiny.png", "lambda_sweep_llama__solo_orpo.png"):
        p = out / name
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 5000
        m = json.loads(Path(str(p) + ".manifest.json").read_text())
        assert m["inputs"] and m["config_hash"]
    assert json.loads((out / "lambda_sweep_solo_orpo.png.manifest.json").read_text())["config"]["method"] == "solo_orpo"
    assert not list(out.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_plots_without_matching_runs_still_write_a_png(tmp_path):
    out = tmp_path / "empty.png"
    plots.write_lambda_sweep([], str(out), "", "solo_simpo")
    plots.write_ruler_by_length([], str(tmp_path / "ruler.png"), "")
    assert out.read_bytes()[:8] == PNG and (tmp_path / "ruler.png").read_bytes()[:8] == PNG


def test_family_of_every_method_and_faceted_ruler_plot(tmp_path):
    from solopo.train.losses import METHODS

    assert plots.family_of("dpo_long") == ("dpo", "long")
    assert plots.family_of("solo_kl_orpo") == ("orpo", "solo_kl")
    assert plots.family_of("solo_simpo_both") == ("simpo", "solo_both")
    assert plots.family_of("sft_expand") == ("sft", "expand") and plots.family_of("longpo") == ("sft", "longpo")
    assert plots.family_of("base") is None
    assert all(plots.family_of(m) for m in METHODS)  # every pipeline method lands in a panel
    curves = [{"method": m, "label": m, "x": [256, 512], "y": [20.0, 10.0]}
              for m in ("base", "orpo_short", "solo_orpo", "dpo_long")]
    fig = plots.facet_by_family(curves, str(tmp_path / "f.png"), "t", "score")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["DPO", "ORPO"]  # one panel per family present, base drawn in each
    assert [len(ax.get_lines()) for ax in fig.axes if ax.get_visible()] == [2, 3]


def _captured(monkeypatch) -> list:
    """The figures the writers save, to read back what is drawn (not only that a PNG exists)."""
    figs = []

    def keep(fig, out_png, plt, slice_, inputs):
        figs.append(fig)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figs


def test_lambda_sweep_draws_each_benchmark_score_against_lambda_with_the_default_starred(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    plots.write_lambda_sweep(_evals(tmp_path / "e"), str(tmp_path / "l.png"), "", "solo_orpo", META)
    axes = [ax for ax in figs[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["LB1 Avg", "RULER Avg"]  # BENCH_ORDER
    ruler = axes[1]
    curve, star = ruler.lines[0], ruler.lines[1]
    # runs solo_orpo_lam0.5 (index 3), solo_orpo (2), solo_orpo_lam4 (4): RULER score 10 + index
    assert list(curve.get_xdata()) == [0.5, 1.0, 4.0] and list(curve.get_ydata()) == [13.0, 12.0, 14.0]
    assert list(star.get_xdata()) == [1.0] and list(star.get_ydata()) == [12.0] and star.get_marker() == "*"
    assert [t.get_text() for t in ruler.get_xticklabels()] == ["0.5", "1", "4"]


def test_ruler_by_length_has_one_panel_per_family_with_the_base_in_each(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    plots.write_ruler_by_length(_evals(tmp_path / "e"), str(tmp_path / "r.png"), "", META)
    axes = [ax for ax in figs[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["DPO", "ORPO"]
    lines = {ax.get_title(): {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in ax.lines}
             for ax in axes}
    base = ([256, 512], [12.0, 8.0])  # run index 0: by_length 12 + 0, 8 + 0
    assert all(any(v == base for v in panel.values()) for panel in lines.values())
    orpo = lines["ORPO"]
    assert ([256, 512], [13.0, 9.0]) in orpo.values()   # orpo_long (index 1)
    assert ([256, 512], [14.0, 10.0]) in orpo.values()  # solo_orpo, the default run (index 2)
    assert len(orpo) == 3  # base, orpo_long, solo_orpo: the λ-sweep runs are left to the λ plot
    assert ([256, 512], [17.0, 13.0]) in lines["DPO"].values() and len(lines["DPO"]) == 2  # solo_dpo (index 5)


def _train_log(path: Path, lam: float, steps: int = 3) -> str:
    """A small SoLo-RA train_log.jsonl: the short side's slope grows with the step, scaled by lam."""
    recs = [{"step": s, "loss": 1.0, "ra_grad/short_chosen": lam * s, "ra_grad/long_chosen": 1.5,
             "avg_logps/short_chosen": -0.1 * s, "avg_logps/long_chosen": -1.0} for s in range(1, steps + 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return str(path)


def test_ra_mechanism_plot_renders_from_a_small_log_with_a_manifest(tmp_path):
    logs = {f"λ={lam:g}": _train_log(tmp_path / f"lam{lam:g}" / "train_log.jsonl", lam) for lam in (0.3, 1.0, 3.0)}
    out = tmp_path / "report" / "ra_mechanism.png"
    plots.write_ra_mechanism(logs, str(out), "SoLo-ORPO", log_path=str(tmp_path / "plot.log"))
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 5000
    m = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert set(m["inputs"]) == set(logs.values()) and m["config"]["runs"] == logs
    assert "λ=3: last |∂RA/∂avg| short 9 long 1.5" in (tmp_path / "plot.log").read_text()


def test_ra_mechanism_plot_draws_each_side_of_each_run(tmp_path, monkeypatch):
    figs = _captured(monkeypatch)
    logs = {f"λ={lam:g}": _train_log(tmp_path / f"{lam}.jsonl", lam) for lam in (0.3, 3.0)}
    plots.write_ra_mechanism(logs, str(tmp_path / "m.png"), "t")
    grad, logp = figs[0].axes
    lines = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata()), ln.get_linestyle()) for ln in grad.lines}
    assert lines["λ=3 short"] == ([1.0, 2.0, 3.0], [3.0, 6.0, 9.0], "-")
    assert lines["λ=0.3 long"] == ([1.0, 2.0, 3.0], [1.5, 1.5, 1.5], "--") and len(lines) == 4
    short = next(ln for ln in logp.lines if ln.get_label() == "λ=0.3 short")
    assert list(short.get_ydata()) == pytest.approx([-0.1, -0.2, -0.3])


def test_ra_mechanism_of_a_log_without_the_ra_keys_names_the_file_and_key(tmp_path):
    p = tmp_path / "orpo_short" / "train_log.jsonl"
    p.parent.mkdir()
    p.write_text(json.dumps({"step": 1, "loss": 0.7}) + "\n")
    with pytest.raises(ValueError) as e:
        plots.write_ra_mechanism({"orpo": str(p)}, str(tmp_path / "x.png"), "t")
    assert str(e.value).startswith(f"{p}: record 1 (step 1) has no number under 'ra_grad/short_chosen';")
    assert "\n" not in str(e.value) and not (tmp_path / "x.png").exists()
    p.write_text("")
    with pytest.raises(ValueError, match="no training records"):
        plots.write_ra_mechanism({"orpo": str(p)}, str(tmp_path / "x.png"), "t")
