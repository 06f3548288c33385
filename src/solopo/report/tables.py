"""Tables in the paper's layout, from the eval JSONs alone.

`build_tables(results, meta)` returns four tables, each a list of sections (run rows first,
then the paper's own numbers from `solopo.report.reference`, marked `source = paper`):

- `table3`: LongBench v1 QA (S-Doc, M-Doc, Avg) and RULER QA per length + Avg (paper Table 3);
- `table4`: LongBench v2 (Overall, Easy, Hard, <32k, 32k-128k, >128k) and the Open LLM
  Leaderboard (MMLU-Pro, IFEval, BBH, MATH, GPQA, Avg) (paper Table 4);
- `ablations`: chosen-only vs both (solo_X vs solo_X_both, Fig. 2a), SoLo-RA vs SoLo-KL
  (solo_X vs solo_kl_X, Fig. 2b), SoLo vs Expand-Long (solo_X vs X_expand, Fig. 2b / Tables 5
  and 9) on LongBench v1, RULER and NIAH-Plus, and the NIAH-Plus gain over the Instruct model
  (Table 5);
- `lambda_sweep`: per SoLo method, one row per lambda (the SoLo-RA weight, alpha in the paper)
  with each benchmark's score.

`write_tables` writes each as `<name>.md`, `<name>.csv` and `<name>.html` (the HTML is what the
Snakemake report shows) plus `summary.csv` (one row per run, one column per benchmark score).

Run metadata (backbone, method, lambda) comes from `meta` when the caller has the config
(`run_meta(config)`); without it, it is parsed from the run name (`[backbone__]method[_lam<v>]`)
and a default run's lambda is read from its train manifest
(`results/train/<run>/model/manifest.json`, `config.lambda`) when that file exists.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from solopo import paths
from solopo.artifacts import write_manifest, write_text
from solopo.eval import BENCHES
from solopo.eval.leaderboard import (
    IFEVAL_HEADLINE,
    IFEVAL_SECOND,
    MATH_HEADLINE,
    MATH_SECOND,
)
from solopo.report import reference
from solopo.report.render import RENDER, Section, Table, to_markdown

log = logging.getLogger(__name__)

TABLE_NAMES = ("table3", "table4", "ablations", "lambda_sweep")
FORMATS = ("md", "csv", "html")
ALGOS = ("dpo", "simpo", "orpo")

# paper order of Table 3 (Instruct, SFT, then {X-short, X-long, SoLo-X} per algorithm) and Table 4
ORDER3 = ["base", "sft_short", "sft_long", "dpo_short", "dpo_long", "solo_dpo", "simpo_short", "simpo_long",
          "solo_simpo", "orpo_short", "orpo_long", "solo_orpo"]
ORDER4 = ["base", "sft_short", "sft_long", "orpo_short", "orpo_long", "solo_orpo", "dpo_short", "dpo_long",
          "solo_dpo", "simpo_short", "simpo_long", "solo_simpo"]
ORDER_REST = ["longpo", "sft_expand", "dpo_expand", "simpo_expand", "orpo_expand", "solo_dpo_both",
              "solo_simpo_both", "solo_orpo_both", "solo_dpo_sg", "solo_simpo_sg", "solo_orpo_sg", "solo_kl_dpo",
              "solo_kl_simpo", "solo_kl_orpo"]

ALGO_LABEL = {"sft": "SFT", "dpo": "DPO", "simpo": "SimPO", "orpo": "ORPO"}

# the score each benchmark contributes to the sweep table / summary, with its column label
BENCH_LABEL = {name: b.label for name, b in BENCHES.items()}
BENCH_ORDER = list(BENCH_LABEL)


# --------------------------------------------------------------------------- inputs
def load_results(paths: list[str]) -> dict[str, dict[str, dict]]:
    """{run: {bench: result}} from eval JSON paths (other inputs are ignored). Each result gets
    `_path` (where it was read) so a default run's lambda can be looked up beside it."""
    out: dict[str, dict[str, dict]] = {}
    for p in paths:
        p = str(p)
        if not p.endswith(".json") or p.endswith(".manifest.json") or not Path(p).is_file():
            continue
        try:
            res = json.loads(Path(p).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # an empty or cut eval JSON: name it
            from solopo.artifacts import DataError

            raise DataError(f"{p}: not a valid eval JSON ({e}); delete it and rerun snakemake to re-evaluate") from None
        if not isinstance(res, dict) or "benchmark" not in res or "run" not in res:
            continue  # not an eval JSON (e.g. pair_stats.json)
        res["_path"] = p
        out.setdefault(res["run"], {})[res["benchmark"]] = res
    return out


def run_meta(config: dict) -> dict:
    """Run metadata from the config (the pipeline's run table): what the report rule passes."""
    from solopo.config import run_table

    runs = run_table(config)
    primary = config["backbones"][0]["name"]
    out = {}
    for name, r in runs.items():
        prefix = "" if r.backbone == primary else f"{r.backbone}__"
        out[name] = {"backbone": r.backbone, "method": r.method, "lambda": r.lam,
                     "default": name == prefix + r.method}
    return {"runs": out, "backbones": {b["name"]: b["model"] for b in config["backbones"]},
            "benchmarks": list(config["eval"]["benchmarks"])}


def filter_meta(meta: dict, backbone: str, method: str | None = None) -> dict:
    """The metadata of one backbone's runs (of one method): what a plot depends on."""
    runs = {n: m for n, m in meta["runs"].items() if m["backbone"] == backbone and (method is None or m["method"] == method)}
    return {**meta, "runs": runs, "backbones": {backbone: meta["backbones"].get(backbone)}}


def sweeps(meta: dict) -> dict[str, tuple[str, str]]:
    """{default run name: (backbone, method)} for every SoLo method of every backbone: one lambda plot each."""
    return {n: (m["backbone"], m["method"]) for n, m in meta["runs"].items() if m["method"].startswith("solo_") and m["default"]}


@dataclass(frozen=True)
class RunInfo:
    name: str
    backbone: str
    method: str
    lam: float | None
    default: bool


_LAM = re.compile(r"^(?P<method>.+)_lam(?P<lam>[0-9][0-9.eE+-]*)$")


def _train_manifest_lambda(run: str, results: dict) -> float | None:
    for res in results.get(run, {}).values():
        path = res.get("_path")
        if not path:
            continue
        m = Path(path).resolve().parent.parent / "train" / run / "model" / "manifest.json"
        if m.exists():
            lam = json.loads(m.read_text()).get("config", {}).get("lambda")
            return None if lam is None else float(lam)
    return None


def run_info(run: str, results: dict, meta: dict | None = None) -> RunInfo:
    m = (meta or {}).get("runs", {}).get(run)
    if m:
        return RunInfo(run, m["backbone"], m["method"], m.get("lambda"), m.get("default", True))
    backbone, rest = run.split("__", 1) if "__" in run else ("", run)
    hit = _LAM.match(rest)
    if hit:
        return RunInfo(run, backbone, hit["method"], float(hit["lam"]), False)
    lam = _train_manifest_lambda(run, results) if rest.startswith("solo_") else None
    return RunInfo(run, backbone, rest, lam, True)


def _fmt_lam(v) -> str:
    return "" if v is None else f"{float(v):g}"


def method_label(method: str, lam: float | None = None, default: bool = True) -> str:
    """Paper-style name: SFT-short, DPO-long, Expand-Long-ORPO, SoLo-ORPO, SoLo-ORPO (both), SoLo-ORPO (stop-grad),
    SoLo-KL-ORPO."""
    if method == "base":
        return "Instruct"
    if method == "longpo":
        label = "LongPO"
    elif method.startswith("solo_kl_"):
        label = f"SoLo-KL-{ALGO_LABEL[method[8:]]}"
    elif method.startswith("solo_") and method.endswith("_both"):
        label = f"SoLo-{ALGO_LABEL[method[5:-5]]} (both)"
    elif method.startswith("solo_") and method.endswith("_sg"):
        label = f"SoLo-{ALGO_LABEL[method[5:-3]]} (stop-grad)"
    elif method.startswith("solo_"):
        label = f"SoLo-{ALGO_LABEL[method[5:]]}"
    else:
        algo, _, data = method.rpartition("_")
        algo_label = ALGO_LABEL.get(algo, algo.upper())
        label = f"Expand-Long-{algo_label}" if data == "expand" and algo != "sft" else f"{algo_label}-{data}"
    if method.startswith("solo_") and lam is not None:
        label += f" (λ={_fmt_lam(lam)})"
    return label


def backbone_title(backbone: str, meta: dict | None) -> str:
    model = (meta or {}).get("backbones", {}).get(backbone)
    name = backbone or "primary backbone"
    return f"{name} ({model})" if model else name


def _get(results: dict, run: str, bench: str, *keys):
    r = results.get(run, {}).get(bench)
    if r is None:
        return None
    for k in keys:
        if not isinstance(r, dict) or r.get(k) is None:
            return None
        r = r[k]
    return r


def _order_key(order: list[str]):
    rank = {m: i for i, m in enumerate(order + [m for m in ORDER_REST if m not in order])}

    def key(info: RunInfo):
        return (rank.get(info.method, len(rank)), info.method, not info.default,
                info.lam if info.lam is not None else float("-inf"), info.name)
    return key


def _backbones(infos: list[RunInfo], meta: dict | None) -> list[str]:
    known = list((meta or {}).get("backbones", {}))
    seen = sorted({i.backbone for i in infos}, key=lambda b: (b not in known, known.index(b) if b in known else 0, b))
    return seen


def length_label(n: int) -> str:
    """A context length as the tables and plots print it: 32768 -> 32k."""
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def _paper_sections(table: str, label_header: list[str]) -> list[Section]:
    data, cols, header = reference.TABLES[table]
    out = []
    for block, rows in data.items():
        body = [[label, method] + [v.get(c) for c in cols] for label, method, _, v in rows]
        digits = [2 if c in ("mmlu_pro", "ifeval", "bbh", "math", "gpqa", "avg") and table == "table4" else
                  (2 if table == "table9" else 1) for c in cols]
        out.append(Section(f"Paper: {block} (Table {table[5:]})", label_header + header, body, 2, digits, "paper",
                           reference.SOURCE))
    return out


# --------------------------------------------------------------------------- the tables
def _run_sections(infos, meta, order, header, cells, extra=()) -> list:
    """One section per backbone: a row per run (name, method label, then `cells(info)`), in paper order."""
    sections = []
    for b in _backbones(infos, meta):
        rows = [[i.name, method_label(i.method, i.lam, i.default)] + cells(i)
                for i in sorted((i for i in infos if i.backbone == b), key=_order_key(order))]
        sections.append(Section(f"Runs: {backbone_title(b, meta)}", header, rows, *extra))
    return sections


def table3(results: dict, meta: dict | None = None) -> Table:
    infos = [run_info(r, results, meta) for r in results]
    lengths = sorted({int(k) for r in results.values() for k in (r.get("ruler") or {}).get("by_length", {})})
    header = ["run", "model", "S-Doc", "M-Doc", "LB1 Avg"] + [f"RULER {length_label(n)}" for n in lengths] + ["RULER Avg"]
    t = Table("table3", "Table 3: QA on LongBench v1 and RULER",
              note="LongBench v1 QA F1 (S-Doc: NarrativeQA, Qasper, MultiFieldQA-en; M-Doc: HotpotQA, 2WikiMQA, "
                   "MuSiQue) and RULER QA (mean over SQuAD, HotpotQA, MuSiQue) per context length.")
    t.sections += _run_sections(infos, meta, ORDER3, header, lambda i: (
        [_get(results, i.name, "longbench_v1", k) for k in ("s_doc", "m_doc", "avg")]
        + [_get(results, i.name, "ruler", "by_length", str(n)) for n in lengths]
        + [_get(results, i.name, "ruler", "score")]))
    t.sections += _paper_sections("table3", ["model", "method"])
    return t


def _lead_cells(results: dict, run: str) -> list:
    """MMLU-Pro, IFEval, BBH, MATH, GPQA headline figures, their mean (Avg), then IFEval and MATH second figures.

    IFEval and MATH are read by metric name, whatever `math_metric`/`ifeval_metric` the run chose, so a
    column never mixes scorers; Avg is the mean of the headline cells shown."""
    head = [_get(results, run, "leaderboard", "subsets", "mmlu_pro"),
            _get(results, run, "leaderboard", "ifeval_metrics", IFEVAL_HEADLINE),
            _get(results, run, "leaderboard", "subsets", "bbh"),
            _get(results, run, "leaderboard", "math_metrics", MATH_HEADLINE),
            _get(results, run, "leaderboard", "subsets", "gpqa")]
    shown = [v for v in head if v is not None]
    avg = sum(shown) / len(shown) if shown else None
    return head + [avg, _get(results, run, "leaderboard", "ifeval_metrics", IFEVAL_SECOND),
                   _get(results, run, "leaderboard", "math_metrics", MATH_SECOND)]


def table4(results: dict, meta: dict | None = None) -> Table:
    infos = [run_info(r, results, meta) for r in results]
    lb2 = [("overall", "Overall"), ("easy", "Easy"), ("hard", "Hard"), ("short", "<32k"), ("medium", "32k-128k"),
           ("long", ">128k")]
    lead = ["MMLU-Pro", "IFEval", "BBH", "MATH", "GPQA", "Avg", "IFEval (loose)", "MATH (math-verify)"]
    header = ["run", "model"] + [h for _, h in lb2] + lead
    digits = [1] * len(lb2) + [2] * len(lead)
    t = Table("table4", "Table 4: LongBench v2 and the Open LLM Leaderboard",
              note="LongBench v2 accuracy (<32k, 32k-128k, >128k are its short/medium/long subsets) and the Open LLM "
                   f"Leaderboard tasks as SoLoPO could have scored them. IFEval = {IFEVAL_HEADLINE} (instruction-level "
                   "strict: the paper's IFEval figures are multiples of 1/834, IFEval's instruction count); "
                   f"IFEval (loose) = {IFEVAL_SECOND}. MATH = {MATH_HEADLINE} (Minerva normalisation + sympy, "
                   "lm-eval's MATH scorer before v0.4.9); MATH (math-verify) = lm-eval >= 0.4.9's "
                   f"{MATH_SECOND}. Avg is the mean of the five headline columns; the (loose) and (math-verify) "
                   "columns do not enter it.")
    t.sections += _run_sections(infos, meta, ORDER4, header, lambda i: (
        [_get(results, i.name, "longbench_v2", k) for k, _ in lb2] + _lead_cells(results, i.name)), extra=(2, digits))
    t.sections += _paper_sections("table4", ["model", "method"])
    return t


ABLATION_METRICS = [("LB1 S-Doc", "longbench_v1", ("s_doc",)), ("LB1 M-Doc", "longbench_v1", ("m_doc",)),
                    ("LB1 Avg", "longbench_v1", ("avg",)), ("RULER Avg", "ruler", ("score",)),
                    ("NIAH S-Doc", "niah_plus", ("subsets", "single_doc")),
                    ("NIAH M-Doc", "niah_plus", ("subsets", "multi_doc")), ("NIAH Avg", "niah_plus", ("score",))]

ABLATIONS = [
    # (title, [(variant label, method pattern)], what the delta row compares)
    ("Chosen-only vs both (paper Fig. 2a)", [("chosen-only", "solo_{x}"), ("both", "solo_{x}_both")]),
    ("SoLo-RA vs SoLo-KL (paper Fig. 2b)", [("SoLo-RA", "solo_{x}"), ("SoLo-KL", "solo_kl_{x}")]),
    ("SoLo vs Expand-Long (paper Fig. 2b, Tables 5 and 9)", [("Expand-Long", "{x}_expand"), ("SoLo", "solo_{x}")]),
]


def ablations(results: dict, meta: dict | None = None) -> Table:
    infos = {r: run_info(r, results, meta) for r in results}
    header = ["algorithm", "variant", "run"] + [h for h, _, _ in ABLATION_METRICS]
    t = Table("ablations", "SoLo ablations: chosen-only vs both, SoLo-RA vs SoLo-KL, SoLo vs Expand-Long",
              note="Each block compares the default-lambda runs of one backbone; the Δ row is the first variant minus "
                   "the second for chosen-only/both and RA/KL, and SoLo minus Expand-Long for the last block.")
    backbones = _backbones(list(infos.values()), meta)

    def find(b: str, method: str) -> str | None:
        hits = [i.name for i in infos.values() if i.backbone == b and i.method == method and i.default]
        return hits[0] if hits else None

    def metrics(run):
        return [_get(results, run, bench, *keys) for _, bench, keys in ABLATION_METRICS]

    for title, variants in ABLATIONS:
        for b in backbones:
            rows = []
            for x in ALGOS:
                runs = [(label, find(b, pat.format(x=x))) for label, pat in variants]
                present = [(label, r) for label, r in runs if r]
                if not present:
                    continue
                for label, r in present:
                    rows.append([ALGO_LABEL[x], label, r] + metrics(r))
                if len(present) == 2:
                    a, c = metrics(present[0][1]), metrics(present[1][1])
                    if title.startswith("SoLo vs Expand"):
                        a, c = c, a
                        delta_label = "Δ SoLo − Expand-Long"
                    else:
                        delta_label = f"Δ {present[0][0]} − {present[1][0]}"
                    rows.append([ALGO_LABEL[x], delta_label, ""]
                                + [None if p is None or q is None else p - q for p, q in zip(a, c)])
            if rows:
                t.sections.append(Section(f"{title}: {backbone_title(b, meta)}", header, rows, 3))
    # Table 5: NIAH-Plus gain over the Instruct model
    for b in backbones:
        base = find(b, "base")
        rows = []
        for x in ALGOS:
            for label, pat in (("Expand-Long", "{x}_expand"), ("SoLo", "solo_{x}")):
                r = find(b, pat.format(x=x))
                if not r:
                    continue
                vals = []
                for key in (("subsets", "single_doc"), ("subsets", "multi_doc"), ("score",)):
                    v, v0 = _get(results, r, "niah_plus", *key), _get(results, base, "niah_plus", *key) if base else None
                    vals.append(None if v is None or v0 is None else v - v0)
                rows.append([ALGO_LABEL[x], label, r] + vals)
        if rows and any(v is not None for row in rows for v in row[3:]):
            t.sections.append(Section(f"NIAH-Plus gain over the Instruct model (paper Table 5): {backbone_title(b, meta)}",
                                      ["algorithm", "variant", "run", "Δ S-Doc QA", "Δ M-Doc QA", "Δ AVG"], rows, 3, 2))
    t.sections += _paper_sections("table9", ["model", "method"])
    for block in reference.TABLE9:
        rows = [[label, method] + [v[c] for c in reference.TABLE9_COLUMNS] for label, method, v in reference.table5(block)]
        t.sections.append(Section(f"Paper: {block} (Table 5, gain over Instruct)", ["model", "method"]
                                  + ["Δ " + h for h in reference.TABLE9_HEADER], rows, 2, 2, "paper", reference.SOURCE))
    return t


def lambda_sweep(results: dict, meta: dict | None = None) -> Table:
    infos = [run_info(r, results, meta) for r in results]
    benches = [b for b in BENCH_ORDER if any(b in r for r in results.values())]
    benches += sorted({b for r in results.values() for b in r} - set(benches))
    header = ["method", "λ", "run", "default"] + [BENCH_LABEL.get(b, b) for b in benches]
    t = Table("lambda_sweep", "Lambda sweep: SoLo-RA weight (α in the paper) per SoLo method",
              note="One row per lambda of each SoLo method (train.lambdas.<method> in the config); `default` marks "
                   "the run with the plain method name (the first value of the list).")
    for b in _backbones(infos, meta):
        rows = []
        for i in sorted((i for i in infos if i.backbone == b and i.method.startswith("solo_")),
                        key=lambda i: (_order_key(ORDER3)(i)[0], i.method, i.lam if i.lam is not None else float("-inf"))):
            rows.append([method_label(i.method), _fmt_lam(i.lam) or "default", i.name, "yes" if i.default else ""]
                        + [_get(results, i.name, bench, "score") for bench in benches])
        if rows:
            t.sections.append(Section(f"Runs: {backbone_title(b, meta)}", header, rows, 4))
    return t


def build_tables(results: dict, meta: dict | None = None) -> dict[str, Table]:
    return {"table3": table3(results, meta), "table4": table4(results, meta),
            "ablations": ablations(results, meta), "lambda_sweep": lambda_sweep(results, meta)}


def summary_rows(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[list]]:
    benches = sorted({b for r in results.values() for b in r})
    header = ["run"] + benches
    rows = [[run] + [results[run].get(b, {}).get("score") for b in benches] for run in sorted(results)]
    return header, rows


def output_paths(out_dir: str) -> dict[str, str]:
    """Every file `write_tables` writes: `{name}_{fmt}` (and `summary`) -> path."""
    out = {f"{n}_{f}": paths.under(out_dir, paths.fill(paths.TABLE, table=n, fmt=f)) for n in TABLE_NAMES for f in FORMATS}
    out["summary"] = paths.under(out_dir, paths.SUMMARY)
    return out


def report_targets(config: dict, out_dir: str = paths.REPORT_DIR) -> list[str]:
    """Every file the report rules write for this config (tables, and one PNG per SoLo method and per backbone)."""
    meta = run_meta(config)
    out = list(output_paths(out_dir).values())
    out += [paths.under(out_dir, paths.fill(paths.LAMBDA_PLOT, sweep=s)) for s in sweeps(meta)]
    if "ruler" in config["eval"]["benchmarks"]:
        out += [paths.under(out_dir, paths.fill(paths.RULER_PLOT, backbone=b["name"])) for b in config["backbones"]]
    return out


def eval_targets(runs, benchmarks) -> list[str]:
    return [paths.fill(paths.EVAL_JSON, run=run, bench=bench) for run in runs for bench in benchmarks]


def report_slice(meta: dict | None, results: dict) -> dict:
    """The config slice recorded in the report manifests (what `solopo check` recomputes)."""
    if meta:
        return {"runs": meta["runs"], "benchmarks": meta.get("benchmarks")}
    return {"runs": sorted(results)}


def write_tables(inputs: list[str], out_dir: str, meta: dict | None = None, log_path: str | None = None) -> dict[str, str]:
    """Build every table from the eval JSONs among `inputs` and write md/csv/html + summary.csv into out_dir."""
    results = load_results(inputs)
    evals = [p for p in map(str, inputs) if p in {r["_path"] for rr in results.values() for r in rr.values()}]
    paths = output_paths(out_dir)
    slice_ = report_slice(meta, results)
    for name, t in build_tables(results, meta).items():
        for fmt in FORMATS:
            p = paths[f"{name}_{fmt}"]
            write_manifest(p, slice_, evals)
            write_text(p, RENDER[fmt](t))
    hs, rs = summary_rows(results)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([hs] + [[r[0]] + ["" if x is None else x for x in r[1:]] for r in rs])
    write_manifest(paths["summary"], slice_, evals)
    write_text(paths["summary"], buf.getvalue())
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text(f"{len(results)} runs, {len(evals)} eval JSONs\n"
                                  + to_markdown(Table("summary", "Summary", [Section("scores", hs, rs, 1)])))
    return paths


def write_report(inputs: list[str], table3_md: str, summary_csv: str, log_path: str | None = None) -> None:
    """Backward-compatible entry point: every table is written into table3_md's folder."""
    out_dir = str(Path(table3_md).parent)
    paths = write_tables(inputs, out_dir, None, log_path)
    if Path(paths["summary"]) != Path(summary_csv):
        Path(summary_csv).write_text(Path(paths["summary"]).read_text())
