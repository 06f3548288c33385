"""The pipeline's stages as plain functions, one per Snakemake rule.

Each rule's `run:` block is one call to a function here, inside `job(...)`, which sets up the
job's log file, times it and writes the manifests. On the tiny preset Snakemake runs these
in threads of one process (`--force-use-threads`), so torch/transformers load once.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path

from tqdm import tqdm

from solopo import artifacts, resources, validate
from solopo.artifacts import atomic_path, read_jsonl, write_json, write_jsonl, write_manifest
from solopo.generate.hf import load_tokenizer

log = logging.getLogger("solopo")


class _ThreadFilter(logging.Filter):
    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record):
        return record.thread == self.thread


@contextlib.contextmanager
def job(log_path: str, name: str):
    """Route this thread's `solopo` log records to the rule's log file; log the wall time."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ThreadFilter())
    root = logging.getLogger("solopo")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    t0 = time.time()
    log.info("start %s", name)
    try:
        yield t0
        log.info("done %s in %.1f s", name, time.time() - t0)
    except Exception:
        log.exception("failed %s after %.1f s", name, time.time() - t0)
        raise
    finally:
        root.removeHandler(handler)
        handler.close()


def _slice(cfg, direct: dict) -> dict:
    """What the manifest records: the rule's config slice (solopo.slices, the same value as its Snakemake
    params) when called from the workflow: a `Scoped` in-process, the plain slice in a rule's own env
    (solopo.stage passes plain data); `direct` when a test calls the stage with a whole config."""
    from solopo.slices import Scoped, without_runtime

    if isinstance(cfg, Scoped):
        return cfg.plain
    return direct if "backbones" in cfg else without_runtime(dict(cfg))


class _StoppableBar(tqdm):
    """A progress bar whose every update checks the Ctrl-C flag (solopo.runtime.STOP): each job loop
    (pre-training, contexts, sampling, reference log-probs, training steps) updates it per step."""

    def update(self, n=1):
        from solopo.runtime import check_stop

        check_stop()
        return super().update(n)


def _bar(total: int, desc: str, log_path: str | None = None):
    # Progress goes to the job log (threads would interleave bars on the terminal).
    fh = open(log_path, "a") if log_path else None
    return _StoppableBar(total=total, desc=desc, file=fh, mininterval=5, disable=fh is None)


# --------------------------------------------------------------------------- data
def toy_world(out_train: str, out_dev: str, cfg: dict, seed: int, log_path: str) -> None:
    from solopo.data.toy_world import train_dev_records

    with job(log_path, "toy_world") as t0:
        tm = cfg["tiny_model"]
        toy = cfg["data"]["toy"]
        train, dev = train_dev_records(tm, toy["train_questions"], toy["dev_questions"], seed)
        for path, rows in ((out_train, train), (out_dev, dev)):
            write_manifest(path, _slice(cfg, {"tiny_model": tm, "toy": toy, "seed": seed}), [], t0, {"records": len(rows)})
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
            write_manifest(out, _slice(cfg, {"data": d}), [str(path)], t0, {"records": len(recs), "skipped": skipped})
            write_jsonl(out, recs)


def tiny_model(out_dir: str, cfg: dict, seed: int, log_path: str) -> None:
    from solopo.tiny_model import train_tiny_model

    with job(log_path, "tiny_model") as t0:
        with atomic_path(out_dir) as tmp:
            stats = train_tiny_model(tmp, cfg["tiny_model"], seed, progress=_bar(cfg["tiny_model"]["steps"], "pretrain", log_path))
            log.info("tiny model: %s", stats)
            write_json(Path(tmp) / "pretrain_stats.json", stats)
            artifacts.write_folder_manifest(tmp, out_dir, _slice(cfg, {"tiny_model": cfg["tiny_model"], "seed": seed}), [], t0,
                                            {"stats": stats})


