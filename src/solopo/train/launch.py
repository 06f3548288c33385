"""Entry point for multi-GPU training: `accelerate launch -m solopo.train.launch <args.json>`.

`solopo.pipeline.train` writes the job's arguments to a JSON file and starts one process per
visible GPU through `accelerate launch` when `train.deepspeed` is set (paper preset: ZeRO-3
with CPU offload on 4 GPUs); rank 0 writes the model.
"""
from __future__ import annotations

import json
import sys

from solopo.artifacts import read_jsonl
from solopo.train.losses import LossConfig
from solopo.train.trainer import TrainConfig, train


def main(argv: list[str] | None = None) -> None:
    args = json.loads(open((argv or sys.argv[1:])[0]).read())
    rows = read_jsonl(args["dataset"])
    ref = read_jsonl(args["ref"]) if args.get("ref") else None
    stats = train(args["model"], rows, args["method"], LossConfig(**args["loss"]), TrainConfig(**args["optim"]),
                  args["seed"], args["out_dir"], args["ckpt_dir"], ref, deepspeed=args["deepspeed"])
    if args.get("stats_path"):
        with open(args["stats_path"], "w") as fh:
            json.dump(stats, fh)


if __name__ == "__main__":
    main()
