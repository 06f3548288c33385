"""MuSiQue-Ans reader: the same code path for real MuSiQue (paper preset) and the toy world.

Every line is validated; a malformed line raises `DataError("<file>:<line>: ...")`, or,
when the caller allows skipping, is counted by reason (the counts go to the manifest).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from solopo.artifacts import DataError

HUB_FILES = {"train": "musique_ans_v1.0_train.jsonl", "dev": "musique_ans_v1.0_dev.jsonl"}

_FIELDS = {"id": str, "paragraphs": list, "question": str, "question_decomposition": list, "answer": str,
           "answer_aliases": list, "answerable": bool}
_PARA_FIELDS = {"idx": int, "title": str, "paragraph_text": str, "is_supporting": bool}


def validate_record(rec) -> str | None:
    """The first schema problem of one record, or None."""
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    for key, typ in _FIELDS.items():
        if key not in rec:
            return f"missing field {key!r}"
        if not isinstance(rec[key], typ):
            return f"field {key!r} should be {typ.__name__}, got {type(rec[key]).__name__}"
    for j, p in enumerate(rec["paragraphs"]):
        if not isinstance(p, dict):
            return f"paragraphs[{j}] should be an object"
        for key, typ in _PARA_FIELDS.items():
            if key not in p or not isinstance(p[key], typ):
                return f"paragraphs[{j}].{key} missing or not {typ.__name__}"
    if not any(p["is_supporting"] for p in rec["paragraphs"]):
        return "no supporting paragraph (is_supporting is false everywhere)"
    if not rec["answer"].strip():
        return "empty answer"
    if not rec["answerable"]:
        return "answerable is false (MuSiQue-Full contrast question; only answerable questions are used)"
    return None


def read_musique(path: str | os.PathLike, allow_skip: bool = False) -> tuple[list[dict], dict[str, int]]:
    """Read a MuSiQue-Ans JSONL file. Returns (records, skipped-count-by-reason)."""
    records, skipped = [], Counter()
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            problem = None
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problem = f"not valid UTF-8 (byte {e.start} of the line)"
            if problem is None:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line.rstrip("\r\n"))  # columns count within this line
                    problem = validate_record(rec)
                except json.JSONDecodeError as e:
                    problem = f"invalid JSON ({e.msg} at column {e.colno})"
            if problem is None:
                records.append(rec)
            elif allow_skip:
                skipped[problem.split(" (")[0]] += 1
            else:
                raise DataError(f"{path}:{lineno}: {problem}")
    if not records:
        raise DataError(f"{path}: no valid MuSiQue records")
    return records, dict(skipped)


def download_musique(hub_id: str, split: str, cache_dir: str | None = None) -> Path:
    """Fetch the official JSONL from a hub mirror (paper preset). Fails fast and clearly offline."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RuntimeError(f"MuSiQue {split} from {hub_id}: HF_HUB_OFFLINE=1 is set; set data.musique.{split}_file "
                           "to a local musique_ans_v1.0_*.jsonl or unset HF_HUB_OFFLINE")
    from solopo.runtime import hub_download

    try:  # bounded time when the hub is unreachable (see solopo.runtime.hub_download)
        return Path(hub_download(hub_id, HUB_FILES[split], "dataset", cache_dir))
    except Exception as e:  # the hub client raises several types; one clear line is what the user needs
        raise RuntimeError(f"MuSiQue {split}: could not download {HUB_FILES[split]} from {hub_id}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