# --------------------------------------------------------------------------- contexts, sampling, pairs
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
                                    progress=_bar(len(recs), "contexts", log_path))
        log.info("contexts: %s", stats)
        for path, ctx in ((out_short, "short"), (out_long, "long")):
            write_manifest(path, _slice(cfg, {"data": d, "seed": seed, "model": model}), [musique_train], t0,
                           {"stats": stats, "rows": len(out[ctx])})
            write_jsonl(path, out[ctx])


def model_identity(model: str) -> str:
    """What a model argument stands for, for resume keys: the manifest hash of a folder built here,
    else the file listing (name, size, mtime) of a local folder, else the hub id."""
    p = Path(model)
    if (p / "manifest.json").is_file():
        return artifacts.hash_path(p)
    if p.is_dir():
        return f"{model}:" + artifacts.hash_obj(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                                                       for f in p.iterdir() if f.is_file()))
    return model


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
                                progress=_bar(len(rows), "sample", log_path),
                                key=artifacts.hash_obj({"model": model_identity(model), "backend": s["backend"],
                                                        "backend_kwargs": backend_kwargs}))
        extra = {"n_inputs": len(done)}
        if s.get("reference_traces"):
            extra["reference_traces"] = _add_reference_traces(done, records_path, out + ".tmp-samples", seed)
        write_manifest(out, _slice(cfg, {"sampling": s, "seed": seed, "model": model}),
                       [contexts_path] + ([records_path] if records_path else []), t0, extra)
        artifacts.seal(out + ".tmp-samples", out)  # the manifest records the bytes renamed into place
        Path(out + ".tmp-samples").replace(out)


def _add_reference_traces(rows: list[dict], records_path: str | None, path: str, seed: int) -> int:
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
            write_manifest(path, _slice(cfg, {"pairs": cfg["pairs"], "seed": seed}), inputs, t0, {"rows": len(rows)})
        write_json(out_stats, stats)
        write_jsonl(out_pairs, rows)


def datasets(pairs_path: str, outputs: dict[str, str], cfg: dict, log_path: str) -> None:
    from solopo.pairs import check_distinct, method_datasets

    with job(log_path, "datasets") as t0:
        rows = validate.read_rows(pairs_path, ("id",), "rows")
        check_distinct(rows, pairs_path, "chosen", "rejected")
        sets = method_datasets(rows)
        for name, path in outputs.items():
            write_manifest(path, _slice(cfg, {}), [pairs_path], t0, {"rows": len(sets[name])})
            write_jsonl(path, sets[name])
            log.info("dataset %s: %d rows", name, len(sets[name]))


def ref_logps(dataset_path: str, model: str, out: str, cfg: dict, log_path: str) -> None:
    from solopo.generate.hf import load_model_and_tokenizer
    from solopo.train.trainer import compute_reference_logps

    with job(log_path, "ref_logps") as t0:
        rows = validate.read_rows(dataset_path, (), "rows")
        o = cfg["train"]["optim"]
        m, tok = load_model_and_tokenizer(model, "auto", o.get("dtype", "auto"))
        ref = compute_reference_logps(m, tok, rows, o["max_length"], o["micro_batch_size"],
                                      progress=_bar(len(rows), "ref", log_path))
        write_manifest(out, _slice(cfg, {"optim": o, "model": model}), [dataset_path], t0, {"rows": len(ref)})
        write_jsonl(out, ref)


# --------------------------------------------------------------------------- training
def loss_config(cfg: dict, method: str, lam: float | None):
    from solopo.slices import has_ra_term
    from solopo.train.losses import LossConfig

    lc = cfg["train"]["loss"]
    # train.longpo is read (and in the params, solopo.slices.train) for the LongPO run only
    lp = {**LONGPO_DEFAULTS, **((cfg["train"].get("longpo") or {}) if method == "longpo" else {})}
    simpo = "simpo" in method
    # read by the SoLo-RA runs only: the other runs' slices leave it out (solopo.slices.train)
    stop_grad = lc.get("ra_stop_grad_short", False) if has_ra_term(method) else False
    return LossConfig(beta=lc["simpo_beta"] if simpo else lc["beta"], gamma=lc["gamma"], orpo_lambda=lc["orpo_lambda"],
                      alpha=lam if lam is not None else 0.0, longpo_beta=lp["beta"], longpo_lambda=lp["lambda"],
                      ra_stop_grad_short=stop_grad)


