"""NIAH-Plus (LongAgent, arXiv 2402.11550 App. A): single-doc and multi-doc needle QA.

The released data is one Google-Drive archive (README of zuucan/NeedleInAHaystack-PLUS),
not on the HF hub and not fetchable here: `load_items` reads its JSONL files once they
are unpacked by hand into `data_dir`. Record schema (README):

* single-doc, `dataset: needle_squad`: id, context, context_length, depth_percent, input, answers
* multi-doc, `dataset: needle_hotpotqa`: the same with depth_percent1 and depth_percent2

`build_items` is a faithful *reconstruction* of the generator (LongAgent, arXiv 2402.11550, App. A): needle
paragraph(s) inserted into filler text at given TOKEN depths (0-100% of the filler
tokens, measured with the model tokenizer), at the sentence (or document) boundary
nearest to the requested depth, with the whole context within `length_tolerance` of the
target length (never above it). `build_fixture` uses it on MuSiQue-schema toy records.
The exact 15 lengths, the tokenizer and the multi-doc haystack of the release are unknown.

Prompt: `official` (default; SoLoPO: "official default prompts") = the LongAgent task
description (`utils/data_loader.py`) in the LongBench hotpotqa wrapper (description, passages,
description, `Question: ..\\nAnswer:`), or `solopo_cot` = SoLoPO's Fig. 6 CoT prompt
(`qa_prompt`), an option. Greedy. Score: one-directional
normalised sub-EM over `answers` (a reconstruction: the release names no matcher), after `extract_answer` for the CoT prompt;
accuracy x100 per cell, per task (mean over its items, i.e. over equal-size cells), and
their mean.

Config keys (`eval.niah_plus`), paper preset / tiny preset:

* `source`: released (read `data_dir`) / synthetic (`build_fixture` from the toy world)
* `data_dir`: results/data/niah_plus (the unpacked Drive archive) / -
* `prompt`: official | solopo_cot / solopo_cot (the tiny model answers in the CoT format)
* `max_new_tokens`: 32 (`official`, LongBench's hotpotqa budget; 512 with `solopo_cot`) / 40
* `batch_size`: 1 (contexts up to 128K) / 8
* `lengths`: 15 values linspace(1000, 128000, 15) (only for a synthetic reconstruction) / [256, 384]
* `single_depths`: linspace(0, 100, 10) / [0, 50, 100]
* `multi_depth_pairs`: [[0,33],[0,66],[0,100],[33,66],[33,100],[66,100]] / [[0,100],[33,66]]
* `samples_per_cell`: 10 / 1
* `length_tolerance`: 0.05 (relative; the context is within [L*(1-tol), L] tokens) / 0.1
* `boundary`: sentence | document / sentence
"""
from __future__ import annotations

import bisect
import json
import random
import re
from pathlib import Path

from solopo.artifacts import DataError, iter_jsonl
from solopo.data.prompts import format_document, qa_prompt
from solopo.eval.metrics import extract_answer, ruler_postprocess, sub_em
from solopo.generate import GenerationConfig
from solopo.generate.chat import format_chat

SINGLE, MULTI = "needle_squad", "needle_hotpotqa"
KIND_OF = {SINGLE: "single_doc", MULTI: "multi_doc"}
PROMPTS = ("official", "solopo_cot")
DEFAULT_PROMPT = "official"

# LongAgent utils/data_loader.py task descriptions, quoted.
TASK_DESCRIPTIONS = {
    SINGLE: "Answer the question based on the given passages. The answer must be extracted from the given passages.",
    MULTI: "Answer the question based on the given passages. Only give me the answer and do not output any other words.",
}

PAPER_LENGTHS = [round(1000 + i * (128000 - 1000) / 14) for i in range(15)]
PAPER_SINGLE_DEPTHS = [round(i * 100 / 9, 2) for i in range(10)]
PAPER_MULTI_DEPTH_PAIRS = [[0, 33], [0, 66], [0, 100], [33, 66], [33, 100], [66, 100]]

SEP = "\n\n"
_COMMON = ("id", "context", "context_length", "input", "answers", "dataset")


# --------------------------------------------------------------------------- reading


