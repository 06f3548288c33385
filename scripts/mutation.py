#!/usr/bin/env python
"""Mutation score of the core modules (`make mutation`; issue 18, item 5). Not part of the test command.

Each module is mutated by mutmut (3.x) in its own scratch copy of the repository, against only the
fast tests that target it (`MODULES`), one test process at a time, niced: the run is CPU-bound and
this machine's cores are shared. Results go to docs/mutation.md (per-module counts, the score and
the wall time) and, per module, mutmut's surviving mutants as diffs, to be killed by a new test or
explained as equivalent. Usage:
    .venv/bin/python scripts/mutation.py [--modules metrics pairs ...] [--children 1] [--out docs/mutation.md]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = str(Path(sys.executable).parent / "mutmut")

# module -> (source file, fast tests that target it)
MODULES: dict[str, tuple[str, list[str]]] = {
    "metrics": ("src/solopo/eval/metrics.py", ["tests/eval/test_metrics.py", "tests/eval/test_scorer_oracles.py"]),
    "pairs": ("src/solopo/pairs.py", ["tests/test_pairs.py"]),
    "contexts": ("src/solopo/data/contexts.py", ["tests/data/test_contexts.py", "tests/data/test_context_properties.py"]),
    "losses": ("src/solopo/train/losses.py", ["tests/train/test_losses.py"]),
    "trainer": ("src/solopo/train/trainer.py", ["tests/train/test_oracles.py"]),
    "truncation": ("src/solopo/eval/truncation.py", ["tests/eval/test_longbench_v1.py"]),
    "config": ("src/solopo/config.py", ["tests/test_config.py"]),
}
KILLED = {1: "killed", 3: "killed"}
STATUS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout", 24: "timeout", -24: "timeout",
          152: "timeout", 255: "timeout", 37: "type check"}


def _scratch(name: str, src: str, tests: list[str], base: Path) -> Path:
    work = base / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for d in ("src", "tests", "config", "workflow"):
        shutil.copytree(ROOT / d, work / d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject += "\n[tool.mutmut]\n" + "\n".join([
        f"only_mutate = [{json.dumps(src)}]",
        'also_copy = ["config", "workflow"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]',
        'process_isolation = "forkserver"',  # torch is not fork-safe
        "use_git_change_detection = false",
    ]) + "\n"
    (work / "pyproject.toml").write_text(pyproject)
    return work


def _counts(work: Path, src: str) -> tuple[dict[str, int], list[str]]:
    meta = json.loads((work / "mutants" / (src + ".meta")).read_text())
    counts: dict[str, int] = {}
    survivors = []
    for key, code in meta["exit_code_by_key"].items():
        status = KILLED.get(code) or STATUS.get(code, "not checked" if code is None else f"other ({code})")
        counts[status] = counts.get(status, 0) + 1
        if status == "survived":
            survivors.append(key)
    return counts, survivors


def run_module(name: str, base: Path, children: int) -> dict:
    src, tests = MODULES[name]
    work = _scratch(name, src, tests, base)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    t0 = time.time()
    out = subprocess.run(["nice", "-n", "10", MUTMUT, "run", "--max-children", str(children)], cwd=work, env=env,
                         capture_output=True, text=True)
    wall = time.time() - t0
    (base / f"{name}.log").write_text(out.stdout + out.stderr)
    if not (work / "mutants" / (src + ".meta")).exists():
        return {"module": name, "source": src, "tests": tests, "error": (out.stdout + out.stderr)[-2000:],
                "wall_s": round(wall)}
    counts, survivors = _counts(work, src)
    diffs = {}
    for key in survivors:
        show = subprocess.run([MUTMUT, "show", key], cwd=work, env=env, capture_output=True, text=True)
        diffs[key] = show.stdout.strip()
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    scored = killed + counts.get("survived", 0)
    return {"module": name, "source": src, "tests": tests, "counts": counts, "survivors": diffs,
            "score": round(100 * killed / scored, 1) if scored else None, "wall_s": round(wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    ap.add_argument("--children", type=int, default=1, help="parallel test processes (mutmut --max-children)")
    ap.add_argument("--scratch", default="/tmp/solopo-mutation")
    ap.add_argument("--json", default=str(ROOT / "docs/mutation.json"))
    args = ap.parse_args()
    base = Path(args.scratch)
    base.mkdir(parents=True, exist_ok=True)
    results = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    for name in args.modules:
        print(f"[mutation] {name} ...", flush=True)
        results[name] = run_module(name, base, args.children)
        print(f"[mutation] {name}: {results[name].get('counts')} score {results[name].get('score')} "
              f"in {results[name]['wall_s']} s", flush=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
