"""Open LLM Leaderboard v2 subset reported by SoLoPO, run through lm-evaluation-harness.

SoLoPO reports MMLU-Pro, IFEval, BBH, MATH (hard) and GPQA with "default leaderboard prompts,
temperature 0" and their plain average. Everything task-specific (prompts, few-shot, choice
shuffling, answer extraction, metrics, group aggregation) comes from lm-eval's own installed
``leaderboard_*`` tasks; this module only picks the tasks, runs ``lm_eval.simple_evaluate`` and
turns its results into our result/predictions pair (EleutherAI/lm-evaluation-harness, `lm_eval/tasks/leaderboard`).

Sources
-------
- ``source: hub``: the installed tasks as they are (TASK_GROUPS), data from the HF hub / HF cache.
- ``source: fixture``: local task YAMLs generated at run time by :func:`write_local_tasks`. Each one
  ``include:``s the installed leaderboard YAML by absolute path and overrides only ``task``,
  ``dataset_path: json``, ``dataset_name: null``, ``dataset_kwargs.data_files`` and the split keys,
  so the prompt code (``!function utils.*``) is lm-eval's. Data are the small JSONL files shipped in
  ``fixtures/leaderboard/`` (original rows written for this repository in each dataset's schema,
  not copied from the datasets; GPQA is gated and is not republished). Groups (BBH, MATH, GPQA) are
  local group YAMLs with the installed group's ``aggregate_metric_list`` (size-weighted mean).

Scores
------
Raw lm-eval metrics x 100 (SoLoPO reports raw, not leaderboard-normalised, scores):
MMLU-Pro ``acc``; BBH ``acc_norm`` (group); GPQA ``acc_norm`` (group of main/diamond/extended).
The headline MATH and IFEval figures are the ones SoLoPO could have computed:

- MATH: ``exact_match_original`` (``MATH_HEADLINE``), the Minerva normalisation + sympy that every
  lm-eval release up to 0.4.8 scored ``leaderboard_math_hard`` with; lm-eval 0.4.9 (2025-06, after
  SoLoPO's results) made ``exact_match`` math-verify, kept as the second figure (``MATH_SECOND``).
  Both are under ``result["math_metrics"]`` (group = size-weighted mean of the subtasks).
- IFEval: ``inst_level_strict_acc`` (``IFEVAL_HEADLINE``). SoLoPO does not name its IFEval metric, but
  17 of its 18 Table 4 IFEval figures are multiples of 1/834 (IFEval's 834 instructions) and none of
  1/541 (its 541 prompts): an instruction-level accuracy. Strict and loose share that denominator, so
  ``inst_level_loose_acc`` is the second figure (``IFEVAL_SECOND``). All four prompt/inst x
  strict/loose plus the leaderboard's ``leaderboard_strict_mean`` are under ``result["ifeval_metrics"]``.

``cfg["math_metric"]`` / ``cfg["ifeval_metric"]`` (defaults: the headlines) pick the ``math`` /
``ifeval`` subset scores; ``result["metric_names"]`` says which is which. ``score`` = plain mean of
the subsets that were computed (``avg_over`` lists them; all five in a complete run).

IFEval and nltk punkt_tab
-------------------------
lm-eval's IFEval checkers import ``nltk`` and try ``nltk.download("punkt_tab")`` at import; offline
that fails (it only prints) and the two checkers that tokenise sentences/words with punkt
(``length_constraints:number_sentences``, ``change_case:capital_word_frequency``) then raise
LookupError. Policy: if ``nltk.data.find("tokenizers/punkt_tab")`` succeeds IFEval runs normally.
(For ``source: hub`` with HF_HUB_OFFLINE unset it first tries nltk's downloader, as lm-eval
would.) If it is still missing, IFEval still runs when the data are known not to use those two checkers (the
shipped fixture), and is otherwise skipped with the reason recorded in ``result["skipped"]``
(never silently). To run the paper preset offline stage punkt_tab (``python -m nltk.downloader
punkt_tab`` on a networked machine) and point ``NLTK_DATA`` at it.

Config keys (paper preset / tiny preset)
----------------------------------------
- ``tasks``: subset names out of ``mmlu_pro, ifeval, bbh, math, gpqa`` (all five / all five)
- ``source``: ``hub`` | ``fixture`` (hub / fixture)
- ``fixture_dir``: fixture folder (None = the shipped ``fixtures/leaderboard``)
- ``backend``: ``hf`` | ``vllm`` (vllm on GPU, hf otherwise / hf)
- ``dtype``: bfloat16 / float32
- ``model_args``: extra lm-eval model_args, e.g. ``{max_length: 4096}`` or vLLM's
  ``{tensor_parallel_size: 1, gpu_memory_utilization: 0.9, max_model_len: 32768}`` ({} / {})
- ``apply_chat_template``: true / true;  ``fewshot_as_multiturn``: true / true (both always passed
  explicitly: the simple_evaluate default of the latter flipped at lm-eval 0.4.12). Source: the Open
  LLM Leaderboard's reproducibility command (huggingface/leaderboards
  ``docs/source/en/open_llm_leaderboard/about.md``, commit d581cff): "For instruction models add the
  ``--apply_chat_template`` and ``fewshot_as_multiturn`` option"
- ``system_instruction``: None / None
- ``num_fewshot``: None (task defaults: MMLU-Pro 5, BBH 3, MATH 4, GPQA/IFEval 0) / 1 (short prompts
  for a tiny model's context; lm-eval ignores the override for zero-shot tasks)
- ``gen_kwargs``: ``{temperature: 0}`` / ``{temperature: 0, max_gen_toks: 16}``
- ``limit``: None / None;  ``batch_size``: "auto" / 8
- ``log_samples``: true / true;  ``random_seed``: 0, ``fewshot_random_seed``: 1234 (lm-eval defaults)
- ``ifeval_metric``: inst_level_strict_acc / inst_level_strict_acc (or any of ``IFEVAL_CHOICES``)
- ``math_metric``: exact_match_original / exact_match_original (or exact_match, math-verify)
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml


def _thread_safe_math_verify() -> None:
    """math-verify's parse/verify time out with signal.alarm, which only works on the main
    thread; the tiny preset runs jobs as threads. Off the main thread, run them without the
    timeout (lm-eval's MATH utils bind `from math_verify import parse, verify` when loaded)."""
    import functools
    import threading

    try:
        import math_verify
    except ImportError:
        return
    if getattr(math_verify, "_solopo_patched", False):
        return

    def wrap(fn, key):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                kwargs.setdefault(key, None)
            return fn(*args, **kwargs)
        return inner

    math_verify.parse = wrap(math_verify.parse, "parsing_timeout")
    math_verify.verify = wrap(math_verify.verify, "timeout_seconds")
    math_verify._solopo_patched = True


_thread_safe_math_verify()

SUBSETS = ("mmlu_pro", "ifeval", "bbh", "math", "gpqa")

# Paper preset: lm-eval's installed task / group names.
TASK_GROUPS: dict[str, str] = {
    "mmlu_pro": "leaderboard_mmlu_pro",
    "ifeval": "leaderboard_ifeval",
    "bbh": "leaderboard_bbh",
    "math": "leaderboard_math_hard",
    "gpqa": "leaderboard_gpqa",
}
LOCAL_PREFIX = "local_"
# Fixture preset: the same names with a prefix, so they never clash with the installed tasks.
LOCAL_TASK_GROUPS: dict[str, str] = {k: LOCAL_PREFIX + v for k, v in TASK_GROUPS.items()}

# Which raw metric is each subset's score.
SUBSET_METRIC: dict[str, str] = {
    "mmlu_pro": "acc",
    "bbh": "acc_norm",
    "math": "exact_match_original",
    "gpqa": "acc_norm",
    "ifeval": "inst_level_strict_acc",
}
IFEVAL_METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc",
                  "prompt_level_loose_acc", "inst_level_loose_acc")
