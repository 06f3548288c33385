"""Every artifact path of the workflow, named once.

Each path is a Snakemake-style template ("results/eval/{run}_{bench}.json"), a plain string: the rules
use them as their outputs and inputs as they are (`output: paths.EVAL_JSON`), the report lists its
targets with `fill`, and `solopo check` maps a concrete path back to its wildcards with `parse`
(solopo.report.provenance). A run of a further seed of `train.seeds` is `<run>@s<seed>` and its pairs,
training sets and reference log-probs are under `<backbone>@s<seed>` (solopo.config.seed_tag): the
`{seedtag}` wildcard, "" for the first seed.

`parse` needs no config: a wildcard matches `WILDCARD_RE[name]` (shortest first, so that `{run}_{bench}`
splits at the longest benchmark name), else any text without "/"; the caller may narrow any of them.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from solopo.config import SEED_TAG
from solopo.eval import BENCHMARKS

RESULTS = "results"
RESOURCES = "resources"

# --------------------------------------------------------------------------- inputs: data and models
MUSIQUE = "results/data/musique_{split}.jsonl"  # the toy world or the fetched MuSiQue (train/dev)
BUILT_MODEL = "results/models/{backbone}"  # a backbone built here (tiny_model, rehearsal_model)
DOWNLOADED_MODEL = "resources/models/{backbone}"  # a hub backbone, fetched by download_model
RULER_SOURCES = "resources/benchmarks/ruler_sources"
LEADERBOARD_PREFETCHED = "resources/leaderboard/prefetched.json"
NLTK_DATA = "resources/nltk_data"  # punkt_tab for IFEval

# --------------------------------------------------------------------------- the pipeline
CONTEXTS = "results/contexts/{backbone}/{ctx}.jsonl"
SAMPLES = "results/samples/{backbone}/{ctx}.jsonl"
PAIRS = "results/pairs/{backbone}{seedtag}/pairs.jsonl"
PAIR_STATS = "results/pairs/{backbone}{seedtag}/pair_stats.json"
DATASET = "results/datasets/{backbone}{seedtag}/{dataset}.jsonl"
REF_LOGPS = "results/ref_logps/{backbone}{seedtag}/{dataset}.jsonl"
TRAIN_MODEL = "results/train/{run}/model"
BENCH_DATA = "results/benchmarks/{bench}"
BENCH_DATA_TOKENIZED = "results/benchmarks/{backbone}/{bench}"  # per-backbone suites (token-exact lengths)
EVAL_JSON = "results/eval/{run}_{bench}.json"
EVAL_PREDICTIONS = "results/eval/{run}_{bench}.predictions.jsonl"
EFFICIENCY_JSON = "results/bench/efficiency.json"
EFFICIENCY_PNG = "results/bench/efficiency.png"

# --------------------------------------------------------------------------- the report
REPORT_DIR = "results/report"
TABLE = "results/report/{table}.{fmt}"
SUMMARY = "results/report/summary.csv"
LAMBDA_PLOT = "results/report/lambda_sweep_{sweep}.png"
RULER_PLOT = "results/report/ruler_by_length_{backbone}.png"
SEEDS_MD = "results/report/seeds.md"
SEEDS_JSON = "results/report/seeds.md.json"
SEEDS_PLOT = "results/report/seeds_{plot}.png"
SEEDS_PLOTS = ("ruler_by_length", "lambda", "cost")  # solopo.report.science names them after the page
SEEDS_RA_PLOT = "results/report/seeds_ra_mechanism.png"  # with SoLo-RA runs at λ > 0 (report.findings.ra_plot_runs)
REPORT_TABLES = ("table3", "table4", "ablations", "lambda_sweep")  # solopo.report.tables.TABLE_NAMES

# --------------------------------------------------------------------------- learning-rate tuning
TUNE_QUESTIONS = "results/tune/questions.jsonl"
TUNE_BENCH = "results/tune/ruler"
TUNE_MODEL = "results/tune/train/{trun}/model"
TUNE_EVAL_JSON = "results/tune/eval/{trun}_ruler.json"
TUNE_EVAL_PREDICTIONS = "results/tune/eval/{trun}_ruler.predictions.jsonl"
TUNE_CHOSEN = "results/tune/chosen.json"

# every artifact template by name (a test checks that each is a rule's input or output and round-trips);
# REPORT_DIR and NLTK_DATA are folders that files are written into, not artifacts of their own
TEMPLATES: dict[str, str] = {k: v for k, v in dict(globals()).items()
                             if k.isupper() and isinstance(v, str) and v.startswith((RESULTS + "/", RESOURCES + "/"))
                             and k not in ("REPORT_DIR", "NLTK_DATA")}


def alternation(values) -> str:
    """A regex matching exactly one of `values`, longest first."""
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


# the values a wildcard takes when the caller does not narrow it; any other wildcard: text without "/"
WILDCARD_RE: dict[str, str] = {
    "split": "train|dev",
    "ctx": "short|long",
    "seedtag": f"(?:{re.escape(SEED_TAG)}[0-9]+)?",  # "" = the first seed (solopo.config.seed_tag)
    "bench": alternation(BENCHMARKS),
    "table": alternation(REPORT_TABLES),
    "fmt": "md|csv|html",
    "plot": alternation(SEEDS_PLOTS),
}
ANY = "[^/]+?"
_WILDCARD = re.compile(r"\{(\w+)\}")


def wildcards(template: str) -> list[str]:
    """The wildcard names of a template, in order."""
    return _WILDCARD.findall(template)


def fill(template: str, **values) -> str:
    """The template with the given wildcards replaced; the others stay as `{name}` (for a rule's output).
    A value its wildcard cannot take (a "/", or outside WILDCARD_RE) raises ValueError naming it."""
    unknown = set(values) - set(wildcards(template))
    if unknown:
        raise ValueError(f"{template}: no wildcard {', '.join(sorted(unknown))}")
    for name, v in values.items():
        if not re.fullmatch(WILDCARD_RE.get(name, "[^/]+"), str(v)):
            raise ValueError(f"{template}: {name}={v!r} is not a value of {{{name}}}")
    return _WILDCARD.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], template)


@functools.lru_cache(maxsize=256)
def _regex(template: str, narrowed: tuple[tuple[str, str], ...]) -> re.Pattern:
    regexes = {**WILDCARD_RE, **dict(narrowed)}
    parts, last = [], 0
    for m in _WILDCARD.finditer(template):
        parts += [re.escape(template[last:m.start()]), f"(?P<{m[1]}>{regexes.get(m[1], ANY)})"]
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def parse(template: str, path: str, **regexes: str) -> dict[str, str] | None:
    """The wildcards of `path` under `template` ({} for a template without any), None when it is not
    one of its paths. `regexes` narrow (or widen) what a wildcard may match, e.g. bench="ruler|niah_plus"."""
    hit = _regex(template, tuple(sorted(regexes.items()))).fullmatch(str(path))
    return None if hit is None else hit.groupdict()


def match(path: str, **regexes: str) -> tuple[str, dict[str, str]] | None:
    """(template name, wildcards) of the first template `path` is a path of; None when none."""
    for name, template in TEMPLATES.items():
        wc = parse(template, path, **regexes)
        if wc is not None:
            return name, wc
    return None


# the two files of one job (toy_world / fetch_musique)
MUSIQUE_TRAIN = fill(MUSIQUE, split="train")
MUSIQUE_DEV = fill(MUSIQUE, split="dev")


def manifest(path: str) -> str:
    """The manifest written beside a file artifact (a folder holds its own `manifest.json`)."""
    return f"{path}.manifest.json"


def under(directory: str, template: str) -> str:
    """A report template in another folder than REPORT_DIR (the report functions take their folder)."""
    if not template.startswith(REPORT_DIR + "/"):
        raise ValueError(f"{template} is not under {REPORT_DIR}")
    return str(Path(directory) / template[len(REPORT_DIR) + 1:])
