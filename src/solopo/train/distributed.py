"""The training loop under DeepSpeed ZeRO, one process per GPU (paper preset: ZeRO-3 + CPU
offload, bf16, 4 GPUs), started by `solopo.pipeline.launch_deepspeed` through `accelerate launch`
and `solopo.train.launch`. On CPU (DS_ACCELERATOR=cpu, gloo) the same code runs with 2 processes
in the tests.

How a global batch of B rows (`train.optim.batch_size`; the last one of the epoch may hold fewer)
is split over W ranks with micro-batches of m rows:
- every rank runs exactly G = ceil(B / (m W)) micro-batches every step, G being DeepSpeed's
  `gradient_accumulation_steps`; rank r takes rows r, r+W, r+2W, ... of the batch, cut into G
  micro-batches of at most m rows. A micro-batch left with no row (a ragged last batch) runs a
  forward/backward on a short stand-in row with weight 0: it takes part in every collective (ZeRO-3's
  parameter gathers, the gradient reductions) and adds exactly nothing. A rank that skipped its
  forward instead left the other ranks waiting for ever.
- loss scaling: DeepSpeed divides each micro-batch's loss by G and averages gradients over the W
  ranks. Each loss is the mean over its n rows, so it is multiplied by n G W / B_step (B_step =
  rows in this global batch): the step's gradient is then exactly that of the mean loss over the
  global batch, as in the single-process trainer (tests/train/test_multiprocess.py compares the
  final weights). The accumulation boundary is set here, not by accelerate (whose
  `backward` declares every micro-batch a boundary unless `accumulate()` is used).
- metrics (loss, reward margin, ...) and token counts are summed over ranks, so the step line and
  `train_log.jsonl` describe the global batch.

Checkpoints: DeepSpeed's own (`accelerator.save_state`), written to `.step-N.tmp` and renamed to
`step-N` by rank 0 after every rank has written its shard; with `keep_checkpoint_weights` rank 0
also writes `model.safetensors` (gathered 16-bit weights) for checkpoint selection. Their loader is
DeepSpeed's: the one place where `torch.load` is not ours to restrict (it only ever reads
checkpoints this run wrote, under a fingerprint, see checkpoints.claim_checkpoint_dir).

Stop requests (SIGTERM, Ctrl-C; each rank's handler is installed by solopo.train.launch): every
rank folds its flag into the step's metric reduction, so all ranks see the same answer at the same
step boundary, write the checkpoint of that step together and stop (see trainer.train).

A stuck rank fails the job: collectives time out after `collective_timeout_s` (gloo honours it;
on GPU the launcher sets TORCH_NCCL_ASYNC_ERROR_HANDLING=1 so the NCCL watchdog aborts).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import torch

from solopo.train.checkpoints import INTERRUPTED, drop_interrupted, latest_checkpoint, prune_checkpoints, stop_requested, stopped
from solopo.train.forward import LENGTH_SUMS, add_lengths, mean_lengths, policy_outputs
from solopo.train.losses import LossConfig
from solopo.train.monitor import StepLogger
from solopo.train.setup import TrainConfig, method_loss, prepare_optimisation

log = logging.getLogger(__name__)

DEEPSPEED_CONFIGS = ("zero2", "zero3", "zero3_offload")
# Test hook: "K" or "K:R" makes every rank (or rank R) sleep after step K (its checkpoint written),
# standing for a job killed there (SIGKILL test) or a stuck rank (collective-timeout test).
STALL_ENV = "SOLOPO_TEST_STALL_AFTER_STEP"


def accumulation_steps(cfg: TrainConfig, world_size: int) -> int:
    """Micro-batches per rank per step: enough for a full global batch (rounded up)."""
    return max(1, math.ceil(cfg.batch_size / (cfg.micro_batch_size * world_size)))


def deepspeed_config(name: str, cfg: TrainConfig, world_size: int, bf16: bool) -> dict:
    """The shipped ZeRO config `name` with its "auto" batch/clipping/precision values filled in."""
    if name not in DEEPSPEED_CONFIGS:
        raise ValueError(f"train.deepspeed {name!r}: allowed values are none, {', '.join(DEEPSPEED_CONFIGS)}")
    ds = json.loads((Path(__file__).parent / "deepspeed" / f"{name}.json").read_text())
    grad_accum = accumulation_steps(cfg, world_size)
    ds.update(train_micro_batch_size_per_gpu=cfg.micro_batch_size, gradient_accumulation_steps=grad_accum,
              train_batch_size=cfg.micro_batch_size * grad_accum * world_size, gradient_clipping=cfg.max_grad_norm,
              bf16={"enabled": bf16})
    return ds


def rank_micro_batches(batch: list[int], world_size: int, rank: int, micro: int, accum: int) -> list[list[int]]:
    """Rank `rank`'s `accum` micro-batches of the global batch `batch` (row indices); some may be
    empty, none holds more than `micro` rows, and the ranks' rows together are `batch`."""
    mine = batch[rank::world_size]
    if len(mine) > micro * accum:
        raise ValueError(f"{len(mine)} rows for rank {rank} do not fit {accum} micro-batches of {micro}")
    return [mine[i * micro : (i + 1) * micro] for i in range(accum)]


