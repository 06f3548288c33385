"""LongBench v2 (503 multiple-choice items; SoLoPO Table 4).

Protocol (THUDM/LongBench `pred.py` and `result.py`; SoLoPO §3 and App. D.2):

1. Fill a template by plain string replacement, each value `.strip()`ed (`$DOC$`, `$Q$`,
   `$C_A$`..`$C_D$`). Templates: the official `0shot`, `0shot_cot` and `0shot_cot_ans`
   (quoted exactly, with U+2019 in "Let’s"), and the default `solopo_cot`: SoLoPO's
   single-stage CoT prompt (Fig. 7, not recovered; [INF] reconstruction = the `0shot_cot`
   text with the stage-2 format request merged into the same turn).
2. Middle-truncate the raw prompt to `max_length` tokens (v2 style: `ids[:L//2] + ids[-L//2:]`
   decoded once), then apply the chat template (the official script sends one user message
   to a chat endpoint, which templates it server-side).
3. Sample at temperature 0.1. `prompt: 0shot_cot` runs the official two-stage protocol
   (stage 1 CoT with `max_new_tokens`; stage 2 `0shot_cot_ans` without the document, with
   `answer_max_new_tokens`); `0shot` uses `answer_max_new_tokens`; `solopo_cot` one stage
   with `max_new_tokens`.
4. `extract_choice` on the stripped output (official regexes). An empty output is re-asked
   up to `empty_retries` times (default 5) with a new seed: the official script does not
   write an empty output and its rerun asks again (through the `_id` cache) until there is
   one. An output still empty after the retries stays in the denominator as wrong
   (unparsed), counted in `n_empty`: dropping it would raise the score silently.
5. Scoring as `result.py`: Overall, Easy/Hard (anything not "easy" is hard),
   Short/Medium/Long, each `round(100 * acc, 1)`; an empty bucket gives None. The released
   `result.py` tests `length == "short"` twice, so its Medium column is always empty and
   medium items land in Long; here Medium is the items with `length == "medium"` (the
   evident intent, and what the LongBench v2 paper reports). `compensated` (default off)
   scores an unparsable prediction as 0.25, as `result.py` can.

YaRN: the pipeline decides it per backbone and suite (`solopo.eval.budget`: Qwen2.5-7B gets its
official YaRN, factor 4 over 32,768, because 120,000-token prompts exceed its native window).
`rope_scaling_for(cfg, model_name)` is kept for direct callers of this module.

Config keys read (`eval.longbench_v2.*`), as `paper preset / tiny preset`:

- `prompt`: `solopo_cot` / `solopo_cot` (also `0shot`, `0shot_cot` = official two-stage)
- `max_length`: 120000 / 384 (`config/model2maxlen.json` for Qwen2.5-7B and Llama-3.1-8B)
- `max_new_tokens`: 1024 / 32 (CoT generation)
- `answer_max_new_tokens`: 128 / 16 (`0shot`, and stage 2 of `0shot_cot`)
- `temperature`: 0.1 / 0.1
- `empty_retries`: 5 / 5 (re-asks of an empty output; still empty = wrong, counted in `n_empty`)
- `compensated`: false / false
- `batch_size`: 8 / 4; `seed`: 42 / 42; `limit`: null / null (first N items)
- `fixture_items`: unused / 4 (at least 3, so every length bucket is populated)
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from pathlib import Path

from solopo.artifacts import DataError, write_json
from solopo.data.contexts import padded_paragraphs
from solopo.eval.longbench_v1 import hub_download
from solopo.eval.metrics import normalize_answer
from solopo.eval.truncation import middle_truncate, prompt_token_ids
from solopo.generate import GenerationConfig
from solopo.generate.chat import format_chat

log = logging.getLogger(__name__)

BENCHMARK = "longbench_v2"
LETTERS = ("A", "B", "C", "D")
DIFFICULTIES = ("easy", "hard")
LENGTHS = ("short", "medium", "long")
PROMPTS = ("solopo_cot", "0shot", "0shot_cot")
FIELDS = ("_id", "domain", "sub_domain", "difficulty", "length", "question",
          "choice_A", "choice_B", "choice_C", "choice_D", "answer", "context")

_CHOICES = "What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$"
_FORMAT = 'Format your response as follows: "The correct answer is (insert answer here)".'

# prompts/0shot.txt, 0shot_cot.txt, 0shot_cot_ans.txt, quoted exactly (no trailing newline).
TEMPLATE_0SHOT = (
    "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\n"
    + _CHOICES + "\n\n" + _FORMAT
)
TEMPLATE_0SHOT_COT = (
    "Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\n"
    + _CHOICES + "\n\nLet\u2019s think step by step:"
)
TEMPLATE_0SHOT_COT_ANS = (
    "Please read the following text and answer the questions below.\n\nThe text is too long and omitted here.\n\n"
    + _CHOICES + "\n\nLet\u2019s think step by step: $COT$\n\n"
    "Based on the above, what is the single, most likely answer choice? " + _FORMAT
)
# [INF] SoLoPO's single-stage CoT prompt (Fig. 7 not recovered): the 0shot_cot text with the
# stage-2 question and format request asked in the same turn.
TEMPLATE_SOLOPO_COT = (
    "Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\n"
    + _CHOICES + "\n\nLet\u2019s think step by step, then answer: based on your reasoning, what is the single, "
    'most likely answer choice? Format the end of your response as follows: "The correct answer is (insert answer here)".'
)
TEMPLATES = {"0shot": TEMPLATE_0SHOT, "0shot_cot": TEMPLATE_0SHOT_COT, "0shot_cot_ans": TEMPLATE_0SHOT_COT_ANS,
             "solopo_cot": TEMPLATE_SOLOPO_COT}

QWEN_YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
EMPTY_RETRIES = 5  # official pred.py: query_llm tries 5 times; a rerun re-asks items with no output

_PAREN = re.compile(r"The correct answer is \(([A-D])\)")
_BARE = re.compile(r"The correct answer is ([A-D])")


# ----------------------------------------------------------------------------- prompts and parsing


def fill(template: str, item: dict, cot: str | None = None) -> str:
    """Official placeholder replacement (each value stripped; `$COT$` is the stripped stage-1 response)."""
    out = (template.replace("$DOC$", item["context"].strip()).replace("$Q$", item["question"].strip())
           .replace("$C_A$", item["choice_A"].strip()).replace("$C_B$", item["choice_B"].strip())
           .replace("$C_C$", item["choice_C"].strip()).replace("$C_D$", item["choice_D"].strip()))
    return out.replace("$COT$", cot) if cot is not None else out


def extract_choice(text: str) -> str | None:
    """LongBench v2 `extract_answer`: drop every `*`, then `The correct answer is (X)`, then `... is X`."""
    text = text.replace("*", "")
    m = _PAREN.search(text) or _BARE.search(text)
    return m.group(1) if m else None


def prompt_kind(cfg: dict) -> str:
    kind = cfg.get("prompt", "solopo_cot")
    if kind not in PROMPTS:
        raise ValueError(f"longbench_v2 prompt {kind!r}: allowed values are {', '.join(PROMPTS)}")
    return kind


def rope_scaling_for(cfg: dict, model_name: str | None = None) -> dict | None:
    """The rope-scaling dict for loading the evaluated model, or None (no YaRN)."""
    yarn = cfg.get("yarn", False)
    if not yarn:
        return None
    models = [m.lower() for m in (cfg.get("yarn_models") or [])]
    if models and model_name is not None and not any(m in model_name.lower() for m in models):
        return None
    out = dict(QWEN_YARN)
    if isinstance(yarn, dict):
        out.update(yarn)
    return out


# ----------------------------------------------------------------------------- data


def _check_item(item, where: str) -> dict:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
    for field in FIELDS:
        if field not in item:
            raise DataError(f"{where}: missing field {field!r}")
        if not isinstance(item[field], str):
            raise DataError(f"{where}: field {field!r} should be str, got {type(item[field]).__name__}")
    for field, choices in (("answer", LETTERS), ("difficulty", DIFFICULTIES), ("length", LENGTHS)):
        if item[field] not in choices:
            raise DataError(f"{where}: field {field!r} is {item[field]!r}, expected one of {', '.join(choices)}")
    return item


def load_items(path, cfg: dict) -> list[dict]:
    """Read the released `data.json` (a JSON list), validating each item; `limit` keeps the first N."""
    path = Path(path)
    if path.is_dir():
        path = path / "data.json"
    if not path.is_file():
        raise DataError(f"{path}: missing (LongBench v2 data.json)")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte offset {e.start}): {e.reason}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    items = [_check_item(it, f"{path}: item {i}") for i, it in enumerate(data)]
    limit = cfg.get("limit")
    return items[: int(limit)] if limit else items


def download(out_dir, cfg: dict) -> list[Path]:
    """Paper preset: fetch THUDM/LongBench-v2 `data.json` (465 MB) and copy it to `out_dir/data.json`."""
    import shutil

    from solopo.artifacts import atomic_path

    src = hub_download("THUDM/LongBench-v2", "data.json", "LongBench v2")
    target = Path(out_dir) / "data.json"
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)
    return [target]


# words a fixture context is padded to at most, per length bucket: inside LongBench v2's bucket bounds
# (short < 32K words, medium 32K-128K, long > 128K; the dataset card)
FIXTURE_BUCKET_WORDS = {"short": 24_000, "medium": 64_000, "long": 10**9}


def build_fixture(records: list[dict], out_dir, cfg: dict, seed: int) -> list[Path]:
    """Write `out_dir/data.json` in the released schema from MuSiQue-schema records.

    Choices = the gold answer plus 3 distinct wrong answers drawn (seeded) from other
    records' answers; the gold letter is random; `difficulty` alternates easy/hard and
    `length` cycles short/medium/long, so every bucket is populated, and the context is padded to
    `fixture_min_words` capped by its bucket (`FIXTURE_BUCKET_WORDS`: LongBench v2's short items have under
    32K words, medium under 128K), so only the long items reach the 120,000-token truncation and the short
    ones cost a fraction of its prefill. Deterministic for a given `seed`.
    """
    n = int(cfg.get("fixture_items", 4))
    if n < 3:
        raise ValueError(f"longbench_v2 fixture_items={n}: at least 3 are needed to populate short/medium/long")
    if len(records) < n:
        raise ValueError(f"longbench_v2 build_fixture: {n} items requested but only {len(records)} records")
    rng = random.Random(f"longbench_v2:{seed}")
    chosen = rng.sample(records, n)
    items = []
    for i, rec in enumerate(chosen):
        gold = rec["answer"]
        taken = {normalize_answer(a) for a in [gold, *rec.get("answer_aliases", [])]}
        pool = []
        for other in records:
            a = other["answer"]
            if other is not rec and a and normalize_answer(a) not in taken:
                taken.add(normalize_answer(a))
                pool.append(a)
        if len(pool) < 3:
            raise ValueError(f"longbench_v2 build_fixture: record {rec['id']!r} has fewer than 3 distinct wrong answers")
        wrong = rng.sample(pool, 3)
        letter = rng.choice(LETTERS)
        choices = iter(wrong)
        item = {
            "_id": hashlib.sha256(f"longbench_v2:{rec['id']}:{seed}".encode()).hexdigest()[:24],
            "domain": "Multi-Document QA",
            "sub_domain": "Toy world",
            "difficulty": DIFFICULTIES[i % 2],
            "length": LENGTHS[i % 3],
            "question": rec["question"],
        }
        for L in LETTERS:
            item[f"choice_{L}"] = gold if L == letter else next(choices)
        item["answer"] = letter
        min_words = min(int(cfg.get("fixture_min_words", 0)), FIXTURE_BUCKET_WORDS[item["length"]])
        paras = padded_paragraphs(rec, records, min_words, rng)
        item["context"] = "\n\n".join(f"{p['title']}\n{p['paragraph_text']}" for p in paras)
        items.append(item)
    target = Path(out_dir) / "data.json"
    write_json(target, items)
    return [target]


# ----------------------------------------------------------------------------- scoring


def _acc(values: list[float]) -> float | None:
    return round(100 * sum(values) / len(values), 1) if values else None


def breakdown(predictions: list[dict], compensated: bool = False) -> dict:
    """`result.py` figures over the scored (non-skipped) predictions: overall, easy, hard, short, medium, long."""
    rows = [p for p in predictions if not p.get("skipped")]

    def acc(p):
        return 0.25 if compensated and p["pred"] is None else float(p["judge"])

    return {
        "overall": _acc([acc(p) for p in rows]),
        "easy": _acc([acc(p) for p in rows if p["difficulty"] == "easy"]),
        "hard": _acc([acc(p) for p in rows if p["difficulty"] != "easy"]),
        "short": _acc([acc(p) for p in rows if p["length"] == "short"]),
        "medium": _acc([acc(p) for p in rows if p["length"] == "medium"]),
        "long": _acc([acc(p) for p in rows if p["length"] == "long"]),
    }


def _generate(backend, prompts: list[str], cfg: dict, max_new_tokens: int, seed_offset: int = 0) -> list[str]:
    """One sample per prompt, stripped; empty outputs re-sampled up to `empty_retries` times with new seeds."""
    if not prompts:
        return []
    seed, retries = int(cfg.get("seed", 42)), int(cfg.get("empty_retries", EMPTY_RETRIES))

    def run(ps, k):
        gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=float(cfg.get("temperature", 0.1)), n=1,
                               seed=seed + seed_offset + 1000 * k, batch_size=int(cfg.get("batch_size", 8)))
        return [(o[0] if o else "").strip() for o in backend.generate(ps, gen)]

    outs = run(prompts, 0)
    for k in range(1, retries + 1):
        empty = [i for i, o in enumerate(outs) if not o]
        if not empty:
            break
        for i, o in zip(empty, run([prompts[i] for i in empty], k)):
            outs[i] = o
    return outs


def evaluate(backend, items: list[dict], cfg: dict, seed: int | None = None) -> tuple[dict, list[dict]]:
    """Run and score LongBench v2; returns (result, predictions). `seed` overrides `cfg["seed"]`."""
    if seed is not None:
        cfg = {**cfg, "seed": int(seed)}
    kind = prompt_kind(cfg)
    tok = backend.tokenizer
    max_length = int(cfg.get("max_length", 120000))
    cot_tokens, ans_tokens = int(cfg.get("max_new_tokens", 1024)), int(cfg.get("answer_max_new_tokens", 128))
    template = TEMPLATE_0SHOT if kind == "0shot" else TEMPLATE_0SHOT_COT if kind == "0shot_cot" else TEMPLATE_SOLOPO_COT
    prompts, meta = [], []
    for it in items:
        raw = fill(template, it)
        raw_ids = prompt_token_ids(raw, tok)
        raw_tokens = len(raw_ids)
        prompt = format_chat(tok, middle_truncate(raw, tok, max_length, style="v2", ids=raw_ids))
        prompts.append(prompt)
        meta.append((raw_tokens, len(tok(prompt, add_special_tokens=False)["input_ids"])))
    outputs = _generate(backend, prompts, cfg, ans_tokens if kind == "0shot" else cot_tokens)
    cots = [None] * len(items)
    if kind == "0shot_cot":  # official stage 2: the document is not re-sent
        stage1 = [i for i, o in enumerate(outputs) if o]
        stage2 = [format_chat(tok, middle_truncate(fill(TEMPLATE_0SHOT_COT_ANS, items[i], cot=outputs[i]), tok,
                                                   max_length, style="v2")) for i in stage1]
        answers = _generate(backend, stage2, cfg, ans_tokens, seed_offset=1)
        for i, a in zip(stage1, answers):
            cots[i] = outputs[i]
            outputs[i] = a
    predictions = []
    for it, out, cot, (raw_tokens, prompt_tokens) in zip(items, outputs, cots, meta):
        pred = extract_choice(out) if out else None
        row = {
            "id": it["_id"], "difficulty": it["difficulty"], "length": it["length"], "domain": it["domain"],
            "raw_prompt_tokens": raw_tokens, "truncated": raw_tokens > max_length, "prompt_tokens": prompt_tokens,
            "output": out, "pred": pred, "answer": it["answer"], "judge": pred == it["answer"], "empty": not out,
        }
        if cot is not None:
            row["response_cot"] = cot
        predictions.append(row)
    figures = breakdown(predictions, bool(cfg.get("compensated", False)))
    scored = [p for p in predictions if not p.get("skipped")]
    result = {
        "benchmark": BENCHMARK,
        "score": figures["overall"],
        "subsets": {k: v for k, v in figures.items() if k != "overall"},
        **figures,
        "n": len(scored),
        "n_skipped": len(predictions) - len(scored),
        "n_empty": sum(1 for p in scored if p["empty"]),
        "n_unparsed": sum(1 for p in scored if p["pred"] is None),
        "settings": {
            "prompt": kind,
            "max_length": max_length,
            "max_new_tokens": ans_tokens if kind == "0shot" else cot_tokens,
            "answer_max_new_tokens": ans_tokens,
            "temperature": float(cfg.get("temperature", 0.1)),
            "compensated": bool(cfg.get("compensated", False)),
            "empty_retries": int(cfg.get("empty_retries", EMPTY_RETRIES)),
        },
    }
    return result, predictions
