#!/usr/bin/env python
"""Mutation score of the core modules (`make mutation`). Not part of the test command.

Each module is mutated by mutmut (3.x) in its own scratch copy of the repository, against only the
fast tests that target it (`MODULES`), one test process at a time, niced: the run is CPU-bound and
this machine's cores are shared. Results go to docs/mutation.md (per-module counts, the score and
the wall time) and, per module, mutmut's surviving mutants as diffs, to be killed by a new test or
explained as equivalent. Usage:
    .venv/bin/python scripts/mutation.py [--modules metrics pairs ...] [--children 1] [--out docs/mutation.md]
    .venv/bin/python scripts/mutation.py --survivors-only --modules config   # after adding tests: survivors (and timeouts) only
SOLOPO_MUTATION_NICE=0 runs at normal priority (an otherwise idle machine).
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
    "losses": ("src/solopo/train/losses.py", ["tests/train/test_losses.py", "tests/train/test_loss_contract.py"]),
    # the trainer's forward and tokenisation (the loop itself is covered by the resume/determinism tests)
    "forward": ("src/solopo/train/forward.py", ["tests/train/test_oracles.py", "tests/protocol/test_train_fidelity.py"]),
    "truncation": ("src/solopo/eval/truncation.py", ["tests/eval/test_longbench_v1.py"]),
    "config": ("src/solopo/config.py", ["tests/test_config.py"]),
}
# Surviving mutants that cannot change any result (reviewed by hand), with the reason; they are left
# out of the score's denominator. Names are mutmut's and stable while the source line is unchanged.
# contexts: how many candidates to draw (`need`, from the mean document length) and the bound on random
# pool draws only decide how long `_candidates`'s list is; draws are a prefix of one seeded sequence and
# the list is longer than any budget can hold, so the documents a prompt uses do not change.
_DRAW_BOUND = ("equivalent in effect: it only changes how many candidate documents are drawn (a prefix of one seeded "
               "sequence, longer than any budget can hold: 2 x the largest budget / the mean document + 20), not which "
               "documents a prompt uses")
# forward: right padding + a causal model: no real token attends to the pads after it, so the mask's
# dtype and values (and dropping it) change no log-prob; `.to(device)` is a no-op on the CPU the tests use
# (the GPU check runs the device path).
_RIGHT_PAD = "equivalent: right padding and causal attention: no real token attends to a pad, mask or no mask"
_CPU_DEVICE = "equivalent on the CPU the fast tests use: the device move is a no-op there (the GPU check covers it)"
_LAST_AXIS = "equivalent: the tensor is 2-D (the index 1-D), so axis +1 is axis -1"
EQUIVALENT: dict[str, str] = {
    "solopo.pairs.x_stratified_order__mutmut_17": "equivalent: keys (k - u) / n put each group's k-th member in "
    "((k-1)/n, k/n] instead of [k/n, (k+1)/n): the same proportional interleaving from the same seeded draws",
    "solopo.config.x__semantic_errors__mutmut_48": "equivalent: a missing max_length (0 or 1) never exceeds a "
    "position range, which the schema keeps >= 64",
    **{f"solopo.train.losses.x_log1mexp__mutmut_{n}": "equivalent up to float rounding: between -1.69 and -0.69 "
       "(and at -ln 2 itself) both forms of log(1 - e^x) are accurate; only near 0 and far below does the branch "
       "matter (test_log1mexp_is_accurate_at_both_ends_and_at_the_branch)" for n in (7, 9)},
    **{f"solopo.train.forward.x_sequence_logps__mutmut_{n}": _LAST_AXIS for n in (46, 57, 61, 71, 73, 76, 78)},
    **{f"solopo.train.forward.x_sequence_logps__mutmut_{n}": _CPU_DEVICE for n in (84, 86, 98, 101)},
    **{f"solopo.train.forward.x_policy_outputs__mutmut_{n}": _CPU_DEVICE for n in (47, 79, 81, 86, 88)},
    **{f"solopo.train.forward.x_sequence_logps__mutmut_{n}": "equivalent: `picked` is float32 (`.float()` above), "
       "the default dtype of torch.zeros" for n in (97, 100)},
    "solopo.train.forward.x_sequence_logps__mutmut_4": _RIGHT_PAD,
    "solopo.train.forward.x_sequence_logps__mutmut_6": _RIGHT_PAD,
    "solopo.train.forward.x__collate__mutmut_12": _RIGHT_PAD,
    "solopo.train.forward.x__collate__mutmut_14": _RIGHT_PAD,
    "solopo.train.forward.x__collate__mutmut_24": _RIGHT_PAD,
    "solopo.train.forward.x__collate__mutmut_30": _CPU_DEVICE,
    "solopo.train.forward.x__collate__mutmut_33": _CPU_DEVICE,
    "solopo.train.forward.x__collate__mutmut_36": _CPU_DEVICE,
    "solopo.train.forward.x_compute_reference_logps__mutmut_2": _CPU_DEVICE,
    "solopo.train.forward.x_compute_reference_logps__mutmut_20": _CPU_DEVICE,
    "solopo.train.forward.x__collate__mutmut_6": "equivalent: torch.full infers int64 from the integer pad id",
    "solopo.train.forward.x__collate__mutmut_9": "equivalent: torch.full infers int64 from the integer pad id",
    "solopo.train.forward.x_sequence_logps__mutmut_23": "equivalent: the response mask is 2-D, so sum(+1) is sum(-1)",
    "solopo.train.forward.x_sequence_logps__mutmut_25":
        "equivalent: the NLL slot is read only when full_nll is asked for, and then it is set",
    "solopo.train.forward.x_sequence_logps__mutmut_1":
        "equivalent: with full_nll=True by default the summed log-probs come from the full log-softmax path, "
        "equal to the response-only one (test_oracles checks both paths)",
    "solopo.train.forward.x_compute_reference_logps__mutmut_1": "equivalent: the default chunk size only changes how rows are batched",
    "solopo.train.forward.x__truncate_documents__mutmut_4": "equivalent for a chat text that holds the prompt once (every template here)",
    "solopo.data.contexts.x_build_contexts__mutmut_16": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_17": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_20": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_21": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_24": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_29": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_34": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_54": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_56": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_58": _DRAW_BOUND,
    "solopo.data.contexts.x_build_contexts__mutmut_69": "equivalent: `prev_k` is assigned but never read (dead variable)",
    "solopo.data.contexts.x_build_contexts__mutmut_115": "equivalent: `prev_k` is assigned but never read (dead variable)",
    "solopo.data.contexts.x_build_contexts__mutmut_187": "equivalent: the divisor is a mean prompt length (the "
    "template alone is tens of tokens), never below 1.000000001",
    "solopo.data.contexts.x_fit_documents__mutmut_23": "equivalent: the search keeps the largest fitting k with "
    "lo = mid on a fit and hi = mid - 1 otherwise; any mid in (lo, hi] (as (lo + hi + 2) // 2 is while lo < hi) "
    "finds the same k, in a different number of steps",
    "solopo.data.contexts.x__candidates__mutmut_22": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_25": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_26": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_27": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_28": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_29": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_30": _DRAW_BOUND,
    "solopo.data.contexts.x__candidates__mutmut_35": _DRAW_BOUND,
    "solopo.eval.truncation.x_prompt_token_ids__mutmut_3": "equivalent: `truncation=None` is the tokenizer's default, "
    "which does not truncate without a max_length (the same ids as `truncation=False`)",
    "solopo.eval.truncation.x_prompt_token_ids__mutmut_5": "equivalent: dropping `truncation=False` leaves the default "
    "(None), which does not truncate without a max_length",
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


def _counts(work: Path, src: str) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Mutants per status, and the keys of the survivors, the untested and the timed-out ones."""
    meta = json.loads((work / "mutants" / (src + ".meta")).read_text())
    counts: dict[str, int] = {}
    keys: dict[str, list[str]] = {"survived": [], "no tests": [], "timeout": []}
    for key, code in meta["exit_code_by_key"].items():
        status = KILLED.get(code) or STATUS.get(code, "not checked" if code is None else f"other ({code})")
        counts[status] = counts.get(status, 0) + 1
        keys.get(status, []).append(key)
    return counts, keys