# The LongPO release's training command (DAMO-NLP-SG/LongPO README, train/train_longpo.py): the
# LongPO run has its own optimiser block (`train.longpo`) because SoLoPO kept LongPO's defaults.
LONGPO_DEFAULTS = {"optimizer": "rmsprop", "learning_rate": 5e-7, "lr_scheduler": "cosine", "warmup_ratio": 0.1,
                   "weight_decay": 0.0, "beta": 0.01, "lambda": 0.01}


def train_config(cfg: dict, method: str):
    from solopo.train.trainer import TrainConfig

    o = cfg["train"]["optim"]
    tc = TrainConfig(learning_rate=o["sft_learning_rate"] if method.startswith("sft") else o["learning_rate"],
                     epochs=o.get("epochs", 1), batch_size=o["batch_size"], micro_batch_size=o["micro_batch_size"],
                     warmup_ratio=o.get("warmup_ratio", 0.1), max_length=o["max_length"],
                     save_steps=o.get("save_steps", 0), dtype=o.get("dtype", "auto"),
                     gradient_checkpointing=o.get("gradient_checkpointing", False),
                     keep_checkpoints=o.get("keep_checkpoints", 2),
                     # checkpoint selection scores every checkpoint of the epoch: keep their weights
                     keep_checkpoint_weights=cfg["train"].get("select_checkpoint", "final") != "final",
                     report_to=cfg["train"].get("report_to", "none"),
                     collective_timeout_s=cfg["train"].get("collective_timeout_s", 1800))
    if method == "longpo":  # LongPO keeps its own release defaults; batch size stays SoLoPO's 64 (D.1)
        lp = {**LONGPO_DEFAULTS, **(cfg["train"].get("longpo") or {})}
        tc.optimizer, tc.learning_rate = lp["optimizer"], lp["learning_rate"]
        tc.warmup_ratio, tc.weight_decay = lp["warmup_ratio"], lp["weight_decay"]
    return tc


# TrainConfig fields that change what is kept or reported, never the weights (not in the resume fingerprint)
NOT_IN_FINGERPRINT = ("save_steps", "keep_checkpoints", "keep_checkpoint_weights", "report_to", "collective_timeout_s")


def select_by_longbench_v1(model_dir, ckpt_dir: Path, bench_dir: str, cfg: dict, seed: int) -> dict:
    """Re-save `model_dir` with the epoch's checkpoint that scores best on LongBench v1 QA."""
    from solopo.eval import longbench_v1
    from solopo.generate.hf import HFBackend, load_model_and_tokenizer
    from solopo.train.selection import select_checkpoint

    bcfg = cfg["eval"]["longbench_v1"]
    validate.check_benchmark_folder("longbench_v1", bench_dir)
    items = longbench_v1.load_items(bench_dir, bcfg)
    model, tok = load_model_and_tokenizer(str(model_dir), "auto", "auto")
    checkpoints = sorted((p for p in Path(ckpt_dir).glob("step-*") if (p / "COMPLETE").exists()),
                         key=lambda p: int(p.name[5:]))
    if not checkpoints:
        return {"scores": {}, "selected": "final (no checkpoints: set train.optim.save_steps)"}
    score = lambda m: longbench_v1.evaluate(HFBackend(None, model=m, tokenizer=tok), items, bcfg, seed=seed)[0]["avg"] or 0.0  # noqa: E731
    result = select_checkpoint(model, checkpoints, score)
    model.save_pretrained(model_dir, safe_serialization=True)
    write_json(Path(model_dir) / "checkpoint_selection.json", result)
    return result