# The Open LLM Leaderboard's IFEval figure: mean of prompt- and instruction-level strict accuracy.
IFEVAL_LEADERBOARD = "leaderboard_strict_mean"
IFEVAL_CHOICES = IFEVAL_METRICS + (IFEVAL_LEADERBOARD,)
# MATH-hard: math-verify (lm-eval >= 0.4.9) and the original Minerva normalisation + sympy.
MATH_METRICS = ("exact_match", "exact_match_original")
# Table 4's figures (see the module docstring): the headline is what SoLoPO could have computed,
# the second the other scorer of the same outputs.
MATH_HEADLINE, MATH_SECOND = "exact_match_original", "exact_match"
IFEVAL_HEADLINE, IFEVAL_SECOND = "inst_level_strict_acc", "inst_level_loose_acc"
# IFEval instruction ids whose checkers need nltk punkt (lm_eval/tasks/ifeval/instructions.py).
PUNKT_INSTRUCTIONS = frozenset({"length_constraints:number_sentences",
                                "change_case:capital_word_frequency"})

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "leaderboard"

PAPER_DEFAULTS: dict[str, Any] = {
    "tasks": list(SUBSETS),
    "source": "hub",
    "fixture_dir": None,
    "backend": "hf",
    "dtype": "bfloat16",
    "model_args": {},
    "apply_chat_template": True,
    "fewshot_as_multiturn": True,
    "system_instruction": None,
    "num_fewshot": None,
    "gen_kwargs": {"temperature": 0},
    "limit": None,
    "batch_size": "auto",
    "log_samples": True,
    "random_seed": 0,
    "fewshot_random_seed": 1234,
    "ifeval_metric": IFEVAL_HEADLINE,
    "math_metric": MATH_HEADLINE,
}


