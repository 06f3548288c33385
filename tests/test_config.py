"""Invalid configs are rejected before any job runs, with one line naming the key."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from solopo.config import ConfigError, run_table, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _merged():
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    tiny = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    return merge(base, tiny)


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
     'sampling.temperature: 0 is not valid; allowed: number > 0'),
    ('sampling.temperature', -0.5,
     'sampling.temperature: -0.5 is not valid; allowed: number > 0'),
    ('sampling.n', 1,
     'sampling.n: 1 is not valid; allowed: integer >= 2'),
    ('sampling.n', '32',
     "sampling.n: '32' is not valid; allowed: integer >= 2"),
    ('sampling.backend', 'tgi',
     "sampling.backend: 'tgi' is not valid; allowed: one of hf, vllm"),
    ('train.methods', ['solo_orpo', 'magic_po'],
     "train.methods[1]: 'magic_po' is not valid; allowed: one of sft_short, sft_long, sft_expand, dpo_short, dpo_long, dpo_expand, simpo_short, simpo_long, simpo_expand, orpo_short, orpo_long, orpo_expand, solo_dpo, solo_simpo, solo_orpo, solo_dpo_both, solo_simpo_both, solo_orpo_both, solo_kl_dpo, solo_kl_simpo, solo_kl_orpo, longpo"),
    ('train.lambdas.solo_orpo', [-1.0],
     'train.lambdas.solo_orpo[0]: -1.0 is not valid; allowed: number >= 0'),
    ('train.lambdas.solo_orpo', [],
     'train.lambdas.solo_orpo: [] is not valid; allowed: array at least 1 item(s)'),
    ('train.lambdas.solo_orpo', ['big'],
     "train.lambdas.solo_orpo[0]: 'big' is not valid; allowed: number >= 0"),
    ('train.lambdas.dpo_short', [1.0],
     "train.lambdas: 'dpo_short' is not valid; allowed: one of solo_dpo, solo_simpo, solo_orpo, solo_dpo_both, solo_simpo_both, solo_orpo_both, solo_kl_dpo, solo_kl_simpo, solo_kl_orpo"),
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
     "backbones[0].build: 'gpt' is not valid; allowed: one of tiny_model"),
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
    ('train.zzz', 1,
     "train.zzz: unknown key 'zzz'; allowed keys: methods, lambdas, loss, optim, longpo, deepspeed, report_to, collective_timeout_s, select_checkpoint"),
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
    assert any(hint in message for hint in ("allowed", "required", "did you mean", "moved to"))


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
    assert lines == ["config error: sampling.temperature: 0 is not valid; allowed: number > 0"], out.stderr[-2000:]
