"""RULER QA (SQuAD 2.0, HotpotQA, MuSiQue): source readers, length-fitted synthesis, scoring.

Protocol: NVIDIA/RULER `scripts/data/synthetic/qa.py` + `scripts/eval/evaluate.py`
(spec `data_and_eval_protocols.md` §2), with SoLoPO's additions: a MuSiQue set and the
Fig. 6 CoT prompt (`solopo.data.prompts.qa_prompt`). Deliberate departures from RULER:

* **Per-sample shuffle.** RULER shuffles every sample's documents with a fresh
  `random.Random(random_seed)`, so for one `num_docs` the gold document of every sample
  sits at the same position (spec §2.3 item 3, gotcha 3). Here every sample has its own
  RNG, seeded by (seed, set, length, index), so gold positions vary across samples.
* **Per-sample exact search that fails loudly.** RULER estimates `num_docs` from sample 0
  and then decrements by 10 per sample, looping forever when even 10 documents do not
  fit (gotcha 2). Here every sample gets its own search for the largest document count
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
inside the evaluated window too (else, at 32K, the answer would be cut off). Each item records
`prompt_tokens` and `reserve`; `token_stats` summarises them for the dataset manifest.

Config keys (`eval.ruler`), paper preset / tiny preset:

* `sets`: [squad, hotpotqa, musique] / same
* `lengths`: [4096, 8192, 16384, 32768] / [256, 512]
* `num_samples`: 500 (RULER default; SoLoPO's count was not recovered) / 3 -- the first
  N answerable questions of each source file, the same questions at every length
* `prompt`: solopo_cot (Fig. 6 CoT, answer prefix "") | ruler (native template, answer
  prefix " Answer:" inside the assistant turn) / solopo_cot
* `tokens_to_generate`: 32 (RULER's reserve in the length budget) / 32
* `max_new_tokens`: 512 (CoT needs more than RULER's 32; defaults to tokens_to_generate) / 40;
  the length budget reserves max(tokens_to_generate, max_new_tokens)
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

import json
import logging
import os
import random
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from solopo.artifacts import iter_jsonl, DataError
from solopo.data.prompts import format_context, format_document, qa_prompt
from solopo.eval.metrics import extract_answer, ruler_postprocess, string_match_part
from solopo.generate import GenerationConfig
from solopo.generate.chat import format_chat

log = logging.getLogger(__name__)

SETS = ("squad", "hotpotqa", "musique")
PROMPTS = ("solopo_cot", "ruler")

# RULER scripts/data/synthetic/constants.py, task `qa` (quoted in spec §2.4).
RULER_QA_TEMPLATE = (
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
    "\n\nThe following are given documents.\n\n{context}\n\n"
    "Answer the question based on the given documents. Only give me the answer and do not output any other words."
    "\n\nQuestion: {query}"
)
RULER_ANSWER_PREFIX = " Answer:"

SOURCE_URLS = {
    "squad": "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json",
    "hotpotqa": "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json",
}
MUSIQUE_HF = ("dgslibisey/MuSiQue", "musique_ans_v1.0_dev.jsonl")
SOURCE_FILES = {"squad": "dev-v2.0.json", "hotpotqa": "hotpot_dev_distractor_v1.json",
                "musique": "musique_ans_v1.0_dev.jsonl"}


# --------------------------------------------------------------------------- readers


def _load_json(path) -> object:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte offset {e.start}): {e.reason}") from None


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise DataError(f"{where}: {what}")


def _is_str_list(x) -> bool:
    return isinstance(x, list) and all(isinstance(s, str) for s in x)


def read_squad(path) -> tuple[list[dict], list[str]]:
    """SQuAD 2.0 dev json -> (QAS, DOCS) as RULER's `read_squad`.

    DOCS = sorted unique paragraph contexts; answerable questions only; `outputs` = every
    annotator answer text; `context` = [gold paragraph]; `more_context` = the other
    paragraphs of the same article.
    """
    data = _load_json(path)
    _need(isinstance(data, dict) and isinstance(data.get("data"), list), str(path),
          "expected a SQuAD 2.0 object with a 'data' list of articles")
    for a, art in enumerate(data["data"]):
        w = f"{path}: data[{a}]"
        _need(isinstance(art, dict) and isinstance(art.get("paragraphs"), list), w, "article needs a 'paragraphs' list")
        for p, para in enumerate(art["paragraphs"]):
            wp = f"{w}.paragraphs[{p}]"
            _need(isinstance(para, dict) and isinstance(para.get("context"), str), wp, "paragraph needs a 'context' string")
            _need(isinstance(para.get("qas"), list), wp, "paragraph needs a 'qas' list")
            for q, qa in enumerate(para["qas"]):
                wq = f"{wp}.qas[{q}]"
                _need(isinstance(qa, dict) and isinstance(qa.get("question"), str), wq, "qa needs a 'question' string")
                _need(isinstance(qa.get("answers"), list), wq, "qa needs an 'answers' list")
                _need(isinstance(qa.get("is_impossible", False), bool), wq, "'is_impossible' must be a boolean")
                for k, ans in enumerate(qa["answers"]):
                    _need(isinstance(ans, dict) and isinstance(ans.get("text"), str), f"{wq}.answers[{k}]",
                          "answer needs a 'text' string")
                if not qa.get("is_impossible", False):
                    _need(len(qa["answers"]) > 0, wq, "answerable question without answers")
    docs = sorted({para["context"] for art in data["data"] for para in art["paragraphs"]})
    index = {d: i for i, d in enumerate(docs)}
    qas = []
    for a, art in enumerate(data["data"]):
        article_docs = list(dict.fromkeys(index[p["context"]] for p in art["paragraphs"]))
        for para in art["paragraphs"]:
            gold = index[para["context"]]
            for q, qa in enumerate(para["qas"]):
                if qa.get("is_impossible", False):
                    continue
                qas.append({"id": str(qa.get("id", f"{a}-{q}")), "query": qa["question"],
                            "outputs": [x["text"] for x in qa["answers"]], "context": [gold],
                            "more_context": [i for i in article_docs if i != gold]})
    return qas, docs


def read_hotpotqa(path, context_mode: str = "all") -> tuple[list[dict], list[str]]:
    """HotpotQA dev-distractor json -> (QAS, DOCS) as RULER's `read_hotpotqa`.

    Document = title + "\\n" + "".join(sentences) (sentences carry their own spaces).
    context_mode "all" (RULER): all 10 paragraphs are gold; "supporting": the paragraphs
    named in `supporting_facts` are gold and the others are `more_context`.
    """
    data = _load_json(path)
    _need(isinstance(data, list), str(path), "expected a JSON list of HotpotQA questions")
    for k, item in enumerate(data):
        w = f"{path}: item {k}"
        _need(isinstance(item, dict), w, "expected an object")
        w = f"{path}: item {k} (_id={item.get('_id')!r})"
        for key in ("_id", "question", "answer"):
            _need(isinstance(item.get(key), str), w, f"field {key!r} must be a string")
        _need(isinstance(item.get("context"), list) and item["context"], w, "field 'context' must be a non-empty list")
        for j, para in enumerate(item["context"]):
            _need(isinstance(para, list) and len(para) == 2 and isinstance(para[0], str) and _is_str_list(para[1]),
                  f"{w} context[{j}]", "expected [title, [sentence, ...]]")
        if context_mode == "supporting":
            _need(isinstance(item.get("supporting_facts"), list), w, "field 'supporting_facts' must be a list")
    docs_of = [[f"{t}\n{''.join(s)}" for t, s in item["context"]] for item in data]
    docs = sorted({d for ds in docs_of for d in ds})
    index = {d: i for i, d in enumerate(docs)}
    qas = []
    for item, ds in zip(data, docs_of):
        ids = list(dict.fromkeys(index[d] for d in ds))
        if context_mode == "supporting":
            titles = {f[0] for f in item["supporting_facts"]}
            gold = list(dict.fromkeys(index[d] for (t, _), d in zip(item["context"], ds) if t in titles))
            more = [i for i in ids if i not in gold]
        else:
            gold, more = ids, []
        qas.append({"id": item["_id"], "query": item["question"], "outputs": [item["answer"]],
                    "context": gold, "more_context": more})
    return qas, docs


_read_jsonl_lines = iter_jsonl


def validate_musique(rec, where: str) -> None:
    """Check one MuSiQue-Ans record's schema; DataError naming `where` (file:line)."""
    _need(isinstance(rec, dict), where, "expected a JSON object")
    for key in ("id", "question", "answer"):
        _need(isinstance(rec.get(key), str), where, f"field {key!r} must be a string")
    _need(_is_str_list(rec.get("answer_aliases")), where, "field 'answer_aliases' must be a list of strings")
    _need(isinstance(rec.get("answerable", True), bool), where, "field 'answerable' must be a boolean")
    _need(isinstance(rec.get("paragraphs"), list) and rec["paragraphs"], where, "field 'paragraphs' must be a non-empty list")
    for j, p in enumerate(rec["paragraphs"]):
        ok = (isinstance(p, dict) and isinstance(p.get("title"), str) and isinstance(p.get("paragraph_text"), str)
              and isinstance(p.get("is_supporting"), bool) and isinstance(p.get("idx"), int))
        _need(ok, f"{where} paragraphs[{j}]", "expected {idx: int, title: str, paragraph_text: str, is_supporting: bool}")
    _need(isinstance(rec.get("question_decomposition", []), list), where, "field 'question_decomposition' must be a list")


