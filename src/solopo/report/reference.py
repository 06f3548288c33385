"""The paper's own numbers (SoLoPO, arXiv 2505.11166, Tables 3, 4 and 9), as data.

Only the blocks a reproduction compares against: Qwen2.5-7B-Instruct and Llama3.1-8B-Instruct
of Tables 3 and 4, and Table 9 (NIAH-Plus; Table 5 is Table 9 minus the Instruct row). Each
row is `(label, method, lambda, values)`: `method` is this pipeline's method name (`base` for
the Instruct model), so a paper row sits beside the run of the same method; `lambda` is the
paper's alpha where it gives one. `None` marks a value the paper does not print.

Caveats: in Table 3 the Qwen SFT-short/SFT-long LongBench v1 columns equal
ORPO-short/ORPO-long (probably a copy error in the paper; reproduced as printed). Where the text
does not name a row, its label follows the tables' order (Instruct, SFT, X-short, X-long, SoLo-X).
"""
from __future__ import annotations

SOURCE = "SoLoPO (arXiv 2505.11166), Tables 3-4 and 9"

# Table 3: LongBench v1 QA (F1) and RULER QA; RULER columns are 4k/8k/16k/32k
TABLE3_COLUMNS = ["s_doc", "m_doc", "lb1_avg", "ruler_4k", "ruler_8k", "ruler_16k", "ruler_32k", "ruler_avg"]
TABLE3_HEADER = ["S-Doc", "M-Doc", "LB1 Avg", "RULER 4k", "RULER 8k", "RULER 16k", "RULER 32k", "RULER Avg"]

_T3 = lambda *v: dict(zip(TABLE3_COLUMNS, v))  # noqa: E731

TABLE3 = {
    "Qwen2.5-7B-Instruct": [
        ("Qwen2.5-7B-Instruct", "base", None, _T3(29.4, 39.4, 34.4, 53.9, 50.1, 37.6, 34.6, 44.0)),
        ("SFT-short", "sft_short", None, _T3(28.9, 48.4, 38.6, 63.8, 56.7, 42.3, 31.8, 48.7)),
        ("SFT-long", "sft_long", None, _T3(34.8, 55.8, 45.3, 65.9, 61.4, 58.4, 52.4, 59.5)),
        ("DPO-short", "dpo_short", None, _T3(34.6, 51.8, 43.2, 70.9, 63.3, 45.3, 46.9, 56.6)),
        ("DPO-long", "dpo_long", None, _T3(35.7, 58.2, 46.9, 71.0, 64.2, 60.6, 53.2, 62.2)),
        ("SoLo-DPO (α=3)", "solo_dpo", 3.0, _T3(38.0, 57.6, 47.8, 66.4, 64.5, 62.7, 57.7, 62.8)),
        ("SimPO-short", "simpo_short", None, _T3(34.7, 53.6, 44.1, 70.8, 62.5, 42.1, 48.8, 56.0)),
        ("SimPO-long", "simpo_long", None, _T3(34.2, 54.9, 44.6, 69.8, 64.1, 49.1, 47.2, 57.5)),
        ("SoLo-SimPO (α=1)", "solo_simpo", 1.0, _T3(38.1, 58.6, 48.4, 69.2, 66.0, 62.7, 57.8, 63.9)),
        ("ORPO-short", "orpo_short", None, _T3(28.9, 48.4, 38.6, 69.1, 62.1, 50.8, 46.6, 57.1)),
        ("ORPO-long", "orpo_long", None, _T3(34.8, 55.8, 45.3, 64.9, 59.9, 50.0, 45.6, 55.1)),
        ("SoLo-ORPO (α=1)", "solo_orpo", 1.0, _T3(37.6, 61.4, 49.5, 70.8, 68.3, 64.0, 57.3, 65.1)),
        ("LongPO (reimplemented on SoLo data)", "longpo", None, _T3(34.8, 52.6, 43.7, 62.4, 54.4, 48.9, 43.1, 52.2)),
    ],
    "Llama3.1-8B-Instruct": [
        ("Llama3.1-8B-Instruct", "base", None, _T3(30.3, 49.3, 39.8, 58.3, 49.2, 42.9, 35.6, 46.5)),
        ("SFT-short", "sft_short", None, _T3(33.0, 56.2, 44.6, 65.0, 61.0, 58.5, 52.2, 59.2)),
        ("SFT-long", "sft_long", None, _T3(35.0, 57.3, 46.1, 63.7, 59.0, 57.5, 53.5, 58.4)),
        ("ORPO-short", "orpo_short", None, _T3(33.1, 55.1, 44.1, 64.0, 59.3, 59.7, 50.4, 58.4)),
        ("ORPO-long", "orpo_long", None, _T3(35.4, 55.4, 45.4, 63.2, 60.1, 58.9, 53.2, 58.9)),
        ("SoLo-ORPO (α=4)", "solo_orpo", 4.0, _T3(35.2, 57.3, 46.3, 64.4, 62.5, 60.1, 58.2, 61.3)),
    ],
}

# Table 4: LongBench v2 (Qwen with YaRN) and the Open LLM Leaderboard
TABLE4_COLUMNS = ["overall", "easy", "hard", "short", "medium", "long", "mmlu_pro", "ifeval", "bbh", "math", "gpqa", "avg"]
TABLE4_HEADER = ["Overall", "Easy", "Hard", "<32k", "32k-128k", ">128k", "MMLU-Pro", "IFEval", "BBH", "MATH", "GPQA", "Avg"]

_T4 = lambda *v: dict(zip(TABLE4_COLUMNS, v))  # noqa: E731

