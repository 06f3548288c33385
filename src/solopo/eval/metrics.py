"""Scorers, each matching its benchmark's official definition.

- `normalize_answer`, `qa_f1_score`: LongBench v1 `metrics.py` (SQuAD normalisation, token F1).
- `string_match_part`: RULER `scripts/eval/synthetic/constants.py` (lower-cased containment, x100).
- `extract_answer`: the text after the last "The answer is" (SoLoPO's CoT format).
- `sub_em`: one-directional normalised substring match used to label sampled CoT outputs.
"""
from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_ANSWER_IS = re.compile(r"answer is\s*:?", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f]")


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop articles, collapse whitespace (SQuAD/LongBench order)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def qa_f1_score(prediction: str, ground_truth: str) -> float:
    """LongBench v1 token F1 between normalised prediction and one gold answer, in [0, 1]."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def ruler_postprocess(pred: str) -> str:
    """RULER's prediction clean-up: strip, control characters to newlines, strip again."""
    return _CONTROL.sub("\n", pred.strip()).strip()


def string_match_part(preds: list[str], refs: list[list[str]]) -> float:
    """RULER QA metric: mean over samples of max over refs of [ref.lower() in pred.lower()], x100, 2 decimals."""
    if len(preds) != len(refs):
        raise ValueError(f"string_match_part: {len(preds)} predictions but {len(refs)} reference lists")
    if not preds:
        return 0.0
    score = sum(max((1.0 if r.lower() in p.lower() else 0.0) for r in rs) if rs else 0.0 for p, rs in zip(preds, refs))
    return round(score / len(preds) * 100, 2)


def extract_answer(text: str) -> str:
    """The final answer of a CoT output.

    Take the rest of the line after the last case-insensitive "answer is" (optional colon), or,
    when that line ends there ("The answer is:\nParis"), the next non-empty line; strip
    whitespace, quotes and asterisks and one trailing period. Without a match, fall back to
    the last non-empty line (a reconstruction: the paper does not say how it extracts), or "" for an empty output.
    """
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        lines = text[matches[-1].end():].split("\n")
        rest = lines[0]
        if not rest.strip().strip("*").strip():  # the answer sits on a following line
            rest = next((ln for ln in lines[1:] if ln.strip().strip("*").strip()), "")
    else:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        rest = lines[-1] if lines else ""
    rest = rest.strip().strip("*").strip().strip("\"'“”‘’").strip()
    if rest.endswith("."):
        rest = rest[:-1].rstrip()
    return rest


def has_answer_marker(text: str) -> bool:
    return _ANSWER_IS.search(text) is not None


def sub_em(prediction: str, golds: list[str]) -> bool:
    """True when some non-empty normalised gold is a substring of the normalised prediction.

    One-directional on purpose: the bidirectional variant scores an empty prediction as correct.
    """
    pred = normalize_answer(prediction)
    if not pred:
        return False
    return any(g and g in pred for g in (normalize_answer(x) for x in golds))
