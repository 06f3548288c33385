"""Benchmarks (one module each) and their shared metrics, truncation and I/O.

`BENCHES` is the one table of the suites: what the stages, the report and the workflow ask about a
benchmark (its module's entry points, whether its inputs are built per backbone, ...) is read here.
Importing this package stays cheap (the workflow imports it at parse time): a suite's module is
imported only when one of its entry points is used.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType


@dataclass(frozen=True)
class Benchmark:
    """One suite. Its module `solopo.eval.<name>` provides `evaluate` (the scorer) and, for suites
    with a data folder, `build_data` (rule bench_data) and `eval_items` (the items an evaluation reads);
    optionally `check_items` (each of its parts, e.g. RULER's sets, has items) and, with `item_scores`,
    `item_scores` (per-item scores for the seeds page).

    label:           the report's column head for its headline score.
    per_backbone:    its inputs are built with the backbone's tokenizer (token-exact lengths): one
                     data folder per backbone.
    item_scores:     its predictions carry per-item scores (the seeds page's paired bootstrap).
    lengths:         its prompt sizes are `eval.<name>.lengths` (else `eval.<name>.max_length`).
    has_data:        rule bench_data builds its folder (the leaderboard reads lm-eval's own tasks).
    loads_model:     it loads the weights itself (lm-eval), not through solopo.generate.
    env:             the conda env (workflow/envs) its evaluation runs in.
    item_files:      the glob (in its data folder) of the item files an evaluation reads.
    item_fields:     the fields every item needs with a non-empty value (an empty question or gold
                     list would be scored as if it were data).
    item_present:    fields that must be present but may be empty (RULER's answer prefix is "" for
                     the CoT prompt).
    """

    name: str
    label: str
    per_backbone: bool = False
    item_scores: bool = False
    lengths: bool = False
    has_data: bool = True
    loads_model: bool = False
    env: str = "generate"
    item_files: str = ""
    item_fields: tuple[str, ...] = ()
    item_present: tuple[str, ...] = ()

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(f"solopo.eval.{self.name}")

    @property
    def build_data(self) -> Callable:
        """The module's `build_data`; a suite with only `build_fixture` and `download` (LongBench v1/v2) gets
        `fixture_or_download` over them."""
        module = self.module
        if hasattr(module, "build_data"):
            return module.build_data
        return functools.partial(fixture_or_download, module)

    @property
    def eval_items(self) -> Callable:
        """The items an evaluation reads (`limit` applied): the module's `eval_items`, else its `load_items`."""
        return getattr(self.module, "eval_items", None) or self.module.load_items

    @property
    def evaluate(self) -> Callable:
        return self.module.evaluate

    @property
    def length_key(self) -> str:
        """The config key holding its longest prompt (`eval.<name>.<key>`)."""
        return "lengths" if self.lengths else "max_length"


BENCHES: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("longbench_v1", "LB1 Avg", item_scores=True,
              item_files="*.jsonl", item_fields=("_id", "dataset", "context", "input", "answers")),
    Benchmark("ruler", "RULER Avg", per_backbone=True, item_scores=True, lengths=True,
              item_files="items.jsonl", item_fields=("input", "outputs", "set", "target_length", "index"),
              item_present=("answer_prefix",)),
    Benchmark("longbench_v2", "LB2 Overall",
              item_files="data.json", item_fields=("_id", "context", "question", "choice_A", "choice_B", "choice_C",
                                                   "choice_D", "answer")),
    Benchmark("niah_plus", "NIAH-Plus Avg", per_backbone=True, lengths=True,
              item_files="**/*.jsonl", item_fields=("id", "dataset", "context", "input", "answers")),
    Benchmark("leaderboard", "Leaderboard Avg", has_data=False, loads_model=True, env="leaderboard"),
)}
BENCHMARKS = tuple(BENCHES)


def fixture_or_download(module: ModuleType, out: Path, records: list[dict], cfg: dict, seed: int,
                        model: str | None = None, sources_dir: str | None = None) -> dict:
    """Rule bench_data for a suite whose items need no tokenizer: fixtures from held-out toy records
    (`source: fixture`), else the released files; no manifest extras."""
    if cfg.get("source", "fixture") == "fixture":
        module.build_fixture(records, out, cfg, seed)
    else:
        module.download(out, cfg)
    return {}


def benchmark(name: str) -> Benchmark:
    """The table's entry for `name`; a name not in it stops with the known ones."""
    if name not in BENCHES:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return BENCHES[name]