def stand_in_row(row: dict) -> dict:
    """`row` with empty prompts and one-word responses: what an empty micro-batch runs (weight 0). Short,
    because it only has to take part in the collectives: a copy of a real row cost a full forward and
    backward of a 9K-token sequence per empty micro-batch (30 of a rank's 32 when 4 rows meet a batch of 64)."""
    return {**row, "x": "", "x_long": "", "y_w": "yes", "y_l": "no"}


def _maybe_stall(step: int, rank: int) -> None:
    spec = os.environ.get(STALL_ENV)
    if not spec:
        return
    at, _, who = spec.partition(":")
    if int(at) == step and (not who or int(who) == rank):
        log.warning("rank %d stalls after step %d (%s test hook)", rank, step, STALL_ENV)
        while True:
            time.sleep(60)


def _skip_cpu_shm_op() -> None:
    """DeepSpeed's CPU accelerator JIT-compiles a shared-memory all-reduce (`deepspeed_shm_comm`:
    ~40 s, needs g++/ninja, and a build killed half-way leaves a lock that every later run waits on
    for ever) when its process group starts. Only its inference all-reduce uses the op; training
    collectives go through torch.distributed (gloo), so on CPU it is not built."""
    import importlib

    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() == "cpu":
        # not `import deepspeed.comm.torch as m`: that resolves to the `torch` name deepspeed.comm imports
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