def validate_item(rec, where: str) -> None:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object")
    ds = rec.get("dataset")
    if ds not in (SINGLE, MULTI):
        raise DataError(f"{where}: field 'dataset' must be {SINGLE!r} or {MULTI!r}, got {ds!r}")
    depth_fields = ("depth_percent",) if ds == SINGLE else ("depth_percent1", "depth_percent2")
    missing = [k for k in _COMMON + depth_fields if k not in rec]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} for {ds}")
    if not isinstance(rec["context"], str) or not isinstance(rec["input"], str):
        raise DataError(f"{where}: 'context' and 'input' must be strings")
    if not (isinstance(rec["answers"], list) and rec["answers"] and all(isinstance(a, str) for a in rec["answers"])):
        raise DataError(f"{where}: 'answers' must be a non-empty list of strings")
    for k in depth_fields + ("context_length",):
        if isinstance(rec[k], bool) or not isinstance(rec[k], (int, float)):
            raise DataError(f"{where}: {k!r} must be a number, got {rec[k]!r}")


def load_items(path) -> list[dict]:
    """Released NIAH-Plus records from a JSONL file or every *.jsonl under a folder (sorted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: does not exist (unpack the NIAH-Plus Drive archive there)")
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no *.jsonl files (unpack the NIAH-Plus Drive archive here)")
    items = []
    for f in files:
        for lineno, rec in iter_jsonl(f):
            validate_item(rec, f"{f}:{lineno}")
            items.append(rec)
    return items


# --------------------------------------------------------------------------- generation


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def _token_ends(tokenizer, text: str) -> list[int]:
    """Char end offset of every token of `text` (needs a fast tokenizer)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ends, last = [], 0
    for _, e in enc["offset_mapping"]:
        last = max(last, e)
        ends.append(last)
    return ends


_SENT_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n{2,}")  # sentence ends and blank lines, not title lines


def _boundaries(text: str, mode: str) -> list[int]:
    """Char positions where a needle may go (start of a sentence / document)."""
    if mode == "document":
        cuts = [m.end() for m in re.finditer(re.escape(SEP), text)]
    else:
        cuts = [m.end() for m in _SENT_END.finditer(text)]
    return sorted({0, len(text), *cuts})


def depth_key(d) -> str:
    return f"{round(float(d), 2):g}"


def _doc_text(d) -> str:
    return d if isinstance(d, str) else d["text"]


class _Filler:
    def __init__(self, haystack_docs: list, tokenizer):
        self.docs, self.tok = haystack_docs, tokenizer
        self._ntok: dict[int, int] = {}

    def ntok(self, i: int) -> int:
        if i not in self._ntok:
            self._ntok[i] = count_tokens(self.tok, _doc_text(self.docs[i]))
        return self._ntok[i]

    def allowed(self, needle: dict) -> list[int]:
        titles = set(needle.get("exclude_titles", ()))
        nid = needle.get("id")
        return [i for i, d in enumerate(self.docs)
                if isinstance(d, str) or (d.get("title") not in titles and (d.get("source") is None or d["source"] != nid))]


def _assemble(filler: str, cuts: list[tuple[int, str]]) -> tuple[str, list[int]]:
    """Insert needle texts at char positions of `filler` as separate paragraphs; returns
    (context, char start of each needle in input order)."""
    order = sorted(range(len(cuts)), key=lambda k: (cuts[k][0], k))
    parts: list = []
    starts = [0] * len(cuts)
    prev = 0
    for k in order:
        pos, text = cuts[k]
        seg = filler[prev:pos].strip()
        if seg:
            parts.append(seg)
        parts.append((k, text))
        prev = pos
    tail = filler[prev:].strip()
    if tail:
        parts.append(tail)
    out, offset = [], 0
    for p in parts:
        if out:
            offset += len(SEP)
        if isinstance(p, tuple):
            starts[p[0]] = offset
            p = p[1]
        out.append(p)
        offset += len(p)
    return SEP.join(out), starts


