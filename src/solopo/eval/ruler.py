"""RULER QA (SQuAD 2.0, HotpotQA, MuSiQue): length-fitted synthesis and scoring.

Protocol: NVIDIA/RULER `scripts/data/synthetic/qa.py` + `scripts/eval/evaluate.py`, with
SoLoPO's additions: a MuSiQue set and the Fig. 6 CoT prompt (`solopo.data.prompts.qa_prompt`).
The source files (readers, which questions, fixture, download) are `solopo.eval.ruler_data`,
re-exported here. Deliberate departures from RULER:

* **Per-sample shuffle.** RULER shuffles every sample's documents with a fresh
  `random.Random(random_seed)`, so for one `num_docs` the gold document of every sample
  sits at the same position. Here every sample has its own
  RNG, seeded by (seed, set, length, index), so gold positions vary across samples.
* **Per-sample exact search that fails loudly.** RULER estimates `num_docs` from sample 0
  and then decrements by 10 per sample, looping forever when even 10 documents do not
  fit. Here every sample gets its own search for the largest document count
  whose full prompt fits: an estimate from per-document token counts, then an exact
  galloping + binary search with step 1, every probe tokenising the whole chat-formatted
  prompt. When even the gold documents do not fit, a ValueError names the sample.
* **No cyclic repetition of DOCS.** When every document of the pool fits, the sample uses
  them all once (and is shorter than the target) instead of repeating documents.
* The candidate order is gold, then the item's `more_context` (shuffled), then random
  other DOCS, exactly RULER's selection rule; the chosen documents are then ordered by
  per-sample random keys, so a longer sample of the same item keeps the relative order.

Length accounting (RULER `hf` tokenizer type, no special tokens added):
`length_w_model_temp = tokens(chat template(task prompt) + answer_prefix) + reserve`
must be <= the target length; `length` is the same count without the chat wrapper. The
reserve is the decoding budget, `max(tokens_to_generate, max_new_tokens)` (`generation_reserve`):
RULER reserves its 32 answer tokens, and a CoT prompt decoding 512 tokens must find them
inside the evaluated window too (else, at 32K, the answer would be cut off): with the paper
preset's 1024 that leaves 3072 tokens of prompt at 4K. Each item records
`prompt_tokens` and `reserve`; `token_stats` summarises them for the dataset manifest.

Config keys (`eval.ruler`), paper preset / tiny preset:

* `sets`: [squad, hotpotqa, musique] / same
* `lengths`: [4096, 8192, 16384, 32768] / [256, 512]
* `num_samples`: 500 (RULER default; SoLoPO's count was not recovered) / 8 -- per set, the
  same questions at every length: SQuAD/HotpotQA the first N answerable questions (RULER's
  rule), MuSiQue a seeded draw stratified by hop count (`ruler_data.select_questions`)
* `prompt`: solopo_cot (Fig. 6 CoT, answer prefix "") | ruler (native template, answer
  prefix " Answer:" inside the assistant turn) / solopo_cot
* `tokens_to_generate`: 32 (RULER's reserve in the length budget) / 32
* `max_new_tokens`: 1024 (the CoT prompt's budget, as in sampling; defaults to tokens_to_generate)
  / 40; the length budget reserves max(tokens_to_generate, max_new_tokens)
* `context_mode`: all (Hotpot pattern: every paragraph of a HotpotQA/MuSiQue item is a
  gold document) | supporting (supporting paragraphs are gold, the item's other
  paragraphs are hard distractors, like SQuAD's `more_context`) / all
* `primary`: extracted (string_match_part on `extract_answer(output)`) | whole_output / extracted
* `batch_size`: 8 / 8
* `sources`: {squad: .../dev-v2.0.json, hotpotqa: .../hotpot_dev_distractor_v1.json,
  musique: .../musique_ans_v1.0_dev.jsonl} (from `download`) / written by `build_fixture`
* `download_timeout_s`: 120 (only `download`)
* `fixture_more_paragraphs`: - / 2 (only `build_fixture`: non-supporting paragraphs added
  to each SQuAD-shaped article, so `more_context` is exercised)
"""
from __future__ import annotations

import logging
import random

from solopo.artifacts import DataError
from solopo.data.prompts import format_context, qa_prompt
from solopo.eval.metrics import extract_answer, ruler_postprocess, string_match_part

