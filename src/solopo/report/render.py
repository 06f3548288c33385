"""Rendering of the report's tables: the table model (sections of rows) and its Markdown, CSV and
HTML forms. The rows themselves are built by solopo.report.tables."""
from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass, field


# --------------------------------------------------------------------------- table model
@dataclass
class Section:
    title: str
    header: list[str]
    rows: list[list]
    labels: int = 2            # the first `labels` columns are text, the rest numbers
    digits: list[int] | int = 1
    source: str = "run"        # run | paper
    note: str = ""

    def digit(self, i: int) -> int:
        return self.digits if isinstance(self.digits, int) else self.digits[i - self.labels]


@dataclass
class Table:
    name: str
    title: str
    sections: list[Section] = field(default_factory=list)
    note: str = ""


def fmt(x, digits: int = 1) -> str:
    if x is None or x == "":
        return ""
    if isinstance(x, str):
        return x
    return f"{float(x):.{digits}f}"


# --------------------------------------------------------------------------- rendering
def md_table(sec: Section) -> str:
    lines = ["| " + " | ".join(sec.header) + " |", "|" + "---|" * len(sec.header)]
    for row in sec.rows:
        cells = [str(c) for c in row[:sec.labels]] + [fmt(x, sec.digit(j)) for j, x in enumerate(row[sec.labels:], sec.labels)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_markdown(t: Table) -> str:
    out = [f"# {t.title}\n"]
    if t.note:
        out.append(t.note + "\n")
    runs = [s for s in t.sections if s.source == "run"]
    if not runs:
        out.append("_No runs with these benchmarks yet._\n")
    for s in runs:
        out.append(f"## {s.title}\n\n" + md_table(s))
    paper = [s for s in t.sections if s.source == "paper"]
    if paper:
        out.append("# Paper reference numbers\n\n" + paper[0].note + "\n")
        for s in paper:
            out.append(f"## {s.title}\n\n" + md_table(s))
    return "\n".join(out)


def to_csv(t: Table) -> str:
    """Long CSV: one line per row, columns `section, source` and the union of the sections' headers."""
    fields = ["section", "source"]
    for s in t.sections:
        fields += [h for h in s.header if h not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for s in t.sections:
        for row in s.rows:
            rec = {"section": s.title, "source": s.source}
            rec.update({h: ("" if v is None else (round(v, 4) if isinstance(v, float) else v)) for h, v in zip(s.header, row)})
            w.writerow(rec)
    return buf.getvalue()


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.6em}p.note{color:#555;max-width:60em}
table{border-collapse:collapse;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .6em;white-space:nowrap}
th{background:#f0f0f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
section.paper h2{color:#7a4b00}section.paper th{background:#fbf0dc}tr.delta td{font-style:italic;background:#fafafa}"""


def _html_table(s: Section) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in s.header)
    body = []
    for row in s.rows:
        cls = ' class="delta"' if str(row[1 if s.labels > 1 else 0]).startswith("Δ") else ""
        cells = [f"<td>{html.escape(str(c))}</td>" for c in row[:s.labels]]
        cells += [f'<td class="num">{fmt(x, s.digit(j))}</td>' for j, x in enumerate(row[s.labels:], s.labels)]
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(t: Table) -> str:
    parts = [(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(t.title)}</title>"
              f"<style>{_CSS}</style></head><body><h1>{html.escape(t.title)}</h1>")]
    if t.note:
        parts.append(f"<p class='note'>{html.escape(t.note)}</p>")
    runs = [s for s in t.sections if s.source == "run"]
    if not runs:
        parts.append("<p><em>No runs with these benchmarks yet.</em></p>")
    for s in runs:
        parts.append(f"<section class='run'><h2>{html.escape(s.title)}</h2>{_html_table(s)}</section>")
    paper = [s for s in t.sections if s.source == "paper"]
    if paper:
        parts.append(f"<h1>Paper reference numbers</h1><p class='note'>{html.escape(paper[0].note)}</p>")
    for s in paper:
        parts.append(f"<section class='paper'><h2>{html.escape(s.title)}</h2>{_html_table(s)}</section>")
    return "".join(parts) + "</body></html>\n"


RENDER = {"md": to_markdown, "csv": to_csv, "html": to_html}