def make_sample(needle: dict, filler: _Filler, tokenizer, length: int, depths: list[float], rng: random.Random,
                tolerance: float = 0.05, boundary: str = "sentence") -> dict:
    """Context of ~`length` tokens with needle doc k at depth depths[k] (% of filler tokens)."""
    if boundary not in ("sentence", "document"):
        raise ValueError(f"niah_plus boundary {boundary!r}: allowed values are sentence, document")
    needles = list(needle["docs"])
    if len(needles) != len(depths):
        raise ValueError(f"niah_plus needle {needle.get('id')}: {len(needles)} needle docs but {len(depths)} depths")
    pool = filler.allowed(needle)
    if not pool:
        raise ValueError(f"niah_plus needle {needle.get('id')}: no haystack document is allowed")
    order = list(pool)
    rng.shuffle(order)
    needle_tok = count_tokens(tokenizer, SEP.join(needles)) + len(needles) * count_tokens(tokenizer, SEP)
    floor = int(length * (1 - tolerance))
    budget = length - needle_tok
    if budget <= 0:
        raise ValueError(f"niah_plus needle {needle.get('id')}: the needle(s) alone take {needle_tok} tokens, "
                         f"more than the target length {length}")
    target = budget + 64  # filler tokens to collect, as the documents' own counts add up
    for _attempt in range(8):
        # Enough whole documents (cycled, reshuffled per cycle) to cover the filler budget.
        docs, total, queue = [], 0, list(order)
        while total < target:
            if not queue:  # haystack exhausted: cycle through it again in a new order
                queue = list(pool)
                rng.shuffle(queue)
            i = queue.pop()
            docs.append(i)
            total += filler.ntok(i) + 1
        text = SEP.join(_doc_text(filler.docs[i]) for i in docs)
        ends = _token_ends(tokenizer, text)
        if len(ends) < budget:
            # the joined text has fewer tokens than its documents counted one by one (a BPE tokenizer merges
            # across the separators: ~9 % fewer with Qwen2.5's at 128K): collect more and try again
            target += budget - len(ends) + 64
            continue
        cut = ends[budget - 1]
        bnds = _boundaries(text, boundary)
        b = bnds[bisect.bisect_right(bnds, cut) - 1]
        fill = text[:b].rstrip()
        if count_tokens(tokenizer, fill) + needle_tok < floor:  # sentence too long here: cut at a word
            ws = text.rfind(" ", 0, cut + 1)
            fill = text[:ws if ws > 0 else cut].rstrip()
        fends = _token_ends(tokenizer, fill)
        n_fill = len(fends)
        fb = _boundaries(fill, boundary)
        fb_tok = [bisect.bisect_right(fends, c) for c in fb]  # filler tokens before each boundary
        cuts, chosen = [], []
        for d, ntext in zip(depths, needles):
            want = float(d) / 100 * n_fill
            j = min(range(len(fb)), key=lambda j: (abs(fb_tok[j] - want), fb_tok[j]))
            cuts.append((fb[j], ntext))
            chosen.append(100.0 * fb_tok[j] / n_fill if n_fill else 0.0)
        context, starts = _assemble(fill, cuts)
        n = count_tokens(tokenizer, context)
        if n > length:
            budget -= n - length
            continue
        if n < floor:
            raise ValueError(f"niah_plus needle {needle.get('id')}: context of {n} tokens is below "
                             f"{floor} = {length} x (1 - {tolerance}); raise length_tolerance")
        return {"context": context, "measured_length": n, "measured_depths": [round(c, 2) for c in chosen],
                "needle_char_starts": starts}
    raise ValueError(f"niah_plus needle {needle.get('id')}: could not fit {length} tokens")