def _same_source(work: Path, src: str) -> bool:
    """Whether `work` holds a run's results for the module's current source (needed to resume or rerun)."""
    return (work / "mutants" / (src + ".meta")).exists() and (work / src).read_text() == (ROOT / src).read_text()


def _refresh_tests(work: Path) -> None:
    """Put the current tests into a scratch copy (tests were added since its run) and drop mutmut's
    test-to-function map so that it is made again with them."""
    shutil.rmtree(work / "tests")
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def run_module(name: str, base: Path, children: int, previous: dict | None = None, resume: bool = False,
               survivors_only: bool = False) -> dict:
    """Mutate `name` and run its fast tests. `previous` is the module's last recorded result.
    With `survivors_only` (same source), only its surviving mutants run again, against the current tests
    (the others stay killed). With `resume` (same source), an interrupted run's scratch copy goes on with
    the mutants not yet run, against the current tests; the results it has stay (tests are only ever
    added, so a killed mutant stays killed; rerun the survivors with `--survivors-only` afterwards)."""
    src, tests = MODULES[name]
    work = base / name
    same_source = _same_source(work, src)
    rerun = survivors_only and same_source and bool(previous) and previous.get("survivors") is not None
    resumed = resume and same_source and not rerun
    if rerun or resumed:
        _refresh_tests(work)  # mutmut itself skips the mutants that already have a result when resuming
    else:
        work = _scratch(name, src, tests, base)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1"}
    t0 = time.time()
    nice = os.environ.get("SOLOPO_MUTATION_NICE", "10")  # 0 on an otherwise idle machine
    # a timeout on a loaded machine may be a starved survivor: a survivors-only rerun runs those again too
    last = _counts(work, src)[1] if rerun else {"survived": [], "timeout": []}
    names = last["survived"] + last["timeout"]
    out = subprocess.run(["nice", "-n", nice, MUTMUT, "run", "--max-children", str(children), *names], cwd=work,
                         env=env, capture_output=True, text=True)
    wall = time.time() - t0 + (previous["wall_s"] if previous and (rerun or resumed) else 0)  # the module's runs together
    (base / f"{name}.log").write_text(out.stdout + out.stderr)
    if not (work / "mutants" / (src + ".meta")).exists():
        return {"module": name, "source": src, "tests": tests, "error": (out.stdout + out.stderr)[-2000:],
                "wall_s": round(wall)}
    counts, keys = _counts(work, src)
    diffs = {}
    for key in keys["survived"]:
        show = subprocess.run([MUTMUT, "show", key], cwd=work, env=env, capture_output=True, text=True)
        diffs[key] = show.stdout.strip()
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    scored = killed + counts.get("survived", 0)
    return {"module": name, "source": src, "tests": tests, "counts": counts, "survivors": diffs, "no_tests": keys["no tests"],
            "timeouts": keys["timeout"],
            "score": round(100 * killed / scored, 1) if scored else None, "wall_s": round(wall),
            "survivor_reruns": (previous.get("survivor_reruns", 0) + 1) if rerun else 0, "resumed": resumed}