TABLE4 = {
    "Qwen2.5-7B-Instruct": [
        ("Qwen2.5-7B-Instruct", "base", None, _T4(29.3, 30.9, 28.3, 36.9, 24.6, 26.1, 44.63, 74.22, 55.25, 36.86, 31.88, 48.56)),
        ("SFT-short", "sft_short", None, _T4(30.8, 33.6, 29.1, 39.2, 25.7, 27.2, 44.81, 72.18, 55.15, 36.71, 32.12, 48.19)),
        ("SFT-long", "sft_long", None, _T4(30.0, 32.0, 28.8, 35.7, 25.9, 28.7, 44.74, 71.46, 55.35, 36.55, 31.45, 47.90)),
        ("ORPO-short", "orpo_short", None, _T4(29.3, 34.4, 26.2, 35.0, 25.3, 27.8, 44.78, 74.70, 55.26, 38.21, 30.95, 48.78)),
        ("ORPO-long", "orpo_long", None, _T4(26.6, 30.1, 24.5, 33.8, 22.3, 23.3, 44.64, 73.61, 55.37, 37.16, 32.12, 48.58)),
        ("SoLo-ORPO", "solo_orpo", 1.0, _T4(33.2, 36.3, 31.2, 39.7, 28.8, 30.9, 44.83, 75.18, 55.23, 37.16, 31.46, 48.77)),
        ("DPO-short", "dpo_short", None, _T4(25.5, 27.2, 24.5, 29.7, 23.5, 22.8, 44.91, 75.06, 54.99, 39.12, 31.21, 49.06)),
        ("DPO-long", "dpo_long", None, _T4(29.7, 34.3, 26.9, 35.9, 25.6, 27.6, 44.91, 75.30, 55.06, 37.99, 31.8, 49.01)),
        ("SoLo-DPO", "solo_dpo", 3.0, _T4(35.2, 37.5, 33.8, 39.3, 31.8, 35.0, 44.66, 73.98, 54.78, 35.57, 31.63, 48.12)),
        ("SimPO-short", "simpo_short", None, _T4(24.6, 27.1, 23.1, 29.5, 21.2, 23.1, 44.97, 73.50, 54.94, 38.6, 31.46, 48.69)),
        ("SimPO-long", "simpo_long", None, _T4(25.4, 25.4, 25.4, 33.0, 20.2, 23.3, 44.74, 73.50, 55.29, 37.61, 32.05, 48.64)),
        ("SoLo-SimPO", "solo_simpo", 1.0, _T4(31.0, 34.1, 29.1, 37.5, 25.7, 30.6, 44.78, 75.90, 54.89, 37.76, 31.54, 48.97)),
    ],
    "Llama3.1-8B-Instruct": [
        ("Llama3.1-8B-Instruct", "base", None, _T4(32.5, 35.5, 30.7, 40.7, 27.7, 28.5, 37.79, 62.23, 50.98, 15.25, 31.71, 39.59)),
        ("SFT-short", "sft_short", None, _T4(31.8, 34.5, 30.0, 38.3, 28.6, 27.0, 36.37, 60.31, 50.23, 17.90, 31.79, 39.32)),
        ("SFT-long", "sft_long", None, _T4(30.9, 36.8, 27.3, 36.0, 29.6, 24.8, 37.04, 60.67, 49.64, 16.16, 32.38, 39.17)),
        ("ORPO-short", "orpo_short", None, _T4(33.7, 36.8, 31.8, 41.2, 29.8, 28.7, 37.26, 61.15, 50.95, 14.88, 32.13, 39.27)),
        ("ORPO-long", "orpo_long", None, _T4(32.1, 34.5, 30.6, 39.7, 27.8, 28.0, 37.43, 60.43, 50.86, 15.86, 31.63, 39.24)),
        ("SoLo-ORPO", "solo_orpo", 4.0, _T4(34.7, 37.5, 33.0, 40.0, 32.1, 31.2, 37.60, 63.43, 50.18, 15.63, 31.38, 39.64)),
    ],
}

# Table 9: NIAH-Plus accuracy (Table 5 = these minus the Instruct row)
TABLE9_COLUMNS = ["single_doc", "multi_doc", "avg"]
TABLE9_HEADER = ["Single-doc QA", "Multi-doc QA", "AVG"]

_T9 = lambda *v: dict(zip(TABLE9_COLUMNS, v))  # noqa: E731

TABLE9 = {
    "Qwen2.5-7B-Instruct": [
        ("Qwen2.5-7B-Instruct", "base", None, _T9(35.66, 52.63, 44.14)),
        ("Expand-Long-DPO", "dpo_expand", None, _T9(55.98, 68.02, 62.00)),
        ("SoLo-DPO", "solo_dpo", 3.0, _T9(59.35, 71.76, 65.56)),
        ("Expand-Long-SimPO", "simpo_expand", None, _T9(51.81, 53.61, 52.71)),
        ("SoLo-SimPO", "solo_simpo", 1.0, _T9(60.85, 72.05, 66.45)),
        ("Expand-Long-ORPO", "orpo_expand", None, _T9(59.60, 69.92, 64.76)),
        ("SoLo-ORPO", "solo_orpo", 1.0, _T9(61.64, 71.46, 66.55)),
    ],
    "Llama3.1-8B-Instruct": [
        ("Llama3.1-8B-Instruct", "base", None, _T9(32.04, 32.8, 32.42)),
        ("Expand-Long-ORPO", "orpo_expand", None, _T9(43.69, 42.57, 43.13)),
        ("SoLo-ORPO", "solo_orpo", 4.0, _T9(43.86, 52.96, 48.41)),
    ],
}

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