# Source files, question selection, fixture and download live in ruler_data; re-exported here.
from solopo.eval.ruler_data import (
    FIRST_N,
    MUSIQUE_HF,
    SETS,
    SOURCE_FILES,
    SOURCE_URLS,
    STRATIFIED,
    build_fixture,
    download,
    read_hotpotqa,
    read_musique,
    read_source,
    read_squad,
    select_questions,
    validate_musique,
)
from solopo.generate import GenerationConfig
from solopo.generate.chat import format_chat

log = logging.getLogger(__name__)

PROMPTS = ("solopo_cot", "ruler")

# RULER scripts/data/synthetic/constants.py, task `qa`.
RULER_QA_TEMPLATE = (
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
    "\n\nThe following are given documents.\n\n{context}\n\n"
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
    "\n\nQuestion: {query}"
)
RULER_ANSWER_PREFIX = " Answer:"


# --------------------------------------------------------------------------- synthesis


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def task_prompt(prompt: str, context: str, query: str) -> tuple[str, str]:
    """(user message, answer prefix) for the configured prompt."""
    if prompt == "solopo_cot":
        return qa_prompt(context, query), ""
    if prompt == "ruler":
        return RULER_QA_TEMPLATE.format(context=context, query=query), RULER_ANSWER_PREFIX
    raise ValueError(f"ruler prompt {prompt!r}: allowed values are {', '.join(PROMPTS)}")


# An item whose source ran out of documents must still reach this share of its target length.
MIN_FILL = 0.95


class _Synth:
    """RULER's `generate_input_output` + per-sample length fitting for one source set."""

    def __init__(self, set_name: str, qas: list[dict], docs: list[str], tokenizer, prompt: str,
                 tokens_to_generate: int, seed: int):
        self.set_name, self.qas, self.docs, self.tok = set_name, qas, docs, tokenizer
        self.prompt, self.ttg, self.seed = prompt, tokens_to_generate, seed
        self._ntok: dict[int, int] = {}
        self._sep = count_tokens(tokenizer, "\n\nDocument 10:\n")

    def _doc_tokens(self, ids: list[int]) -> list[int]:
        missing = [i for i in dict.fromkeys(ids) if i not in self._ntok]
        if missing:
            enc = self.tok([self.docs[i] for i in missing], add_special_tokens=False).input_ids
            self._ntok.update({i: len(e) for i, e in zip(missing, enc)})
        return [self._ntok[i] for i in ids]

    def render(self, qa: dict, ordered: list[int]) -> dict:
        context = format_context([self.docs[i] for i in ordered])
        user, prefix = task_prompt(self.prompt, context, qa["query"])
        inp = format_chat(self.tok, user)
        return {"input": inp, "answer_prefix": prefix, "user": user,
                "n_full": count_tokens(self.tok, inp + prefix) + self.ttg}

    def _pool(self, qa: dict, rng: random.Random, n_others: int) -> list[int]:
        gold = list(dict.fromkeys(qa["context"]))
        more = [i for i in dict.fromkeys(qa["more_context"]) if i not in set(gold)]
        rng.shuffle(more)
        exclude = set(gold) | set(more)
        n_avail = len(self.docs) - len(exclude)
        k = min(n_others, n_avail)
        if k >= n_avail:
            others = [i for i in range(len(self.docs)) if i not in exclude]
            rng.shuffle(others)
        else:
            draw = rng.sample(range(len(self.docs)), min(len(self.docs), k + len(exclude)))
            others = [i for i in draw if i not in exclude][:k]
        return gold + more + others

    def sample(self, index: int, target: int) -> dict:
        qa = self.qas[index]
        key = f"{self.seed}|{self.set_name}|{target}|{index}"
        n_gold = len(dict.fromkeys(qa["context"]))
        # Per-document keys give every sample its own order (RULER's fixed-seed shuffle does not).
        avg = max(1.0, sum(self._doc_tokens(qa["context"])) / max(1, n_gold))
        n_others = max(20, int(3 * target / avg))
        while True:
            rng = random.Random(key)
            pool = self._pool(qa, rng, n_others)
            order_key = {d: rng.random() for d in pool}

            def build(n: int, pool=pool, order_key=order_key) -> dict:
                return self.render(qa, sorted(pool[:n], key=order_key.__getitem__))

            cache: dict[int, dict] = {}

            def fits(n: int, cache=cache, build=build) -> bool:
                if n not in cache:
                    cache[n] = build(n)
                return cache[n]["n_full"] <= target

            if not fits(n_gold):
                raise ValueError(
                    f"ruler {self.set_name} sample {index} (id {qa['id']}): even its {n_gold} gold document(s) do not "
                    f"fit max_seq_length {target}: prompt + tokens_to_generate = {cache[n_gold]['n_full']} tokens; "
                    "raise the length or use context_mode: supporting")
            # Estimate from per-document token counts, then exact galloping + binary search.
            base = cache[n_gold]["n_full"]
            extra = self._doc_tokens(pool[n_gold:])
            est, total = n_gold, base
            for t in extra:
                if total + t + self._sep > target:
                    break
                total += t + self._sep
                est += 1
            lo, hi = n_gold, None  # fits(lo); hi is None or not fits(hi)
            if fits(est):
                lo, step = est, 1
                while lo + step <= len(pool) and fits(lo + step):
                    lo, step = lo + step, step * 2
                hi = lo + step if lo + step <= len(pool) else None
                if hi is None and lo < len(pool):
                    hi = len(pool) if not fits(len(pool)) else None
                    if hi is None:
                        lo = len(pool)
            else:
                hi, step = est, 1
                while hi - step > n_gold and not fits(hi - step):
                    hi, step = hi - step, step * 2
                lo = max(n_gold, hi - step)
            if hi is not None:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if fits(mid) else (lo, mid)
            if lo == len(pool) and len(pool) < len(self.docs) and n_others < len(self.docs):
                n_others *= 4  # the pool ran out before the budget did: draw more distractors
                continue
            break
        n = lo
        chosen = sorted(pool[:n], key=order_key.__getitem__)
        out = cache[n] if n in cache else build(n)
        if n == len(self.docs) and out["n_full"] < MIN_FILL * target:
            # Every document of the source is in and the item is still short: it would be scored as a
            # `target`-token item while being a shorter one (a small source, e.g. a fixture).
            raise DataError(
                f"ruler {self.set_name} at {target} tokens: all {n} documents of the source fill only "
                f"{out['n_full']} tokens (sample {index}, id {qa['id']}; at least {MIN_FILL:.0%} needed); "
                "use a larger source (fixture: data.toy.dev_questions, eval.ruler.fixture_more_paragraphs) "
                "or drop the length from eval.ruler.lengths")
        gold = set(qa["context"])
        return {
            "index": index,
            "input": out["input"],
            "outputs": list(qa["outputs"]),
            "length": count_tokens(self.tok, out["user"] + out["answer_prefix"]) + self.ttg,
            "length_w_model_temp": out["n_full"],
            "prompt_tokens": out["n_full"] - self.ttg,
            "reserve": self.ttg,
            "answer_prefix": out["answer_prefix"],
            "set": self.set_name,
            "target_length": target,
            "num_docs": n,
            "id": qa["id"],
            "gold_doc_positions": [p for p, d in enumerate(chosen, 1) if d in gold],
        }