def read_musique(path, context_mode: str = "all") -> tuple[list[dict], list[str]]:
    """MuSiQue-Ans jsonl -> (QAS, DOCS), Hotpot pattern: doc = title\\nparagraph_text.

    context_mode "all": all of the item's paragraphs are gold; "supporting": the
    supporting paragraphs are gold and the others `more_context`. Gold references =
    [answer] + answer_aliases. Unanswerable records (MuSiQue-Full) are skipped.
    """
    recs = []
    for lineno, rec in _read_jsonl_lines(path):
        validate_musique(rec, f"{path}:{lineno}")
        if rec.get("answerable", True):
            recs.append(rec)
    docs_of = [[(format_document(p["title"], p["paragraph_text"]), p["is_supporting"]) for p in r["paragraphs"]]
               for r in recs]
    docs = sorted({d for ds in docs_of for d, _ in ds})
    index = {d: i for i, d in enumerate(docs)}
    qas = []
    for rec, ds in zip(recs, docs_of):
        ids = list(dict.fromkeys(index[d] for d, _ in ds))
        if context_mode == "supporting":
            gold = list(dict.fromkeys(index[d] for d, s in ds if s))
            more = [i for i in ids if i not in gold]
        else:
            gold, more = ids, []
        qas.append({"id": rec["id"], "query": rec["question"],
                    "outputs": [rec["answer"]] + list(rec["answer_aliases"]), "context": gold, "more_context": more})
    return qas, docs