def train(dataset_path: str, ref_path: str | None, model: str, out_dir: str, run: str, method: str, lam: float | None,
          cfg: dict, seed: int, log_path: str, bench_dir: str | None = None) -> None:
    from solopo.pairs import check_distinct
    from solopo.train.model_card import write_model_card
    from solopo.train.trainer import claim_checkpoint_dir
    from solopo.train.trainer import train as train_loop

    with job(log_path, f"train {run}") as t0:
        rows = validate.read_rows(dataset_path, (), "rows")
        if not rows:
            raise ValueError(f"{dataset_path}: no training rows for run {run} (the pair yield was zero)")
        check_distinct(rows, dataset_path)
        ref = validate.read_rows(ref_path, (), "rows") if ref_path else None
        if ref is not None and len(ref) != len(rows):
            raise artifacts.DataError(f"{ref_path}: {len(ref)} reference rows for {len(rows)} training rows in {dataset_path}; "
                                      "expected one per row")
        ckpt = Path("results/checkpoints") / run
        lcfg, tcfg = loss_config(cfg, method, lam), train_config(cfg, method)
        ds = cfg["train"].get("deepspeed", "none")
        # before a stale checkpoint folder is cleared (claim_checkpoint_dir) or anything is written
        resources.check(resources.for_train(model, method, cfg["train"]["optim"], ds, out_dir, rows))
        claim_checkpoint_dir(ckpt, artifacts.hash_obj({
            "model": model_identity(model), "data": artifacts.hash_path(dataset_path),
            "ref": artifacts.hash_path(ref_path) if ref_path else None, "method": method, "lambda": lam,
            "loss": vars(lcfg), "optim": {k: v for k, v in vars(tcfg).items() if k not in NOT_IN_FINGERPRINT},
            "seed": seed, "deepspeed": ds}))
        # TensorBoard files are written live beside the checkpoints (a killed job keeps its curves; an
        # unfinished file never sits in results/ outside the work folders) and copied into the model
        tb_dir = ckpt / "tensorboard"
        with atomic_path(out_dir) as tmp:
            if ds != "none":
                stats = launch_deepspeed(dataset_path, ref_path, model, tmp, ckpt, method, lcfg, tcfg, seed, ds, log_path,
                                         tb_dir, run)
            else:
                stats = train_loop(model, rows, method, lcfg, tcfg, seed, tmp, ckpt, ref,
                                   progress=_bar(0, f"train {run}", log_path), log_dir=tb_dir, run_name=run)
            trc = (cfg.get("backbone") or {}).get("trust_remote_code", False)
            stats["tokens"] = training_tokens(model, rows, method, tcfg, trc)  # the cost axis of the seeds page
            if cfg["train"].get("select_checkpoint", "final") == "longbench_v1":
                stats["checkpoint_selection"] = select_by_longbench_v1(tmp, ckpt, bench_dir, cfg, seed)
            if tb_dir.is_dir():
                import shutil

                shutil.copytree(tb_dir, Path(tmp) / "tensorboard")
            log.info("train %s: %s", run, stats)
            config_slice = _slice(cfg, {"method": method, "lambda": lam, "loss": vars(lcfg), "optim": vars(tcfg), "seed": seed})
            inputs = [dataset_path] + ([ref_path] if ref_path else [])
            manifest = artifacts.build_manifest(out_dir, config_slice, inputs, t0, {"stats": stats})
            write_model_card(tmp, run=run, base_model=model, method=method, lam=lam, loss=vars(lcfg), optim=vars(tcfg),
                             seed=seed, deepspeed=ds, data=dataset_path, n_rows=len(rows), ref=ref_path,
                             config_hash=manifest["config_hash"], input_hashes=manifest["inputs"], stats=stats)
            # the card is part of the folder's content: the content digest is taken after it is written
            artifacts.write_folder_manifest(tmp, out_dir, config_slice, inputs, t0, {"stats": stats})


