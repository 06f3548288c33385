"""solopo.paths names every artifact path once: each template is a path of some planned job, every
planned path is a path of exactly one template, parse inverts fill, and the rules and the report
spell no path of their own."""
from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path

import pytest

from solopo import paths
from solopo.config import validate_config
from solopo.report.provenance import load_config
from tests.snakemake_plan import ROOT, plan

# values each wildcard takes in the round trip: the awkward ones included (seed tags, lambdas,
# a run name ending in another benchmark's name, a second backbone's prefix)
VALUES = {
    "split": ["train", "dev"],
    "backbone": ["tiny", "llama31_8b", "qwen2.5-7b"],
    "ctx": ["short", "long"],
    "seedtag": ["", "@s1", "@s12"],
    "dataset": ["solo", "sft_long"],
    "run": ["base", "solo_orpo", "solo_orpo_lam4.0@s2", "llama31_8b__dpo_short", "x_longbench_v1"],
    "bench": ["longbench_v1", "ruler", "longbench_v2", "niah_plus", "leaderboard"],
    "table": list(paths.REPORT_TABLES),
    "fmt": ["md", "csv", "html"],
    "sweep": ["solo_orpo", "llama31_8b__solo_simpo"],
    "plot": list(paths.SEEDS_PLOTS),
    "trun": ["sft_long_lr0.0002", "orpo_long_lr1e-4"],
}

# the DAGs that together run every rule: the tiny preset with the efficiency benchmark, the paper
# preset (hub downloads), the toy-science preset (seeds page, learning-rate tuning)
DAGS = {
    "tiny": (("config/tiny.yaml",), ("all", paths.EFFICIENCY_JSON)),
    "paper": ((), ("all",)),
    "toy_science": (("config/tiny.yaml", "config/toy_science.yaml"), ("all", "toy_science", "toy_science_tune")),
}


@pytest.mark.parametrize("name", sorted(paths.TEMPLATES))
def test_parse_inverts_fill(name):
    template = paths.TEMPLATES[name]
    names = paths.wildcards(template)
    for combo in itertools.product(*(VALUES[n] for n in names)):
        values = dict(zip(names, combo))
        path = paths.fill(template, **values)
        assert "{" not in path
        assert paths.parse(template, path) == values, path
        assert paths.match(path) == (name, values), path  # no other template claims it


def test_fill_leaves_other_wildcards_and_refuses_bad_values():
    assert paths.fill(paths.CONTEXTS, ctx="short") == "results/contexts/{backbone}/short.jsonl"
    with pytest.raises(ValueError, match=r"ctx='medium'"):
        paths.fill(paths.CONTEXTS, ctx="medium")
    with pytest.raises(ValueError, match=r"run='a/b'"):
        paths.fill(paths.TRAIN_MODEL, run="a/b")
    with pytest.raises(ValueError, match="no wildcard seed"):
        paths.fill(paths.PAIRS, seed=1)
    assert paths.parse(paths.EVAL_JSON, "results/eval/solo_orpo_ruler.predictions.jsonl") is None
    assert paths.parse(paths.EVAL_JSON, "results/eval/solo_orpo_bogus.json") is None
    assert paths.parse(paths.EVAL_JSON, "results/eval/solo_orpo_bogus.json", bench="bogus") == {
        "run": "solo_orpo", "bench": "bogus"}


def _planned() -> dict[str, set[str]]:
    """Every path of every planned job (outputs and inputs) per DAG."""
    out = {}
    for dag, (files, targets) in DAGS.items():
        cfg = load_config([ROOT / f for f in files], ROOT / "config/config.yaml")
        validate_config(cfg)
        with tempfile.TemporaryDirectory() as d:
            jobs = plan(Path(d), cfg, targets)
        out[dag] = {p for j in jobs.values() for p in j.outputs + j.inputs}
    return out


def test_every_template_is_a_planned_path_and_every_planned_path_has_one_template():
    planned = _planned()
    artifacts = {p for ps in planned.values() for p in ps
                 if p.startswith((paths.RESULTS + "/", paths.RESOURCES + "/")) and not p.endswith(".manifest.json")}
    used = {}
    for p in sorted(artifacts):
        hits = [n for n, t in paths.TEMPLATES.items() if paths.parse(t, p) is not None]
        assert len(hits) == 1, f"{p}: templates {hits}"
        used.setdefault(hits[0], p)
    assert set(paths.TEMPLATES) - set(used) == set(), "templates no planned job reads or writes"
    # every manifest a job declares sits beside one of its artifacts
    manifests = {p for ps in planned.values() for p in ps if p.endswith(".manifest.json")}
    assert manifests and all(p[: -len(".manifest.json")] in artifacts for p in manifests)


# a path literal: a quoted string starting with results/ or resources/ (comments and docstrings name
# paths in backquotes)
_LITERAL = re.compile(r"""f?["'](?:results|resources)/""")
SPELLERS = sorted((ROOT / "workflow" / "rules").glob("*.smk")) + [
    ROOT / "workflow" / "Snakefile", ROOT / "src/solopo/report/tables.py", ROOT / "src/solopo/report/provenance.py"]


@pytest.mark.parametrize("path", SPELLERS, ids=lambda p: p.name)
def test_rules_and_report_spell_no_path_of_their_own(path):
    lines = [f"{path.name}:{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
             if _LITERAL.search(line.split("#", 1)[0])]
    assert lines == [], "name the path in solopo.paths instead:\n" + "\n".join(lines)