def generate_input_output(synth: _Synth, index: int, num_docs: int) -> str:
    """RULER's `generate_input_output(index, num_docs)`: the context string of `num_docs`
    documents (gold, then more_context, then random other DOCS; per-sample order)."""
    qa = synth.qas[index]
    rng = random.Random(f"{synth.seed}|{synth.set_name}|gio|{index}")
    pool = synth._pool(qa, rng, max(0, num_docs))
    order_key = {d: rng.random() for d in pool}
    return format_context([synth.docs[i] for i in sorted(pool[:num_docs], key=order_key.__getitem__)])


def generation_reserve(cfg: dict) -> int:
    """Tokens kept free after the prompt: the decoding budget, at least RULER's tokens_to_generate."""
    ttg = int(cfg.get("tokens_to_generate", 32))
    return max(ttg, int(cfg.get("max_new_tokens", ttg)))


def token_stats(items: list[dict]) -> dict:
    """Measured prompt tokens per (set, length) for the dataset manifest: prompt + reserve <= length."""
    out: dict[str, dict] = {}
    for it in items:
        out.setdefault(f"{it['set']}_{it['target_length']}", []).append(it)
    return {k: {"n": len(v), "target_length": v[0]["target_length"], "reserve": v[0]["reserve"],
                "prompt_tokens_min": min(i["prompt_tokens"] for i in v),
                "prompt_tokens_mean": round(sum(i["prompt_tokens"] for i in v) / len(v), 1),
                "prompt_tokens_max": max(i["prompt_tokens"] for i in v),
                "max_prompt_plus_reserve": max(i["prompt_tokens"] + i["reserve"] for i in v)}
            for k, v in sorted(out.items())}


