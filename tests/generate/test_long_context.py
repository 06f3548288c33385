"""The long-context setting as the override vLLM 0.32 and transformers 5 accept (solopo.generate.long_context).

The exact dicts are pinned: vLLM 0.32 raises `KeyError: 'rope_type'` on the config.yaml form
(`type: yarn`) and keeps the 32,768 window when max_position_embeddings is not scaled; without
`rope_theta` in `rope_parameters` the model's base frequency is lost. `make vllm-check` builds vLLM's
own engine configuration from these overrides (tests/vllm/test_engine_config.py).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from solopo.artifacts import DataError
from solopo.eval.budget import long_context_plan
from solopo.generate.long_context import model_rope_overrides, rope_overrides

ROOT = Path(__file__).resolve().parents[2]
PAPER = yaml.safe_load((ROOT / "config/config.yaml").read_text())
BACKBONES = {b["name"]: b for b in PAPER["backbones"]}

# Qwen/Qwen2.5-7B-Instruct config.json (the rope and window fields, as released: transformers 4.43 export)
QWEN_CONFIG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "max_position_embeddings": 32768,
               "rope_theta": 1000000.0, "sliding_window": 131072, "use_sliding_window": False}
# meta-llama/Llama-3.1-8B-Instruct config.json (rope fields): natively 128K through llama3 rope scaling
LLAMA_CONFIG = {"model_type": "llama", "max_position_embeddings": 131072, "rope_theta": 500000.0,
                "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
QWEN_YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
# The override vLLM 0.32 accepts with max_model_len 131072 (and rope_theta kept); transformers 5 alike.
EXPECTED = {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                                "rope_theta": 1000000.0},
            "max_position_embeddings": 131072}


def test_qwen_yarn_override_is_the_form_vllm_and_transformers_accept():
    assert rope_overrides(QWEN_YARN, QWEN_CONFIG, window=131072) == EXPECTED


def test_a_transformers_5_config_gives_the_same_override():
    """A model saved by training (transformers 5) keeps rope_theta inside rope_parameters."""
    saved = {"max_position_embeddings": 32768, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}}
    assert rope_overrides(QWEN_YARN, saved, window=131072) == EXPECTED


def test_rope_theta_comes_from_the_model_and_rope_type_spelling_is_accepted():
    cfg = {**QWEN_CONFIG, "rope_theta": 250000.0}
    plan = {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32768}
    assert rope_overrides(plan, cfg) == {
        "rope_parameters": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32768,
                            "rope_theta": 250000.0},
        "max_position_embeddings": 65536}


def test_linear_scaling_keeps_the_native_max_position_embeddings():
    """vLLM multiplies the window by `factor` itself for linear/dynamic: scaling it here would double it."""
    out = rope_overrides({"type": "linear", "factor": 2.0}, QWEN_CONFIG, window=65536)
    assert out == {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "original_max_position_embeddings": 32768,
                                       "rope_theta": 1000000.0}}


def test_the_paper_plans_give_the_override_only_where_the_window_is_extended():
    plans = {(b, s): long_context_plan(BACKBONES[b], s, PAPER["eval"][s])
             for b in BACKBONES for s in PAPER["eval"]["benchmarks"] if s != "leaderboard"}
    configs = {"qwen25_7b": QWEN_CONFIG, "llama31_8b": LLAMA_CONFIG}
    got = {k: rope_overrides(p["rope_scaling"], configs[k[0]], window=p["window"]) if p["rope_scaling"] else {}
           for k, p in plans.items()}
    assert {k for k, v in got.items() if v} == {("qwen25_7b", "longbench_v2"), ("qwen25_7b", "niah_plus")}
    assert all(v == EXPECTED for v in got.values() if v)


@pytest.mark.parametrize("cfg, plan, window, message", [
    (LLAMA_CONFIG, QWEN_YARN, None, r"config\.json: the model already has rope scaling 'llama3'"),
    ({**QWEN_CONFIG, "max_position_embeddings": 131072}, QWEN_YARN, None,
     r"config\.json: max_position_embeddings 131072 differs from .*original_max_position_embeddings 32768"),
    (QWEN_CONFIG, QWEN_YARN, 262144, (r"context_window: 262144 is beyond what rope scaling yarn x4 reaches from "
                                      r"32768 \(131072\); allowed: <= 131072")),
    ({"max_position_embeddings": 32768}, QWEN_YARN, None, r"config\.json: no positive rope_theta"),
    (QWEN_CONFIG, {"factor": 4.0}, None, r"rope_scaling: needs one `type`"),
    (QWEN_CONFIG, {"type": "yarn", "factor": 1.0}, None, r"rope_scaling\.factor: 1\.0; allowed: a number > 1"),
])
def test_bad_settings_stop_with_one_line_naming_the_key(cfg, plan, window, message):
    with pytest.raises(ValueError, match=message) as e:
        rope_overrides(plan, cfg, "config.json", window)
    assert "\n" not in str(e.value)


def test_model_folder_overrides(tmp_path):
    assert model_rope_overrides(str(tmp_path), None) == {}
    with pytest.raises(DataError, match=r"config\.json: missing"):
        model_rope_overrides(str(tmp_path), QWEN_YARN)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match=r"config\.json: not a readable JSON file"):
        model_rope_overrides(str(tmp_path), QWEN_YARN)
    (tmp_path / "config.json").write_text(json.dumps(QWEN_CONFIG))
    assert model_rope_overrides(str(tmp_path), QWEN_YARN, 131072) == EXPECTED


# ----------------------------------------------------------------------------- transformers


def _small_qwen2(folder: Path, released_form: bool) -> str:
    """A 1-layer Qwen2 with Qwen2.5-7B's rope (theta 1e6, 32,768 positions); head_dim 16."""
    from tests.eval.helpers import tiny_qwen2, tiny_tokenizer

    tok = tiny_tokenizer(["a small corpus for a small tokenizer"] * 3)
    model = tiny_qwen2(tok, max_position_embeddings=32768, rope_theta=1000000.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if released_form:  # the released config.json: top-level rope_theta, no rope_parameters
        cfg = json.loads((folder / "config.json").read_text())
        cfg.pop("rope_parameters", None)
        (folder / "config.json").write_text(json.dumps({**cfg, "rope_theta": 1000000.0}))
    return str(folder)


@pytest.mark.parametrize("released_form", [True, False])
def test_transformers_builds_yarn_x4_with_theta_1e6(tmp_path, released_form):
    from solopo.generate.hf import load_model_and_tokenizer

    folder = _small_qwen2(tmp_path, released_form)
    plain, _ = load_model_and_tokenizer(folder, "cpu", "float32")
    yarn, tok = load_model_and_tokenizer(folder, "cpu", "float32", rope_scaling=QWEN_YARN, window=131072)
    native, scaled = plain.model.rotary_emb, yarn.model.rotary_emb
    assert (native.rope_type, scaled.rope_type) == ("default", "yarn")
    assert yarn.config.rope_parameters["rope_theta"] == 1000000.0 and yarn.config.max_position_embeddings == 131072
    # YaRN's attention temperature: 0.1 ln(factor) + 1 (transformers' get_mscale)
    assert native.attention_scaling == 1.0 and scaled.attention_scaling == pytest.approx(0.1 * math.log(4.0) + 1)
    # head_dim 16: inv_freq[i] = theta^(-2i/16). The fastest rotation is kept (extrapolated); the
    # slowest (wavelength ~1.1M > 32,768 at theta 1e6; ~20K at the default 10,000) is interpolated by 4
    expected = [1000000.0 ** (-2 * i / 16) for i in range(8)]
    assert native.inv_freq.tolist() == pytest.approx(expected, rel=1e-5)
    assert scaled.inv_freq[0].item() == pytest.approx(1.0, rel=1e-5)
    assert scaled.inv_freq[-1].item() == pytest.approx(expected[-1] / 4, rel=1e-5)
    ids = tok("a small corpus", return_tensors="pt")["input_ids"]
    assert not yarn(ids).logits.isnan().any()