def _save(acc, model, step: int, ckpt_dir: Path, history: list[dict], with_weights: bool,
          interrupted: bool = False) -> None:
    """Every rank writes its DeepSpeed shard into `.step-N.tmp`; rank 0 renames it when all are done."""
    final, tmp = ckpt_dir / f"step-{step}", ckpt_dir / f".step-{step}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp / "state"))
    weights = acc.get_state_dict(model) if with_weights else None  # a collective under ZeRO-3
    acc.wait_for_everyone()
    if acc.is_main_process:
        if weights is not None:
            from safetensors.torch import save_file

            model_cfg = acc.unwrap_model(model).config
            if getattr(model_cfg, "tie_word_embeddings", False):
                weights.pop("lm_head.weight", None)  # tied: safetensors wants one copy
            save_file({k: v.contiguous().cpu() for k, v in weights.items()}, tmp / "model.safetensors")
        (tmp / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
        if interrupted:  # off the save_steps schedule: a resume point only (checkpoints.drop_interrupted)
            (tmp / INTERRUPTED).write_text(str(step))
        (tmp / "COMPLETE").write_text(str(step))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    acc.wait_for_everyone()


def train_deepspeed(model_path: str, rows: list[dict], method: str, loss_cfg: LossConfig, cfg: TrainConfig, seed: int,
                    out_dir: str | Path, ckpt_dir: str | Path, ref: list[dict] | None, progress, stop_after_step,
                    ds_name: str, log_dir: Path | None = None, run_name: str | None = None) -> dict:
    """`trainer.train` under DeepSpeed ZeRO `ds_name`; rank 0 writes the model to `out_dir`."""
    from solopo.software import require

    require("deepspeed")
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs

    from solopo.generate.hf import load_model_and_tokenizer

    t0 = time.time()
    spec, ref = method_loss(method, rows, ref)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available()
    bf16 = use_cuda and cfg.dtype in ("auto", "bfloat16")
    ds = deepspeed_config(ds_name, cfg, world, bf16)
    accum = ds["gradient_accumulation_steps"]
    timeout = timedelta(seconds=cfg.collective_timeout_s)
    # DeepSpeed makes its own groups (ZeRO's data-parallel group, ...) with new_group() and no timeout,
    # which then takes torch's module defaults (30 min gloo, 10 min NCCL), not the process group's
    import torch.distributed.distributed_c10d as c10d

    c10d.default_pg_timeout = timeout
    if getattr(c10d, "default_pg_nccl_timeout", None) is not None:
        c10d.default_pg_nccl_timeout = timeout
    _skip_cpu_shm_op()
    if not use_cuda:
        # CPU (DS_ACCELERATOR=cpu): with `cpu=True` accelerate ignores the DeepSpeed plugin (DDP instead),
        # and without a backend it sees one process while DeepSpeed sees all; so the shared state
        # is set up first with DeepSpeed over gloo
        from accelerate import PartialState

        os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
        PartialState(backend="gloo", timeout=timeout)
    acc = Accelerator(deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=ds), mixed_precision="bf16" if bf16 else "no",
                      kwargs_handlers=[InitProcessGroupKwargs(timeout=timeout)])
    if acc.num_processes != world:
        raise RuntimeError(f"accelerate sees {acc.num_processes} process(es), the launcher started {world}")
    rank = acc.process_index
    model, tok = load_model_and_tokenizer(model_path, "cpu", "float32")
    order, total_steps, opt, sched = prepare_optimisation(model, len(rows), cfg, seed)
    engine, _ = acc.prepare(model, opt)  # the DeepSpeedEngine; `sched` drives the wrapped optimizer's lr
    from deepspeed import DeepSpeedEngine

    if not isinstance(engine, DeepSpeedEngine):
        raise RuntimeError(f"train.deepspeed {ds_name}: accelerate gave a {type(engine).__name__}, not a DeepSpeed "
                           "engine; start the ranks with solopo.pipeline.launch_deepspeed (accelerate launch "
                           "--config_file src/solopo/train/accelerate_deepspeed.yaml)")
    ckpt_dir = Path(ckpt_dir)
    start, history = 0, []
    latest = latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
    if latest is not None:
        acc.load_state(str(latest / "state"))
        start = int((latest / "COMPLETE").read_text())
        history = [json.loads(x) for x in (latest / "history.jsonl").read_text().splitlines() if x.strip()]
        for _ in range(start):
            sched.step()
        log.info("resuming %s (DeepSpeed %s) from %s (step %d of %d)", method, ds_name, latest, start, total_steps)
    zero = ds.get("zero_optimization", {})
    log.info("DeepSpeed %s: ZeRO stage %s, optimizer offload %s, parameter offload %s; world size %d, %d micro-batch(es) "
             "of <= %d rows per rank per step, %d steps", ds_name, zero.get("stage"),
             zero.get("offload_optimizer", {}).get("device", "none"), zero.get("offload_param", {}).get("device", "none"),
             world, accum, cfg.micro_batch_size, total_steps)
    monitor = StepLogger(cfg.report_to, log_dir, total_steps, start, run_name,
                         {"method": method, "deepspeed": ds_name, "world_size": world, **vars(cfg)},
                         enabled=acc.is_main_process)
    full_nll = "long_chosen_full_nll" in spec.needs
    keys: list[str] | None = None
    for step in range(start, total_steps):
        t_step = time.time()
        batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        sums: dict[str, float] = {}
        lengths: dict[str, float] = {}
        tokens = 0
        for j, mb in enumerate(rank_micro_batches(batch, world, rank, cfg.micro_batch_size, accum)):
            # an empty micro-batch runs a short stand-in row with weight 0: this rank still joins every collective
            mb_rows = [rows[i] for i in mb] or [stand_in_row(rows[batch[0]])]
            mb_ref = [ref[i] for i in (mb or batch[:1])] if spec.needs_ref else None
            po = policy_outputs(engine, tok, mb_rows, spec.needs, cfg.max_length, acc.device, mb_ref, full_nll)
            loss, metrics = spec.fn(po, loss_cfg)
            engine.set_gradient_accumulation_boundary(j == accum - 1)
            engine.backward(loss * (len(mb) * accum * world / len(batch)))
            engine.step()  # an optimizer step only at the boundary (clipping, AdamW, zero_grad)
            tokens += po.n_tokens if mb else 0
            if mb:  # a stand-in row is no training data
                add_lengths(lengths, po)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(mb)
        keys = keys or sorted(sums)
        # the last entry: this rank's stop request, summed with the others' in the same reduction
        totals = torch.tensor([sums[k] for k in keys] + [lengths.get(k, 0) for k in LENGTH_SUMS]
                              + [tokens, float(stop_requested())], dtype=torch.float64, device=acc.device)
        totals = acc.reduce(totals, "sum").tolist()  # over ranks: the global batch
        stop = totals.pop() > 0
        lengths = dict(zip(LENGTH_SUMS, totals[len(keys):len(keys) + len(LENGTH_SUMS)]))
        sched.step()
        gnorm = engine.get_global_grad_norm()
        record = {"step": step + 1, "lr": sched.get_last_lr()[0],
                  **({"grad_norm": round(float(gnorm), 6)} if gnorm is not None else {}),
                  **{k: round(totals[i] / len(batch), 6) for i, k in enumerate(keys)}, **mean_lengths(lengths)}
        history.append(record)
        seconds = time.time() - t_step
        monitor.log(record, totals[-1] / max(seconds, 1e-9), seconds)
        if progress is not None:
            progress.update(1)
        scheduled = bool(cfg.save_steps) and ((step + 1) % cfg.save_steps == 0 or step + 1 == total_steps)
        if scheduled or stop:
            _save(acc, engine, step + 1, ckpt_dir, history, cfg.keep_checkpoint_weights, interrupted=not scheduled)
            if acc.is_main_process:
                drop_interrupted(ckpt_dir, below=step + 1)
                prune_checkpoints(ckpt_dir, cfg.keep_checkpoints, cfg.keep_checkpoint_weights)
            acc.wait_for_everyone()
        if stop:
            monitor.close()
            raise stopped(step + 1, total_steps, ckpt_dir / f"step-{step + 1}")
        _maybe_stall(step + 1, rank)
        if stop_after_step is not None and step + 1 >= stop_after_step:
            monitor.close()
            raise KeyboardInterrupt(f"stopped after step {step + 1} (test hook)")
    monitor.close()
    if acc.is_main_process:
        drop_interrupted(ckpt_dir)
    state = acc.get_state_dict(engine)
    if acc.is_main_process:
        out_dir = Path(out_dir)
        model = acc.unwrap_model(engine)
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied: the same files as the single-process trainer writes
        model.save_pretrained(out_dir, state_dict=state, safe_serialization=True)
        tok.save_pretrained(out_dir)
        with open(out_dir / "train_log.jsonl", "w") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in history)
    acc.wait_for_everyone()
    return {"method": method, "loss": spec.name, "steps": total_steps, "examples": len(rows), "deepspeed": ds_name,
            "world_size": world, "micro_batches_per_rank": accum, "final_loss": history[-1].get("loss") if history else None,
            "resumed_from_step": start, "train_seconds": round(time.time() - t0, 2),
            "checkpoints": sorted(p.name for p in ckpt_dir.glob("step-*")) if ckpt_dir.exists() else []}
