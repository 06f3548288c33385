"""The toy-science experiment (issue 15): does short-to-long alignment help on the toy world?

Config: the tiny preset with `config/toy_science.yaml` on top; its `science` block names the runs,
seeds, learning rates and the comparison baselines. One driver, run by the `toy_science` rule (or
`python -m solopo.science`), with the tiny preset's backbone (rule `tiny_model`) as input:

1. shared by every seed: the toy world's training questions and their short/long contexts, the CoT
   samples (one draw of `sampling.n` per question and context: sampling dominates the cost), and
   the test fixtures (RULER at every length, LongBench v1) from held-out questions;
2. per seed: the pairs (`build_pairs` picks chosen/rejected among the samples with the seed) and the
   training data order; every run trains through `solopo.train.trainer.train` and is evaluated with
   the HF backend (greedy), its per-item scores kept for the paired statistics;
3. `solopo.report.science.write_report`: seed intervals, paired bootstraps, cost, plots and the page.

Runs execute in `science.jobs` worker processes (one torch thread each). A finished (run, seed) JSON
is kept and reused when the driver is rerun with the same settings (its `key`), so an interrupted
experiment resumes. `tune` trains each family at the `science.tune.grid` learning rates on seed 0 and
scores them on a dev RULER set built from other held-out questions (never the test items).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

log = logging.getLogger("solopo.science")

DEFAULTS = {"seeds": [0, 1, 2], "jobs": 2, "methods": ["sft_long", "orpo_short", "orpo_long", "orpo_expand",
            "solo_orpo", "solo_orpo_both"], "lambdas": {"solo_orpo": [1.0, 0.0, 0.3, 3.0]},
            "learning_rates": {"sft": 2.0e-4, "orpo": 2.0e-4}, "lr_tuned_on_dev": False,
            "baselines": ["base", "sft_long", "orpo_short", "orpo_long", "orpo_expand"], "primary": "solo_orpo",
            "bootstrap_resamples": 2000, "tune": {"grid": [1.0e-4, 2.0e-4, 5.0e-4], "dev_items": 50},
            "sample_seed": 0, "eval_seed": 0}


def settings(cfg: dict) -> dict:
    s = {**copy.deepcopy(DEFAULTS), **copy.deepcopy(cfg.get("science") or {})}
    unknown = set(s) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"science: unknown keys {sorted(unknown)}; allowed: {', '.join(DEFAULTS)}")
    if not s["seeds"]:
        raise ValueError("science.seeds: empty; allowed: a list of >= 1 integers")
    return s


def family(method: str) -> str:
    from solopo.report.plots import family_of

    fam = family_of(method)
    return fam[0] if fam else method


def run_list(s: dict) -> list[dict]:
    """[{run, method, lambda, default}] — SoLo methods at each of their λ (first = default run name)."""
    out = []
    for m in s["methods"]:
        lams = s["lambdas"].get(m) or ([1.0] if m.startswith("solo_") else [None])
        for k, lam in enumerate(lams):
            name = m if k == 0 else f"{m}_lam{float(lam):g}"
            out.append({"run": name, "method": m, "lambda": lam, "default": k == 0})
    return out


# --------------------------------------------------------------------------------------------------
# Shared data
# --------------------------------------------------------------------------------------------------


def _shared_key(cfg: dict, s: dict, backbone: str) -> str:
    """What the shared questions, contexts, samples and fixtures depend on: the settings that make them
    and the backbone's weights (a retrained backbone samples differently)."""
    from solopo.artifacts import hash_obj

    return hash_obj({k: cfg.get(k) for k in ("tiny_model", "data", "sampling", "eval", "seed")}
                    | {k: s[k] for k in ("sample_seed", "eval_seed")} | {"dev_items": s["tune"]["dev_items"],
                                                                        "backbone": _backbone_digest(backbone)})