def build_items(sources: dict, tokenizer, cfg: dict, seed: int) -> list[dict]:
    """All configured sets x lengths, RULER JSONL records (plus set, target_length, num_docs, id, gold_doc_positions)."""
    return build_dataset(sources, tokenizer, cfg, seed)[0]


def build_dataset(sources: dict, tokenizer, cfg: dict, seed: int) -> tuple[list[dict], dict]:
    """(`build_items`'s records, {set: how its questions were drawn}) -- the latter for the dataset manifest."""
    sets = list(cfg.get("sets", SETS))
    lengths = [int(x) for x in cfg["lengths"]]
    num_samples = int(cfg.get("num_samples", 500))
    prompt = cfg.get("prompt", "solopo_cot")
    task_prompt(prompt, "", "")  # validate
    ttg = generation_reserve(cfg)
    mode = cfg.get("context_mode", "all")
    missing = [s for s in sets if s not in sources]
    if missing:
        raise ValueError(f"ruler: no source file for set(s) {', '.join(missing)} (have: {', '.join(sources) or 'none'})")
    items, selection = [], {}
    for set_name in sets:
        qas, docs = read_source(set_name, sources[set_name], mode)
        if not qas:
            raise DataError(f"{sources[set_name]}: no answerable questions")
        if len(qas) < num_samples:
            log.warning("ruler %s: only %d answerable questions (num_samples=%d)", set_name, len(qas), num_samples)
        picked, selection[set_name] = select_questions(set_name, qas, num_samples, seed)
        synth = _Synth(set_name, qas, docs, tokenizer, prompt, ttg, seed)
        for length in lengths:
            for index in picked:
                items.append(synth.sample(index, length))
    return items, selection


# --------------------------------------------------------------------------- evaluation


def _mean(xs):
    xs = list(xs)
    return round(sum(xs) / len(xs), 2) if xs else 0.0


