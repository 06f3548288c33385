"""Benchmark stages: a suite's data folder and one run's evaluation on it. What differs between the
suites is read from their table (solopo.eval.BENCHES) and their modules' entry points."""
from __future__ import annotations

from pathlib import Path

from solopo import artifacts, resources, validate
from solopo.artifacts import (
    atomic_path,
    read_jsonl,
    write_json,
    write_jsonl,
    write_manifest,
)
from solopo.eval import benchmark
from solopo.generate.measure import MeasuredBackend
from solopo.jobs import job, log, recorded_slice
from solopo.stages.resume import eval_key


def bench_data(bench: str, dev_path: str | None, model: str | None, out: str, cfg: dict, seed: int, log_path: str,
               sources_dir: str | None = None) -> None:
    """Benchmark inputs: fixtures from held-out toy questions (tiny) or the released data (paper).

    `sources_dir`: RULER's released source files as fetched by rule download_ruler (on a cluster,
    this job runs offline on a compute node and only reads them)."""
    spec = benchmark(bench)
    with job(log_path, f"bench_data {bench}") as t0:
        bcfg = cfg["eval"][bench]
        records = read_jsonl(dev_path) if dev_path else []
        with atomic_path(out) as tmp:
            tmp.mkdir(parents=True)
            extra = spec.build_data(tmp, records, bcfg, seed, model, sources_dir)
            artifacts.write_folder_manifest(tmp, out, recorded_slice(cfg, {bench: bcfg, "seed": seed, "model": model}),
                                            [dev_path] if dev_path else [], t0, extra)


def _lm_eval(model_dir: str, bcfg: dict) -> tuple[dict, list[dict]]:
    """A suite that loads the weights itself (lm-eval): it runs under the model-load lock."""
    import tempfile

    from solopo.eval import leaderboard
    from solopo.runtime import MODEL_LOAD_LOCK, pick_device

    # lm-eval loads the model itself; hold the load lock for the whole (short, tiny-preset) run. The hf
    # backend runs where the rest of the pipeline would (a GPU when there is one), not always on the CPU.
    with tempfile.TemporaryDirectory(prefix="lm_eval_tasks_") as work, MODEL_LOAD_LOCK:
        return leaderboard.evaluate(model_dir, bcfg, Path(work), device=pick_device("auto"))


def backend_settings(backend_kwargs: dict, run: str, bench: str) -> dict:
    """The backend's keyword arguments with the backbone's long-context setting applied when this suite
    exceeds its native window (solopo.eval.budget): rope scaling at load, the window as vLLM's max_model_len."""
    kw = dict(backend_kwargs)
    plan = kw.pop("long_context", None) or {}
    if plan.get("rope_scaling"):
        kw["rope_scaling"] = plan["rope_scaling"]
    if plan.get("window"):
        kw["max_model_len"] = plan["window"]
    if plan:
        from solopo.eval.budget import describe

        log.info("%s %s: %s", run, bench, describe(plan))
    return kw


def evaluate(bench: str, model_dir: str, data_dir: str | None, out_json: str, run: str, cfg: dict, seed: int,
             log_path: str, backend_kwargs: dict) -> None:
    from solopo.generate import load_backend

    spec = benchmark(bench)
    with job(log_path, f"eval {run} {bench}") as t0:
        bcfg = dict(cfg["eval"][bench])
        partial = measured = None
        artifacts.check_model_folder(model_dir)  # lm-eval and vLLM load the weights themselves
        if spec.loads_model:
            result, preds = _lm_eval(model_dir, bcfg)
        else:
            kw = backend_settings(backend_kwargs, run, bench)
            # before the model is loaded or anything written (solopo.resources)
            resources.check(resources.for_eval(bench, model_dir, bcfg, cfg["eval"]["backend"], out_json))
            backend = load_backend(cfg["eval"]["backend"], model_dir, **kw)
            validate.check_benchmark_folder(bench, data_dir)  # its manifest's hashes, every item's required fields
            items = spec.eval_items(data_dir, bcfg)
            validate.check_eval_items(bench, items, data_dir, bcfg)
            validate.check_chat_template(backend.tokenizer, model_dir)
            # finished generations survive an interrupted job; its rerun reuses them (solopo.partial)
            from solopo.partial import ResumableBackend

            partial = ResumableBackend(backend, out_json + ".partial",
                                       eval_key(model_dir, cfg["eval"]["backend"], kw, bench, bcfg, seed))
            measured = MeasuredBackend(partial)  # the manifest's measured prompt tokens and window
            result, preds = spec.evaluate(measured, items, bcfg, seed=seed)
        result["run"] = run
        if not spec.loads_model and backend_kwargs.get("long_context"):
            result.setdefault("settings", {})["context"] = backend_kwargs["long_context"]
        log.info("%s %s: score %s", run, bench, result.get("score"))
        pred_path = out_json.replace(".json", ".predictions.jsonl")
        inputs = [model_dir] + ([data_dir] if data_dir else [])
        recorded = recorded_slice(cfg, {bench: bcfg, "backend": cfg["eval"]["backend"], "seed": seed})
        write_manifest(pred_path, recorded, inputs, t0)
        write_jsonl(pred_path, preds)
        extra = {"predictions": pred_path}
        if measured is not None:
            extra["prompts"] = measured.summary(items)
            log.info("%s %s: prompts of %s tokens (window %s)", run, bench,
                     "/".join(f"{c['min']}-{c['max']}" for c in extra["prompts"]["calls"]), extra["prompts"]["window"])
        write_manifest(out_json, recorded, inputs, t0, extra)
        write_json(out_json, result)
        if partial is not None:
            partial.finish()
