"""Training stage: the config's loss and optimiser settings for one run, the run itself, and the
checkpoint selection on LongBench v1."""
from __future__ import annotations

from pathlib import Path

from solopo import artifacts, resources, validate
from solopo.artifacts import atomic_path, write_json
from solopo.generate.hf import load_tokenizer
from solopo.jobs import job, log, progress_bar, recorded_slice
from solopo.stages.resume import train_key


def longpo_settings(cfg: dict) -> dict:
    """The LongPO run's `train.longpo` block over the release defaults (solopo.train.losses.LONGPO_DEFAULTS):
    a configured value always wins."""
    from solopo.train.losses import LONGPO_DEFAULTS

    return {**LONGPO_DEFAULTS, **(cfg["train"].get("longpo") or {})}


def loss_config(cfg: dict, method: str, lam: float | None):
    from solopo.slices import has_ra_term
    from solopo.train.losses import LONGPO_DEFAULTS, LossConfig, get_method

    lc = cfg["train"]["loss"]
    # train.longpo is read (and in the params, solopo.slices.train) for the LongPO run only
    lp = longpo_settings(cfg) if method == "longpo" else LONGPO_DEFAULTS
    simpo = "simpo" in method
    # read by the SoLo-RA runs only: the other runs' slices leave it out (solopo.slices.train); the
    # solo_*_sg methods stop the gradient whatever the key says
    stop_grad = has_ra_term(method) and (get_method(method).ra_stop_grad_short or lc.get("ra_stop_grad_short", False))
    return LossConfig(beta=lc["simpo_beta"] if simpo else lc["beta"], gamma=lc["gamma"], orpo_lambda=lc["orpo_lambda"],
                      alpha=lam if lam is not None else 0.0, longpo_beta=lp["beta"], longpo_lambda=lp["lambda"],
                      ra_stop_grad_short=stop_grad)


def train_config(cfg: dict, method: str):
    from solopo.train.setup import TrainConfig
    from solopo.tune import rate_key

    o = cfg["train"]["optim"]
    tc = TrainConfig(learning_rate=o.get(rate_key(method), o["learning_rate"]),
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
        lp = longpo_settings(cfg)
        tc.optimizer, tc.learning_rate = lp["optimizer"], lp["learning_rate"]
        tc.warmup_ratio, tc.weight_decay = lp["warmup_ratio"], lp["weight_decay"]
    return tc


def select_by_longbench_v1(model_dir, ckpt_dir: Path, bench_dir: str, cfg: dict, seed: int) -> dict:
    """Re-save `model_dir` with the epoch's checkpoint that scores best on LongBench v1 QA."""
    from solopo.eval import longbench_v1
    from solopo.generate.hf import HFBackend, load_model_and_tokenizer
    from solopo.train.checkpoints import complete_checkpoints
    from solopo.train.selection import select_checkpoint

    bcfg = cfg["eval"]["longbench_v1"]
    validate.check_benchmark_folder("longbench_v1", bench_dir)
    items = longbench_v1.load_items(bench_dir, bcfg)
    model, tok = load_model_and_tokenizer(str(model_dir), "auto", "auto")
    checkpoints = complete_checkpoints(ckpt_dir)
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
    from solopo.train.checkpoints import claim_checkpoint_dir
    from solopo.train.model_card import write_model_card
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
        claim_checkpoint_dir(ckpt, train_key(model, dataset_path, ref_path, method, lam, lcfg, tcfg, seed, ds))
        # TensorBoard files are written live beside the checkpoints (a killed job keeps its curves; an
        # unfinished file never sits in results/ outside the work folders) and copied into the model
        tb_dir = ckpt / "tensorboard"
        with atomic_path(out_dir) as tmp:
            if ds != "none":
                stats = launch_deepspeed(dataset_path, ref_path, model, tmp, ckpt, method, lcfg, tcfg, seed, ds, log_path,
                                         tb_dir, run)
            else:
                stats = train_loop(model, rows, method, lcfg, tcfg, seed, tmp, ckpt, ref,
                                   progress=progress_bar(0, f"train {run}", log_path), log_dir=tb_dir, run_name=run)
            trc = (cfg.get("backbone") or {}).get("trust_remote_code", False)
            stats["tokens"] = training_tokens(model, rows, method, tcfg, trc)  # the cost axis of the seeds page
            if cfg["train"].get("select_checkpoint", "final") == "longbench_v1":
                stats["checkpoint_selection"] = select_by_longbench_v1(tmp, ckpt, bench_dir, cfg, seed)
            if tb_dir.is_dir():
                import shutil

                shutil.copytree(tb_dir, Path(tmp) / "tensorboard")
            log.info("train %s: %s", run, stats)
            config_slice = recorded_slice(cfg, {"method": method, "lambda": lam, "loss": vars(lcfg), "optim": vars(tcfg),
                                                "seed": seed})
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