def build_items(needles: list[dict], haystack_docs: list, tokenizer, lengths: list[int], depths: list, *,
                kind: str = "single", samples_per_cell: int = 1, seed: int = 0, tolerance: float = 0.05,
                boundary: str = "sentence") -> list[dict]:
    """NIAH-Plus records (released schema + measured_length, measured_depth, needle_id).

    needles: {id, question, answers, docs: [needle text] (1 for single, 2 for multi),
    exclude_titles?}; haystack_docs: strings or {text, title?, source?} (a doc whose title is
    in the needle's exclude_titles or whose source is the needle id is not used with it).
    depths: numbers (single) or [d1, d2] pairs (multi). Cells are length-major; needle of
    sample j in cell c = needles[(c * samples_per_cell + j) % len(needles)].
    """
    if kind not in ("single", "multi"):
        raise ValueError(f"niah_plus kind {kind!r}: allowed values are single, multi")
    dataset = SINGLE if kind == "single" else MULTI
    want_docs = 1 if kind == "single" else 2
    usable = [n for n in needles if len(n["docs"]) == want_docs]
    if not usable:
        raise ValueError(f"niah_plus {kind}: no needle with {want_docs} needle doc(s)")
    filler = _Filler(haystack_docs, tokenizer)
    items, cell = [], 0
    for length in lengths:
        for dep in depths:
            ds = [float(dep)] if kind == "single" else [float(x) for x in dep]
            key = depth_key(ds[0]) if kind == "single" else "-".join(depth_key(x) for x in ds)
            for j in range(samples_per_cell):
                nd = usable[(cell * samples_per_cell + j) % len(usable)]
                rng = random.Random(f"{seed}|{dataset}|{length}|{key}|{j}|{nd['id']}")
                s = make_sample(nd, filler, tokenizer, int(length), ds, rng, tolerance, boundary)
                rec = {"id": f"{dataset}-{length}-{key}-{j}-{nd['id']}", "context": s["context"],
                       "context_length": int(length)}
                if kind == "single":
                    rec["depth_percent"] = ds[0]
                else:
                    rec["depth_percent1"], rec["depth_percent2"] = ds
                rec.update({"input": nd["question"], "answers": list(nd["answers"]), "dataset": dataset,
                            "measured_length": s["measured_length"], "measured_depths": s["measured_depths"],
                            "needle_id": nd["id"]})
                items.append(rec)
            cell += 1
    return items


def build_fixture(records: list[dict], out_dir, cfg: dict, seed: int, tokenizer) -> dict[str, Path]:
    """Tiny NIAH-Plus files (needle_squad.jsonl, needle_hotpotqa.jsonl) from MuSiQue-schema records.

    Single-doc needle = all supporting paragraphs of a record as ONE document; multi-doc
    needles = its supporting paragraphs split in two halves, in hop order (records with >= 2). Haystack
    = non-supporting paragraphs of other records whose titles differ from the record's
    supporting titles. Gold answers = [answer] + answer_aliases.
    """
    from solopo.eval.ruler import validate_musique

    for k, rec in enumerate(records):
        validate_musique(rec, f"fixture record {k}")
    hay = [{"text": format_document(p["title"], p["paragraph_text"]), "title": p["title"], "source": r["id"]}
           for r in records for p in r["paragraphs"] if not p["is_supporting"]]
    single, multi = [], []
    for r in records:
        sup = [p for p in r["paragraphs"] if p["is_supporting"]]
        hop = {step.get("paragraph_support_idx"): k for k, step in enumerate(r.get("question_decomposition", []))}
        sup.sort(key=lambda p: hop.get(p["idx"], len(hop)))  # hop order: needle 1 answers the first hop
        if not sup:
            continue
        base = {"id": r["id"], "question": r["question"], "answers": [r["answer"]] + list(r["answer_aliases"]),
                "exclude_titles": sorted({p["title"] for p in sup})}
        docs = [format_document(p["title"], p["paragraph_text"]) for p in sup]
        single.append({**base, "docs": ["\n".join(docs)]})
        if len(sup) >= 2:
            h = (len(docs) + 1) // 2
            multi.append({**base, "docs": ["\n".join(docs[:h]), "\n".join(docs[h:])]})
    common = dict(samples_per_cell=int(cfg.get("samples_per_cell", 1)), seed=seed,
                  tolerance=float(cfg.get("length_tolerance", 0.05)), boundary=cfg.get("boundary", "sentence"))
    lengths = [int(x) for x in cfg["lengths"]]
    s_items = build_items(single, hay, tokenizer, lengths, cfg.get("single_depths", PAPER_SINGLE_DEPTHS),
                          kind="single", **common)
    m_items = build_items(multi, hay, tokenizer, lengths, cfg.get("multi_depth_pairs", PAPER_MULTI_DEPTH_PAIRS),
                          kind="multi", **common)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"single_doc": out_dir / f"{SINGLE}.jsonl", "multi_doc": out_dir / f"{MULTI}.jsonl"}
    for key, rows in (("single_doc", s_items), ("multi_doc", m_items)):
        paths[key].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- evaluation