def score(items: list[dict], preds: list[str]) -> dict:
    """Primary (`extract_answer` then string_match_part) and whole-output scores by set x length."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it["set"], int(it["target_length"])), []).append(i)
    sets = list(dict.fromkeys(it["set"] for it in items))
    lengths = sorted({int(it["target_length"]) for it in items})
    out = {}
    for variant in ("extracted", "whole_output"):
        view = [extract_answer(p) for p in preds] if variant == "extracted" else list(preds)
        subsets = {f"{s}_{n}": string_match_part([view[i] for i in groups[(s, n)]], [items[i]["outputs"] for i in groups[(s, n)]])
                   for (s, n) in groups}
        by_length = {str(n): _mean(subsets[f"{s}_{n}"] for s in sets if (s, n) in groups) for n in lengths}
        by_set = {s: _mean(subsets[f"{s}_{n}"] for n in lengths if (s, n) in groups) for s in sets}
        out[variant] = {"score": _mean(by_length.values()), "subsets": subsets, "by_length": by_length, "by_set": by_set}
    return out


def evaluate(backend, items: list[dict], cfg: dict, seed: int = 0) -> tuple[dict, list[dict]]:
    """Greedy generation on `input + answer_prefix`, RULER post-processing, string_match_part."""
    primary = cfg.get("primary", "extracted")
    if primary not in ("extracted", "whole_output"):
        raise ValueError(f"ruler primary {primary!r}: allowed values are extracted, whole_output")
    ttg = int(cfg.get("tokens_to_generate", 32))
    gen = GenerationConfig(max_new_tokens=int(cfg.get("max_new_tokens", ttg)), temperature=0.0, n=1, seed=seed,
                           batch_size=int(cfg.get("batch_size", 8)))
    prompts = [it["input"] + it["answer_prefix"] for it in items]
    raw = [outs[0] for outs in backend.generate(prompts, gen)] if prompts else []
    preds = [ruler_postprocess(r) for r in raw]
    scores = score(items, preds)
    main = scores[primary]
    secondary = "whole_output" if primary == "extracted" else "extracted"
    result = {
        "benchmark": "ruler",
        "score": main["score"],
        "subsets": main["subsets"],
        "by_length": main["by_length"],
        "by_set": main["by_set"],
        secondary: scores[secondary],
        "n": len(items),
        "settings": {"primary": primary, "prompt": cfg.get("prompt", "solopo_cot"),
                     "max_new_tokens": gen.max_new_tokens, "tokens_to_generate": ttg, "temperature": 0.0,
                     "lengths": sorted({int(it["target_length"]) for it in items}),
                     "sets": list(dict.fromkeys(it["set"] for it in items)),
                     "context_mode": cfg.get("context_mode", "all"),
                     "metric": "string_match_part (RULER: lower-cased containment, max over refs, x100)"},
    }
    predictions = []
    for it, r, p in zip(items, raw, preds):
        ext = extract_answer(p)
        predictions.append({
            "set": it["set"], "target_length": it["target_length"], "index": it["index"], "id": it.get("id"),
            "output": r, "pred": p, "extracted": ext, "outputs": it["outputs"],
            "correct_extracted": string_match_part([ext], [it["outputs"]]) > 0,
            "correct_whole_output": string_match_part([p], [it["outputs"]]) > 0,
            "length_w_model_temp": it.get("length_w_model_temp"),
        })
    return result, predictions


__all__ = [
    "FIRST_N",
    "MUSIQUE_HF",
    "RULER_ANSWER_PREFIX",
    "RULER_QA_TEMPLATE",
    "SETS",
    "SOURCE_FILES",
    "SOURCE_URLS",
    "STRATIFIED",
    "build_dataset",
    "build_fixture",
    "build_items",
    "download",
    "evaluate",
    "generate_input_output",
    "read_hotpotqa",
    "read_musique",
    "read_source",
    "read_squad",
    "score",
    "select_questions",
    "token_stats",
    "validate_musique",
]


# --------------------------------------------------------------------------- entry points (solopo.eval.BENCHES)
def build_data(out, records: list[dict], cfg: dict, seed: int, model: str | None = None,
               sources_dir: str | None = None) -> dict:
    """Rule bench_data: `out/items.jsonl`, fitted to `model`'s tokenizer; returns the manifest extras
    (how the questions were drawn, the measured token counts). `sources_dir`: the released source
    files as fetched by rule download_ruler (on a cluster this job runs offline and only reads them)."""
    from pathlib import Path

    from solopo.artifacts import write_jsonl
    from solopo.generate.hf import load_tokenizer

    src_dir = Path(out) / "sources"
    if cfg.get("source", "fixture") == "fixture":
        sources = build_fixture(records, src_dir, cfg, seed)
    elif sources_dir:  # fetched by rule download_ruler; read here, offline
        sources = {k: Path(sources_dir) / f for k, f in SOURCE_FILES.items()}
    else:
        sources = download(src_dir, cfg)
    extra: dict = {}
    items, extra["selection"] = build_dataset(sources, load_tokenizer(model), cfg, seed)
    write_jsonl(Path(out) / "items.jsonl", items)
    extra["token_counts"] = token_stats(items)  # measured, in the dataset manifest
    log.info("ruler token counts: %s", extra["token_counts"])
    log.info("ruler questions: %s", extra["selection"])  # rule per set; MuSiQue's hop mix
    return extra


def eval_items(data_dir, cfg: dict) -> list[dict]:
    """The items an evaluation reads (built per backbone by `build_data`)."""
    from pathlib import Path

    from solopo.artifacts import read_jsonl

    return read_jsonl(Path(data_dir) / "items.jsonl")


def item_scores(result: dict, preds: list[dict]) -> dict[str, float]:
    """{item key: score} for the seeds page's paired bootstrap: 0/100 per item by the evaluation's
    primary metric (its result's settings.primary), keyed `ruler|<length>|<set>|<index>`."""
    whole = (result.get("settings") or {}).get("primary") == "whole_output"
    field = "correct_whole_output" if whole else "correct_extracted"
    return {f"ruler|{p['target_length']}|{p['set']}|{p['index']}": 100.0 * bool(p[field]) for p in preds}


def check_items(items: list[dict], data_dir, cfg: dict) -> None:
    """Every configured set has items: an empty set would silently drop out of the average."""
    from pathlib import Path

    for name in cfg.get("sets") or []:
        if not any(it.get("set") == name for it in items):
            raise DataError(f"{Path(data_dir) / 'items.jsonl'}: 0 items of set {name!r}; expected at least 1 per "
                            "configured set (eval.ruler.sets)")
