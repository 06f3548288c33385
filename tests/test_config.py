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


BAD = [  # (dotted key, bad value, text the error must name)
    ("sampling.temperature", 0, "sampling.temperature"),
    ("sampling.temperature", -0.5, "sampling.temperature"),
    ("sampling.n", 1, "sampling.n"),
    ("sampling.n", "32", "sampling.n"),
    ("sampling.backend", "tgi", "sampling.backend"),
    ("train.methods", ["solo_orpo", "magic_po"], "train.methods[1]"),
    ("train.lambdas.solo_orpo", [-1.0], "train.lambdas.solo_orpo[0]"),
    ("train.lambdas.solo_orpo", [], "train.lambdas.solo_orpo"),
    ("train.lambdas.solo_orpo", ["big"], "train.lambdas.solo_orpo[0]"),
    ("train.lambdas.dpo_short", [1.0], "train.lambdas"),
    ("data.short_tokens", 400, "data.short_tokens"),
    ("data.long_tokens", "8K", "data.long_tokens"),
    ("data.source", "s3", "data.source"),
    ("eval.benchmarks", ["ruler", "mmlu"], "eval.benchmarks[1]"),
    ("eval.benchmarks", [], "eval.benchmarks"),
    ("eval.backend", "tensorrt", "eval.backend"),
    ("backbones.0", {"name": "tiny", "model": "./no/such/model"}, "backbones[0].model"),
    ("backbones.0.build", "gpt", "backbones[0].build"),
    ("backbones.0.trust_remote_code", "yes", "backbones[0].trust_remote_code"),
    ("backbones.0.name", "Tiny Model", "backbones[0].name"),
    ("seed", -1, "seed"),
    ("seed", KeyError, "seed"),
    ("train.optim.learning_rate", 0, "train.optim.learning_rate"),
    ("train.optim.batch_size", 6, "train.optim.batch_size"),
    ("train.deepspeed", "zero4", "train.deepspeed"),
    ("pairs.num_pairs", 0, "pairs.num_pairs"),
    ("preset", "huge", "preset"),
]


def test_valid_presets_pass():
    validate_config(_merged(), ROOT)
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(paper, ROOT)


@pytest.mark.parametrize("key,value,named", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_invalid_value_gives_one_line_naming_the_key(key, value, named):
    cfg = _set(copy.deepcopy(_merged()), key, value)
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, ROOT)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("config error: ")
    assert named in msg, msg
    assert "allowed" in msg or "required" in msg


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