def training_tokens(model: str, rows: list[dict], method: str, tcfg, trust_remote_code: bool = False) -> int:
    """Tokens the loss's forward passes read over all epochs (every sequence the method needs, after
    truncation): the training cost the seeds page plots (solopo.report.science)."""
    from solopo.train.forward import SEQUENCE_FIELDS, tokenize_pair
    from solopo.train.losses import get_loss, get_method

    tok = load_tokenizer(model, trust_remote_code)
    needs = [n for n in get_loss(get_method(method).loss).needs if n in SEQUENCE_FIELDS]
    per_epoch = sum(len(tokenize_pair(tok, r[SEQUENCE_FIELDS[n][0]], r[SEQUENCE_FIELDS[n][1]], tcfg.max_length)[0])
                    for r in rows for n in needs)
    return tcfg.epochs * per_epoch


def launch_deepspeed(*args, **kwargs) -> dict:
    """One training process per GPU through `accelerate launch` (solopo.train.launch.launch_deepspeed)."""
    from solopo.train.launch import launch_deepspeed as launch

    return launch(*args, **kwargs)


# --------------------------------------------------------------------------- benchmarks
def bench_data(bench: str, dev_path: str | None, model: str | None, out: str, cfg: dict, seed: int, log_path: str,
               sources_dir: str | None = None) -> None:
    """Benchmark inputs: fixtures from held-out toy questions (tiny) or the released data (paper).

    `sources_dir`: RULER's released source files as fetched by rule download_ruler (on a cluster,
    this job runs offline on a compute node and only reads them)."""
    from solopo.eval import longbench_v1, longbench_v2, niah_plus, ruler

    with job(log_path, f"bench_data {bench}") as t0:
        bcfg = cfg["eval"][bench]
        source = bcfg.get("source", "fixture")
        records = read_jsonl(dev_path) if dev_path else []
        extra: dict = {}
        with atomic_path(out) as tmp:
            tmp.mkdir(parents=True)
            if bench == "longbench_v1":
                (longbench_v1.build_fixture(records, tmp, bcfg, seed) if source == "fixture" else longbench_v1.download(tmp, bcfg))
            elif bench == "longbench_v2":
                (longbench_v2.build_fixture(records, tmp, bcfg, seed) if source == "fixture" else longbench_v2.download(tmp, bcfg))
            elif bench == "ruler":
                src_dir = tmp / "sources"
                if source == "fixture":
                    sources = ruler.build_fixture(records, src_dir, bcfg, seed)
                elif sources_dir:  # fetched by rule download_ruler; read here, offline
                    sources = {k: Path(sources_dir) / f for k, f in ruler.SOURCE_FILES.items()}
                else:
                    sources = ruler.download(src_dir, bcfg)
                items, extra["selection"] = ruler.build_dataset(sources, load_tokenizer(model), bcfg, seed)
                write_jsonl(tmp / "items.jsonl", items)
                extra["token_counts"] = ruler.token_stats(items)  # measured, in the dataset manifest
                log.info("ruler token counts: %s", extra["token_counts"])
                log.info("ruler questions: %s", extra["selection"])  # rule per set; MuSiQue's hop mix
            elif bench == "niah_plus":
                if bcfg.get("source") == "synthetic":
                    niah_plus.build_fixture(records, tmp, bcfg, seed, load_tokenizer(model))
                else:
                    src = Path(bcfg["data_dir"])
                    if not src.exists():
                        raise FileNotFoundError(f"eval.niah_plus.data_dir {src}: NIAH-Plus is distributed only as a Google-Drive "
                                                "archive (zuucan/NeedleInAHaystack-PLUS README); unpack it there")
                    for f in src.glob("*.jsonl"):
                        (tmp / f.name).write_bytes(f.read_bytes())
            artifacts.write_folder_manifest(tmp, out, _slice(cfg, {bench: bcfg, "seed": seed, "model": model}),
                                            [dev_path] if dev_path else [], t0, extra)