def user_prompt(item: dict, prompt: str) -> str:
    if prompt == "solopo_cot":
        return qa_prompt(item["context"], item["input"])
    if prompt == "official":
        desc = TASK_DESCRIPTIONS[item["dataset"]]
        return f"{desc}\n\nThe following are given passages.\n{item['context']}\n\n{desc}\n\nQuestion: {item['input']}\nAnswer:"
    raise ValueError(f"niah_plus prompt {prompt!r}: allowed values are {', '.join(PROMPTS)}")


def _cell_key(item: dict) -> tuple[str, str]:
    if item["dataset"] == SINGLE:
        return str(int(item["context_length"])), depth_key(item["depth_percent"])
    return str(int(item["context_length"])), f"{depth_key(item['depth_percent1'])}-{depth_key(item['depth_percent2'])}"


def default_max_new_tokens(cfg: dict) -> int:
    return 512 if cfg.get("prompt", DEFAULT_PROMPT) == "solopo_cot" else 32


def _depths(item: dict) -> list[float]:
    keys = ("depth_percent",) if item["dataset"] == SINGLE else ("depth_percent1", "depth_percent2")
    return sorted(float(item[k]) for k in keys)


def fit_context(item: dict, prompt: str, tokenizer, window: int | None, max_new_tokens: int) -> tuple[dict, int]:
    """`item` with its haystack shortened so that chat prompt + max_new_tokens <= window; (item, tokens cut).

    The released contexts were measured with another tokenizer, so a 128,000-token item can exceed
    the window in the evaluated model's tokens. Tokens are removed only from the context (never the
    instruction or question), where the cut is farthest from the needle depths: at the end, at the
    start, or in the middle of the widest gap between two needles."""
    if window is None:
        return item, 0
    fmt = lambda it: format_chat(tokenizer, user_prompt(it, prompt))  # noqa: E731
    n = len(tokenizer(fmt(item), add_special_tokens=False)["input_ids"])
    if n + max_new_tokens <= window:
        return item, 0
    ids = tokenizer(item["context"], add_special_tokens=False)["input_ids"]
    d = _depths(item)
    options = [(d[0], 0.0), (100 - d[-1], 100.0)] + [((b - a) / 2, (a + b) / 2) for a, b in zip(d, d[1:])]
    at = max(options)[1] / 100
    cut = n + max_new_tokens - window
    for _ in range(4):  # re-tokenising the joined pieces can shift a few tokens: cut a little more
        cut_n = min(len(ids), cut)
        start = min(max(0, round(at * len(ids) - cut_n / 2)), len(ids) - cut_n)
        text = tokenizer.decode(ids[:start]) + tokenizer.decode(ids[start + cut_n:])
        new = {**item, "context": text}
        n_new = len(tokenizer(fmt(new), add_special_tokens=False)["input_ids"])
        if n_new + max_new_tokens <= window:
            return new, cut_n
        cut += n_new + max_new_tokens - window + 8
    raise ValueError(f"niah_plus item {item['id']}: could not fit the window {window} ({n} prompt tokens)")


def score(items: list[dict], preds: list[str], prompt: str = DEFAULT_PROMPT) -> tuple[dict, list[bool]]:
    """sub-EM accuracy (x100): per task, per (length, depth) cell, and the mean of the tasks."""
    correct = []
    for it, p in zip(items, preds):
        view = extract_answer(p) if prompt == "solopo_cot" else p
        correct.append(bool(sub_em(view, it["answers"])))
    subsets, grid = {}, {}
    for ds, kind in KIND_OF.items():
        idx = [i for i, it in enumerate(items) if it["dataset"] == ds]
        if not idx:
            continue
        subsets[kind] = round(100 * sum(correct[i] for i in idx) / len(idx), 2)
        cells: dict[str, dict[str, list[bool]]] = {}
        for i in idx:
            L, d = _cell_key(items[i])
            cells.setdefault(L, {}).setdefault(d, []).append(correct[i])
        grid[kind] = {L: {d: round(100 * sum(v) / len(v), 2) for d, v in row.items()}
                      for L, row in sorted(cells.items(), key=lambda kv: int(kv[0]))}
    avg = round(sum(subsets.values()) / len(subsets), 2) if subsets else 0.0
    return {"score": avg, "subsets": subsets, "grid": grid}, correct


