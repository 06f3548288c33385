"""Tables from the eval JSONs alone: a summary (one row per run, one column per benchmark)
and Table 3 in the paper's layout (LongBench v1 S-Doc/M-Doc/Avg, RULER per length/Avg)."""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from solopo.artifacts import write_manifest, write_text

log = logging.getLogger(__name__)


def load_results(paths: list[str]) -> dict[str, dict[str, dict]]:
    """{run: {bench: result}} from eval JSON paths (other inputs are ignored)."""
    out: dict[str, dict[str, dict]] = {}
    for p in paths:
        if "/eval/" not in p or not p.endswith(".json"):
            continue
        res = json.loads(Path(p).read_text())
        out.setdefault(res["run"], {})[res["benchmark"]] = res
    return out


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):.1f}"


def summary_rows(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[list]]:
    benches = sorted({b for r in results.values() for b in r})
    header = ["run"] + benches
    rows = [[run] + [results[run].get(b, {}).get("score") for b in benches] for run in sorted(results)]
    return header, rows


def table3_rows(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[list]]:
    lengths = sorted({int(k) for r in results.values() for k in r.get("ruler", {}).get("by_length", {})})
    header = ["run", "S-Doc", "M-Doc", "LB1 Avg"] + [f"RULER {n}" for n in lengths] + ["RULER Avg"]
    rows = []
    for run in sorted(results):
        lb = results[run].get("longbench_v1", {})
        ru = results[run].get("ruler", {})
        rows.append([run, lb.get("s_doc"), lb.get("m_doc"), lb.get("avg")]
                    + [ru.get("by_length", {}).get(str(n)) for n in lengths] + [ru.get("score")])
    return header, rows


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(r[0])] + [_fmt(x) for x in r[1:]]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_report(inputs: list[str], table3_md: str, summary_csv: str, log_path: str | None = None) -> None:
    results = load_results(inputs)
    h3, r3 = table3_rows(results)
    write_manifest(table3_md, {"runs": sorted(results)}, [p for p in inputs if p.endswith(".json")])
    write_text(table3_md, "# Table 3 layout: LongBench v1 QA and RULER QA\n\n" + markdown(h3, r3))
    hs, rs = summary_rows(results)
    buf = io.StringIO()
    csv.writer(buf).writerows([hs] + [[r[0]] + ["" if x is None else x for x in r[1:]] for r in rs])
    write_manifest(summary_csv, {"runs": sorted(results)}, [p for p in inputs if p.endswith(".json")])
    write_text(summary_csv, buf.getvalue())
    if log_path:
        Path(log_path).write_text(f"{len(results)} runs\n" + markdown(hs, rs))
