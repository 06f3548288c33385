"""LongBench v1, the six English QA datasets (SoLoPO Tables 3 and 7).

Protocol (THUDM/LongBench `LongBench/pred.py` and `LongBench/eval.py`; SoLoPO §3 and App. D.2):

1. Fill the prompt: SoLoPO's CoT QA prompt (`solopo.data.prompts.qa_prompt`, the Fig. 6
   reconstruction; the paper's choice) or the official `dataset2prompt` template (typos kept).
2. Middle-truncate the raw filled prompt to `max_length` tokens (`solopo.eval.truncation`,
   LongBench v1 style), then apply the chat template (`format_chat`).
3. Greedy decoding. `max_new_tokens` comes from the config for the CoT prompt and from the
   official `dataset2maxlen` for `prompt: official`.
4. With the CoT prompt, the final answer is extracted (`extract_answer`, "The answer is: X")
   before scoring; the official prompt scores the whole output, as LongBench does.
5. `qa_f1_score`, max over the gold answers; per dataset `round(100 * mean, 2)`.
   S-Doc = mean(narrativeqa, qasper, multifieldqa_en), M-Doc = mean(hotpotqa, 2wikimqa,
   musique), Avg = mean of the six (each rounded to 2 decimals). With a subset of the
   datasets configured, each mean is over the datasets present (None if none is).

Data: the released `data.zip` of `THUDM/LongBench` (`data/<name>.jsonl`, fields `input`,
`context`, `answers`, `length`, `dataset`, `language`, `all_classes`, `_id`). `datasets>=4`
refuses the repo's loading script, so `download` fetches the zip and unzips the six files.
The tiny preset builds fixtures in the same schema from toy MuSiQue-schema records.

Config keys read (`eval.longbench_v1.*`), as `paper preset / tiny preset`:

- `datasets`: the six names / the six names (default: all six, in the paper's order)
- `prompt`: `solopo_cot` / `solopo_cot` (`official` = LongBench's own templates)
- `max_length`: 31500 / 384 (tokens of the raw prompt; 31500 is LongBench's 32K-model
  default, leaving room for the CoT budget inside SoLoPO's 32K context)
- `max_new_tokens`: 1024 / 32 (CoT prompt only; [INF] 1,024 as SEALONG, not recovered)
- `batch_size`: 8 / 4 (prompts per `generate` chunk; vLLM ignores it)
- `seed`: 42 / 42 (LongBench's seed; greedy decoding makes it moot)
- `limit`: null / null (first N items per dataset; null = all)
- `fixture_items`: unused / 4 (items per dataset in `build_fixture`)
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import zipfile
from pathlib import Path

from solopo.artifacts import DataError, atomic_path, iter_jsonl
from solopo.data.contexts import padded_paragraphs
from solopo.data.prompts import qa_prompt
from solopo.eval.metrics import extract_answer, qa_f1_score
from solopo.eval.truncation import middle_truncate, prompt_token_ids
from solopo.generate import GenerationConfig
from solopo.generate.chat import format_chat

log = logging.getLogger(__name__)

BENCHMARK = "longbench_v1"
S_DOC = ("narrativeqa", "qasper", "multifieldqa_en")
M_DOC = ("hotpotqa", "2wikimqa", "musique")
DATASETS = S_DOC + M_DOC
PROMPTS = ("solopo_cot", "official")

# LongBench/config/dataset2prompt.json, quoted exactly: "asconcisely" (narrativeqa, twice)
# and the leading space of " Answer the question" (qasper) are in the original.
_MULTI_DOC = (
    "Answer the question based on the given passages. Only give me the answer and do not output any other words."
    "\n\nThe following are given passages.\n{context}\n\n"
    "Answer the question based on the given passages. Only give me the answer and do not output any other words."
    "\n\nQuestion: {input}\nAnswer:"
)
DATASET2PROMPT = {
    "narrativeqa": (
        "You are given a story, which can be either a novel or a movie script, and a question. Answer the question "
        "asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\n"
        "Story: {context}\n\n"
        "Now, answer the question based on the story asconcisely as you can, using a single phrase if possible. "
        "Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:"
    ),
    "qasper": (
        "You are given a scientific article and a question. Answer the question as concisely as you can, using a "
        "single phrase or sentence if possible. If the question cannot be answered based on the information in the "
        'article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". '
        "Do not provide any explanation.\n\n"
        "Article: {context}\n\n"
        " Answer the question based on the above article as concisely as you can, using a single phrase or sentence "
        "if possible. If the question cannot be answered based on the information in the article, write "
        '"unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". '
        "Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:"
    ),
    "multifieldqa_en": (
        "Read the following text and answer briefly.\n\n{context}\n\n"
        "Now, answer the following question based on the above text, only give me the answer and do not output any "
        "other words.\n\nQuestion: {input}\nAnswer:"
    ),
    "hotpotqa": _MULTI_DOC,
    "2wikimqa": _MULTI_DOC,
    "musique": _MULTI_DOC,
}
# LongBench/config/dataset2maxlen.json (used with prompt: official).
DATASET2MAXLEN = {"narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64, "hotpotqa": 32, "2wikimqa": 32, "musique": 32}

# field -> accepted types of the released schema
FIELDS = {
    "input": (str,), "context": (str,), "answers": (list,), "length": (int,), "dataset": (str,),
    "language": (str,), "all_classes": (type(None), list), "_id": (str,),
}


# ----------------------------------------------------------------------------- config


def datasets_of(cfg: dict) -> list[str]:
    names = list(cfg.get("datasets") or DATASETS)
    bad = [n for n in names if n not in DATASETS]
    if bad:
        raise ValueError(f"longbench_v1 datasets {bad}: allowed values are {', '.join(DATASETS)}")
    return names


def prompt_kind(cfg: dict) -> str:
    kind = cfg.get("prompt", "solopo_cot")
    if kind not in PROMPTS:
        raise ValueError(f"longbench_v1 prompt {kind!r}: allowed values are {', '.join(PROMPTS)}")
    return kind


def build_prompt(item: dict, kind: str = "solopo_cot") -> str:
    """The raw (untruncated, un-templated) prompt of one item."""
    if kind == "official":
        return DATASET2PROMPT[item["dataset"]].format(context=item["context"], input=item["input"])
    if kind == "solopo_cot":
        return qa_prompt(item["context"], item["input"])
    raise ValueError(f"longbench_v1 prompt {kind!r}: allowed values are {', '.join(PROMPTS)}")


def max_new_tokens_for(dataset: str, cfg: dict) -> int:
    if prompt_kind(cfg) == "official":
        return DATASET2MAXLEN[dataset]
    return int(cfg.get("max_new_tokens", 1024))


# ----------------------------------------------------------------------------- data


def _check_item(row, where: str, name: str) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field, types in FIELDS.items():
        if field not in row:
            raise DataError(f"{where}: missing field {field!r}")
        val = row[field]
        if not isinstance(val, types) or (field == "length" and isinstance(val, bool)):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise DataError(f"{where}: field {field!r} should be {want}, got {type(val).__name__}")
    if not all(isinstance(a, str) for a in row["answers"]):
        raise DataError(f"{where}: field 'answers' should be a list of strings")
    if row["dataset"] != name:
        raise DataError(f"{where}: field 'dataset' is {row['dataset']!r} in the file for {name!r}")
    return row


def _read_dataset(path: Path, name: str) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: missing (LongBench v1 dataset {name!r})")
    return [_check_item(row, f"{path}:{lineno}", name) for lineno, row in iter_jsonl(path)]


def load_items(path, cfg: dict) -> list[dict]:
    """Read `<path>/<name>.jsonl` for each configured dataset, validating the released schema.

    Returns the items in dataset order (first `limit` per dataset when `limit` is set).
    """
    folder = Path(path)
    limit = cfg.get("limit")
    items: list[dict] = []
    for name in datasets_of(cfg):
        rows = _read_dataset(folder / f"{name}.jsonl", name)
        items.extend(rows[: int(limit)] if limit else rows)
    return items


def hub_download(repo_id: str, filename: str, label: str) -> str:
    """`hf_hub_download` of a dataset file; offline or unreachable hub -> one-line RuntimeError."""
    from solopo.runtime import hub_download

    try:  # bounded time when the hub is unreachable (see solopo.runtime.hub_download)
        return hub_download(repo_id, filename, "dataset")
    except Exception as e:  # noqa: BLE001 - every hub failure becomes one clear message
        why = ("HF_HUB_OFFLINE=1 is set and the file is not in the local cache"
               if os.environ.get("HF_HUB_OFFLINE") == "1" else "the Hugging Face hub is unreachable or refused")
        raise RuntimeError(f"{label}: cannot download {repo_id}/{filename} ({why}; {type(e).__name__})") from None


def download(out_dir, cfg: dict) -> list[Path]:
    """Paper preset: fetch THUDM/LongBench `data.zip` and unzip the configured QA jsonl files into `out_dir`."""
    zip_path = hub_download("THUDM/LongBench", "data.zip", "LongBench v1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with zipfile.ZipFile(zip_path) as zf:
        members = {Path(m).name: m for m in zf.namelist() if m.endswith(".jsonl")}
        for name in datasets_of(cfg):
            member = members.get(f"{name}.jsonl")
            if member is None:
                raise DataError(f"{zip_path}: no {name}.jsonl inside (LongBench v1)")
            target = out / f"{name}.jsonl"
            with atomic_path(target) as tmp, zf.open(member) as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            paths.append(target)
    return paths


def _answers(record: dict) -> list[str]:
    out: list[str] = []
    for a in [record["answer"], *record.get("answer_aliases", [])]:
        if a and a not in out:
            out.append(a)
    return out


def fixture_context(record: dict, dataset: str, paras: list[dict] | None = None) -> str:
    """Context of a toy record: `Passage i:` blocks for the multi-doc sets, running text otherwise
    (`paras`: the record's paragraphs padded with others', `solopo.data.contexts.padded_paragraphs`)."""
    paras = record["paragraphs"] if paras is None else paras
    if dataset in M_DOC:
        return "\n".join(f"Passage {i}:\n{p['title']}\n{p['paragraph_text']}" for i, p in enumerate(paras, 1))
    return "\n\n".join(p["paragraph_text"] for p in paras)


def build_fixture(records: list[dict], out_dir, cfg: dict, seed: int) -> list[Path]:
    """Write `<name>.jsonl` per configured dataset in the released schema, from MuSiQue-schema records.

    Each dataset gets `fixture_items` records drawn without replacement by a seeded RNG
    (all records if fewer). Deterministic for a given `seed`.
    """
    if not records:
        raise ValueError("longbench_v1 build_fixture: no records")
    n = int(cfg.get("fixture_items", 4))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in datasets_of(cfg):
        rng = random.Random(f"longbench_v1:{name}:{seed}")
        chosen = rng.sample(records, min(n, len(records)))
        rows = []
        for rec in chosen:
            paras = padded_paragraphs(rec, records, int(cfg.get("fixture_min_words", 0)), rng)
            context = fixture_context(rec, name, paras)
            rows.append({
                "input": rec["question"],
                "context": context,
                "answers": _answers(rec),
                "length": len(context.split()),
                "dataset": name,
                "language": "en",
                "all_classes": None,
                "_id": hashlib.sha256(f"{name}:{rec['id']}:{seed}".encode()).hexdigest()[:48],
            })
        target = out / f"{name}.jsonl"
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths.append(target)
    return paths


# ----------------------------------------------------------------------------- scoring


def score_item(output: str, answers: list[str], kind: str) -> tuple[str, float]:
    """(scored prediction, max F1 over gold answers in [0, 1])."""
    pred = extract_answer(output) if kind == "solopo_cot" else output
    return pred, max((qa_f1_score(pred, g) for g in answers), default=0.0)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def aggregate(per_dataset: dict[str, float]) -> dict:
    """S-Doc, M-Doc and Avg from per-dataset scores (0-100), each over the datasets present."""
    return {
        "s_doc": _mean([per_dataset[d] for d in S_DOC if d in per_dataset]),
        "m_doc": _mean([per_dataset[d] for d in M_DOC if d in per_dataset]),
        "avg": _mean([per_dataset[d] for d in DATASETS if d in per_dataset]),
    }


def dataset_score(item_scores: list[float]) -> float:
    """LongBench `scorer`: round(100 * mean, 2)."""
    return round(100 * sum(item_scores) / len(item_scores), 2) if item_scores else 0.0


def evaluate(backend, items: list[dict], cfg: dict, seed: int | None = None) -> tuple[dict, list[dict]]:
    """Run and score the configured datasets; returns (result, predictions). `seed` overrides `cfg["seed"]`."""
    kind = prompt_kind(cfg)
    seed = int(cfg.get("seed", 42)) if seed is None else int(seed)
    tok = backend.tokenizer
    max_length = int(cfg.get("max_length", 31500))
    names = [n for n in datasets_of(cfg) if any(it["dataset"] == n for it in items)]
    per_dataset: dict[str, float] = {}
    predictions: list[dict] = []
    for name in names:
        group = [it for it in items if it["dataset"] == name]
        prompts, meta = [], []
        for it in group:
            raw = build_prompt(it, kind)
            raw_ids = prompt_token_ids(raw, tok)
            raw_tokens = len(raw_ids)
            prompt = format_chat(tok, middle_truncate(raw, tok, max_length, ids=raw_ids))
            prompts.append(prompt)
            meta.append((raw_tokens, len(tok(prompt, add_special_tokens=False)["input_ids"])))
        gen = GenerationConfig(max_new_tokens=max_new_tokens_for(name, cfg), temperature=0.0, n=1,
                               seed=seed, batch_size=int(cfg.get("batch_size", 8)))
        outputs = backend.generate(prompts, gen)
        scores = []
        for it, out, (raw_tokens, prompt_tokens) in zip(group, outputs, meta):
            text = out[0] if out else ""
            pred, score = score_item(text, it["answers"], kind)
            scores.append(score)
            predictions.append({
                "id": it["_id"], "dataset": name, "raw_prompt_tokens": raw_tokens, "truncated": raw_tokens > max_length,
                "prompt_tokens": prompt_tokens, "output": text, "prediction": pred, "answers": it["answers"],
                "score": score,
            })
        per_dataset[name] = dataset_score(scores)
        log.info("longbench_v1 %s: %.2f over %d items", name, per_dataset[name], len(group))
    agg = aggregate(per_dataset)
    result = {
        "benchmark": BENCHMARK,
        "score": agg["avg"],
        "subsets": per_dataset,
        **agg,
        "n": len(predictions),
        "n_per_subset": {n: sum(1 for p in predictions if p["dataset"] == n) for n in names},
        "settings": {
            "prompt": kind,
            "max_length": max_length,
            "max_new_tokens": ({n: DATASET2MAXLEN[n] for n in names} if kind == "official"
                               else int(cfg.get("max_new_tokens", 1024))),
            "temperature": 0.0,
            "answer_extraction": kind == "solopo_cot",
        },
    }
    return result, predictions


# --------------------------------------------------------------------------- entry points (solopo.eval.BENCHES)
def item_scores(result: dict, preds: list[dict]) -> dict[str, float]:
    """{item key: score} for the seeds page's paired bootstrap: each item's F1, keyed `lbv1|all|<dataset>|<id>`."""
    return {f"lbv1|all|{p['dataset']}|{p['id']}": float(p["score"]) for p in preds}


def check_items(items: list[dict], data_dir, cfg: dict) -> None:
    """Every configured dataset has items: an empty subset would be left out of the S-Doc/M-Doc average."""
    for name in datasets_of(cfg):
        if not any(it.get("dataset") == name for it in items):
            raise DataError(f"{Path(data_dir) / (name + '.jsonl')}: 0 items; expected at least 1 (an empty subset "
                            "would be left out of the S-Doc/M-Doc average)")
