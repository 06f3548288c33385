"""Preference-data stages: CoT samples, short/long pairs, the method datasets, reference log-probs."""
from __future__ import annotations

from pathlib import Path

from solopo import artifacts, resources, validate
from solopo.artifacts import read_jsonl, write_json, write_jsonl, write_manifest
from solopo.jobs import job, log, progress_bar, recorded_slice
from solopo.stages.resume import sample_key


def sample(contexts_path: str, model: str, out: str, cfg: dict, seed: int, log_path: str, backend_kwargs: dict,
           records_path: str | None = None) -> None:
    """CoT samples per context row; with `sampling.reference_traces` (toy world only) each row's samples
    are followed by its gold trace and a wrong-answer trace from `records_path` (solopo.data.toy_world)."""
    from solopo.generate import load_backend
    from solopo.sample import sample_responses

    with job(log_path, "sample") as t0:
        s = cfg["sampling"]
        rows = validate.read_rows(contexts_path, ("id", "ctx", "prompt", "answers"), "rows")
        # before the resume file is discarded or a byte written (solopo.resources)
        resources.check(resources.for_sampling(rows, model, s, out, backend_kwargs.get("trust_remote_code", False)))
        backend = load_backend(s["backend"], model, **backend_kwargs)
        validate.check_chat_template(backend.tokenizer, model)
        done = sample_responses(backend, rows, out + ".tmp-samples", s["n"], s["temperature"], s.get("top_p", 1.0),
                                s["max_new_tokens"], seed, s.get("shard_size", 64), s.get("batch_size", 8),
                                progress=progress_bar(len(rows), "sample", log_path),
                                key=sample_key(model, s["backend"], backend_kwargs))
        extra = {"n_inputs": len(done)}
        if s.get("reference_traces"):
            extra["reference_traces"] = add_reference_traces(done, records_path, out + ".tmp-samples", seed)
        write_manifest(out, recorded_slice(cfg, {"sampling": s, "seed": seed, "model": model}),
                       [contexts_path] + ([records_path] if records_path else []), t0, extra)
        artifacts.seal(out + ".tmp-samples", out)  # the manifest records the bytes renamed into place
        Path(out + ".tmp-samples").replace(out)


def add_reference_traces(rows: list[dict], records_path: str | None, path: str, seed: int) -> int:
    """Append each row's two reference traces to its responses (rewriting `path`); returns the count added."""
    import random

    from solopo.data.toy_world import reference_traces

    if not records_path:
        raise ValueError("sampling.reference_traces: needs the toy world's records (data.source: toy)")
    recs = read_jsonl(records_path)
    by_id = {r["id"]: r for r in recs}
    rng = random.Random(f"reference_traces:{seed}")
    for r in rows:
        if r["id"] not in by_id or "cot" not in by_id[r["id"]]:
            raise ValueError(f"sampling.reference_traces: {records_path} has no gold trace (`cot`) for {r['id']!r}; "
                             "allowed only with data.source: toy")
        r["responses"] = list(r["responses"]) + reference_traces(by_id[r["id"]], recs, rng)
    write_jsonl(path, rows)
    return 2 * len(rows)


def chance_accuracy(cfg: dict) -> float | None:
    """Accuracy of guessing an entity of the right kind uniformly (toy world); None for real data."""
    if cfg["data"]["source"] != "toy":
        return None
    from solopo.data.toy_world import hop_weights

    ent, hop = cfg["tiny_model"]["entities"], hop_weights(cfg["tiny_model"])
    kinds = {2: "country", 3: "leader", 4: "spouse"}
    z = sum(hop.values())
    return sum(w / z / ent[kinds[h]] for h, w in hop.items())


def pairs(samples_short: str, samples_long: str, ctx_short: str, ctx_long: str, out_pairs: str, out_stats: str,
          cfg: dict, seed: int, log_path: str) -> None:
    from solopo.pairs import build_pairs, check_distinct, check_quality

    with job(log_path, "pairs") as t0:
        samples = {"short": validate.read_rows(samples_short, ("id", "responses", "answers"), "n_inputs", "sample sets"),
                   "long": validate.read_rows(samples_long, ("id", "responses", "answers"), "n_inputs", "sample sets")}
        ctxs = {"short": validate.read_rows(ctx_short, ("id", "question", "answers", "prompt"), "rows"),
                "long": validate.read_rows(ctx_long, ("id", "question", "answers", "prompt"), "rows")}
        for c, sp, cp in (("short", samples_short, ctx_short), ("long", samples_long, ctx_long)):
            validate.check_samples(samples[c], ctxs[c], sp, cp)
        rows, stats = build_pairs(samples, ctxs, seed, cfg["pairs"]["num_pairs"], chance_accuracy(cfg),
                                  cfg["pairs"].get("intersection", True))
        log.info("pair statistics: %s", stats)
        check_quality(stats, cfg["pairs"], f"{samples_short}, {samples_long}")
        check_distinct(rows, out_pairs, "chosen", "rejected")
        inputs = [samples_short, samples_long, ctx_short, ctx_long]
        for path in (out_pairs, out_stats):
            write_manifest(path, recorded_slice(cfg, {"pairs": cfg["pairs"], "seed": seed}), inputs, t0, {"rows": len(rows)})
        write_json(out_stats, stats)
        write_jsonl(out_pairs, rows)


def datasets(pairs_path: str, outputs: dict[str, str], cfg: dict, log_path: str) -> None:
    from solopo.pairs import check_distinct, method_datasets

    with job(log_path, "datasets") as t0:
        rows = validate.read_rows(pairs_path, ("id",), "rows")
        check_distinct(rows, pairs_path, "chosen", "rejected")
        sets = method_datasets(rows)
        for name, path in outputs.items():
            write_manifest(path, recorded_slice(cfg, {}), [pairs_path], t0, {"rows": len(sets[name])})
            write_jsonl(path, sets[name])
            log.info("dataset %s: %d rows", name, len(sets[name]))


def ref_logps(dataset_path: str, model: str, out: str, cfg: dict, log_path: str) -> None:
    from solopo.generate.hf import load_model_and_tokenizer
    from solopo.train.forward import compute_reference_logps

    with job(log_path, "ref_logps") as t0:
        rows = validate.read_rows(dataset_path, (), "rows")
        o = cfg["train"]["optim"]
        m, tok = load_model_and_tokenizer(model, "auto", o.get("dtype", "auto"))
        ref = compute_reference_logps(m, tok, rows, o["max_length"], o["micro_batch_size"],
                                      progress=progress_bar(len(rows), "ref", log_path))
        write_manifest(out, recorded_slice(cfg, {"optim": o, "model": model}), [dataset_path], t0, {"rows": len(ref)})
        write_jsonl(out, ref)
