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
import os
from pathlib import Path
from typing import Any

from solopo.eval.leaderboard_scores import (  # noqa: F401 - re-exported: the names callers and tests use
    IFEVAL_CHOICES,
    IFEVAL_HEADLINE,
    IFEVAL_LEADERBOARD,
    IFEVAL_METRICS,
    IFEVAL_SECOND,
    MATH_HEADLINE,
    MATH_METRICS,
    MATH_SECOND,
    SUBSET_METRIC,
    aggregate,
    flatten_samples,
    jsonable,
)
from solopo.eval.leaderboard_tasks import (  # noqa: F401 - re-exported
    FIXTURE_DIR,
    LOCAL_PREFIX,
    LOCAL_TASK_GROUPS,
    SUBSETS,
    TASK_GROUPS,
    installed_task_dir,
    write_local_tasks,
)


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

# IFEval instruction ids whose checkers need nltk punkt (lm_eval/tasks/ifeval/instructions.py).
PUNKT_INSTRUCTIONS = frozenset({"length_constraints:number_sentences",
                                "change_case:capital_word_frequency"})

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


# --------------------------------------------------------------------------- entry point

def _resolve_cfg(cfg: dict) -> dict:
    c = dict(PAPER_DEFAULTS)
    c.update(cfg or {})
    unknown = set(c["tasks"]) - set(SUBSETS)
    if unknown:
        raise ValueError(f"unknown leaderboard subsets {sorted(unknown)}; known: {SUBSETS}")
    allowed = {"source": ("hub", "fixture"), "backend": ("hf", "vllm"), "ifeval_metric": IFEVAL_CHOICES,
               "math_metric": MATH_METRICS}
    for key, choices in allowed.items():
        if c[key] not in choices:
            raise ValueError(f"{key} must be one of {tuple(choices)}, got {c[key]!r}")
    return c


def lm_eval_batch_size(batch_size: int | str, backend: str, device: str) -> int | str:
    """The batch size handed to lm-eval: `auto` with the hf backend off CUDA becomes 1.

    lm-eval's `auto` runs batches of maximum-length inputs, ever larger, until one raises out-of-memory.
    CUDA's allocator raises; a CPU's memory does not, the kernel kills the process: the paper rehearsal's
    leaderboard job (HF backend on a CPU, Qwen's 32,768-token window) grew to 24 GB while "Detecting largest
    batch size" and was killed. vLLM, and hf on CUDA, keep `auto`."""
    if backend == "hf" and str(batch_size).startswith("auto") and not str(device).startswith("cuda"):
        return 1
    return batch_size


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
    batch_size = lm_eval_batch_size(c["batch_size"], c["backend"], device)
    out = lm_eval.simple_evaluate(
        model=c["backend"],
        model_args=model_args,
        tasks=list(names.values()),
        num_fewshot=c["num_fewshot"],
        batch_size=batch_size,
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
    result["settings"] = jsonable({
        "apply_chat_template": c["apply_chat_template"],
        "fewshot_as_multiturn": c["fewshot_as_multiturn"],
        "system_instruction": c["system_instruction"],
        "num_fewshot": c["num_fewshot"],
        "gen_kwargs": c["gen_kwargs"],
        "limit": c["limit"],
        "batch_size": batch_size,
        "batch_size_configured": c["batch_size"],
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
