"""Invalid configs are rejected before any job runs, with one line naming the key."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from solopo.config import ConfigError, run_table, validate_config
from solopo.mappings import deep_merge

ROOT = Path(__file__).resolve().parents[1]


def _merged():
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    tiny = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    return deep_merge(base, tiny)


def _set(cfg, dotted, value):
    keys = dotted.split(".")
    d = cfg
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]
    if value is KeyError:
        del d[keys[-1]]
    elif isinstance(d, list):
        d[int(keys[-1])] = value
    else:
        d[keys[-1]] = value
    return cfg


# (dotted key, bad value, the whole message after "config error: "): the message is the user's only
# guide, so a test that checks only the key name cannot see a wrong bound, list or hint.
BAD = [
    ('sampling.temperature', 0,
     'sampling.temperature: 0 is not valid; allowed: number > 0 and <= 2'),
    ('sampling.temperature', -0.5,
     'sampling.temperature: -0.5 is not valid; allowed: number > 0 and <= 2'),
    ('sampling.n', 1,
     'sampling.n: 1 is not valid; allowed: integer >= 2 and <= 256'),
    ('sampling.n', '32',
     "sampling.n: '32' is not valid; allowed: integer >= 2 and <= 256"),
    # upper bounds where a value can only be a mistake (10000 samples per prompt grew past 22 GB)
    ('sampling.n', 10000,
     'sampling.n: 10000 is not valid; allowed: integer >= 2 and <= 256'),
    ('sampling.temperature', 100,
     'sampling.temperature: 100 is not valid; allowed: number > 0 and <= 2'),
    ('sampling.max_new_tokens', 100000,
     'sampling.max_new_tokens: 100000 is not valid; allowed: integer >= 1 and <= 32768'),
    ('pairs.min_pair_yield', 1.5,
     'pairs.min_pair_yield: 1.5 is not valid; allowed: number >= 0 and <= 1'),
    ('sampling.backend', 'tgi',
     "sampling.backend: 'tgi' is not valid; allowed: one of hf, vllm"),
    # lm-eval's generation overrides are typed: a string temperature failed inside the job (float())
    ('eval.leaderboard.gen_kwargs', {'temperature': 'zero'},
     "eval.leaderboard.gen_kwargs.temperature: 'zero' is not valid; allowed: number >= 0"),
    ('eval.leaderboard.gen_kwargs', {'temprature': 0},
     "eval.leaderboard.gen_kwargs.temprature: unknown key 'temprature'; did you mean 'temperature'?"),
    # `$` also matched before a final newline: folders named "tiny\n"
    ('backbones.0.name', 'tiny\n',
     "backbones[0].name: 'tiny\\n' is not valid; allowed: string matching ^[a-z0-9][a-z0-9_]*$"),
    ('train.methods', ['solo_orpo', 'magic_po'],
     "train.methods[1]: 'magic_po' is not valid; allowed: one of sft_short, sft_long, sft_expand, dpo_short, dpo_long, dpo_expand, simpo_short, simpo_long, simpo_expand, orpo_short, orpo_long, orpo_expand, solo_dpo, solo_simpo, solo_orpo, solo_dpo_both, solo_simpo_both, solo_orpo_both, solo_dpo_sg, solo_simpo_sg, solo_orpo_sg, solo_kl_dpo, solo_kl_simpo, solo_kl_orpo, longpo"),
    ('train.lambdas.solo_orpo', [-1.0],
     'train.lambdas.solo_orpo[0]: -1.0 is not valid; allowed: number >= 0'),
    ('train.lambdas.solo_orpo', [],
     'train.lambdas.solo_orpo: [] is not valid; allowed: array at least 1 item(s)'),
    ('train.lambdas.solo_orpo', ['big'],
     "train.lambdas.solo_orpo[0]: 'big' is not valid; allowed: number >= 0"),
    ('train.lambdas.dpo_short', [1.0],
     "train.lambdas: 'dpo_short' is not valid; allowed: one of solo_dpo, solo_simpo, solo_orpo, solo_dpo_both, solo_simpo_both, solo_orpo_both, solo_dpo_sg, solo_simpo_sg, solo_orpo_sg, solo_kl_dpo, solo_kl_simpo, solo_kl_orpo"),
    ('data.short_tokens', 400,
     'data.short_tokens: 400 must be smaller than data.long_tokens (384); allowed: short_tokens < long_tokens'),
    ('data.long_tokens', '8K',
     "data.long_tokens: '8K' is not valid; allowed: integer >= 32"),
    ('data.source', 's3',
     "data.source: 's3' is not valid; allowed: one of hub, local, toy"),
    ('eval.benchmarks', ['ruler', 'mmlu'],
     "eval.benchmarks[1]: 'mmlu' is not valid; allowed: one of longbench_v1, ruler, longbench_v2, niah_plus, leaderboard"),
    ('eval.benchmarks', [],
     'eval.benchmarks: [] is not valid; allowed: array at least 1 item(s)'),
    ('eval.backend', 'tensorrt',
     "eval.backend: 'tensorrt' is not valid; allowed: one of hf, vllm"),
    ('backbones.0', {'name': 'tiny', 'model': './no/such/model'},
     "backbones[0].model: local path './no/such/model' does not exist; allowed: an existing model folder or a hub id like Qwen/Qwen2.5-7B-Instruct"),
    ('backbones.0.build', 'gpt',
     "backbones[0].build: 'gpt' is not valid; allowed: one of tiny_model, rehearsal"),
    ('backbones.0.trust_remote_code', 'yes',
     "backbones[0].trust_remote_code: 'yes' is not valid; allowed: boolean"),
    ('backbones.0.name', 'Tiny Model',
     "backbones[0].name: 'Tiny Model' is not valid; allowed: string matching ^[a-z0-9][a-z0-9_]*$"),
    ('seed', -1,
     'seed: -1 is not valid; allowed: integer >= 0'),
    ('seed', KeyError,
     'seed: missing; required key'),
    ('train.optim.learning_rate', 0,
     'train.optim.learning_rate: 0 is not valid; allowed: number > 0'),
    ('train.optim.batch_size', 6,
     'train.optim.batch_size: 6 is not a multiple of micro_batch_size 8; allowed: a multiple of micro_batch_size'),
    ('train.deepspeed', 'zero4',
     "train.deepspeed: 'zero4' is not valid; allowed: one of none, zero2, zero3, zero3_offload"),
    ('pairs.num_pairs', 0,
     'pairs.num_pairs: 0 is not valid; allowed: integer >= 1'),
    ('preset', 'huge',
     "preset: 'huge' is not valid; allowed: one of paper, tiny"),
    ('sampling.temperature', float("inf"),
     'sampling.temperature: inf is not a finite number; allowed: a finite number'),
    ('train.lambdas.solo_orpo', [1.0, float("nan")],
     'train.lambdas.solo_orpo[1]: nan is not a finite number; allowed: a finite number'),
    ('backbones', [{'name': 'tiny', 'model': 'results/models/tiny', 'build': 'tiny_model'}, {'name': 'tiny', 'model': 'results/models/tiny', 'build': 'tiny_model'}],
     "backbones: duplicate names ['tiny', 'tiny']; allowed: unique names"),
    ('tiny_model', KeyError,
     'tiny_model: missing; required when backbones[0].build is tiny_model'),
    ('data.toy', KeyError,
     'data.toy: missing; required when data.source is toy'),
    ('data.source', 'local',
     'data.musique.train_file: None is not an existing file; allowed: a MuSiQue-Ans JSONL path when data.source is local'),
    ('data.musiqe', {},
     "data.musiqe: unknown key 'musiqe'; did you mean 'musique'?"),
    ('train.loss', {'longpo_beta': 0.1},
     "train.loss.longpo_beta: unknown key 'longpo_beta'; it moved to train.longpo.beta"),
    ('train.loss.ra_stop_grad_short', 'yes',
     "train.loss.ra_stop_grad_short: 'yes' is not valid; allowed: boolean"),
    ('train.zzz', 1,
     "train.zzz: unknown key 'zzz'; allowed keys: methods, seeds, lambdas, loss, optim, longpo, deepspeed, report_to, collective_timeout_s, select_checkpoint"),
    ('data.long_tokens', 2000,
     "data.long_tokens + sampling.max_new_tokens: 2040 is beyond the tiny backbone's position range (tiny_model.max_positions 1024); allowed: <= 1024"),
    ('train.optim.max_length', 2000,
     "train.optim.max_length: 2000 is beyond the tiny backbone's position range (tiny_model.max_positions 1024); allowed: <= 1024"),
    ('train.optim.max_length', 300,
     'train.optim.max_length: 300 cannot hold a long prompt and its response (data.long_tokens 384 + sampling.max_new_tokens 40 = 424); allowed: >= 424'),
    ('eval.ruler.num_samples', 0,
     'eval.ruler.num_samples: 0 is not valid; allowed: integer >= 1'),
    ('eval.ruler.lengths', [],
     'eval.ruler.lengths: [] is not valid; allowed: array at least 1 item(s)'),
    ('train.lambdas.solo_orpo', [1.0, 1.0],
     'train.lambdas.solo_orpo: 1.0 and 1.0 both give run solo_orpo (backbone tiny); allowed: distinct values (at 6 significant digits)'),
    ('train.lambdas.solo_orpo', [1.0, 0.5, 0.5],
     'train.lambdas.solo_orpo: 0.5 and 0.5 both give run solo_orpo_lam0.5 (backbone tiny); allowed: distinct values (at 6 significant digits)'),

    ('eval.ruler.lengths', [256, 4096],
     "eval.ruler: inputs need up to 4096 tokens (prompt + generation), more than backbone tiny's context_window 1024, and it has no long_context setting; add one or shorten eval.ruler"),
    ('backbones.0.yarn_for_longbench_v2', True,
     "backbones[0].yarn_for_longbench_v2: unknown key 'yarn_for_longbench_v2'; it moved to backbones[].long_context (applied to every suite that needs it)"),
    ('data.short_tokens', 384,
     'data.short_tokens: 384 must be smaller than data.long_tokens (384); allowed: short_tokens < long_tokens'),
    ('backbones.0', {'name': 'x', 'model': '/no/such/model'},
     "backbones[0].model: local path '/no/such/model' does not exist; allowed: an existing model folder or a hub id like Qwen/Qwen2.5-7B-Instruct"),
]


def test_valid_presets_pass():
    validate_config(_merged(), ROOT)
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(paper, ROOT)


@pytest.mark.parametrize("key,value,message", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_invalid_value_gives_one_line_naming_the_key_and_what_is_allowed(key, value, message):
    cfg = _set(copy.deepcopy(_merged()), key, value)
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, ROOT)
    assert str(e.value) == f"config error: {message}"
    assert "\n" not in message and message.startswith(key.split(".")[0])
    assert any(hint in message for hint in ("allowed", "required", "did you mean", "moved to", "shorten"))


def test_run_table_lambda_paths():
    cfg = _merged()
    cfg["train"]["lambdas"]["solo_orpo"] = [1.0, 0.5, 2.0]
    runs = run_table(cfg)
    assert runs["solo_orpo"].lam == 1.0
    assert runs["solo_orpo_lam0.5"].lam == 0.5 and runs["solo_orpo_lam2.0"].lam == 2.0
    assert "solo_orpo_lam1.0" not in runs
    assert runs["base"].method == "base"


def test_snakemake_prints_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling:\n  temperature: 0\n")
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "all", "--configfile",
                          "config/tiny.yaml", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("config error")]
    assert lines == ["config error: sampling.temperature: 0 is not valid; allowed: number > 0 and <= 2"], out.stderr[-2000:]


# ----------------------------------------------------------------------------- the message helpers
def test_allowed_spells_every_constraint():
    from solopo.config import _allowed

    assert _allowed({"enum": ["a", 1], "type": "string"}) == "one of a, 1"
    assert _allowed({"type": ["integer", "null"], "exclusiveMinimum": 0, "maximum": 5}) == "integer or null > 0 and <= 5"
    assert _allowed({"type": "number", "minimum": 0, "exclusiveMaximum": 1}) == "number >= 0 and < 1"
    assert _allowed({"type": "array", "minItems": 2}) == "array at least 2 item(s)"
    assert _allowed({"type": "string", "pattern": "^x$"}) == "string matching ^x$"
    assert _allowed({"type": "object", "propertyNames": {"enum": ["a", "b"]}}) == "object keys among a, b"
    assert _allowed({"propertyNames": {"pattern": "x"}}) == "see src/solopo/schemas/config.schema.yaml"


def test_key_paths():
    from solopo.config import _key

    assert _key([]) == "<top level>"
    assert _key(["backbones", 0, "model"]) == "backbones[0].model"
    assert _key([0, "a"]) == "[0].a"


def test_integers_become_floats_exactly_where_the_schema_says_number():
    import json

    from solopo.config import _coerce_numbers

    num = {"type": "number"}
    schema = {"$defs": {"n": num}, "type": "object", "properties": {
        "a": {"$ref": "#/$defs/n"}, "b": {"type": "integer"}, "c": {"type": "array", "items": num},
        "d": {"type": ["number", "null"]}, "e": {"type": ["integer", "number"]},
        "f": {"type": "object", "additionalProperties": {"type": "array", "items": num}},
        "g": {"type": "object", "properties": {"h": {"$ref": "#/$defs/n"}}}, "flag": num,
        "m": {"type": "array", "items": {"type": "array", "items": num}}}}
    node = {"a": 2, "b": 3, "c": [1, 2.5], "d": 4, "e": 5, "f": {"x": [1]}, "g": {"h": 7}, "flag": True,
            "other": 1, "m": [[1, 2]]}
    _coerce_numbers(node, schema)
    assert json.dumps(node) == json.dumps({"a": 2.0, "b": 3, "c": [1.0, 2.5], "d": 4.0, "e": 5, "f": {"x": [1.0]},
                                           "g": {"h": 7.0}, "flag": True, "other": 1, "m": [[1.0, 2.0]]})
    cfg = _merged()
    cfg["sampling"]["temperature"] = 2
    validate_config(cfg, ROOT)
    assert isinstance(cfg["sampling"]["temperature"], float) and isinstance(cfg["sampling"]["n"], int)


def test_non_finite_numbers_are_found_at_any_depth():
    from solopo.config import _non_finite

    assert _non_finite({"a": [1.0, {"b": float("-inf")}]}) == ("a", 1, "b")
    assert _non_finite({"a": [1.0, 2], "b": "nan"}) is None


def test_semantic_checks_the_schema_cannot_express():
    from solopo.config import _semantic_errors

    cfg = _merged()
    assert _semantic_errors(cfg) is None
    bad = copy.deepcopy(cfg)
    bad["eval"]["ruler"]["num_samples"] = 0
    assert _semantic_errors(bad) == "eval.ruler.num_samples: 0 gives no evaluation items; allowed: an integer >= 1"
    bad = copy.deepcopy(cfg)
    bad["eval"]["ruler"]["lengths"] = []
    assert _semantic_errors(bad) == "eval.ruler.lengths: [] gives no evaluation items; allowed: a non-empty list"
    ok = copy.deepcopy(cfg)
    ok["eval"]["ruler"]["num_samples"] = None  # None: the benchmark's own default
    assert _semantic_errors(ok) is None
    edge = copy.deepcopy(cfg)  # exactly at the limits: allowed
    edge["tiny_model"]["max_positions"] = edge["data"]["long_tokens"] + edge["sampling"]["max_new_tokens"]
    edge["train"]["optim"]["max_length"] = edge["tiny_model"]["max_positions"]
    assert _semantic_errors(edge) is None
    edge["tiny_model"]["max_positions"] -= 1
    assert _semantic_errors(edge).startswith("data.long_tokens + sampling.max_new_tokens: ")


def test_local_and_hub_models_and_local_data(tmp_path):
    cfg = _merged()
    cfg["backbones"][0] = {"name": "mine", "model": "results/models/none"}
    with pytest.raises(ConfigError, match=r"^config error: backbones\[0\]\.model: local path 'results/models/none' "):
        validate_config(cfg, ROOT)
    cfg["backbones"][0] = {"name": "qwen", "model": "Qwen/Qwen2.5-7B-Instruct", "context_window": 1024}
    validate_config(cfg, ROOT)  # a hub id is not checked on disk
    local = copy.deepcopy(_merged())
    local["data"]["source"] = "local"
    local["data"]["musique"] = {"train_file": str(tmp_path / "train.jsonl")}
    with pytest.raises(ConfigError, match=r"^config error: data\.musique\.train_file: '.*train\.jsonl' is not an existing"):
        validate_config(local, ROOT)
    (tmp_path / "train.jsonl").write_text("")
    validate_config(local, ROOT)


def test_run_table_names_runs_per_backbone():
    cfg = _merged()
    cfg["train"]["methods"] = ["sft_short", "solo_orpo"]
    cfg["train"]["lambdas"] = {"solo_orpo": [1.0, 0.3]}
    cfg["backbones"].append({"name": "other", "model": "Qwen/Qwen2.5-7B-Instruct", "methods": ["solo_orpo"],
                             "lambdas": {"solo_orpo": [2.0]}})
    runs = run_table(cfg)
    assert list(runs) == ["base", "sft_short", "solo_orpo", "solo_orpo_lam0.3", "other__base", "other__solo_orpo"]
    assert runs["other__solo_orpo"].lam == 2.0 and runs["other__solo_orpo"].backbone == "other"
    assert runs["solo_orpo_lam0.3"].lam == 0.3 and runs["sft_short"].lam is None
    cfg["eval"]["runs_include_base"] = False
    assert "base" not in run_table(cfg) and "other__base" not in run_table(cfg)
    cfg["backbones"][1]["lambdas"] = {"solo_orpo": [2.0, 0.5, 0.50000001]}
    with pytest.raises(ConfigError) as e:
        run_table(cfg)
    assert str(e.value) == ("config error: backbones[1].lambdas.solo_orpo: 0.50000001 and 0.5 both give run "
                            "other__solo_orpo_lam0.5 (backbone other); allowed: distinct values (at 6 significant digits)")


def test_schema_is_parsed_once_per_file_version_and_returned_as_a_copy(tmp_path, monkeypatch):
    import os

    from solopo import config as C

    C._schema()["properties"]["scribble"] = 1  # a caller changing its copy does not change the next one
    assert "scribble" not in C._schema()["properties"]
    path = tmp_path / "schema.yaml"
    monkeypatch.setattr(C, "SCHEMA_PATH", path)
    path.write_text("a: 1\n")
    assert C._schema() == {"a": 1}
    stamp = path.stat().st_mtime_ns
    path.write_text("a: 2\n")  # same size, new time
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert C._schema() == {"a": 2}
    path.write_text("a: 30\n")  # new size, same time
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert C._schema() == {"a": 30}


def test_unknown_keys_are_reported_first_alphabetically_and_before_what_they_make_missing():
    from solopo.config import _schema_error

    cfg = _merged()
    cfg["sed"] = cfg.pop("seed")  # misspelt: an unknown key and a missing one at the same level
    assert _schema_error(cfg) == "sed: unknown key 'sed'; did you mean 'seed'?"
    cfg = _merged()
    cfg["sampling"].update({"zz": 1, 5: 2})  # YAML keys can be ints: sorted as text, "5" < "zz"
    assert _schema_error(cfg).startswith("sampling.5: unknown key '5'; allowed keys: ")
    cfg = _merged()
    cfg["sampling"]["temperature"] = 0
    cfg["pairs"]["num_pairs"] = 0  # two errors at one depth: the first by key path, whatever the schema's order
    assert _schema_error(cfg) == "pairs.num_pairs: 0 is not valid; allowed: integer >= 1"


def test_unknown_key_under_a_schema_without_properties():
    import jsonschema

    from solopo.config import _unknown_key

    e = next(jsonschema.Draft202012Validator({"type": "object", "additionalProperties": False}).iter_errors({"x": 1}))
    assert _unknown_key(e) == "x: unknown key 'x'; allowed keys: "


def test_number_items_by_reference_are_coerced():
    import json

    from solopo.config import _coerce_numbers

    schema = {"$defs": {"n": {"type": "number"}, "obj": {"type": "object", "properties": {"v": {"type": "number"}}}},
              "type": "object", "properties": {"xs": {"type": "array", "items": {"$ref": "#/$defs/n"}},
                                               "os": {"type": "array", "items": {"$ref": "#/$defs/obj"}},
                                               "top": {"$ref": "#/$defs/obj"}, "free": {"additionalProperties": True},
                                               "bare": {"type": "array"}}}  # a list without an items schema
    node = {"xs": [1, 2], "os": [{"v": 3}], "top": {"v": 4}, "free": {"a": 5}, "bare": [1, 2]}
    _coerce_numbers(node, schema)
    assert json.dumps(node) == json.dumps({"xs": [1.0, 2.0], "os": [{"v": 3.0}], "top": {"v": 4.0}, "free": {"a": 5},
                                           "bare": [1, 2]})
    ref_root = {"$defs": {"obj": {"type": "object", "properties": {"v": {"type": "number"}}}}, "$ref": "#/$defs/obj"}
    node = {"v": 6}
    _coerce_numbers(node, ref_root)
    assert json.dumps(node) == '{"v": 6.0}'


@pytest.mark.parametrize("bench,key,value", [
    ("longbench_v1", "fixture_items", 0), ("niah_plus", "samples_per_cell", 0), ("leaderboard", "limit", 0),
    ("ruler", "sets", []), ("longbench_v1", "datasets", []), ("leaderboard", "tasks", []),
    ("niah_plus", "single_depths", []), ("ruler", "num_samples", 2.5)])
def test_semantic_check_of_every_item_count_and_list(bench, key, value):
    from solopo.config import _semantic_errors

    cfg = _merged()
    cfg["eval"].setdefault(bench, {})[key] = value
    what = "an integer >= 1" if not isinstance(value, list) else "a non-empty list"
    assert _semantic_errors(cfg) == f"eval.{bench}.{key}: {value!r} gives no evaluation items; allowed: {what}"


def test_semantic_defaults_when_keys_are_absent():
    from solopo.config import _semantic_errors

    cfg = _merged()
    del cfg["tiny_model"]["max_positions"]  # the tiny model's default window: 1024
    cfg["data"]["long_tokens"] = 1024 - cfg["sampling"]["max_new_tokens"] + 1
    assert _semantic_errors(cfg) == ("data.long_tokens + sampling.max_new_tokens: 1025 is beyond the tiny backbone's "
                                     "position range (tiny_model.max_positions 1024); allowed: <= 1024")
    cfg = _merged()
    del cfg["train"]["optim"]["max_length"]  # no training cap: nothing to check
    del cfg["eval"]["benchmarks"]
    assert _semantic_errors(cfg) is None


def test_relative_model_paths_are_resolved_from_the_working_directory(monkeypatch):
    cfg = _merged()
    cfg["backbones"][0] = {"name": "here", "model": "./config", "context_window": 1024}  # a folder of this repo
    monkeypatch.chdir(ROOT)
    validate_config(cfg)  # root defaults to the working directory


def test_run_table_defaults_and_whole_runs():
    from solopo.config import Run

    cfg = _merged()
    cfg["train"]["methods"] = ["sft_short", "solo_orpo"]
    del cfg["train"]["lambdas"]
    cfg["eval"].pop("runs_include_base", None)
    runs = run_table(cfg)
    assert runs == {"base": Run("base", "tiny", "base"), "sft_short": Run("sft_short", "tiny", "sft_short"),
                    "solo_orpo": Run("solo_orpo", "tiny", "solo_orpo", 1.0)}
    cfg["train"]["lambdas"] = {"solo_orpo": [1.0, 0.25, 1e-4, 2.0]}
    assert list(run_table(cfg))[3:] == ["solo_orpo_lam0.25", "solo_orpo_lam0.0001", "solo_orpo_lam2.0"]
    assert run_table(cfg)["solo_orpo_lam0.25"] == Run("solo_orpo_lam0.25", "tiny", "solo_orpo", 0.25)
