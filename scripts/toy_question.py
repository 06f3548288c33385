#!/usr/bin/env python
"""Does SoLo-ORPO beat ORPO-short and ORPO-long on long-context RULER in the toy world?

Runs the real tiny pipeline (reduced to the runs that answer the question) once per seed,
each in its own folder under results/toy_question/seed<k>/, and writes a table of RULER
scores per length with mean and standard deviation over seeds to
results/report/toy_question.{md,json}. Usage:
    .venv/bin/python scripts/toy_question.py --seeds 1 2 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ["base", "orpo_short", "orpo_long", "orpo_expand", "solo_orpo"]
OVERRIDE = """seed: {seed}
data: {{toy: {{train_questions: 192, dev_questions: 64}}}}
train:
  methods: [orpo_short, orpo_long, orpo_expand, solo_orpo]
  lambdas: {{solo_orpo: [1.0]}}
eval:
  benchmarks: [ruler]
  ruler: {{num_samples: {samples}}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--samples", type=int, default=16, help="RULER samples per set and length")
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    rows = {}
    for seed in args.seeds:
        work = ROOT / "results" / "toy_question" / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        model_src = ROOT / "results" / "models" / "tiny"
        if model_src.exists() and not (work / "results/models/tiny").exists():
            # the backbone is fixed (tiny_model.seed); reuse the main tree's copy instead of retraining it
            import shutil
            shutil.copytree(model_src, work / "results/models/tiny")
        (work / "override.yaml").write_text(OVERRIDE.format(seed=seed, samples=args.samples))
        targets = [f"results/eval/{r}_ruler.json" for r in RUNS] + ["results/pairs/tiny/pair_stats.json"]
        cmd = [str(Path(sys.executable).parent / "snakemake"), *targets, "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(work), "--profile", str(ROOT / "profiles/local"),
               "--configfile", str(ROOT / "config/tiny.yaml"), str(work / "override.yaml")]
        subprocess.run(cmd, check=True, env=env)
        stats = json.loads((work / "results/pairs/tiny/pair_stats.json").read_text())
        rows[seed] = {"pairs": {c: {k: stats[c][k] for k in ("sampled_accuracy", "accuracy_over_chance", "yield")}
                                for c in ("short", "long")}}
        for r in RUNS:
            res = json.loads((work / f"results/eval/{r}_ruler.json").read_text())
            rows[seed][r] = {"by_length": res["by_length"], "avg": res["score"]}
    lengths = sorted(next(iter(rows.values()))["base"]["by_length"], key=int)
    lines = ["# Toy world: SoLo-ORPO vs ORPO-short / ORPO-long on RULER (tiny preset)", "",
             f"Seeds: {args.seeds}; RULER samples per set and length: {args.samples}; scores: string_match_part on "
             "the extracted answer (0-100). Mean ± standard deviation over seeds.", "",
             "| run | " + " | ".join(f"RULER {n}" for n in lengths) + " | Avg |", "|---|" + "---|" * (len(lengths) + 1)]
    summary = {}
    for r in RUNS:
        cells = []
        for key in lengths + ["avg"]:
            vals = [rows[s][r]["by_length"][key] if key != "avg" else rows[s][r]["avg"] for s in args.seeds]
            m, sd = statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)
            summary.setdefault(r, {})[key] = {"mean": m, "std": sd, "values": vals}
            cells.append(f"{m:.1f} ± {sd:.1f}")
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += ["", "Sampled accuracy of the tiny model when the pairs were made (short / long) per seed: " +
              "; ".join(f"seed {s}: {rows[s]['pairs']['short']['sampled_accuracy']:.2f} / "
                        f"{rows[s]['pairs']['long']['sampled_accuracy']:.2f}" for s in args.seeds)]
    out = ROOT / "results" / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy_question.md").write_text("\n".join(lines) + "\n")
    (out / "toy_question.json").write_text(json.dumps({"seeds": args.seeds, "per_seed": rows, "summary": summary}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
