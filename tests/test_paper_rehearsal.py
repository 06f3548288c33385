"""config/paper_rehearsal.yaml changes only what a CPU cannot afford or an offline machine cannot reach.

Laid over config/config.yaml (as `--configfile config/config.yaml config/paper_rehearsal.yaml` does), every
value that differs from the paper preset must be one of: a backbone's weights (its `model` folder and
`build: rehearsal`), the data and benchmark sources, item counts, sampling N, the generation backend, the
list of runs. Lengths, budgets, prompts, decoding, truncation, metrics, the lm-eval task list, DeepSpeed and
the long-context plan stay the paper's."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = [re.compile(p) for p in (
    r"backbones\[\d+\]\.(model|build)",            # the weights: the released model's files, small random layers
    r"backbones\[\d+\]\.(methods|lambdas)(\..*)?",   # the list of runs
    r"tiny_model\.(entities|hop_weights)(\..*)?",    # the toy world's sizes: a data source
    r"data\.(source|toy|musique|num_questions)(\..*)?",
    r"sampling\.(n|backend|reference_traces)",
    r"pairs\.num_pairs",
    r"train\.(methods|lambdas)(\..*)?",
    r"eval\.backend",
    r"eval\.\w+\.(source|data_dir|fixture_dir|fixture_items|fixture_min_words|fixture_more_paragraphs|num_samples|"
    r"samples_per_cell|limit|backend)",
)]


def merged(base: dict, over: dict) -> dict:
    """Snakemake's --configfile layering: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def changed(a, b, path: str = "") -> list[str]:
    """Dotted paths where `b` differs from `a` (lists of mappings element by element)."""
    if a is _ABSENT and isinstance(b, dict):
        a = {}  # a section the paper preset does not have: each of its keys is a change
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b), key=str)
                for p in changed(a.get(k, _ABSENT), b.get(k, _ABSENT), f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and all(isinstance(x, dict) for x in a + b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in changed(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


_ABSENT = object()


def rehearsal_changes(override: dict | None = None) -> list[str]:
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    over = yaml.safe_load((ROOT / "config/paper_rehearsal.yaml").read_text()) if override is None else override
    return changed(paper, merged(paper, over))


def disallowed(paths: list[str]) -> list[str]:
    return [p for p in paths if not any(a.fullmatch(p) for a in ALLOWED)]


def test_the_rehearsal_changes_only_weights_sources_counts_and_runs():
    changes = rehearsal_changes()
    assert changes and not disallowed(changes), disallowed(changes)


@pytest.mark.parametrize("key,value", [
    ("eval.ruler.lengths", [256]), ("data.long_tokens", 1024), ("train.deepspeed", "none"),
    ("eval.longbench_v1.max_length", 4000), ("sampling.max_new_tokens", 64), ("eval.niah_plus.prompt", "solopo_cot"),
])
def test_a_protocol_key_in_the_override_is_caught(key, value):
    over = yaml.safe_load((ROOT / "config/paper_rehearsal.yaml").read_text())
    node = over
    *parents, last = key.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    assert disallowed(rehearsal_changes(over)) == [key]


def test_both_backbones_keep_every_released_setting_but_their_weights():
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())["backbones"]
    rehearsal = yaml.safe_load((ROOT / "config/paper_rehearsal.yaml").read_text())["backbones"]
    assert [b["name"] for b in rehearsal] == [b["name"] for b in paper]
    for p, r in zip(paper, rehearsal):
        assert r["build"] == "rehearsal" and r["model"] == f"results/models/{r['name']}"
        assert {k: v for k, v in r.items() if k not in ("model", "build", "methods", "lambdas")} == \
               {k: v for k, v in p.items() if k not in ("model", "methods", "lambdas")}


def test_samples_with_reference_traces_hold_n_plus_two_responses(tmp_path):
    import json

    from solopo.artifacts import DataError
    from solopo.validate import check_samples

    path = tmp_path / "short.jsonl"
    rows = [{"id": "q1", "responses": ["a", "b", "gold", "wrong"]}]
    path.write_text(json.dumps(rows[0]) + "\n")
    Path(f"{path}.manifest.json").write_text(json.dumps({"config": {"sampling": {"n": 2, "reference_traces": True}}}))
    check_samples(rows, [{"id": "q1"}], path, "ctx")
    Path(f"{path}.manifest.json").write_text(json.dumps({"config": {"sampling": {"n": 2}}}))
    with pytest.raises(DataError, match="4 responses for id 'q1'; expected 2"):
        check_samples(rows, [{"id": "q1"}], path, "ctx")