def read_source(set_name: str, path, context_mode: str = "all") -> tuple[list[dict], list[str]]:
    if context_mode not in ("all", "supporting"):
        raise ValueError(f"ruler context_mode {context_mode!r}: allowed values are all, supporting")
    if set_name == "squad":
        return read_squad(path)
    if set_name == "hotpotqa":
        return read_hotpotqa(path, context_mode)
    if set_name == "musique":
        return read_musique(path, context_mode)
    raise ValueError(f"ruler set {set_name!r}: allowed values are {', '.join(SETS)}")


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

            def fits(n: int) -> bool:
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
    items = []
    for set_name in sets:
        qas, docs = read_source(set_name, sources[set_name], mode)
        if not qas:
            raise DataError(f"{sources[set_name]}: no answerable questions")
        if len(qas) < num_samples:
            log.warning("ruler %s: only %d answerable questions (num_samples=%d)", set_name, len(qas), num_samples)
        synth = _Synth(set_name, qas, docs, tokenizer, prompt, ttg, seed)
        for length in lengths:
            for index in range(min(num_samples, len(qas))):
                items.append(synth.sample(index, length))
    return items


# --------------------------------------------------------------------------- fixture


def _split_sentences(text: str) -> list[str]:
    """Hotpot-style sentences: every sentence after the first keeps its leading space."""
    parts = re.split(r"(?<=[.!?]) (?=\S)", text)
    return [parts[0]] + [" " + p for p in parts[1:]] if parts else [text]


def _supporting(rec: dict) -> list[dict]:
    return [p for p in rec["paragraphs"] if p["is_supporting"]]


