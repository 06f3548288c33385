"""RULER QA source data: readers of the released files, which questions are evaluated, fixture, download.

The synthesis (length-fitted prompts) and the scoring live in `solopo.eval.ruler`, which
re-exports everything public here.

Which questions (`select_questions`): for SQuAD and HotpotQA the first `num_samples`
answerable questions in file order, as RULER's `scripts/data/synthetic/qa.py` reads them. The
MuSiQue set is SoLoPO's addition, not RULER's, and the released dev file is grouped by hop count
(2-hop questions first), so the first N would all be 2-hop: it is drawn seeded and stratified by
hop count (the hop label from the id prefix, `solopo.pairs.hop_count`), so the drawn set keeps the
file's hop mix. Each set's rule, pool size and (MuSiQue) hop mix of pool and draw go to the
dataset manifest (`selection`).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from solopo.artifacts import DataError, iter_jsonl
from solopo.data.prompts import format_document
from solopo.pairs import hop_count, stratified_order

SETS = ("squad", "hotpotqa", "musique")

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



# --------------------------------------------------------------------------- which questions

FIRST_N = "first num_samples answerable questions in file order (RULER qa.py)"
STRATIFIED = "seeded random draw stratified by hop count (id prefix 2hop/3hop/4hop), listed in file order"


def select_questions(set_name: str, qas: list[dict], num_samples: int, seed) -> tuple[list[int], dict]:
    """(indices into `qas` of the evaluated questions, in file order; how they were drawn).

    SQuAD/HotpotQA: RULER's first N. MuSiQue: the first N of a seeded order in which every
    prefix keeps the hop mix of the whole file (`solopo.pairs.stratified_order`), because the
    released file lists all 2-hop questions first.
    """
    n = min(int(num_samples), len(qas))
    if set_name != "musique":
        return list(range(n)), {"rule": FIRST_N, "pool": len(qas), "drawn": n}
    def label(k: int) -> str:  # by position, so a repeated id could not merge two questions
        return hop_count(qas[k]["id"])

    order = stratified_order(list(range(len(qas))), f"{seed}|ruler|musique", label=label)
    picked = sorted(order[:n])
    mix = {"pool": dict(sorted(Counter(map(label, range(len(qas)))).items())),
           "drawn": dict(sorted(Counter(map(label, picked)).items()))}
    return picked, {"rule": STRATIFIED, "seed": seed, "pool": len(qas), "drawn": n, "hop_mix": mix}


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


__all__ = [
    "FIRST_N",
    "MUSIQUE_HF",
    "SETS",
    "SOURCE_FILES",
    "SOURCE_URLS",
    "STRATIFIED",
    "build_fixture",
    "download",
    "read_hotpotqa",
    "read_musique",
    "read_source",
    "read_squad",
    "select_questions",
    "validate_musique",
]
