"""Multi-process training: the job side starts the ranks (`launch_deepspeed`, called by
solopo.pipeline.train), and each rank enters here: `accelerate launch ... -m solopo.train.launch <args.json>`.

`solopo.pipeline.launch_deepspeed` writes the job's arguments to a JSON file and starts one
process per visible GPU through `accelerate launch` with the project's own accelerate config
(`solopo/train/accelerate_deepspeed.yaml`) when `train.deepspeed` is set (paper preset: ZeRO-3
with CPU offload on 4 GPUs); rank 0 writes the model and the per-step lines of the job log.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from pathlib import Path

from solopo.artifacts import read_jsonl
from solopo.train.losses import LossConfig
from solopo.train.setup import TrainConfig
from solopo.train.trainer import train

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the job side (solopo.pipeline.train)
ACCELERATE_CONFIG = Path(__file__).parent / "accelerate_deepspeed.yaml"
PROCESSES_ENV = "SOLOPO_TRAIN_PROCESSES"


def train_process_count() -> int:
    """One training process per GPU the job sees (SLURM sets CUDA_VISIBLE_DEVICES from the job's
    `--gpus`, i.e. the rule's `gpu` resource); SOLOPO_TRAIN_PROCESSES overrides it, and on a machine
    without GPU (DS_ACCELERATOR=cpu, gloo) it is the only way to ask for more than one process."""
    import os

    import torch

    from solopo.runtime import pick_device

    forced = os.environ.get(PROCESSES_ENV)
    if forced:
        if not forced.isdigit() or int(forced) < 1:
            raise ValueError(f"{PROCESSES_ENV}={forced!r}: expected a process count >= 1")
        if not torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR") != "cpu":
            raise RuntimeError(f"{PROCESSES_ENV} without a GPU needs DS_ACCELERATOR=cpu (DeepSpeed on CPU, gloo)")
        return int(forced)
    pick_device("cuda")  # a clear error instead of a hang when the node has no GPU
    return torch.cuda.device_count()


def _free_port() -> int:
    """A free TCP port for the ranks' rendezvous: two train jobs on one node must not share 29500."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _first_error(log_path: str, offset: int) -> str:
    """The first exception line the ranks wrote to the job log after `offset` (or "")."""
    import re

    text = Path(log_path).read_text(errors="replace")[offset:] if Path(log_path).exists() else ""
    # rank tracebacks come first and end with "[rankN]: SomeError: ..."; the launcher's ChildFailedError last
    hit = re.search(r"^(?:\[rank\d+\]:\s*)?((?:\w+\.)*\w*(?:Error|Exception)\b[^\n]*)", text, re.M)
    return hit.group(1)[:400] if hit else ""


def _stop_line(log_path: str, offset: int) -> str:
    """Rank 0's one-line report of a stop at a step boundary (trainer.stopped), or ""."""
    import re

    text = Path(log_path).read_text(errors="replace")[offset:] if Path(log_path).exists() else ""
    hit = re.search(r"^(?:\[rank\d+\]:\s*)?STOPPED: (interrupted \(.*)$", text, re.MULTILINE)
    return hit.group(1) if hit else ""


def launch_deepspeed(dataset_path, ref_path, model, out_dir, ckpt, method, lcfg, tcfg, seed, ds, log_path,
                     log_dir=None, run: str | None = None) -> dict:
    """One process per GPU via `accelerate launch` with the project's accelerate config (never the
    user's default one); their output goes to the job log. A failed or timed-out rank fails the job."""
    import os
    import signal
    import subprocess
    import sys

    from solopo.software import require

    require("deepspeed")  # before any rank starts: a job outside the train env fails here, with the fix
    n = train_process_count()
    args = {"dataset": dataset_path, "ref": ref_path, "model": model, "out_dir": str(out_dir), "ckpt_dir": str(ckpt),
            "method": method, "loss": vars(lcfg), "optim": vars(tcfg), "seed": seed, "deepspeed": ds, "run": run,
            "log_dir": str(log_dir) if log_dir else None,
            "stats_path": str(Path(out_dir).parent / f".{Path(out_dir).name}.stats.json")}
    args_path = Path(str(ckpt) + ".args.json")
    args_path.parent.mkdir(parents=True, exist_ok=True)
    args_path.write_text(json.dumps(args))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
           "--num_processes", str(n), "--num_machines", "1", "--main_process_port", str(_free_port()),
           "-m", "solopo.train.launch", str(args_path)]
    # NCCL: a rank stuck in a collective past the process-group timeout aborts the job (the default
    # in recent torch too; set for older ones); gloo (CPU) honours the timeout by itself.
    env = {**os.environ, "TORCH_NCCL_ASYNC_ERROR_HANDLING": os.environ.get("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")}

    # Linux: the launcher gets SIGKILL when this job process dies (PR_SET_PDEATHSIG), so a killed job
    # leaves no ranks behind; everything is looked up before the fork (job threads: no import in the child)
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6").prctl
    except (OSError, AttributeError):
        prctl = None

    def die_with_us() -> None:
        if prctl is not None:
            prctl(1, signal.SIGKILL)
        # SIGTERM stays pending in the launcher: SLURM signals every process of the job step, and
        # torch's launcher answers SIGTERM by killing the ranks 30 s later, checkpoint written or
        # not. The ranks unblock it (main below) and stop at their next step boundary by themselves.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    log.info("launching %d training process(es): %s", n, " ".join(cmd))
    offset = Path(log_path).stat().st_size if Path(log_path).exists() else 0
    with open(log_path, "a") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_us).returncode
    if rc != 0:
        stop = _stop_line(log_path, offset)
        if stop:  # the ranks saved a checkpoint on a stop request (SIGTERM, Ctrl-C) and left
            from solopo.runtime import Interrupted

            raise Interrupted(stop)
        first = _first_error(log_path, offset)
        raise RuntimeError(f"train: the {n} DeepSpeed process(es) failed (exit {rc})"
                           + (f": {first}" if first else "") + f"; full output in {log_path}")
    stats_path = Path(args["stats_path"])
    stats = json.loads(stats_path.read_text())
    stats_path.unlink()
    return stats


