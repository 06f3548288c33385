"""The GPU check's training + evaluation phase: the tiny preset's `solo_orpo` and
`orpo_long` trained through the project's trainer on the device, then evaluated with the HF backend.

Everything is built here from the repository alone (no hub, nothing carried): the tiny preset's
config (`config/config.yaml` + `config/tiny.yaml`, merged as Snakemake merges them), its backbone
(`solopo.tiny_model.train_tiny_model`, a short pre-training), the toy world, the short/long
contexts, CoT samples from the backbone on the device (`solopo.sample`), pairs (`solopo.pairs`),
training (`solopo.train.trainer.train`, bf16 + gradient checkpointing on CUDA) and RULER and
LongBench v1 fixtures evaluated through `solopo.pipeline.bench_data` / `solopo.pipeline.evaluate`.

A briefly pre-trained backbone rarely answers correctly, and a question needs one right and one
wrong sample to give a pair; so each question's samples are extended with its gold reasoning trace
and a trace ending in a wrong entity. The pair selection itself is the project's (`build_pairs`).

Checks (each a named boolean in the result): every logged loss and gradient norm is finite, some
gradient is non-zero and the weights moved, and every (run, benchmark) produced a finite score.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from pathlib import Path

from solopo.mappings import deep_merge

log = logging.getLogger(__name__)

METHODS = {"solo_orpo": "solo", "orpo_long": "long"}  # method -> training set (losses.METHODS)
BENCHES = ("ruler", "longbench_v1")

GPU_SETTINGS: dict = {"device": "cuda", "dtype": "bfloat16", "gradient_checkpointing": True, "pretrain_steps": 300,
                      "pretrain_threads": 8, "questions": 64, "epochs": 2, "batch_size": 8, "micro_batch_size": 4,
                      "samples": 4, "sample_tokens": 40, "ruler_samples": 8, "longbench_items": 4,
                      "eval_tokens": 40, "seed": 42}
REHEARSAL_SETTINGS: dict = {**GPU_SETTINGS, "device": "cpu", "dtype": "float32", "pretrain_steps": 8,
                            "pretrain_threads": 1, "questions": 8, "epochs": 1, "batch_size": 4,
                            "micro_batch_size": 2, "samples": 2, "sample_tokens": 8, "ruler_samples": 1,
                            "longbench_items": 1, "eval_tokens": 8}


def tiny_config(config_dir: str | Path = "config") -> dict:
    """config.yaml overlaid with tiny.yaml (what `--configfile config/tiny.yaml` gives the workflow)."""
    import yaml

    d = Path(config_dir)
    return deep_merge(yaml.safe_load((d / "config.yaml").read_text()), yaml.safe_load((d / "tiny.yaml").read_text()))


def _wrong_trace(rec: dict, others: list[dict], rng: random.Random) -> str:
    """The gold trace with its final answer replaced by another question's answer (a wrong entity)."""
    wrong = [r["answer"] for r in others if r["answer"] != rec["answer"]]
    head, _, _ = rec["cot"].rpartition("The answer is:")
    return f"{head}The answer is: {rng.choice(wrong)}"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def run(out_dir: str | Path, settings: dict | None = None, config_dir: str | Path = "config") -> dict:
    import torch

    from solopo import pipeline
    from solopo.artifacts import read_jsonl, write_jsonl
    from solopo.data.contexts import build_contexts, paragraph_pool
    from solopo.data.toy_world import train_dev_records
    from solopo.generate.hf import HFBackend, load_tokenizer
    from solopo.pairs import build_pairs, method_datasets
    from solopo.runtime import pick_device
    from solopo.sample import sample_responses
    from solopo.tiny_model import train_tiny_model
    from solopo.train.trainer import train

    s = {**GPU_SETTINGS, **(settings or {})}
    t_start = time.time()
    device = pick_device(s["device"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(s["seed"])
    cfg = tiny_config(config_dir)
    timings: dict[str, float] = {}

    def lap(name, t0):
        timings[name] = round(time.time() - t0, 2)
        log.info("tiny phase: %s in %.1f s", name, timings[name])

    # 1. backbone (pre-training runs on the CPU, as in the tiny preset)
    t0 = time.time()
    tm = {**cfg["tiny_model"], "steps": int(s["pretrain_steps"]), "threads": int(s["pretrain_threads"])}
    backbone = out / "backbone"
    pretrain = train_tiny_model(backbone, tm, int(tm["seed"]))
    lap("backbone", t0)

    # 2. toy world, contexts, samples on the device, pairs
    t0 = time.time()
    recs, dev_recs = train_dev_records(tm, int(s["questions"]), int(s["questions"]), seed)
    write_jsonl(out / "data" / "dev.jsonl", dev_recs)
    tok = load_tokenizer(str(backbone))
    count = lambda x: len(tok(x, add_special_tokens=False)["input_ids"])  # noqa: E731
    d = cfg["data"]
    ctxs, _ = build_contexts(recs, paragraph_pool(recs), count, {"short": d["short_tokens"], "long": d["long_tokens"]},
                             seed, d.get("use_aliases", True))
    backend = HFBackend(str(backbone), device=device, dtype=s["dtype"])
    by_id = {r["id"]: r for r in recs}
    rng = random.Random(seed)
    samples = {}
    for ctx in ("short", "long"):
        rows = sample_responses(backend, ctxs[ctx], out / "data" / f"samples_{ctx}.jsonl", int(s["samples"]),
                                cfg["sampling"]["temperature"], 1.0, int(s["sample_tokens"]), seed,
                                shard_size=16, batch_size=16)
        for r in rows:
            rec = by_id[r["id"]]
            r["responses"] = list(r["responses"]) + [rec["cot"], _wrong_trace(rec, recs, rng)]
        samples[ctx] = rows
    del backend
    pair_rows, pair_stats = build_pairs(samples, ctxs, seed, cfg["pairs"]["num_pairs"], pipeline.chance_accuracy(cfg))
    sets = method_datasets(pair_rows)
    lap("data", t0)

    # 3. training through the project's trainer
    result: dict = {"device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
                    "dtype": s["dtype"], "gradient_checkpointing": bool(s["gradient_checkpointing"]),
                    "pretrain": pretrain, "pairs": {k: len(v) for k, v in sets.items() if k in METHODS.values()},
                    "sampled_accuracy": {c: pair_stats[c]["sampled_accuracy"] for c in ("short", "long")},
                    "train": {}, "eval": {}, "checks": {}}
    base_state = {k: v.detach().clone() for k, v in _load_weights(backbone).items()}
    models = {"base": str(backbone)}
    for method, dataset in METHODS.items():
        t0 = time.time()
        rows = sets[dataset]
        if not rows:
            raise RuntimeError(f"gpu check: the {dataset} training set for {method} is empty")
        lam = cfg["train"]["lambdas"].get(method, [None])[0]
        tcfg = pipeline.train_config(cfg, method)
        tcfg.batch_size, tcfg.micro_batch_size = int(s["batch_size"]), int(s["micro_batch_size"])
        tcfg.epochs, tcfg.save_steps, tcfg.device, tcfg.dtype = int(s["epochs"]), 0, device, s["dtype"]
        tcfg.gradient_checkpointing = bool(s["gradient_checkpointing"])
        model_dir = out / "models" / method
        model_dir.mkdir(parents=True, exist_ok=True)
        stats = train(str(backbone), rows, method, pipeline.loss_config(cfg, method, lam), tcfg, seed, model_dir,
                      out / "checkpoints" / method)
        history = [json.loads(x) for x in (model_dir / "train_log.jsonl").read_text().splitlines() if x.strip()]
        moved = max(float((v.float() - base_state[k].float()).abs().max()) for k, v in _load_weights(model_dir).items()
                    if k in base_state)
        result["train"][method] = {
            "lambda": lam, "rows": len(rows), "steps": stats["steps"], "seconds": stats["train_seconds"],
            "losses": [h["loss"] for h in history], "grad_norms": [h["grad_norm"] for h in history],
            "max_abs_weight_change": moved}
        models[method] = str(model_dir)
        lap(f"train {method}", t0)

    # 4. HF-backend evaluation of the base model and both trained models
    t0 = time.time()
    ecfg = copy.deepcopy(cfg)
    ecfg["eval"]["ruler"].update(num_samples=int(s["ruler_samples"]), max_new_tokens=int(s["eval_tokens"]))
    ecfg["eval"]["longbench_v1"].update(fixture_items=int(s["longbench_items"]), max_new_tokens=int(s["eval_tokens"]))
    logs = out / "logs"
    for bench in BENCHES:
        pipeline.bench_data(bench, str(out / "data" / "dev.jsonl"), str(backbone), str(out / "bench" / bench), ecfg,
                            seed, str(logs / f"bench_{bench}.log"))
    kw = {"device": device, "dtype": s["dtype"]}
    for run_name, model_dir in models.items():
        for bench in BENCHES:
            path = out / "eval" / run_name / f"{bench}.json"
            pipeline.evaluate(bench, model_dir, str(out / "bench" / bench), str(path), run_name, ecfg, seed,
                              str(logs / f"eval_{run_name}_{bench}.log"), kw)
            res = json.loads(path.read_text())
            n_pred = len(read_jsonl(str(path).replace(".json", ".predictions.jsonl")))
            result["eval"].setdefault(run_name, {})[bench] = {"score": res.get("score"), "n": n_pred,
                                                              "by_length": res.get("by_length")}
    lap("eval", t0)

    tr = result["train"]
    result["checks"] = {
        "losses_finite": all(_finite(x) for m in tr.values() for x in m["losses"]) and all(tr[m]["losses"] for m in tr),
        "grad_norms_finite": all(_finite(x) for m in tr.values() for x in m["grad_norms"]),
        "gradients_nonzero": all(max(m["grad_norms"]) > 0 for m in tr.values()),
        "weights_moved": all(m["max_abs_weight_change"] > 0 for m in tr.values()),
        "scores_produced": all(_finite(b["score"]) and b["n"] > 0 for r in result["eval"].values() for b in r.values())
        and len(result["eval"]) == len(models),
    }
    result["timings_s"] = timings
    result["wall_s"] = round(time.time() - t_start, 1)
    return result


def _load_weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))