def limit_items(items: list[dict], limit: int | None) -> list[dict]:
    """`eval.niah_plus.limit`: N items, one per context length from the longest down, round robin, so that
    any limit keeps the longest haystack (the window's edge) and spreads over lengths; null = all."""
    if not limit:
        return items
    by_length: dict[int, list[dict]] = {}
    for it in items:
        by_length.setdefault(int(it["context_length"]), []).append(it)
    queues = [by_length[k] for k in sorted(by_length, reverse=True)]
    picked: list[dict] = []
    while len(picked) < min(limit, len(items)):
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    return picked


def evaluate(backend, items: list[dict], cfg: dict, seed: int = 0) -> tuple[dict, list[dict]]:
    prompt = cfg.get("prompt", DEFAULT_PROMPT)
    if prompt not in PROMPTS:
        raise ValueError(f"niah_plus prompt {prompt!r}: allowed values are {', '.join(PROMPTS)}")
    gen = GenerationConfig(max_new_tokens=int(cfg.get("max_new_tokens", default_max_new_tokens(cfg))),
                           temperature=0.0, n=1, seed=seed, batch_size=int(cfg.get("batch_size", 1)))
    window = getattr(backend, "max_model_len", None)
    fitted = [fit_context(it, prompt, backend.tokenizer, window, gen.max_new_tokens) for it in items]
    cut = [c for _, c in fitted]
    prompts = [format_chat(backend.tokenizer, user_prompt(it, prompt)) for it, _ in fitted]
    raw = [outs[0] for outs in backend.generate(prompts, gen)] if prompts else []
    preds = [ruler_postprocess(r) for r in raw]
    scores, correct = score(items, preds, prompt)
    result = {"benchmark": "niah_plus", **scores, "n": len(items),
              "settings": {"prompt": prompt, "max_new_tokens": gen.max_new_tokens, "temperature": 0.0,
                           "metric": "sub-EM (one-directional, normalised) over answers"
                                     + (", after extract_answer" if prompt == "solopo_cot" else ""),
                           "source": cfg.get("source", "released"), "window": window,
                           "n_context_shortened": sum(1 for c in cut if c)}}
    predictions = []
    for it, r, p, c, k in zip(items, raw, preds, correct, cut):
        L, d = _cell_key(it)
        predictions.append({"id": it["id"], "dataset": it["dataset"], "context_length": it["context_length"],
                            "depth": d, "output": r, "pred": p, "context_tokens_cut": k,
                            "extracted": extract_answer(p) if prompt == "solopo_cot" else p,
                            "answers": it["answers"], "correct": c})
    return result, predictions



# --------------------------------------------------------------------------- entry points (solopo.eval.BENCHES)
def build_data(out: Path, records: list[dict], cfg: dict, seed: int, model: str | None = None,
               sources_dir: str | None = None) -> dict:
    """Rule bench_data: synthetic haystacks fitted to `model`'s tokenizer, else a copy of the
    unpacked release (`data_dir`); no manifest extras."""
    if cfg.get("source") == "synthetic":
        from solopo.generate.hf import load_tokenizer

        build_fixture(records, out, cfg, seed, load_tokenizer(model))
        return {}
    src = Path(cfg["data_dir"])
    if not src.exists():
        raise FileNotFoundError(f"eval.niah_plus.data_dir {src}: NIAH-Plus is distributed only as a Google-Drive "
                                "archive (zuucan/NeedleInAHaystack-PLUS README); unpack it there")
    for f in src.glob("*.jsonl"):
        (Path(out) / f.name).write_bytes(f.read_bytes())
    return {}


def eval_items(data_dir, cfg: dict) -> list[dict]:
    """The items an evaluation reads: the folder's items, `limit` applied."""
    return limit_items(load_items(data_dir), cfg.get("limit"))

__all__ = ["build_data", "eval_items", "load_items", "limit_items", "validate_item", "build_items", "make_sample",
           "build_fixture", "evaluate", "score", "user_prompt", "TASK_DESCRIPTIONS", "PAPER_LENGTHS", "PAPER_SINGLE_DEPTHS",
           "PAPER_MULTI_DEPTH_PAIRS"]