def build_fixture(records: list[dict], out_dir, cfg: dict, seed: int) -> dict[str, Path]:
    """Three small source files, in the released schemas, from MuSiQue-schema (toy) records.

    The records are shuffled with `seed` and split in three disjoint parts:
    SQuAD 2.0 dev json (one article per record: its supporting paragraphs joined into the
    answer paragraph, `answer_start` located in it, plus `fixture_more_paragraphs`
    non-supporting paragraphs as other paragraphs of the article, plus one unanswerable
    question in the first article), HotpotQA dev-distractor json (context = every
    paragraph as [title, sentences], supporting_facts for the supporting ones, type
    "bridge", level "hard"), and a MuSiQue jsonl (the records themselves).
    """
    for k, rec in enumerate(records):
        validate_musique(rec, f"fixture record {k}")
    if len(records) < 3:
        raise ValueError(f"ruler fixture needs at least 3 records (one per set), got {len(records)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = list(records)
    random.Random(seed).shuffle(recs)
    third = len(recs) // 3
    parts = {"squad": recs[:third], "hotpotqa": recs[third:2 * third], "musique": recs[2 * third:]}
    n_more = int(cfg.get("fixture_more_paragraphs", 2))

    articles = []
    for a, rec in enumerate(parts["squad"]):
        sup = _supporting(rec) or rec["paragraphs"][:1]
        context = " ".join(p["paragraph_text"] for p in sup)
        answers = []
        for cand in [rec["answer"]] + list(rec["answer_aliases"]):
            pos = context.find(cand)
            if pos < 0:
                pos = context.lower().find(cand.lower())
            if pos >= 0:
                answers.append({"text": context[pos:pos + len(cand)], "answer_start": pos})
        if not answers:
            raise ValueError(f"ruler fixture: answer {rec['answer']!r} of record {rec['id']} does not occur in its "
                             "supporting paragraphs")
        qas = [{"question": rec["question"], "id": f"squad-{rec['id']}", "answers": answers, "is_impossible": False}]
        if a == 0:
            qas.append({"question": f"Which year was {sup[0]['title']} renamed?", "id": f"squad-{rec['id']}-impossible",
                        "answers": [], "plausible_answers": [{"text": "1900", "answer_start": 0}],
                        "is_impossible": True})
        paragraphs = [{"qas": qas, "context": context}]
        for p in [p for p in rec["paragraphs"] if not p["is_supporting"]][:n_more]:
            paragraphs.append({"qas": [], "context": p["paragraph_text"]})
        articles.append({"title": sup[0]["title"].replace(" ", "_"), "paragraphs": paragraphs})
    squad = {"version": "v2.0", "data": articles}

    hotpot = []
    for rec in parts["hotpotqa"]:
        hotpot.append({
            "_id": f"hotpot-{rec['id']}",
            "answer": rec["answer"],
            "question": rec["question"],
            "supporting_facts": [[p["title"], 0] for p in _supporting(rec)],
            "context": [[p["title"], _split_sentences(p["paragraph_text"])] for p in rec["paragraphs"]],
            "type": "bridge",
            "level": "hard",
        })

    paths = {s: out_dir / SOURCE_FILES[s] for s in SETS}
    paths["squad"].write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    paths["hotpotqa"].write_text(json.dumps(hotpot, ensure_ascii=False), encoding="utf-8")
    paths["musique"].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in parts["musique"]),
                                encoding="utf-8")
    return paths


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


# --------------------------------------------------------------------------- download


def download(out_dir, cfg: dict) -> dict[str, Path]:
    """Fetch the three paper-preset source files into out_dir (needs network)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        # name the rule's output folder, not the temporary one it is written under
        final = re.sub(r"(^|/)\.([^/]+)\.tmp-[^/]+$", r"\1\2", str(out_dir))
        raise RuntimeError("ruler download: HF_HUB_OFFLINE=1 (offline); place dev-v2.0.json, "
                           "hotpot_dev_distractor_v1.json and musique_ans_v1.0_dev.jsonl under "
                           f"{final} by hand or run online")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timeout = float(cfg.get("download_timeout_s", 120))
    paths = {}
    for set_name, url in SOURCE_URLS.items():
        dest = out_dir / SOURCE_FILES[set_name]
        paths[set_name] = dest
        if dest.exists():
            continue
        tmp = dest.with_name(dest.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"ruler download: cannot fetch {url} ({e}); offline or unreachable") from None
        os.replace(tmp, dest)
    dest = out_dir / SOURCE_FILES["musique"]
    paths["musique"] = dest
    if not dest.exists():
        try:
            from solopo.runtime import hub_download

            got = hub_download(MUSIQUE_HF[0], MUSIQUE_HF[1], "dataset")  # bounded time when unreachable
        except Exception as e:  # noqa: BLE001 -- any hub failure becomes one clear line
            raise RuntimeError(f"ruler download: cannot fetch {MUSIQUE_HF[1]} from hf dataset {MUSIQUE_HF[0]} "
                               f"({type(e).__name__}); offline or unreachable") from None
        shutil.copyfile(got, dest)
    for set_name, p in paths.items():  # fail now, not in the synthesis job, on a truncated download
        read_source(set_name, p)
    return paths


__all__ = ["read_squad", "read_hotpotqa", "read_musique", "read_source", "build_items", "build_fixture",
           "generate_input_output", "evaluate", "score", "download", "RULER_QA_TEMPLATE", "RULER_ANSWER_PREFIX"]
