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


# --------------------------------------------------------------------------- the reduced rehearsal (slow)
REDUCED = """
backbones:
  - {name: qwen25_7b, model: results/models/qwen25_7b, build: rehearsal, trust_remote_code: false,
     context_window: 32768, long_context: {rope_scaling: {type: yarn, factor: 4.0,
     original_max_position_embeddings: 32768}, context_window: 131072}}
eval:
  ruler: {lengths: [4096, 32768]}
  niah_plus: {lengths: [1000, 128000], single_depths: [50], multi_depth_pairs: [[0, 100]]}
"""


@pytest.mark.slow
def test_reduced_rehearsal_builds_the_papers_lengths_with_the_released_tokenizer(tmp_path):
    """The paper preset's data side on one backbone with Qwen2.5's released tokenizer: the backbone folder,
    1K/8K training contexts, RULER at its shortest and longest lengths, NIAH-Plus at 1K and its longest (128K) haystack,
    LongBench v1/v2 fixtures longer than their truncation (31,500 / 120,000 tokens). Sampling, training and
    evaluation at these lengths run in `make paper-rehearsal` (about an hour on 2 cores, docs/paper_rehearsal.md)."""
    import json
    import subprocess

    from solopo.generate.hf import load_tokenizer
    from tests.reduced_pipeline import ENV, SNAKEMAKE

    (tmp_path / "reduced.yaml").write_text(REDUCED)
    targets = ["results/contexts/qwen25_7b/long.jsonl", "results/benchmarks/qwen25_7b/ruler",
               "results/benchmarks/qwen25_7b/niah_plus", "results/benchmarks/longbench_v1", "results/benchmarks/longbench_v2"]
    out = subprocess.run([SNAKEMAKE, *targets, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                          "--profile", str(ROOT / "profiles/local"), "--configfile", str(ROOT / "config/config.yaml"),
                          str(ROOT / "config/paper_rehearsal.yaml"), str(tmp_path / "reduced.yaml")],
                         capture_output=True, text=True, timeout=1800, env=ENV)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    res = tmp_path / "results"
    tok = load_tokenizer(str(res / "models/qwen25_7b"))
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]  # Qwen2.5's released ids
    stats = json.loads((res / "contexts/qwen25_7b/long.jsonl.manifest.json").read_text())["stats"]
    assert 0.95 * 1024 <= stats["short_mean_tokens"] <= 1024 and 0.95 * 8192 <= stats["long_mean_tokens"] <= 8192
    counts = json.loads((res / "benchmarks/qwen25_7b/ruler/manifest.json").read_text())["token_counts"]
    assert {k.rsplit("_", 1)[1] for k in counts} == {"4096", "32768"} and len(counts) == 6
    # every set's item fills its length (prompt + the 1,024-token reserve), at 4K and at RULER's longest, 32K
    assert all(0.95 * c["target_length"] <= c["max_prompt_plus_reserve"] <= c["target_length"] and c["reserve"] == 1024
               for c in counts.values()), counts
    niah = [json.loads(line) for f in sorted((res / "benchmarks/qwen25_7b/niah_plus").glob("*.jsonl"))
            for line in f.read_text().splitlines()]
    longest = [r for r in niah if r["context_length"] == 128000]
    assert longest and all(0.95 * 128000 <= r["measured_length"] <= 128000 for r in longest)
    ntok = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    v1 = [json.loads(line) for f in (res / "benchmarks/longbench_v1").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert v1 and all(ntok(r["context"]) > 31500 for r in v1)  # the middle truncation is exercised
    v2 = json.loads((res / "benchmarks/longbench_v2/data.json").read_text())
    v2_tokens = {r["length"]: ntok(r["context"]) for r in v2}  # one item per length bucket
    # the long item is middle-truncated; short and medium are padded only within their buckets' word counts
    assert v2_tokens["long"] > 120000 and v2_tokens["short"] < v2_tokens["medium"] < v2_tokens["long"], v2_tokens
