"""Artifacts checked before use, and inputs that would make results meaningless refused.

Each stage reads its inputs through `read_rows`, which compares the row count with the count the
input's manifest promises and checks the fields the stage needs; the error names the file and
gives expected vs found. `check_samples`, `check_unique_ids`, `check_eval_items` and
`check_model_limits` are the stage-specific checks; `check_benchmark_folder` verifies a benchmark
folder against its manifest's hashes and every item's required fields before an evaluation.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from solopo.artifacts import (
    DataError,
    iter_jsonl,
    manifest_path,
    read_jsonl,
    verify_folder,
)

log = logging.getLogger(__name__)


def manifest_of(path: str | Path) -> dict | None:
    m = manifest_path(path)
    if not m.is_file():
        return None
    try:
        return json.loads(m.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{m}: manifest is not valid JSON ({e}); rerun the rule that writes {path}") from None


def read_rows(path: str | Path, fields: tuple[str, ...] = (), count_key: str | None = None, what: str = "rows") -> list[dict]:
    """The rows of a JSONL artifact, checked against its manifest (`count_key`: the manifest field
    with the promised count) and for the fields the reading stage uses."""
    rows = read_jsonl(path)
    man = manifest_of(path) if count_key else None
    if man is not None and isinstance(man.get(count_key), int) and man[count_key] != len(rows):
        raise DataError(f"{path}: {len(rows)} {what}, but its manifest promises {man[count_key]} ({count_key} in "
                        f"{manifest_path(path)}): the file was cut or edited after it was written; delete it and rerun snakemake")
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, found {type(row).__name__}")
        missing = [f for f in fields if f not in row]
        if missing:
            raise DataError(f"{path}:{i}: missing field(s) {', '.join(missing)}; expected {', '.join(fields)}")
    return rows


def check_unique_ids(rows: list[dict], path: str | Path, key: str = "id") -> None:
    """Duplicate question ids would make one question vanish (keyed dicts) and another count twice."""
    seen: dict = {}
    for i, row in enumerate(rows, 1):
        k = row.get(key)
        if k in seen:
            raise DataError(f"{path}: duplicate {key} {k!r} (rows {seen[k]} and {i}); expected unique {key}s")
        seen[k] = i


def check_samples(samples: list[dict], contexts: list[dict], samples_path, contexts_path) -> None:
    """One sample set per context, each with the N responses the sampling manifest records."""
    want = [r["id"] for r in contexts]
    got = [r["id"] for r in samples]
    if sorted(map(str, got)) != sorted(map(str, want)):
        missing = sorted(set(map(str, want)) - set(map(str, got)))
        raise DataError(f"{samples_path}: {len(got)} sample sets for {len(want)} contexts in {contexts_path}; expected "
                        f"one per context" + (f" (missing ids {missing[:3]}...)" if missing else ""))
    man = manifest_of(samples_path) or {}
    sampling = (man.get("config") or {}).get("sampling") or {}
    n = sampling.get("n")
    if n is not None and sampling.get("reference_traces"):
        n += 2  # the gold and the wrong-answer trace appended to each row's samples (solopo.pipeline.sample)
    counts = {len(r["responses"]) for r in samples}
    for i, r in enumerate(samples, 1):
        k = len(r["responses"])
        if (n is not None and k != n) or (n is None and len(counts) > 1):
            raise DataError(f"{samples_path}:{i}: {k} responses for id {r['id']!r}; expected "
                            f"{n if n is not None else max(counts)} (sampling.n, + 2 with sampling.reference_traces)")


def check_eval_items(bench: str, items: list[dict], data_dir, cfg: dict) -> None:
    """No benchmark (or LongBench v1 subset, RULER set) may be empty: its score would be 0.0 or it
    would silently drop out of an average."""
    if not items:
        raise DataError(f"{data_dir}: 0 {bench} items; expected at least 1 (check eval.{bench} and the benchmark data)")
    from solopo.eval import BENCHES

    # a suite with parts of its own (LongBench v1's subsets, RULER's sets) checks each has items
    check_parts = getattr(BENCHES[bench].module, "check_items", None) if bench in BENCHES else None
    if check_parts is not None:
        check_parts(items, data_dir, cfg)


def _empty(value) -> bool:
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list):
        return not value or any(isinstance(v, str) and not v.strip() for v in value)
    return value is None


def _bench_rows(path: Path):
    """(where, item) of a JSONL file (file:line) or of a JSON list file (file: item i)."""
    if path.suffix == ".jsonl":
        for lineno, row in iter_jsonl(path):
            yield f"{path}:{lineno}", row
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    for i, row in enumerate(data):
        yield f"{path}: item {i}", row


def check_benchmark_folder(bench: str, data_dir) -> None:
    """A benchmark folder as written by rule bench_data: its files match the hashes its manifest
    recorded (every folder the workflow builds has one; a folder given by hand without a manifest
    has nothing to compare with), and every item has the fields the evaluation reads (the error
    names file and line)."""
    from solopo.eval import BENCHES

    spec = BENCHES.get(bench)
    if spec is None or not spec.has_data or data_dir is None:
        return
    folder = Path(data_dir)
    problems = verify_folder(folder)
    if problems:
        raise DataError(f"{problems[0]}; the benchmark data changed after it was written: delete {folder} and rerun snakemake")
    # the item files and fields of each suite: solopo.eval.BENCHES
    pattern, nonempty, present = spec.item_files, spec.item_fields, spec.item_present
    files = sorted(f for f in folder.glob(pattern) if f.is_file())
    if not files:
        raise DataError(f"{folder}: no {pattern} item file; expected the {bench} items there")
    for f in files:
        for where, row in _bench_rows(f):
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, found {type(row).__name__}")
            missing = [k for k in nonempty + present if k not in row]
            if missing:
                raise DataError(f"{where}: missing field(s) {', '.join(missing)}; every {bench} item needs "
                                f"{', '.join(nonempty + present)}")
            empty = [k for k in nonempty if _empty(row[k])]
            if empty:
                raise DataError(f"{where}: empty field(s) {', '.join(empty)}; a {bench} item needs a non-empty value")


def position_limit(model: str, trust_remote_code: bool = False) -> tuple[int | None, bool]:
    """(max_position_embeddings, whether rope scaling extends it) of a model folder or hub id."""
    from solopo.runtime import MODEL_LOAD_LOCK

    with MODEL_LOAD_LOCK:
        from transformers import AutoConfig

        c = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    rope = getattr(c, "rope_scaling", None) or {}
    scaled = isinstance(rope, dict) and (rope.get("rope_type") or rope.get("type")) not in (None, "default")
    return getattr(c, "max_position_embeddings", None), scaled


def check_long_tokens(model: str, long_tokens: int, trust_remote_code: bool = False) -> None:
    """Long contexts beyond the backbone's position range give garbage (no error from the model)."""
    limit, scaled = position_limit(model, trust_remote_code)
    if limit is not None and long_tokens > limit and not scaled:
        raise DataError(f"data.long_tokens: {long_tokens} is beyond the position range of {model} "
                        f"(max_position_embeddings {limit}, no rope scaling); allowed: <= {limit}")


def check_chat_template(tokenizer, model: str) -> None:
    """Without a chat template the prompts would go in raw (accuracy collapses, no error)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{model}: the tokenizer has no chat template (tokenizer_config.json 'chat_template'); "
                        "an instruct model's template is required: prompts would be fed raw")
