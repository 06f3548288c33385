"""The paper's own numbers (SoLoPO, arXiv 2505.11166, Tables 3, 4 and 9), as data.

Only the blocks a reproduction compares against: Qwen2.5-7B-Instruct and Llama3.1-8B-Instruct
of Tables 3 and 4, and Table 9 (NIAH-Plus; Table 5 is Table 9 minus the Instruct row), kept as
printed in `paper/table{3,4,9}.csv` beside this module. Each row is `(label, method, lambda,
values)`: `method` is this pipeline's method name (`base` for the Instruct model), so a paper row
sits beside the run of the same method; `lambda` is the paper's alpha where it gives one. `None` marks a value the paper does not print.

Caveats: in Table 3 the Qwen SFT-short/SFT-long LongBench v1 columns equal
ORPO-short/ORPO-long (probably a copy error in the paper; reproduced as printed). Where the text
does not name a row, its label follows the tables' order (Instruct, SFT, X-short, X-long, SoLo-X).
"""
from __future__ import annotations

import csv
from pathlib import Path

SOURCE = "SoLoPO (arXiv 2505.11166), Tables 3-4 and 9"

# Table 3: LongBench v1 QA (F1) and RULER QA; RULER columns are 4k/8k/16k/32k
TABLE3_COLUMNS = ["s_doc", "m_doc", "lb1_avg", "ruler_4k", "ruler_8k", "ruler_16k", "ruler_32k", "ruler_avg"]
TABLE3_HEADER = ["S-Doc", "M-Doc", "LB1 Avg", "RULER 4k", "RULER 8k", "RULER 16k", "RULER 32k", "RULER Avg"]
# Table 4: LongBench v2 (Qwen with YaRN) and the Open LLM Leaderboard
TABLE4_COLUMNS = ["overall", "easy", "hard", "short", "medium", "long", "mmlu_pro", "ifeval", "bbh", "math", "gpqa", "avg"]
TABLE4_HEADER = ["Overall", "Easy", "Hard", "<32k", "32k-128k", ">128k", "MMLU-Pro", "IFEval", "BBH", "MATH", "GPQA", "Avg"]
# Table 9: NIAH-Plus accuracy (Table 5 = these minus the Instruct row)
TABLE9_COLUMNS = ["single_doc", "multi_doc", "avg"]
TABLE9_HEADER = ["Single-doc QA", "Multi-doc QA", "AVG"]

PAPER_DIR = Path(__file__).with_name("paper")  # table3.csv, table4.csv, table9.csv: the numbers as printed


def _number(text: str) -> float | None:
    return None if text == "" else float(text)


def load_table(name: str, columns: list[str]) -> dict[str, list[tuple[str, str, float | None, dict]]]:
    """`paper/<name>.csv` (block, label, method, lambda, then `columns`) as {block: [(label, method, lambda, values)]}."""
    path = PAPER_DIR / f"{name}.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != ["block", "label", "method", "lambda", *columns]:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected block, label, method, lambda, "
                             f"{', '.join(columns)}")
        table: dict[str, list] = {}
        for row in reader:
            table.setdefault(row["block"], []).append(
                (row["label"], row["method"], _number(row["lambda"]), {c: _number(row[c]) for c in columns}))
    return table


TABLE3 = load_table("table3", TABLE3_COLUMNS)
TABLE4 = load_table("table4", TABLE4_COLUMNS)
TABLE9 = load_table("table9", TABLE9_COLUMNS)

TABLES = {
    "table3": (TABLE3, TABLE3_COLUMNS, TABLE3_HEADER),
    "table4": (TABLE4, TABLE4_COLUMNS, TABLE4_HEADER),
    "table9": (TABLE9, TABLE9_COLUMNS, TABLE9_HEADER),
}


def table5(block: str) -> list[tuple[str, str, dict]]:
    """Table 5 (NIAH-Plus gain over the Instruct model), derived from Table 9 exactly as the paper does."""
    rows = TABLE9[block]
    base = rows[0][3]
    return [(label, method, {k: round(v[k] - base[k], 2) for k in TABLE9_COLUMNS}) for label, method, _, v in rows[1:]]
