"""vLLM's own engine configuration from the project's arguments (run by `make vllm-check` inside .venvs/vllm,
the generate env's pins; skipped where vLLM is not installed, i.e. in the normal suite).

Pins the long-context override form vLLM 0.32 accepts (the old `rope_scaling` form fails with vLLM's
KeyError 'rope_type'), and runs scripts/vllm_check.py's checks on every paper plan, including a planted
legacy override that the check must report with vLLM's error.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed; `make vllm-check` runs this file in .venvs/vllm "
                                   "(workflow/envs/generate.yaml's pins)")

ROOT = Path(__file__).resolve().parents[2]
QWEN_YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
# the override tests/generate/test_long_context.py pins (solopo.generate.long_context)
EXPECTED = {"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                                "rope_theta": 1000000.0},
            "max_position_embeddings": 131072}


def _script():
    spec = importlib.util.spec_from_file_location("vllm_check", ROOT / "scripts" / "vllm_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def check():
    return _script()


@pytest.fixture(scope="module")
def models(tmp_path_factory, check):
    """The paper backbones' rehearsal folders: the ones `make vllm-check` built, or built here."""
    given = os.environ.get("SOLOPO_VLLM_CHECK_MODELS")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("vllm_models")
    from solopo.rehearsal import RehearsalError

    try:
        check.build_models(out, check.load_paper_config())
    except RehearsalError as e:
        pytest.skip(f"rehearsal backbones cannot be built here: {e}")
    return out


def _model_config(folder: Path, **kw):
    from vllm.config import ModelConfig

    return ModelConfig(model=str(folder), generation_config="vllm", **kw)


def test_the_legacy_rope_scaling_override_is_rejected_by_vllm(models):
    """The form VLLMBackend passed before: vLLM's own KeyError, after sampling and training had finished."""
    with pytest.raises(KeyError, match="rope_type"):
        _model_config(models / "qwen25_7b", hf_overrides={"rope_scaling": QWEN_YARN}, max_model_len=131072)


def test_yarn_without_a_scaled_window_keeps_32768(models):
    """vLLM 0.32 takes YaRN's max_position_embeddings as already scaled: factor 4 alone does not extend it."""
    legacy = {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
    with pytest.raises(ValueError, match=r"max_model_len \(131072\) is greater than the derived max_model_len"):
        _model_config(models / "qwen25_7b", hf_overrides=legacy, max_model_len=131072)
    assert _model_config(models / "qwen25_7b", hf_overrides=legacy).max_model_len == 32768


def test_the_project_override_gives_131072_with_theta_1e6(models):
    from solopo.generate.vllm import engine_kwargs

    kw = engine_kwargs(str(models / "qwen25_7b"), max_model_len=131072, rope_scaling=QWEN_YARN)
    assert kw["hf_overrides"] == EXPECTED
    mc = _model_config(models / "qwen25_7b", hf_overrides=kw["hf_overrides"], max_model_len=131072)
    assert mc.max_model_len == 131072
    rope = mc.hf_config.rope_parameters
    assert (rope["rope_type"], rope["factor"], rope["rope_theta"]) == ("yarn", 4.0, 1000000.0)
    native = json.loads((models / "qwen25_7b" / "config.json").read_text())
    assert native["max_position_embeddings"] == 32768 and native["rope_theta"] == 1000000.0  # released values


def test_every_paper_plan_passes(check, models, capsys):
    assert check.run_checks(models, check.load_paper_config()) == 0
    lines = [s for s in capsys.readouterr().out.splitlines() if s.startswith(("ok", "FAIL"))]
    # sampling + ruler, LongBench v1/v2, NIAH-Plus for Qwen2.5 and Llama-3.1
    assert len(lines) == 10 and all(s.startswith("ok") for s in lines), lines


def test_the_check_reports_the_legacy_override_with_vllms_error(check, models, monkeypatch):
    """Planted: VLLMBackend's old override. The check must fail on the YaRN plans, naming vLLM's error."""
    monkeypatch.setattr("solopo.generate.vllm.model_rope_overrides",
                        lambda path, rs, window=None: {"rope_scaling": rs} if rs else {})
    plans = {(p["backbone"], p["suite"]): p for p in check.paper_plans(check.load_paper_config())}
    res = check.check_plan(plans[("qwen25_7b", "niah_plus")], str(models / "qwen25_7b"))
    assert res == [("engine configuration", False, res[0][2])]
    assert res[0][2].startswith("vLLM raised KeyError: 'rope_type' at vllm/config/model.py:")
    assert all(ok for _, ok, _ in check.check_plan(plans[("qwen25_7b", "ruler")], str(models / "qwen25_7b")))


def test_the_bos_check_sees_a_second_bos_on_the_text_path(check, models):
    """Llama-3.1's template starts with <|begin_of_text|>: vLLM given text adds another; the token path does not."""
    from vllm.config import ModelConfig
    from vllm.tokenizers.registry import cached_tokenizer_from_config

    from solopo.generate.chat import format_chat
    from solopo.generate.vllm import token_prompts

    tok = cached_tokenizer_from_config(ModelConfig(model=str(models / "llama31_8b"), generation_config="vllm"))
    text = format_chat(tok, check.QUESTION)
    ids = token_prompts(tok, [text])[0]["prompt_token_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok(text, add_special_tokens=True)["input_ids"][:2] == [tok.bos_token_id] * 2


def test_vllm_check_runs_under_the_generate_pins():
    import transformers
    import vllm

    sys.path.insert(0, str(ROOT / "scripts"))
    import envs_check

    pins = envs_check.read_env(ROOT / "workflow" / "envs" / "generate.yaml").versions()
    assert (vllm.__version__, transformers.__version__) == (pins["vllm"], pins["transformers"])
