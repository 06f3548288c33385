"""Entry point of one training process: `accelerate launch ... -m solopo.train.launch <args.json>`.

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

from solopo.artifacts import read_jsonl
from solopo.train.losses import LossConfig
from solopo.train.trainer import TrainConfig, train


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
    die_with_parent()
    rank = int(os.environ.get("RANK", "0"))
    # rank 0 reports progress (stdout/stderr go to the job log); the other ranks only warnings
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s")
    args = json.loads(open((argv or sys.argv[1:])[0]).read())
    rows = read_jsonl(args["dataset"])
    ref = read_jsonl(args["ref"]) if args.get("ref") else None
    stats = train(args["model"], rows, args["method"], LossConfig(**args["loss"]), TrainConfig(**args["optim"]),
                  args["seed"], args["out_dir"], args["ckpt_dir"], ref, deepspeed=args["deepspeed"],
                  log_dir=args.get("log_dir"), run_name=args.get("run"))
    if args.get("stats_path") and rank == 0:
        with open(args["stats_path"], "w") as fh:
            json.dump(stats, fh)


if __name__ == "__main__":
    main()
