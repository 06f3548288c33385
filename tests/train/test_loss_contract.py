"""The losses' logged keys, defaults and messages (written for the mutants that survived test_losses.py,
docs/mutation.md): the trainer's logs and the e2e test read `ra_term`, `po_loss`, `rewards/*` by name."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from solopo.train.losses import (
    LOSSES,
    METHODS,
    LossConfig,
    PolicyOutputs,
    SeqLogps,
    get_loss,
    get_method,
    sigmoid_pref_loss,
    solo_loss,
)


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
    ra = {"ra_term", "ra_term/chosen", "ra_rewards/short_chosen", "ra_rewards/long_chosen", "ra_grad/short_chosen",
          "ra_grad/long_chosen", "avg_logps/short_chosen", "avg_logps/long_chosen"}  # the RA mechanism, per step
    if spec.variant == "solo":
        keys |= ra
    if spec.variant == "solo_both":
        keys |= ra | {"ra_term/rejected"}
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


def _spec_fields(spec) -> tuple:
    """A LossSpec's contents, comparable across builds (a `partial` compares by identity)."""
    fn = (spec.fn.func, spec.fn.keywords) if hasattr(spec.fn, "func") else spec.fn
    return spec.name, fn, spec.needs, spec.needs_ref, spec.family, spec.variant, spec.config_keys


def test_the_registry_builders_make_the_tables_the_tests_check():
    """LOSSES and METHODS are built once, at import; the tests above check those tables. Building them again
    must give the same tables (names, functions and their family/both arguments, fields, reference,
    family, variant, config keys; every method's loss and dataset), in the same order, so that a change in
    a builder shows in a test run (mutmut switches a mutant on only after the import)."""
    from solopo.train import losses

    rebuilt = losses._build_registry()
    assert list(rebuilt) == list(LOSSES) == sorted(LOSSES)
    assert [_spec_fields(s) for s in rebuilt.values()] == [_spec_fields(s) for s in LOSSES.values()]
    assert losses._build_methods() == METHODS and list(losses._build_methods()) == list(METHODS)
    # the dataset each method trains on, spelled out (pairs.py writes these files)
    assert {m: s.dataset for m, s in METHODS.items()} == {
        **{f"sft_{d}": f"sft_{d}" for d in ("short", "long", "expand")},
        **{f"{f}_{d}": d for f in ("dpo", "simpo", "orpo") for d in ("short", "long", "expand")},
        **{f"solo_{f}{v}": "solo" for f in ("dpo", "simpo", "orpo") for v in ("", "_both", "_sg")},
        **{f"solo_kl_{f}": "solo" for f in ("dpo", "simpo", "orpo")}, "longpo": "solo"}
    assert all(get_loss(s.loss) for s in METHODS.values())


def test_log1mexp_is_accurate_at_both_ends_and_at_the_branch():
    """log(1 - e^x): near 0 the log1p form loses everything (e^x rounds to 1), far below it the log form
    does (1 - e^x rounds to 1); the branch at -ln 2 picks the accurate one (float32, as the trainer)."""
    import math

    from solopo.train.losses import log1mexp

    for x in (-1e-7, -1e-3, -0.5, -math.log(2), -0.9, -5.0, -30.0, -60.0):
        want = math.log(-math.expm1(x)) if x > -math.log(2) else math.log1p(-math.exp(x))
        got = float(log1mexp(torch.tensor([x], dtype=torch.float32)))
        assert math.isfinite(got) and got == pytest.approx(want, rel=1e-5, abs=0.0), x


def test_orpo_reward_computes_in_float32_for_half_precision_log_probs():
    """bf16 log-probs (the GPU path) are promoted before the log-odds: the reward is float32, and equals the
    log-odds of the bf16 length-average computed in float32 (near 0, bf16's log(1 - e^x) would be far off)."""
    import math

    from solopo.train.losses import orpo_reward

    logps, counts = torch.tensor([-0.003, -2.5, -40.0]), torch.tensor([3, 5, 8])
    half = orpo_reward(SeqLogps(logps.bfloat16(), counts))
    assert half.dtype == torch.float32
    avg = (logps.bfloat16() / counts.bfloat16()).tolist()
    want = [a - math.log(-math.expm1(a)) for a in avg]
    assert half.tolist() == pytest.approx(want, rel=1e-5)
