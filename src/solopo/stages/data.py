"""Data stages: the toy world's records, MuSiQue, the tiny model, and the short/long contexts."""
from __future__ import annotations

from pathlib import Path

from solopo import artifacts, validate
from solopo.artifacts import atomic_path, write_json, write_jsonl, write_manifest
from solopo.generate.hf import load_tokenizer
from solopo.jobs import job, log, progress_bar, recorded_slice


def toy_world(out_train: str, out_dev: str, cfg: dict, seed: int, log_path: str) -> None:
    from solopo.data.toy_world import train_dev_records

    with job(log_path, "toy_world") as t0:
        tm = cfg["tiny_model"]
        toy = cfg["data"]["toy"]
        train, dev = train_dev_records(tm, toy["train_questions"], toy["dev_questions"], seed)
        for path, rows in ((out_train, train), (out_dev, dev)):
            write_manifest(path, recorded_slice(cfg, {"tiny_model": tm, "toy": toy, "seed": seed}), [], t0,
                           {"records": len(rows)})
            write_jsonl(path, rows)


def fetch_musique(out_train: str, out_dev: str, cfg: dict, log_path: str) -> None:
    from solopo.data.musique import download_musique, read_musique

    with job(log_path, "fetch_musique") as t0:
        d = cfg["data"]
        for split, out in (("train", out_train), ("dev", out_dev)):
            src = (d.get("musique") or {}).get(f"{split}_file") if d["source"] == "local" else None
            path = Path(src) if src else download_musique(d["musique"]["hub_id"], split)
            recs, skipped = read_musique(path, allow_skip=d.get("skip_malformed", False))
            validate.check_unique_ids(recs, path)
            if d.get("num_questions") and split == "train":
                recs = recs[: d["num_questions"]]
            write_manifest(out, recorded_slice(cfg, {"data": d}), [str(path)], t0,
                           {"records": len(recs), "skipped": skipped})
            write_jsonl(out, recs)


def tiny_model(out_dir: str, cfg: dict, seed: int, log_path: str) -> None:
    from solopo.tiny_model import train_tiny_model

    with job(log_path, "tiny_model") as t0, atomic_path(out_dir) as tmp:
        stats = train_tiny_model(tmp, cfg["tiny_model"], seed,
                                 progress=progress_bar(cfg["tiny_model"]["steps"], "pretrain", log_path))
        log.info("tiny model: %s", stats)
        write_json(Path(tmp) / "pretrain_stats.json", stats)
        artifacts.write_folder_manifest(tmp, out_dir, recorded_slice(cfg, {"tiny_model": cfg["tiny_model"], "seed": seed}),
                                        [], t0, {"stats": stats})


def contexts(musique_train: str, model: str, out_short: str, out_long: str, cfg: dict, seed: int, log_path: str,
             trust_remote_code: bool = False) -> None:
    from solopo.data.contexts import build_contexts, paragraph_pool

    with job(log_path, "contexts") as t0:
        d = cfg["data"]
        recs = validate.read_rows(musique_train, ("id", "question", "answer", "paragraphs"), "records", "records")
        validate.check_unique_ids(recs, musique_train)
        pool = paragraph_pool(recs)  # distractors from the whole file, also when only some questions are used
        if d.get("num_questions"):
            recs = recs[: d["num_questions"]]
        validate.check_long_tokens(model, d["long_tokens"], trust_remote_code)
        tok = load_tokenizer(model, trust_remote_code)
        count = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
        out, stats = build_contexts(recs, pool, count, {"short": d["short_tokens"], "long": d["long_tokens"]},
                                    seed, d.get("use_aliases", True), d.get("skip_unfittable", False),
                                    progress=progress_bar(len(recs), "contexts", log_path))
        log.info("contexts: %s", stats)
        for path, ctx in ((out_short, "short"), (out_long, "long")):
            write_manifest(path, recorded_slice(cfg, {"data": d, "seed": seed, "model": model}), [musique_train], t0,
                           {"stats": stats, "rows": len(out[ctx])})
            write_jsonl(path, out[ctx])
