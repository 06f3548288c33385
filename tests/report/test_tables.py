"""Report tables from a folder of hand-made eval JSONs alone (no config, no manifests, no models)."""
import csv
import io
import json
from pathlib import Path

import pytest

from solopo.report import reference, tables

RUNS = ["base", "sft_short", "orpo_short", "orpo_long", "solo_orpo", "solo_orpo_lam0.5", "solo_orpo_lam2",
        "solo_orpo_both", "solo_kl_orpo", "orpo_expand", "llama__base", "llama__solo_orpo"]


def _score(run: str, k: int) -> float:
    """A distinct, recognisable number per run and field."""
    return round(10 + RUNS.index(run) + k / 10, 2)


def _write_evals(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in RUNS:
        s = lambda k: _score(run, k)  # noqa: E731
        docs = {
            "longbench_v1": {"score": s(3), "s_doc": s(1), "m_doc": s(2), "avg": s(3),
                             "subsets": {"narrativeqa": s(1)}},
            "ruler": {"score": s(6), "by_length": {"4096": s(4), "8192": s(5)}, "by_set": {"squad": s(6)},
                      "subsets": {}},
            "longbench_v2": {"score": s(7), "overall": s(7), "easy": s(8), "hard": s(9), "short": s(1),
                             "medium": s(2), "long": s(3), "subsets": {}},
            "niah_plus": {"score": s(5), "subsets": {"single_doc": s(4), "multi_doc": s(6)}},
            # subsets as a run configured with the math-verify / prompt-level figures would write them: Table 4
            # reads IFEval and MATH by metric name, so these two subsets must not reach it
            "leaderboard": {"score": s(9), "subsets": {"mmlu_pro": s(1), "ifeval": s(6), "bbh": s(3), "math": s(7),
                                                       "gpqa": s(5)},
                            "ifeval_metrics": {"inst_level_strict_acc": s(2), "inst_level_loose_acc": s(8),
                                               "prompt_level_strict_acc": s(6)},
                            "math_metrics": {"exact_match_original": s(4), "exact_match": s(7)}},
        }
        for bench, doc in docs.items():
            p = folder / f"{run}_{bench}.json"
            p.write_text(json.dumps({"benchmark": bench, "run": run, **doc}))
            paths.append(str(p))
    (folder / "pair_stats.json").write_text(json.dumps({"short": {"yield": 0.3}}))  # ignored: not an eval JSON
    return paths + [str(folder / "pair_stats.json")]


@pytest.fixture()
def built(tmp_path):
    paths = _write_evals(tmp_path / "evals")
    out = tmp_path / "report"
    written = tables.write_tables(paths, str(out))
    return out, written


def _csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_every_table_is_written_in_three_formats_with_manifests(built):
    out, written = built
    for name in tables.TABLE_NAMES:
        for fmt in tables.FORMATS:
            p = out / f"{name}.{fmt}"
            assert p.exists() and p.stat().st_size > 0
            m = json.loads(Path(str(p) + ".manifest.json").read_text())
            assert len(m["inputs"]) == len(RUNS) * 5 and m["config"]["runs"] == sorted(RUNS)
    assert set(written) == set(tables.output_paths(str(out)))
    summary = _csv_rows(out / "summary.csv")
    assert [r["run"] for r in summary] == sorted(RUNS)
    assert float(summary[0]["ruler"]) == _score(sorted(RUNS)[0], 6)


def test_table3_layout_values_order_and_paper_rows_below(built):
    out, _ = built
    md = (out / "table3.md").read_text()
    header = "| run | model | S-Doc | M-Doc | LB1 Avg | RULER 4k | RULER 8k | RULER Avg |"
    assert header in md
    r = "solo_orpo"
    row = f"| {r} | SoLo-ORPO | {_score(r, 1):.1f} | {_score(r, 2):.1f} | {_score(r, 3):.1f} | {_score(r, 4):.1f} | " \
          f"{_score(r, 5):.1f} | {_score(r, 6):.1f} |"
    assert row in md
    # paper order inside the primary block: Instruct, SFT, ORPO-short, ORPO-long, SoLo-ORPO, then the rest
    primary = md.split("## Runs: llama")[0]
    order = [line.split("|")[1].strip() for line in primary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert order[:5] == ["base", "sft_short", "orpo_short", "orpo_long", "solo_orpo"]
    assert order.index("solo_orpo_lam0.5") < order.index("solo_orpo_lam2") < order.index("orpo_expand")
    # the second backbone gets its own block; the paper rows are separate sections below every run row
    assert "## Runs: llama" in md and "llama__solo_orpo" in md.split("## Runs: llama")[1]
    paper_at = md.index("# Paper reference numbers")
    assert md.rindex("llama__solo_orpo") < paper_at
    assert md.index("## Paper: Qwen2.5-7B-Instruct (Table 3)") > paper_at
    assert "| SoLo-ORPO (α=1) | solo_orpo | 37.6 | 61.4 | 49.5 | 70.8 | 68.3 | 64.0 | 57.3 | 65.1 |" in md
    assert "| Llama3.1-8B-Instruct | base | 30.3 | 49.3 | 39.8 | 58.3 | 49.2 | 42.9 | 35.6 | 46.5 |" in md
    rows = _csv_rows(out / "table3.csv")
    paper = [x for x in rows if x["source"] == "paper"]
    assert len(paper) == sum(len(v) for v in reference.TABLE3.values())
    # run and paper rows share the RULER 4k..32k columns when the lengths match
    run_row = next(x for x in rows if x["run"] == "solo_orpo")
    assert float(run_row["RULER 4k"]) == _score("solo_orpo", 4) and run_row["RULER 16k"] == ""
    assert next(x for x in paper if x["model"] == "SoLo-ORPO (α=1)")["RULER 4k"] == "70.8"


def test_table4_columns_are_labelled_as_the_paper(built):
    out, _ = built
    md = (out / "table4.md").read_text()
    assert ("| run | model | Overall | Easy | Hard | <32k | 32k-128k | >128k | MMLU-Pro | IFEval | BBH | MATH | GPQA "
            "| Avg | IFEval (loose) | MATH (math-verify) |") in md
    r = "orpo_long"
    row = next(line for line in md.splitlines() if line.startswith(f"| {r} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:8] == [f"{_score(r, k):.1f}" for k in (7, 8, 9, 1, 2, 3)]
    # headline IFEval = inst_level_strict_acc, MATH = exact_match_original (lm-eval's scorer before math-verify),
    # whatever the run's subsets hold; Avg = their mean with MMLU-Pro, BBH, GPQA; then loose and math-verify
    head = [_score(r, k) for k in (1, 2, 3, 4, 5)]
    assert cells[8:13] == [f"{v:.2f}" for v in head]
    assert cells[13] == f"{sum(head) / 5:.2f}"
    assert cells[14:16] == [f"{_score(r, 8):.2f}", f"{_score(r, 7):.2f}"]
    caption = md.split("| run | model | Overall")[0]
    assert "MATH = exact_match_original" in caption and "MATH (math-verify) = lm-eval >= 0.4.9's exact_match" in caption
    assert "IFEval = inst_level_strict_acc" in caption and "IFEval (loose) = inst_level_loose_acc" in caption
    # Table 4's own order: SFT, then ORPO before DPO/SimPO
    primary = md.split("## Runs: llama")[0]
    order = [line.split("|")[1].strip() for line in primary.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert order[:5] == ["base", "sft_short", "orpo_short", "orpo_long", "solo_orpo"]
    assert "| SoLo-ORPO | solo_orpo | 33.2 | 36.3 | 31.2 | 39.7 | 28.8 | 30.9 | 44.83 | 75.18 | 55.23 | 37.16 | 31.46 | 48.77 |" in md
    assert "## Paper: Llama3.1-8B-Instruct (Table 4)" in md


def test_ablations_pair_the_right_runs_with_deltas(built):
    out, _ = built
    rows = _csv_rows(out / "ablations.csv")
    run_rows = [r for r in rows if r["source"] == "run"]

    def block(title_start):
        return [r for r in run_rows if r["section"].startswith(title_start) and not r["section"].endswith("llama")]

    both = block("Chosen-only vs both")
    assert [r["run"] for r in both] == ["solo_orpo", "solo_orpo_both", ""]
    delta = both[2]
    assert delta["variant"] == "Δ chosen-only − both"
    assert float(delta["LB1 Avg"]) == pytest.approx(_score("solo_orpo", 3) - _score("solo_orpo_both", 3))
    kl = block("SoLo-RA vs SoLo-KL")
    assert [r["run"] for r in kl][:2] == ["solo_orpo", "solo_kl_orpo"]
    exp = block("SoLo vs Expand-Long")
    assert [r["run"] for r in exp][:2] == ["orpo_expand", "solo_orpo"]
    assert float(exp[2]["NIAH Avg"]) == pytest.approx(_score("solo_orpo", 5) - _score("orpo_expand", 5))
    gain = block("NIAH-Plus gain")
    assert [r["run"] for r in gain] == ["orpo_expand", "solo_orpo"]
    assert float(gain[1]["Δ S-Doc QA"]) == pytest.approx(_score("solo_orpo", 4) - _score("base", 4))
    # DPO/SimPO have no runs here: no rows for them; lambda variants never enter the ablations
    assert not any(r["algorithm"] in ("DPO", "SimPO") for r in run_rows)
    assert not any("_lam" in r["run"] for r in run_rows)
    # paper Table 9 / Table 5 rows below
    paper = [r for r in rows if r["source"] == "paper"]
    t5 = [r for r in paper if "Table 5" in r["section"] and r["model"] == "Expand-Long-ORPO"]
    assert [r["Δ AVG"] for r in t5] == ["20.62", "10.71"]  # exactly the paper's Table 5


def test_lambda_sweep_table_lists_every_lambda_with_the_default_marked(built):
    out, _ = built
    rows = [r for r in _csv_rows(out / "lambda_sweep.csv") if r["section"].startswith("Runs: primary")]
    orpo = [r for r in rows if r["method"] == "SoLo-ORPO"]
    # without a config or train manifest the default run's lambda is unknown: it sorts first
    assert [(r["λ"], r["run"], r["default"]) for r in orpo] == [
        ("default", "solo_orpo", "yes"), ("0.5", "solo_orpo_lam0.5", ""), ("2", "solo_orpo_lam2", "")]
    assert float(orpo[1]["RULER Avg"]) == _score("solo_orpo_lam0.5", 6)
    assert {r["method"] for r in rows} == {"SoLo-ORPO", "SoLo-ORPO (both)", "SoLo-KL-ORPO"}


def test_default_lambda_from_the_train_manifest_then_from_the_config(tmp_path):
    res = tmp_path / "results"
    paths = _write_evals(res / "eval")
    model = res / "train" / "solo_orpo" / "model"
    model.mkdir(parents=True)
    (model / "manifest.json").write_text(json.dumps({"config": {"lambda": 1.0, "method": "solo_orpo"}}))
    t = tables.build_tables(tables.load_results(paths))["lambda_sweep"]
    orpo = [r for r in t.sections[0].rows if r[0] == "SoLo-ORPO"]
    assert [r[1] for r in orpo] == ["0.5", "1", "2"] and orpo[1][3] == "yes"
    # with run metadata (what the report rule passes from the config) the config wins
    meta = {"runs": {r: {"backbone": "", "method": "solo_orpo", "lambda": 3.0, "default": True}
                     for r in ["solo_orpo"]}, "backbones": {}}
    t = tables.build_tables(tables.load_results(paths), meta)["lambda_sweep"]
    orpo = [r for r in t.sections[0].rows if r[0] == "SoLo-ORPO"]
    assert [r[1] for r in orpo] == ["0.5", "2", "3"]


def test_run_meta_from_the_tiny_config_matches_the_run_table():
    from solopo.report.provenance import load_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_config([root / "config" / "tiny.yaml"], root / "config" / "config.yaml")
    cfg["train"]["lambdas"]["solo_orpo"] = [1.0, 0.5]
    meta = tables.run_meta(cfg)
    assert meta["runs"]["solo_orpo"] == {"backbone": "tiny", "method": "solo_orpo", "lambda": 1.0, "default": True}
    assert meta["runs"]["solo_orpo_lam0.5"]["default"] is False
    assert tables.sweeps(meta)["solo_orpo"] == ("tiny", "solo_orpo")
    assert set(tables.filter_meta(meta, "tiny", "solo_orpo")["runs"]) == {"solo_orpo", "solo_orpo_lam0.5"}


def test_html_escapes_and_marks_paper_sections(built):
    out, _ = built
    page = (out / "table4.html").read_text()
    assert "<th>&lt;32k</th>" in page and "<section class='paper'>" in page
    assert page.index("<section class='run'>") < page.index("<section class='paper'>")


def test_missing_benchmarks_leave_blank_cells(tmp_path):
    p = tmp_path / "solo_orpo_ruler.json"
    p.write_text(json.dumps({"benchmark": "ruler", "run": "solo_orpo", "score": 5.0, "by_length": {"256": 5.0}}))
    t = tables.build_tables(tables.load_results([str(p)]))
    md = tables.to_markdown(t["table3"])
    assert "| solo_orpo | SoLo-ORPO |  |  |  | 5.0 | 5.0 |" in md
    assert "RULER 256" in md


def test_write_report_keeps_the_old_entry_point(tmp_path):
    paths = _write_evals(tmp_path / "evals")
    tables.write_report(paths, str(tmp_path / "r" / "table3.md"), str(tmp_path / "r" / "summary.csv"))
    assert (tmp_path / "r" / "table3.md").read_text().startswith("# Table 3")
    assert (tmp_path / "r" / "summary.csv").read_text().startswith("run,")