# --------------------------------------------------------------------------- each rank
def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent (the launcher) dies, so a killed train job
    never leaves ranks running that would hold the GPUs or write into a resumed run's checkpoints."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the scheduler's job cleanup has to do it
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    from solopo import runtime

    die_with_parent()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # blocked for the launcher only (launch_deepspeed)
    runtime.install_job_stop_handlers()  # SIGTERM / Ctrl-C: checkpoint at the next step boundary (distributed.train_deepspeed)
    rank = int(os.environ.get("RANK", "0"))
    # rank 0 reports progress (stdout/stderr go to the job log); the other ranks only warnings
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    args = json.loads(open((argv or sys.argv[1:])[0]).read())
    rows = read_jsonl(args["dataset"])
    ref = read_jsonl(args["ref"]) if args.get("ref") else None
    try:
        stats = train(args["model"], rows, args["method"], LossConfig(**args["loss"]), TrainConfig(**args["optim"]),
                      args["seed"], args["out_dir"], args["ckpt_dir"], ref, deepspeed=args["deepspeed"],
                      log_dir=args.get("log_dir"), run_name=args.get("run"))
    except runtime.Interrupted as e:  # every rank stopped at the same step, the checkpoint complete
        if rank == 0:
            print(f"STOPPED: {e}", file=sys.stderr)  # read back by launch_deepspeed (_stop_line)
        _exit_cleanly(runtime.STOP_EXIT_CODES.get(runtime.stop_reason(), 1))
    if args.get("stats_path") and rank == 0:
        with open(args["stats_path"], "w") as fh:
            json.dump(stats, fh)
    _exit_cleanly()


def _exit_cleanly(code: int = 0) -> None:
    """Leave the process group, then exit without running C++ static destructors: a rank that
    returned normally was seen to abort at interpreter exit ("terminate called without an active
    exception", a still-joinable communication thread), failing a run whose outputs were all written."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