def _func(key: str) -> str:
    return key.split("__mutmut_")[0].rsplit(".", 1)[-1].removeprefix("x_")


def render(results: dict) -> str:
    """docs/mutation.md: per-module table, then every surviving mutant with its diff or its equivalence note."""
    lines = ["# Mutation score of the core modules", "",
             "`make mutation` (scripts/mutation.py): mutmut 3 mutates each module in a scratch copy of the repository "
             "and runs only the fast tests listed for it, one test process at a time, niced. Not part of the test "
             "command. Score = killed (incl. timeouts) / (mutants - no tests - equivalent). \"no tests\": mutants in "
             "code that none of the module's fast tests executes (listed per module). Wall time: the module's run plus any "
             "`--survivors-only` rerun (after tests were added, only the surviving mutants run again).", "",
             "| module | source | fast tests | mutants | killed | survived | equivalent | no tests | score | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | `{r['source']}` | {', '.join(r['tests'])} | error (see below) | | | | | | {r['wall_s']} s |")
            continue
        c = r["counts"]
        equiv = [k for k in r["survivors"] if k in EQUIVALENT]
        survived = c.get("survived", 0) - len(equiv)
        killed = c.get("killed", 0) + c.get("timeout", 0)
        total = sum(c.values())
        denom = killed + survived
        score = f"{100 * killed / denom:.1f} %" if denom else "n/a"
        lines.append(f"| {name} | `{r['source']}` | {', '.join(Path(t).name for t in r['tests'])} | {total} | {killed} | "
                     f"{survived} | {len(equiv)} | {c.get('no tests', 0)} | {score} | {r['wall_s']} s |")
    for name, r in results.items():
        if r.get("note"):
            lines += ["", f"{name}: {r['note']}"]
        if "error" in r:
            lines += ["", f"## {name}: the run failed", "", "```", r["error"], "```"]
            continue
        if r.get("no_tests"):
            funcs = sorted({_func(k) for k in r["no_tests"]})
            lines += ["", f"{name}: {len(r['no_tests'])} mutants in code no fast test of the module runs: "
                      + ", ".join(f"`{f}`" for f in funcs)]
        if not r["survivors"]:
            continue
        lines += ["", f"## {name}: surviving mutants", ""]
        for key, diff in r["survivors"].items():
            body = [ln for ln in diff.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
            note = EQUIVALENT.get(key, "**not killed**: no fast test tells it apart")
            lines += [f"- `{key}`: {note}", "  ```diff", *["  " + ln for ln in body], "  ```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    ap.add_argument("--children", type=int, default=1, help="parallel test processes (mutmut --max-children)")
    ap.add_argument("--scratch", default="/tmp/solopo-mutation")
    ap.add_argument("--json", default=str(ROOT / "docs/mutation.json"))
    ap.add_argument("--out", default=str(ROOT / "docs/mutation.md"))
    ap.add_argument("--render-only", action="store_true", help="rewrite --out from --json without running")
    ap.add_argument("--resume", action="store_true",
                    help="go on with an interrupted run (same source), the mutants not yet run against the current tests")
    ap.add_argument("--survivors-only", action="store_true",
                    help="run only the last run's surviving and timed-out mutants again (after adding tests; "
                         "same module source)")
    args = ap.parse_args()
    base = Path(args.scratch)
    base.mkdir(parents=True, exist_ok=True)
    results = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    for name in [] if args.render_only else args.modules:
        print(f"[mutation] {name} ...", flush=True)
        results[name] = run_module(name, base, args.children, results.get(name), args.resume, args.survivors_only)
        print(f"[mutation] {name}: {results[name].get('counts')} raw score {results[name].get('score')} "
              "(before equivalent mutants are set apart: docs/mutation.md) "
              f"in {results[name]['wall_s']} s", flush=True)
        # merged into what is on disk now: another module's run may have written its result meanwhile
        on_disk = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
        results = on_disk | {name: results[name]}
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out).write_text(render(results))


if __name__ == "__main__":
    main()