def _leaderboard_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks" / "leaderboard"


# --------------------------------------------------------------------------- local task YAMLs

def _dump(path: Path, cfg: dict) -> None:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def _group_yaml(installed: Path, name: str, tasks: list[str]) -> dict:
    """The installed group YAML with only its name and task list replaced."""
    cfg = yaml.safe_load(installed.read_text())
    cfg["group"] = name
    cfg["task"] = tasks
    return cfg


def write_local_tasks(fixture_dir: Path | str, out_dir: Path | str) -> list[str]:
    """Write local lm-eval task YAMLs for the fixtures found in ``fixture_dir`` into ``out_dir``.

    Layout read: ``mmlu_pro/{test,validation}.jsonl``, ``ifeval/train.jsonl``,
    ``bbh/<subtask>.jsonl``, ``math/<subtask>.jsonl`` (subtask as in ``math_<subtask>.yaml``),
    ``gpqa/{main,diamond,extended}.jsonl``. Returns the top-level task/group names written (in
    SUBSETS order), i.e. the values of LOCAL_TASK_GROUPS whose fixtures exist.
    """
    fx = Path(fixture_dir).resolve()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    lb = _leaderboard_dir()
    names: list[str] = []

    def task_yaml(include: Path, task: str, data_files: dict[str, Path], **splits) -> dict:
        if not include.is_file():
            raise FileNotFoundError(f"installed lm-eval task YAML not found: {include}")
        cfg = {"include": str(include), "task": task, "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {k: str(v) for k, v in data_files.items()}}}
        cfg.update(splits)
        return cfg

    # MMLU-Pro: test split + validation split (few-shot source, sampler first_n).
    if (fx / "mmlu_pro" / "test.jsonl").is_file():
        files = {"test": fx / "mmlu_pro" / "test.jsonl"}
        if (fx / "mmlu_pro" / "validation.jsonl").is_file():
            files["validation"] = fx / "mmlu_pro" / "validation.jsonl"
        name = LOCAL_TASK_GROUPS["mmlu_pro"]
        _dump(out / f"{name}.yaml", task_yaml(lb / "mmlu_pro" / "mmlu_pro.yaml", name, files,
                                              test_split="test", fewshot_split="validation"))
        names.append(name)

    # IFEval: the hub dataset's only split is "train".
    if (fx / "ifeval" / "train.jsonl").is_file():
        name = LOCAL_TASK_GROUPS["ifeval"]
        _dump(out / f"{name}.yaml", task_yaml(lb / "ifeval" / "ifeval.yaml", name,
                                              {"train": fx / "ifeval" / "train.jsonl"},
                                              test_split="train"))
        names.append(name)

    def grouped(key: str, task: str, include: str, group: str, split: str, **splits) -> None:
        """One task per fixture file `<key>/<subtask>.jsonl` (`task` and `include` formatted with the
        subtask, its data under `split`) and the group of those tasks."""
        subs = sorted(p.stem for p in (fx / key).glob("*.jsonl")) if (fx / key).is_dir() else []
        if not subs:
            return
        tasks = []
        for s in subs:
            t = f"{LOCAL_PREFIX}{task.format(s)}"
            _dump(out / f"{t}.yaml", task_yaml(lb / include.format(s), t, {split: fx / key / f"{s}.jsonl"}, **splits))
            tasks.append(t)
        name = LOCAL_TASK_GROUPS[key]
        _dump(out / f"{name}.yaml", _group_yaml(lb / group, name, tasks))
        names.append(name)

    # BBH: one task per subtask file (few-shot samples are hard-coded in the installed YAMLs).
    grouped("bbh", "leaderboard_bbh_{}", "bbh_mc/{}.yaml", "bbh_mc/_leaderboard_bbh.yaml", "test", test_split="test")
    # MATH hard: per-type files; process_docs keeps Level 5; Minerva few-shot samples are in utils.
    grouped("math", "leaderboard_math_{}_hard", "math/math_{}.yaml", "math/_leaderboard_math.yaml", "test",
            test_split="test", training_split=None)
    # GPQA: the hub dataset has only "train", used as validation split (test_split null).
    grouped("gpqa", "leaderboard_gpqa_{}", "gpqa/gpqa_{}_zeroshot.yaml", "gpqa/_leaderboard_gpqa.yaml", "train",
            training_split="train", validation_split="train", test_split=None)

    return names


# --------------------------------------------------------------------------- IFEval / punkt

def punkt_tab_available() -> bool:
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab")
        return True
    except LookupError:
        return False


def _ifeval_instruction_ids(path: Path) -> set[str]:
    ids: set[str] = set()
    with open(path) as f:
        for line in f:
            if line.strip():
                ids.update(json.loads(line)["instruction_id_list"])
    return ids


def _try_nltk_download() -> bool:
    """What lm-eval itself does at import (nltk's downloader, from GitHub, not the HF hub)."""
    import nltk

    try:
        return bool(nltk.download("punkt_tab", quiet=True, raise_on_error=False))
    except Exception:  # noqa: BLE001
        return False


def ifeval_skip_reason(source: str, fixture_dir: Path | None) -> str | None:
    """None if IFEval can run here; otherwise why not (see module docstring).

    For ``source: hub`` with HF_HUB_OFFLINE unset, a missing punkt_tab is first fetched with
    nltk's downloader (exactly what lm-eval's IFEval import would do); fixture runs never try.
    """
    if punkt_tab_available():
        return None
    if source == "hub" and os.environ.get("HF_HUB_OFFLINE", "0") in ("", "0") and _try_nltk_download():
        if punkt_tab_available():
            return None
    if source == "fixture" and fixture_dir is not None:
        needs = _ifeval_instruction_ids(Path(fixture_dir) / "ifeval" / "train.jsonl") & PUNKT_INSTRUCTIONS
        if not needs:
            return None
        return (f"nltk punkt_tab unavailable offline and the fixture uses punkt-based checkers "
                f"{sorted(needs)}")
    return ("nltk punkt_tab unavailable offline (nltk.data.find('tokenizers/punkt_tab') failed); "
            "lm-eval's IFEval checkers for length_constraints:number_sentences and "
            "change_case:capital_word_frequency would raise LookupError. Stage punkt_tab and set NLTK_DATA.")


# --------------------------------------------------------------------------- aggregation

def _jsonable(obj: Any) -> Any:
    """Recursively convert to JSON-serialisable values (unknown objects become their str())."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        try:
            return _jsonable(obj.item())
        except Exception:  # noqa: BLE001
            pass
    return str(obj)


def _metric(res: dict, task: str, metric: str) -> float:
    entry = res.get(task)
    if entry is None:
        raise KeyError(f"lm-eval results have no entry for {task!r}")
    for key in (f"{metric},none", metric):
        if key in entry and isinstance(entry[key], (int, float)) and not isinstance(entry[key], bool):
            return float(entry[key])
    raise KeyError(f"lm-eval results for {task!r} have no numeric {metric!r} (keys {sorted(entry)})")


def _n_samples(out: dict, name: str) -> int:
    """Samples evaluated for a task, or summed over a group's leaf subtasks."""
    ns = out.get("n-samples", {})
    if name in ns:
        return int(ns[name].get("effective", ns[name].get("original", 0)))
    subs = out.get("group_subtasks", {}).get(name)
    if subs:
        return sum(_n_samples(out, s) for s in subs)
    return 0


def _group_metric(out: dict, task: str, metric: str) -> float | None:
    """`metric` of a task, or the size-weighted mean over a group's subtasks when the group row lacks it
    (lm-eval's MATH group aggregates exact_match only); None when no subtask has it."""
    res = out["results"]
    try:
        return _metric(res, task, metric)
    except KeyError:
        pass
    rows = []
    for sub in out.get("group_subtasks", {}).get(task) or []:
        try:
            rows.append((_n_samples(out, sub), _metric(res, sub, metric)))
        except KeyError:
            return None
    total = sum(n for n, _ in rows)
    return sum(n * v for n, v in rows) / total if rows and total else None


def aggregate(out: dict, task_names: dict[str, str], ifeval_metric: str = IFEVAL_HEADLINE,
              skipped: dict[str, str] | None = None, math_metric: str = MATH_HEADLINE) -> dict:
    """Turn an lm-eval ``simple_evaluate`` output into our result dict (no samples).

    ``task_names`` maps the subsets that were run to their lm-eval task/group names.
    Group rows (BBH, MATH, GPQA) already hold lm-eval's size-weighted aggregate.
    """
    res = out["results"]
    subsets: dict[str, float] = {}
    ifeval_metrics: dict[str, float] = {}
    math_metrics: dict[str, float] = {}
    for sub in SUBSETS:
        if sub not in task_names:
            continue
        task = task_names[sub]
        if sub == "ifeval":
            for m in IFEVAL_METRICS:
                ifeval_metrics[m] = 100.0 * _metric(res, task, m)
            ifeval_metrics[IFEVAL_LEADERBOARD] = (ifeval_metrics["prompt_level_strict_acc"]
                                                  + ifeval_metrics["inst_level_strict_acc"]) / 2
            if ifeval_metric not in ifeval_metrics:
                raise ValueError(f"ifeval_metric must be one of {IFEVAL_CHOICES}, got {ifeval_metric!r}")
            subsets[sub] = ifeval_metrics[ifeval_metric]
        elif sub == "math":
            for m in MATH_METRICS:
                v = _group_metric(out, task, m)
                if v is not None:
                    math_metrics[m] = 100.0 * v
            if math_metric not in MATH_METRICS:
                raise ValueError(f"math_metric must be one of {MATH_METRICS}, got {math_metric!r}")
            if math_metric not in math_metrics:
                raise KeyError(f"lm-eval results for {task!r} have no numeric {math_metric!r}")
            subsets[sub] = math_metrics[math_metric]
        else:
            subsets[sub] = 100.0 * _metric(res, task, SUBSET_METRIC[sub])
    score = sum(subsets.values()) / len(subsets) if subsets else None
    raw = {k: out[k] for k in ("results", "groups", "group_subtasks", "n-samples", "n-shot",
                               "versions", "higher_is_better", "configs", "config") if k in out}
    return {
        "benchmark": "leaderboard",
        "score": score,
        "avg_over": list(subsets),
        "subsets": subsets,
        "ifeval_metrics": ifeval_metrics,
        "ifeval_metric": ifeval_metric,
        "math_metrics": math_metrics,
        "math_metric": math_metric,
        # which scorer each reported figure is (Table 4 prints the headline and the second figure of each)
        "metric_names": {"ifeval": ifeval_metric, "math": math_metric,
                         "ifeval_variant": IFEVAL_SECOND if ifeval_metric != IFEVAL_SECOND else IFEVAL_HEADLINE,
                         "math_variant": MATH_SECOND if math_metric != MATH_SECOND else MATH_HEADLINE},
        "n": {sub: _n_samples(out, task_names[sub]) for sub in subsets},
        "task_names": dict(task_names),
        "raw": _jsonable(raw),
        "skipped": dict(skipped or {}),
    }


def flatten_samples(out: dict) -> list[dict]:
    """lm-eval per-sample logs -> one flat record per (task, doc)."""
    rows = []
    for task, samples in (out.get("samples") or {}).items():
        for s in samples:
            metrics = {m: s[m] for m in s.get("metrics", []) if m in s}
            resp = s.get("filtered_resps")
            if isinstance(resp, list) and len(resp) == 1 and isinstance(resp[0], str):
                resp = resp[0]  # generate_until: the one filtered string
            rows.append(_jsonable({"task": task, "doc_id": s.get("doc_id"), "target": s.get("target"),
                                   "response": resp, "filter": s.get("filter"), "metrics": metrics}))
    return rows


# --------------------------------------------------------------------------- entry point

def _resolve_cfg(cfg: dict) -> dict:
    c = dict(PAPER_DEFAULTS)
    c.update(cfg or {})
    unknown = set(c["tasks"]) - set(SUBSETS)
    if unknown:
        raise ValueError(f"unknown leaderboard subsets {sorted(unknown)}; known: {SUBSETS}")
    if c["source"] not in ("hub", "fixture"):
        raise ValueError(f"source must be hub or fixture, got {c['source']!r}")
    if c["backend"] not in ("hf", "vllm"):
        raise ValueError(f"backend must be hf or vllm, got {c['backend']!r}")
    if c["ifeval_metric"] not in IFEVAL_CHOICES:
        raise ValueError(f"ifeval_metric must be one of {IFEVAL_CHOICES}, got {c['ifeval_metric']!r}")
    if c["math_metric"] not in MATH_METRICS:
        raise ValueError(f"math_metric must be one of {MATH_METRICS}, got {c['math_metric']!r}")
    return c


def evaluate(model_path: str, cfg: dict, work_dir: Path, device: str = "cpu") -> tuple[dict, list[dict]]:
    """Run the leaderboard subset on a local model dir through lm-eval; return (result, predictions).

    lm-eval loads the model itself (``model="hf"`` or ``"vllm"``, ``pretrained=model_path``).
    """
    from solopo.software import require

    lm_eval = require("lm_eval")
    from lm_eval.tasks import TaskManager

    c = _resolve_cfg(cfg)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in SUBSETS if s in c["tasks"]]
    skipped: dict[str, str] = {}

    if c["source"] == "fixture":
        fixture_dir = Path(c["fixture_dir"]) if c.get("fixture_dir") else FIXTURE_DIR
        task_dir = work_dir / "lm_eval_tasks"
        written = set(write_local_tasks(fixture_dir, task_dir))
        names = {}
        for s in wanted:
            if LOCAL_TASK_GROUPS[s] in written:
                names[s] = LOCAL_TASK_GROUPS[s]
            else:
                skipped[s] = f"no fixture for {s} under {fixture_dir}"
        task_manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    else:
        fixture_dir = None
        names = {s: TASK_GROUPS[s] for s in wanted}
        task_manager = TaskManager()

    if "ifeval" in names:
        reason = ifeval_skip_reason(c["source"], fixture_dir)
        if reason is not None:
            skipped["ifeval"] = reason
            del names["ifeval"]
    if not names:
        raise RuntimeError(f"leaderboard: nothing left to evaluate (skipped: {skipped})")

    model_args = {"pretrained": str(model_path), "dtype": c["dtype"], **(c.get("model_args") or {})}
    kwargs: dict[str, Any] = {}
    if c["backend"] == "hf":
        kwargs["device"] = device
    out = lm_eval.simple_evaluate(
        model=c["backend"],
        model_args=model_args,
        tasks=list(names.values()),
        num_fewshot=c["num_fewshot"],
        batch_size=c["batch_size"],
        limit=c["limit"],
        log_samples=bool(c["log_samples"]),
        apply_chat_template=c["apply_chat_template"],
        fewshot_as_multiturn=bool(c["fewshot_as_multiturn"]),
        system_instruction=c["system_instruction"],
        gen_kwargs=dict(c["gen_kwargs"]) if c["gen_kwargs"] else None,
        task_manager=task_manager,
        random_seed=c["random_seed"],
        fewshot_random_seed=c["fewshot_random_seed"],
        **kwargs,
    )
    if out is None:  # non-zero rank in a distributed run
        raise RuntimeError("lm_eval.simple_evaluate returned None (not rank 0?)")
    result = aggregate(out, names, c["ifeval_metric"], skipped, c["math_metric"])
    result["settings"] = _jsonable({
        "apply_chat_template": c["apply_chat_template"],
        "fewshot_as_multiturn": c["fewshot_as_multiturn"],
        "system_instruction": c["system_instruction"],
        "num_fewshot": c["num_fewshot"],
        "gen_kwargs": c["gen_kwargs"],
        "limit": c["limit"],
        "batch_size": c["batch_size"],
        "backend": c["backend"],
        "dtype": c["dtype"],
        "model_args": {k: v for k, v in model_args.items() if k != "pretrained"},
        "source": c["source"],
        "model_path": str(model_path),
        "fixture_dir": str(fixture_dir) if fixture_dir else None,
        "tasks": list(names.values()),
        "random_seed": c["random_seed"],
        "fewshot_random_seed": c["fewshot_random_seed"],
        "lm_eval_version": getattr(lm_eval, "__version__", None) or _dist_version("lm_eval"),
        "nltk_punkt_tab": punkt_tab_available(),
        "nltk_data_env": os.environ.get("NLTK_DATA"),
    })
    preds = flatten_samples(out) if c["log_samples"] else []
    return result, preds


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
