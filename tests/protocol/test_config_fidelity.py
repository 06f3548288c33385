"""Config fidelity: the LongPO block's release defaults; unknown config keys rejected."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from solopo import pipeline
from solopo.config import ConfigError, validate_config
from solopo.train.setup import TrainConfig, make_optimizer
from tests.test_config import _merged

ROOT = Path(__file__).resolve().parents[2]


def _paper() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


# ----------------------------------------------------------------------------- item 9
def test_longpo_run_uses_the_release_defaults():
    cfg = _paper()
    tc, lc = pipeline.train_config(cfg, "longpo"), pipeline.loss_config(cfg, "longpo", None)
    assert (tc.optimizer, tc.learning_rate, tc.warmup_ratio, tc.weight_decay) == ("rmsprop", 5e-7, 0.1, 0.0)
    assert (lc.longpo_beta, lc.longpo_lambda) == (0.01, 0.01)
    assert tc.batch_size == 64  # SoLoPO D.1: LongPO defaults except the batch size
    # every other method keeps AdamW and the PO learning rate
    assert pipeline.train_config(cfg, "dpo_short").optimizer == "adamw"
    assert pipeline.train_config(cfg, "dpo_short").learning_rate == cfg["train"]["optim"]["learning_rate"]
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], tc)
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["lr"] == 5e-7
    assert "DAMO-NLP-SG/LongPO" in (ROOT / "config/config.yaml").read_text()  # the source is cited


def test_unknown_optimizer_is_one_clear_line():
    with pytest.raises(ValueError, match="allowed values are adamw, rmsprop"):
        make_optimizer([torch.nn.Parameter(torch.zeros(1))], TrainConfig(optimizer="sgd"))


# ----------------------------------------------------------------------------- item 12
@pytest.mark.parametrize("path,typo,want", [
    (("sampling",), "temprature", "sampling.temprature: unknown key 'temprature'; did you mean 'temperature'?"),
    ((), "samplng", "samplng: unknown key 'samplng'; did you mean 'sampling'?"),
    (("eval", "ruler"), "lenghts", "eval.ruler.lenghts: unknown key 'lenghts'; did you mean 'lengths'?"),
    (("eval", "niah_plus"), "promt", "eval.niah_plus.promt: unknown key 'promt'; did you mean 'prompt'?"),
    (("train", "optim"), "learning_rat", "did you mean 'learning_rate'?"),
    (("train", "longpo"), "lamda", "train.longpo.lamda: unknown key 'lamda'; did you mean 'lambda'?"),
    (("backbones", 0), "contxt_window", "backbones[0].contxt_window: unknown key 'contxt_window'; did you mean"),
    (("data", "toy"), "train_question", "did you mean 'train_questions'?"),
    (("eval", "leaderboard"), "ifeval_metrc", "did you mean 'ifeval_metric'?"),
    (("bench", "efficiency"), "repeat", "did you mean 'repeats'?"),
    (("tiny_model",), "stpes", "did you mean 'steps'?"),
])
def test_misspelt_key_at_any_level_is_rejected_naming_the_closest_key(path, typo, want):
    cfg = _merged()
    d = cfg
    for k in path:
        d = d[k]
    if path == ():
        cfg[typo] = cfg.pop("sampling")
    else:
        d[typo] = 1
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    msg = str(e.value)
    assert want in msg and "\n" not in msg


def test_moved_longpo_key_names_its_new_place():
    cfg = _merged()
    cfg["train"]["loss"]["longpo_beta"] = 0.1
    with pytest.raises(ConfigError, match=r"train.loss.longpo_beta: unknown key 'longpo_beta'; it moved to train.longpo.beta"):
        validate_config(cfg)


def test_presets_are_valid():
    validate_config(_paper())
    validate_config(_merged())


def test_a_suite_beyond_every_window_of_the_backbone_is_a_config_error():
    cfg = _merged()
    cfg["eval"]["niah_plus"]["lengths"] = [2048]  # tiny backbone: context_window 1024, no long_context
    with pytest.raises(ConfigError, match=r"eval.niah_plus: inputs need up to 2344 tokens .* backbone tiny's "
                                          r"context_window 1024, and it has no long_context setting"):
        validate_config(cfg)