@functools.lru_cache(maxsize=4)
def _backbone_digest(backbone: str) -> str:
    """sha256 of the backbone's weights and config: runs and samples of another backbone are not reused."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(Path(backbone).glob("*.safetensors")) + [Path(backbone) / "config.json"]:
        if f.exists():
            h.update(f.read_bytes())
    return h.hexdigest()


def _reset_if_stale(work: Path, key: str) -> None:
    """Reuse `work` only when it was made under `key`; else start it afresh (never stale samples)."""
    import shutil

    stamp = work / "key.txt"
    if work.exists() and (not stamp.exists() or stamp.read_text() != key):
        log.info("%s was made under other settings or another backbone: rebuilding it", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


def prepare(cfg: dict, s: dict, backbone: str, work: Path) -> dict:
    """Questions, contexts, samples and test/dev fixtures shared by every seed (cached in `work`)."""
    from solopo import pipeline
    from solopo.artifacts import read_jsonl, write_jsonl
    from solopo.data.contexts import build_contexts, paragraph_pool
    from solopo.data.toy_world import generate_records
    from solopo.generate.hf import HFBackend
    from solopo.sample import sample_responses

    _reset_if_stale(work, _shared_key(cfg, s, backbone))
    tm, d, seed = cfg["tiny_model"], cfg["data"], int(cfg["seed"])
    hop = {int(k): float(v) for k, v in tm["hop_weights"].items()}
    recs = generate_records(d["toy"]["train_questions"], seed + 11, hop, tm["entities"])
    test = generate_records(d["toy"]["dev_questions"], seed + 23, hop, tm["entities"], id_offset=10**6)
    dev = generate_records(d["toy"]["dev_questions"], seed + 37, hop, tm["entities"], id_offset=2 * 10**6)
    write_jsonl(work / "test_records.jsonl", test)
    write_jsonl(work / "dev_records.jsonl", dev)
    ctx_path = {c: work / f"contexts_{c}.jsonl" for c in ("short", "long")}
    if not all(p.exists() for p in ctx_path.values()):
        tok = pipeline._tokenizer(backbone)
        count = lambda x: len(tok(x, add_special_tokens=False)["input_ids"])  # noqa: E731
        ctxs, _ = build_contexts(recs, paragraph_pool(recs), count, {"short": d["short_tokens"], "long": d["long_tokens"]},
                                 seed, d.get("use_aliases", True), d.get("skip_unfittable", False))
        for c, p in ctx_path.items():
            write_jsonl(p, ctxs[c])
    ctxs = {c: read_jsonl(p) for c, p in ctx_path.items()}
    samples = {}
    sm = cfg["sampling"]
    backend = None
    for c in ("short", "long"):
        p = work / f"samples_{c}.jsonl"
        if not p.exists():
            backend = backend or HFBackend(backbone, device="cpu", dtype="float32")
            t0 = time.time()
            sample_responses(backend, ctxs[c], p, sm["n"], sm["temperature"], sm.get("top_p", 1.0), sm["max_new_tokens"],
                             int(s["sample_seed"]), sm.get("shard_size", 64), sm.get("batch_size", 16))
            log.info("sampled %d %s prompts in %.0f s", len(ctxs[c]), c, time.time() - t0)
        samples[c] = read_jsonl(p)
    fixtures = {}
    for name, records in (("test", "test_records.jsonl"), ("dev", "dev_records.jsonl")):
        for bench in ("ruler", "longbench_v1"):
            out = work / name / bench
            if name == "dev" and bench != "ruler":
                continue
            if not out.exists():
                ecfg = copy.deepcopy(cfg)
                if name == "dev":
                    ecfg["eval"]["ruler"]["num_samples"] = int(s["tune"]["dev_items"])
                pipeline.bench_data(bench, str(work / records), backbone, str(out), ecfg, int(s["eval_seed"]),
                                    str(work / "logs" / f"bench_{name}_{bench}.log"))
            fixtures[(name, bench)] = str(out)
    return {"contexts": ctxs, "samples": samples, "fixtures": fixtures}


def seed_datasets(cfg: dict, shared: dict, seed: int, work: Path) -> dict[str, str]:
    """The per-method training sets of one seed (pairs drawn with the seed), as JSONL paths."""
    from solopo import pipeline
    from solopo.artifacts import write_json, write_jsonl
    from solopo.pairs import build_pairs, method_datasets

    out = work / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    rows, stats = build_pairs(shared["samples"], shared["contexts"], seed, cfg["pairs"]["num_pairs"],
                              pipeline.chance_accuracy(cfg), cfg["pairs"].get("intersection", True))
    write_json(out / "pair_stats.json", stats)
    paths = {}
    for name, data in method_datasets(rows).items():
        paths[name] = str(out / f"{name}.jsonl")
        write_jsonl(paths[name], data)
    return paths


# --------------------------------------------------------------------------------------------------
# One (run, seed): train, evaluate, keep per-item scores
# --------------------------------------------------------------------------------------------------


def _tokens(tok, rows: list[dict], needs, max_length: int, epochs: int) -> int:
    from solopo.train.forward import SEQUENCE_FIELDS, tokenize_pair

    return epochs * sum(len(tokenize_pair(tok, r[SEQUENCE_FIELDS[n][0]], r[SEQUENCE_FIELDS[n][1]], max_length)[0])
                        for r in rows for n in needs if n in SEQUENCE_FIELDS)


def evaluate_items(model_dir: str, fixtures: dict, cfg: dict, seed: int, which: str = "test") -> dict:
    """{bench: {score, by_length, items: {key: score}}} with the HF backend on the CPU."""
    from solopo.artifacts import read_jsonl
    from solopo.eval import longbench_v1, ruler
    from solopo.generate.hf import HFBackend

    backend = HFBackend(model_dir, device="cpu", dtype="float32")
    out = {}
    items = read_jsonl(Path(fixtures[(which, "ruler")]) / "items.jsonl")
    res, preds = ruler.evaluate(backend, items, cfg["eval"]["ruler"], seed=seed)
    out["ruler"] = {"score": res["score"], "by_length": res["by_length"],
                    "items": {f"ruler|{p['target_length']}|{p['set']}|{p['index']}": 100.0 * p["correct_extracted"]
                              for p in preds}}
    if (which, "longbench_v1") in fixtures:
        bcfg = cfg["eval"]["longbench_v1"]
        items = longbench_v1.load_items(fixtures[(which, "longbench_v1")], bcfg)
        res, preds = longbench_v1.evaluate(backend, items, bcfg, seed=seed)
        out["longbench_v1"] = {"score": res["score"],
                               "items": {f"lbv1|all|{p['dataset']}|{p['id']}": float(p["score"]) for p in preds}}
    return out


def run_one(job: dict) -> str:
    """Train (unless base) and evaluate one (run, seed); writes and returns its JSON path."""
    import torch

    torch.set_num_threads(1)
    from solopo import pipeline
    from solopo.artifacts import read_jsonl
    from solopo.train.losses import get_loss, get_method
    from solopo.train.trainer import compute_reference_logps, train

    cfg, out_path = job["cfg"], Path(job["out"])
    t0 = time.time()
    rec = {"run": job["run"], "method": job["method"], "lambda": job["lambda"], "default": job["default"],
           "seed": job["seed"], "key": job["key"], "lr": job.get("lr")}
    model_dir = job["backbone"]
    if job["method"] != "base":
        from solopo.generate.hf import load_model_and_tokenizer

        spec = get_loss(get_method(job["method"]).loss)
        rows = read_jsonl(job["dataset"])
        if not rows:
            raise RuntimeError(f"science: no training rows for {job['run']} seed {job['seed']} ({job['dataset']})")
        tcfg = pipeline.train_config(cfg, job["method"])
        tcfg.learning_rate, tcfg.save_steps, tcfg.device = float(job["lr"]), 0, "cpu"
        ref = None
        base, tok = load_model_and_tokenizer(job["backbone"], "cpu", "float32")
        if spec.needs_ref:
            ref = compute_reference_logps(base, tok, rows, tcfg.max_length, tcfg.micro_batch_size)
        del base
        model_dir = str(out_path.with_suffix("")) + "_model"
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        stats = train(job["backbone"], rows, job["method"], pipeline.loss_config(cfg, job["method"], job["lambda"]),
                      tcfg, int(job["seed"]), model_dir, Path(model_dir + "_ckpt"), ref)
        rec["train"] = {"seconds": stats["train_seconds"], "steps": stats["steps"], "rows": len(rows),
                        "tokens": _tokens(tok, rows, spec.needs, tcfg.max_length, tcfg.epochs),
                        "final_loss": stats["final_loss"]}
    t1 = time.time()
    rec["eval"] = evaluate_items(model_dir, job["fixtures"], cfg, int(job["eval_seed"]), job.get("which", "test"))
    rec["eval_seconds"], rec["wall_s"] = round(time.time() - t1, 1), round(time.time() - t0, 1)
    if job.get("drop_model") and model_dir != job["backbone"]:
        import shutil

        shutil.rmtree(model_dir, ignore_errors=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, out_path)
    log.info("%s seed %s: %s", job["run"], job["seed"], {b: v["score"] for b, v in rec["eval"].items()})
    return str(out_path)


def _run_jobs(jobs: list[dict], workers: int) -> list[str]:
    todo = [j for j in jobs if not (Path(j["out"]).exists() and json.loads(Path(j["out"]).read_text()).get("key") == j["key"])]
    log.info("%d runs, %d to do (%d reused)", len(jobs), len(todo), len(jobs) - len(todo))
    if workers <= 1 or len(todo) <= 1:
        for j in todo:
            run_one(j)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            t0, futures = time.time(), {ex.submit(run_one, j): j for j in todo}
            for k, done in enumerate(as_completed(futures), 1):
                done.result()  # a failed run stops the experiment with its error
                log.info("run %s (seed %s) done: %d/%d after %.0f s", futures[done]["run"], futures[done]["seed"],
                         k, len(todo), time.time() - t0)
    return [j["out"] for j in jobs]


def _job_key(cfg: dict, job: dict) -> str:
    from solopo.artifacts import hash_obj

    return hash_obj({k: cfg[k] for k in ("tiny_model", "data", "sampling", "pairs", "train", "eval", "seed")
                     if k in cfg} | {k: job[k] for k in ("run", "method", "lambda", "seed", "lr")} | {"which": job.get("which")}
                    | {"backbone": _backbone_digest(job["backbone"])})


class _LogTo:
    """Route the `solopo` loggers to `path` for the duration (the Snakemake rule's log file)."""

    def __init__(self, path: str | None):
        self.path, self.handler = path, None

    def __enter__(self):
        if self.path:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.handler = logging.FileHandler(self.path, mode="w")
            self.handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
            logging.getLogger("solopo").addHandler(self.handler)
            logging.getLogger("solopo").setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        if self.handler:
            logging.getLogger("solopo").removeHandler(self.handler)
            self.handler.close()


def experiment(cfg: dict, backbone: str, work: str | Path, out_md: str | Path, log_path: str | None = None) -> dict:
    with _LogTo(log_path):
        return _experiment(cfg, backbone, work, out_md)


def _experiment(cfg: dict, backbone: str, work: str | Path, out_md: str | Path) -> dict:
    from solopo.report.science import write_report

    t0 = time.time()
    s = settings(cfg)
    work = Path(work)
    shared = prepare(cfg, s, backbone, work / "shared")
    from solopo.train.losses import get_method

    jobs = []
    per_seed = {sd: seed_datasets(cfg, shared, sd, work / "data") for sd in s["seeds"]}
    base = {"run": "base", "method": "base", "lambda": None, "default": True, "seed": s["seeds"][0], "lr": None}
    for r in [base] + [{**r, "seed": sd} for sd in s["seeds"] for r in run_list(s)]:
        ds = per_seed[r["seed"]] if r["method"] != "base" else None
        job = {**r, "cfg": cfg, "backbone": backbone, "fixtures": shared["fixtures"], "eval_seed": s["eval_seed"],
               "lr": s["learning_rates"].get(family(r["method"])) if r["method"] != "base" else None,
               "dataset": ds[get_method(r["method"]).dataset] if ds else None, "drop_model": True,
               "out": str(work / "runs" / f"{r['run']}__s{r['seed']}.json")}
        job["key"] = _job_key(cfg, job)
        jobs.append(job)
    (work / "runs").mkdir(parents=True, exist_ok=True)
    paths = _run_jobs(jobs, int(s["jobs"]))
    used = {get_method(r["method"]).dataset for r in run_list(s)}
    sizes = {sd: {name: sum(1 for _ in open(p)) for name, p in per_seed[sd].items() if name in used} for sd in s["seeds"]}
    rep_settings = {"learning_rates": s["learning_rates"], "lr_tuned_on_dev": s["lr_tuned_on_dev"],
                    "seeds": s["seeds"], "wall_s": round(time.time() - t0), "training_set_sizes": sizes}
    return write_report(paths, out_md, rep_settings, s["baselines"], s["primary"], int(s["bootstrap_resamples"]))


def tune(cfg: dict, backbone: str, work: str | Path, log_path: str | None = None) -> dict:
    """Per family, the learning rate of `science.tune.grid` with the best dev RULER score (seed 0)."""
    with _LogTo(log_path):
        return _tune(cfg, backbone, work)


def _tune(cfg: dict, backbone: str, work: str | Path) -> dict:
    s = settings(cfg)
    work = Path(work)
    shared = prepare(cfg, s, backbone, work / "shared")
    fixtures = {k: v for k, v in shared["fixtures"].items() if k[0] == "dev"}
    probe = {"sft": "sft_long", "orpo": "orpo_long"}
    jobs = []
    ds = seed_datasets(cfg, shared, s["seeds"][0], work / "data")
    from solopo.train.losses import get_method

    for fam, method in probe.items():
        for lr in s["tune"]["grid"]:
            job = {"run": f"{method}_lr{lr:g}", "method": method, "lambda": None, "default": True,
                   "seed": s["seeds"][0], "lr": lr, "cfg": cfg, "backbone": backbone, "fixtures": fixtures,
                   "eval_seed": s["eval_seed"], "which": "dev", "dataset": ds[get_method(method).dataset],
                   "drop_model": True, "out": str(work / "tune" / f"{method}_lr{lr:g}.json")}
            job["key"] = _job_key(cfg, job)
            jobs.append(job)
    (work / "tune").mkdir(parents=True, exist_ok=True)
    _run_jobs(jobs, int(s["jobs"]))
    scores = {j["run"]: json.loads(Path(j["out"]).read_text())["eval"]["ruler"]["score"] for j in jobs}
    best = {fam: max(s["tune"]["grid"], key=lambda lr: scores[f"{m}_lr{lr:g}"]) for fam, m in probe.items()}
    result = {"dev_scores": scores, "chosen": best}
    (work / "tune" / "chosen.json").write_text(json.dumps(result, indent=2))
    return result


def estimate(cfg: dict, reps: int = 2) -> dict:
    """Profile the three costs on a random model of the backbone's shape (one thread, CPU seconds, so a
    loaded machine still gives idle-machine figures) and extrapolate to the preset's sizes: sampling
    (every question x 2 contexts x n), training (steps x seeds per run) and evaluation (every item of
    every run). Generation is forced to `max_new_tokens` (an upper bound: a trained model stops at EOS)."""
    import torch

    from solopo.bench.efficiency import Step
    from solopo.train.losses import get_loss, get_method

    torch.set_num_threads(1)
    s, tm, d = settings(cfg), cfg["tiny_model"], cfg["data"]
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=tm["vocab_size"], hidden_size=tm["hidden_size"],
                                         intermediate_size=tm["intermediate_size"], num_hidden_layers=tm["num_layers"],
                                         num_attention_heads=tm["num_heads"], num_key_value_heads=tm["num_kv_heads"],
                                         max_position_embeddings=tm["max_positions"], tie_word_embeddings=True))

    def cpu(fn) -> float:
        fn()  # warm-up
        t0 = time.process_time()
        for _ in range(reps):
            fn()
        return (time.process_time() - t0) / reps

    def gen(n_prompts: int, length: int, new: int, n: int = 1) -> float:
        ids = torch.randint(0, tm["vocab_size"], (n_prompts, length))
        with torch.no_grad():
            return cpu(lambda: model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=n > 1,
                                              num_return_sequences=n, pad_token_id=0))

    sm, ev = cfg["sampling"], cfg["eval"]
    bs = int(sm.get("batch_size", 16))
    per_sample_batch = {c: gen(bs, d[f"{c}_tokens"], sm["max_new_tokens"], sm["n"]) for c in ("short", "long")}
    sampling = sum(v * d["toy"]["train_questions"] / bs for v in per_sample_batch.values())
    rb = int(ev["ruler"].get("batch_size", 8))
    per_eval = sum(gen(rb, L, ev["ruler"]["max_new_tokens"]) / rb * 3 * ev["ruler"]["num_samples"]
                   for L in ev["ruler"]["lengths"])
    lb = ev["longbench_v1"]
    per_eval += gen(rb, lb["max_length"], lb["max_new_tokens"]) / rb * 6 * lb["fixture_items"]
    runs = run_list(s)
    o = cfg["train"]["optim"]
    S, Lg, R = d["short_tokens"], d["long_tokens"], 40
    train = 0.0
    rows = min(cfg["pairs"]["num_pairs"], int(0.31 * d["toy"]["train_questions"]))  # the long set's size bounds all
    for r in runs:
        loss = get_loss(get_method(r["method"]).loss)
        # the PO prompt is x_long for long/expand sets; SoLo and LongPO add long copies to a short pair
        long_set = get_method(r["method"]).dataset in ("long", "expand", "sft_long", "sft_expand")
        L = Lg if long_set or loss.variant != "vanilla" else S
        step = cpu(lambda: Step(model, loss.name, L, S, R)())
        model.zero_grad(set_to_none=True)
        train += step * o["batch_size"] * rows * o["epochs"] / o["batch_size"] * len(s["seeds"])
    evals = 1 + len(runs) * len(s["seeds"])
    total = sampling + train + per_eval * evals
    workers = max(1, int(s["jobs"]))
    return {"cpu_s": {"sampling": round(sampling, 1), "training": round(train, 1),
                      "evaluation": round(per_eval * evals, 1)},
            "evaluations": evals, "trainings": len(runs) * len(s["seeds"]),
            "cpu_s_total": round(total, 1), "workers": workers,
            "wall_min_estimate": round((sampling + (train + per_eval * evals) / workers) / 60, 2),
            "note": "sampling runs in one process; training and evaluation in `jobs` workers; model pre-training "
                    "(rule tiny_model, ~3 min) not included"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solopo.science", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["run", "tune", "estimate"])
    ap.add_argument("--configfile", nargs="+", default=["config/config.yaml", "config/tiny.yaml", "config/toy_science.yaml"])
    ap.add_argument("--backbone", default="results/models/tiny")
    ap.add_argument("--work", default="results/science")
    ap.add_argument("--out", default="results/report/toy_science.md")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import yaml

    from solopo.bench.gpu_tiny import _merge

    cfg: dict = {}
    for f in a.configfile:
        cfg = _merge(cfg, yaml.safe_load(Path(f).read_text()) or {})
    if a.command == "estimate":
        print(json.dumps(estimate(cfg), indent=2))
    elif a.command == "tune":
        print(json.dumps(tune(cfg, a.backbone, a.work), indent=2))
    else:
        print(experiment(cfg, a.backbone, a.work, a.out)["answer"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
