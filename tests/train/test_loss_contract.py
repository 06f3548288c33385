"""The losses' logged keys, defaults and messages (written for the mutants that survived test_losses.py,
docs/mutation.md): the trainer's logs and the e2e test read `ra_term`, `po_loss`, `rewards/*` by name."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from solopo.train.losses import (LOSSES, METHODS, LossConfig, PolicyOutputs, SeqLogps, get_loss, get_method,
                                 sigmoid_pref_loss, solo_loss)


def _full(tie: bool = False) -> PolicyOutputs:
    s = lambda v: SeqLogps(torch.tensor(v), torch.tensor([3, 4]))  # noqa: E731
    rej = [-5.0, -6.0] if tie else [-7.0, -9.0]
    return PolicyOutputs(chosen=s([-5.0, -6.0]), rejected=s(rej), long_chosen=s([-6.5, -8.0]),
                         long_rejected=s([-7.5, -9.5]), ref_chosen=torch.tensor([-5.5, -6.0]),
                         ref_rejected=torch.tensor([-5.5, -6.0]) if tie else torch.tensor([-7.0, -8.0]),
                         long_chosen_full_nll=torch.tensor([2.0, 2.5]))


def _expected_keys(name: str) -> set[str]:
    spec = get_loss(name)
    rewards = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}
    logps = {f"logps/{n}" for n in ("chosen", "rejected", "long_chosen", "long_rejected")}  # every field given
    if name == "sft":
        return {"loss", "nll"} | logps
    keys = {"loss", "po_loss"} | rewards | logps | ({"nll", "or_loss"} if spec.family == "orpo" else set())
    if spec.variant == "solo":
        keys |= {"ra_term", "ra_term/chosen", "ra_rewards/short_chosen", "ra_rewards/long_chosen"}
    if spec.variant == "solo_both":
        keys |= {"ra_term", "ra_term/chosen", "ra_term/rejected", "ra_rewards/short_chosen", "ra_rewards/long_chosen"}
    if spec.variant == "solo_kl":
        keys |= {"ra_term"}
    if name == "longpo":
        keys = {"loss", "po_loss", "nll"} | rewards | logps
    return keys


@pytest.mark.parametrize("name", list(LOSSES))
def test_logged_keys_and_po_loss(name):
    spec = get_loss(name)
    loss, metrics = spec.fn(_full(), LossConfig(alpha=0.5))
    assert set(metrics) == _expected_keys(name)
    assert float(metrics["loss"]) == pytest.approx(float(loss))
    if spec.variant in ("solo", "solo_both", "solo_kl"):
        vanilla, _ = get_loss(spec.family).fn(_full(), LossConfig(alpha=0.5))
        assert float(metrics["po_loss"]) == pytest.approx(float(vanilla))
        assert float(loss) == pytest.approx(float(vanilla) + 0.5 * float(metrics["ra_term"]))


@pytest.mark.parametrize("name", [n for n in LOSSES if n != "sft"])
def test_reward_accuracy_counts_ties_as_wrong(name):
    _, metrics = get_loss(name).fn(_full(tie=True), LossConfig())
    if get_loss(name).family in ("dpo", "longpo"):
        assert float(metrics["rewards/accuracies"]) == 0.0 or name == "longpo"
    else:
        assert float(metrics["rewards/accuracies"]) == 0.0


def test_longpo_reward_metrics_are_beta_times_log_ratios():
    out = _full()
    _, m = get_loss("longpo").fn(out, LossConfig(longpo_beta=0.2))
    assert float(m["rewards/chosen"]) == pytest.approx(0.2 * float((out.long_chosen.logps - out.ref_chosen).mean()))
    assert float(m["rewards/rejected"]) == pytest.approx(0.2 * float((out.long_rejected.logps - out.ref_rejected).mean()))


@pytest.mark.parametrize("name", list(LOSSES))
def test_missing_fields_message_names_the_loss_and_fields(name):
    with pytest.raises(ValueError) as e:
        get_loss(name).fn(PolicyOutputs(), LossConfig())
    m = re.fullmatch(r"loss '([a-z_]+)' needs PolicyOutputs fields ([a-z_]+(?:, [a-z_]+)*), which are None", str(e.value))
    assert m and m.group(1) == name, str(e.value)
    assert set(m.group(2).split(", ")) <= set(get_loss(name).needs)


def test_defaults_and_unknown_names():
    z = torch.tensor([0.3, -1.2])
    torch.testing.assert_close(sigmoid_pref_loss(z), -F.logsigmoid(z))
    _, m = solo_loss(_full(), LossConfig(), family="orpo")  # default: chosen-only
    assert "ra_term/rejected" not in m
    with pytest.raises(ValueError, match=r"^unknown PO family 'kto': allowed values are dpo, orpo, simpo$"):
        solo_loss(_full(), LossConfig(), family="kto")
    with pytest.raises(ValueError, match=r"^unknown PO family 'kto': allowed values are dpo, simpo, orpo$"):
        LOSSES["solo_kl_dpo"].fn.func(_full(), LossConfig(), family="kto")
    with pytest.raises(ValueError) as e:
        get_loss("nope")
    assert str(e.value) == f"unknown loss 'nope': allowed values are {', '.join(LOSSES)}"
    with pytest.raises(ValueError) as e:
        get_method("nope")
    assert str(e.value) == f"unknown method 'nope': allowed values are {', '.join(METHODS)}"
    with pytest.raises(ValueError, match=r"^LossConfig.alpha must be >= 0, got -1.0$"):
        LossConfig(alpha=-1.0)