def evaluate(bench: str, model_dir: str, data_dir: str | None, out_json: str, run: str, cfg: dict, seed: int,
             log_path: str, backend_kwargs: dict) -> None:
    from solopo.eval import leaderboard, longbench_v1, longbench_v2, niah_plus, ruler
    from solopo.generate import load_backend

    with job(log_path, f"eval {run} {bench}") as t0:
        bcfg = dict(cfg["eval"][bench])
        partial = None
        artifacts.check_model_folder(model_dir)  # lm-eval and vLLM load the weights themselves
        if bench == "leaderboard":
            import tempfile

            from solopo.runtime import MODEL_LOAD_LOCK

            # lm-eval loads the model itself; hold the load lock for the whole (short, tiny-preset) run
            with tempfile.TemporaryDirectory(prefix="lm_eval_tasks_") as work, MODEL_LOAD_LOCK:
                result, preds = leaderboard.evaluate(model_dir, bcfg, Path(work))
        else:
            kw = dict(backend_kwargs)
            # The backbone's long-context setting when this suite exceeds its native window
            # (solopo.eval.budget): rope scaling at load, the window as vLLM's max_model_len.
            plan = kw.pop("long_context", None) or {}
            if plan.get("rope_scaling"):
                kw["rope_scaling"] = plan["rope_scaling"]
            if plan.get("window"):
                kw["max_model_len"] = plan["window"]
            if plan:
                from solopo.eval.budget import describe

                log.info("%s %s: %s", run, bench, describe(plan))
            # before the model is loaded or anything written (solopo.resources)
            resources.check(resources.for_eval(bench, model_dir, bcfg, cfg["eval"]["backend"], out_json))
            backend = load_backend(cfg["eval"]["backend"], model_dir, **kw)
            mod = {"longbench_v1": longbench_v1, "longbench_v2": longbench_v2, "ruler": ruler, "niah_plus": niah_plus}[bench]
            validate.check_benchmark_folder(bench, data_dir)  # its manifest's hashes, every item's required fields
            if bench == "ruler":
                items = read_jsonl(Path(data_dir) / "items.jsonl")
            elif bench == "niah_plus":
                items = niah_plus.limit_items(niah_plus.load_items(data_dir), bcfg.get("limit"))
            else:
                items = mod.load_items(data_dir, bcfg)
            validate.check_eval_items(bench, items, data_dir, bcfg)
            validate.check_chat_template(backend.tokenizer, model_dir)
            # finished generations survive an interrupted job; its rerun reuses them (solopo.partial)
            from solopo.partial import ResumableBackend

            backend = partial = ResumableBackend(backend, out_json + ".partial", artifacts.hash_obj(
                {"model": model_identity(model_dir), "backend": cfg["eval"]["backend"], "kwargs": kw, "bench": bench,
                 "settings": bcfg, "seed": seed}))
            result, preds = mod.evaluate(backend, items, bcfg, seed=seed)
        result["run"] = run
        if bench != "leaderboard" and backend_kwargs.get("long_context"):
            result.setdefault("settings", {})["context"] = backend_kwargs["long_context"]
        log.info("%s %s: score %s", run, bench, result.get("score"))
        pred_path = out_json.replace(".json", ".predictions.jsonl")
        inputs = [model_dir] + ([data_dir] if data_dir else [])
        recorded = _slice(cfg, {bench: bcfg, "backend": cfg["eval"]["backend"], "seed": seed})
        write_manifest(pred_path, recorded, inputs, t0)
        write_jsonl(pred_path, preds)
        write_manifest(out_json, recorded, inputs, t0,
                       {"predictions": pred_path})
        write_json(out_json, result)
        if partial is not None:
            partial.finish()
