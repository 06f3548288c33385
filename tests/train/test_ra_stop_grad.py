"""SoLo-RA's stop-gradient switch (`LossConfig.ra_stop_grad_short`) and the RA mechanism it logs.

Every expected gradient is written out by hand with the math module, from the closed forms
d|d_i|/d log pi(y_i|x) = sign(d_i) * dr/d avg * d avg/d log pi = sign(d_i) * r'(avg_i) / |y_i|, over a batch
of B = 2, for the three reward families; the loss code is only differentiated, never re-used.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from solopo.train.losses import (
    LOSSES,
    METHODS,
    LossConfig,
    PolicyOutputs,
    SeqLogps,
    get_loss,
)

# x_short is the more confident side on example 0 (d_0 > 0), the less confident one on example 1 (d_1 < 0)
SHORT = [-0.3, -2.0]  # summed log-probs of y_w on x_short; avg = -0.1, -0.5
LONG = [-3.0, -1.2]  # of y_w on x_long; avg = -1.0, -0.3
N = [3, 4]  # |y_w|
SIGN = [1.0, -1.0]  # sign(r(x_s, y_w) - r(x_l, y_w)): every reward grows with avg
BETA, ALPHA = 0.1, 0.7
CFG = LossConfig(beta=BETA, gamma=0.5, orpo_lambda=0.1, alpha=ALPHA)


def T(xs) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64, requires_grad=True)


def outputs() -> PolicyOutputs:
    n, n_rej = torch.tensor(N), torch.tensor([2, 5])
    return PolicyOutputs(chosen=SeqLogps(T(SHORT), n), rejected=SeqLogps(T([-1.5, -4.0]), n_rej),
                         long_chosen=SeqLogps(T(LONG), n), long_rejected=SeqLogps(T([-2.5, -3.0]), n_rej),
                         ref_chosen=torch.tensor([-0.8, -2.5], dtype=torch.float64),
                         ref_rejected=torch.tensor([-1.0, -4.5], dtype=torch.float64))


def slope(family: str, avg: float, n: int) -> float:
    """dr/d avg by hand: DPO r = beta * n * avg, SimPO r = beta * avg, ORPO r = avg - log(1 - e^avg)."""
    return {"dpo": BETA * n, "simpo": BETA, "orpo": 1.0 / (1.0 - math.exp(avg))}[family]


def ra_grad(family: str, logps: list[float], side: float) -> list[float]:
    """d RA / d log pi(y_i|x) of one side (side = +1 short, -1 long): side * sign_i * r'(avg_i) / |y_i| / B."""
    return [side * s * slope(family, lp / n, n) / n / len(N) for lp, n, s in zip(logps, N, SIGN)]


def grads(name: str, cfg: LossConfig) -> tuple[PolicyOutputs, torch.Tensor, dict]:
    out = outputs()
    loss, metrics = get_loss(name)(out, cfg)
    loss.backward()
    return out, loss, metrics


@pytest.mark.parametrize("family", ["dpo", "simpo", "orpo"])
@pytest.mark.parametrize("stop", [False, True])
def test_ra_gradient_per_side_equals_the_closed_form(family, stop):
    """Long side: alpha * the closed form, either way. Short side: the RA adds alpha * the closed form to
    the PO gradient, or nothing with the switch on (r(x_s, y) is then a detached target)."""
    cfg = replace(CFG, ra_stop_grad_short=stop)
    out, _, _ = grads(f"solo_{family}", cfg)
    po_out, _, _ = grads(family, cfg)  # the vanilla loss on x_short: the PO part of the short gradient
    want_long = [ALPHA * g for g in ra_grad(family, LONG, -1.0)]
    want_short = [0.0, 0.0] if stop else [ALPHA * g for g in ra_grad(family, SHORT, +1.0)]
    assert out.long_chosen.logps.grad.tolist() == pytest.approx(want_long, rel=1e-12)
    ra_short = (out.chosen.logps.grad - po_out.chosen.logps.grad).tolist()
    assert ra_short == pytest.approx(want_short, rel=1e-12, abs=1e-15)
    # ORPO's slope is 10.5 at avg -0.1 and 1.6 at -1: off, the confident short side is pushed 6.6x harder
    if family == "orpo" and not stop:
        assert abs(ra_short[0]) / abs(want_long[0]) == pytest.approx(
            (1 - math.exp(-1.0)) / (1 - math.exp(-0.1)), rel=1e-12)


@pytest.mark.parametrize("family", ["dpo", "simpo", "orpo"])
def test_stop_grad_also_detaches_the_short_side_of_the_rejected_ra(family):
    on, _, m_on = grads(f"solo_{family}_both", replace(CFG, ra_stop_grad_short=True))
    off, _, m_off = grads(f"solo_{family}_both", CFG)
    po, _, _ = grads(family, CFG)
    torch.testing.assert_close(on.rejected.logps.grad, po.rejected.logps.grad, rtol=0, atol=1e-15)
    assert (off.rejected.logps.grad != po.rejected.logps.grad).all()
    torch.testing.assert_close(on.long_rejected.logps.grad, off.long_rejected.logps.grad, rtol=1e-12, atol=0)
    assert m_on["ra_term"].item() == m_off["ra_term"].item()  # the value is the same; only the gradient changes


@pytest.mark.parametrize("family", ["dpo", "simpo", "orpo"])
@pytest.mark.parametrize("stop", [False, True])
def test_logged_ra_gradient_and_avg_logps_are_the_closed_form(family, stop):
    """`ra_grad/*` = mean_i |d|d_i|/d avg_i| per side (no alpha, no 1/B); `avg_logps/*` = mean_i avg_i."""
    _, _, m = grads(f"solo_{family}", replace(CFG, ra_stop_grad_short=stop))
    short = [slope(family, lp / n, n) for lp, n in zip(SHORT, N)]
    long = [slope(family, lp / n, n) for lp, n in zip(LONG, N)]
    assert m["ra_grad/long_chosen"].item() == pytest.approx(sum(long) / 2, rel=1e-12)
    assert m["ra_grad/short_chosen"].item() == (0.0 if stop else pytest.approx(sum(short) / 2, rel=1e-12))
    assert m["avg_logps/short_chosen"].item() == pytest.approx((-0.1 - 0.5) / 2, rel=1e-12)
    assert m["avg_logps/long_chosen"].item() == pytest.approx((-1.0 - 0.3) / 2, rel=1e-12)
    assert not any(v.requires_grad for v in m.values())


def test_logged_ra_gradient_is_zero_at_a_tie_as_autograd():
    """|d| has gradient 0 at d = 0 (torch's sign): an example whose sides agree is not pushed, nor counted."""
    out = replace(outputs(), long_chosen=SeqLogps(T([SHORT[0], LONG[1]]), torch.tensor(N)))
    loss, m = get_loss("solo_orpo")(out, CFG)
    loss.backward()
    assert out.long_chosen.logps.grad[0].item() == 0.0
    assert m["ra_grad/long_chosen"].item() == pytest.approx(0.5 / (1 - math.exp(-0.3)), rel=1e-12)


def test_lambda_zero_with_stop_grad_is_orpo_short_exactly():
    cfg = replace(CFG, alpha=0.0, ra_stop_grad_short=True)
    solo, solo_loss, m = grads("solo_orpo", cfg)
    orpo, orpo_loss, _ = grads("orpo", cfg)
    assert solo_loss.item() == orpo_loss.item() and m["po_loss"].item() == orpo_loss.item()
    assert torch.equal(solo.chosen.logps.grad, orpo.chosen.logps.grad)
    assert torch.equal(solo.rejected.logps.grad, orpo.rejected.logps.grad)
    assert torch.equal(solo.long_chosen.logps.grad, torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("family", ["dpo", "simpo", "orpo"])
def test_solo_kl_ignores_the_switch(family):
    """The switch is SoLo-RA's: SoLo-KL keeps both sides (its runs do not read the key, solopo.slices.train)."""
    on, _, _ = grads(f"solo_kl_{family}", replace(CFG, ra_stop_grad_short=True))
    off, _, _ = grads(f"solo_kl_{family}", CFG)
    assert torch.equal(on.chosen.logps.grad, off.chosen.logps.grad)


def test_default_is_the_paper_read_literally_and_the_switch_must_be_a_boolean():
    assert LossConfig().ra_stop_grad_short is False
    with pytest.raises(TypeError, match=r"^LossConfig.ra_stop_grad_short must be true or false, got 'false'$"):
        LossConfig(ra_stop_grad_short="false")


def test_exactly_the_solo_ra_runs_read_the_switch():
    """The loss registry (config_keys) and the config slice of a training run agree on which methods read it."""
    from solopo.slices import has_ra_term

    for method, spec in METHODS.items():
        reads = "ra_stop_grad_short" in LOSSES[spec.loss].config_keys
        assert reads == (LOSSES[spec.loss].variant in ("solo", "solo_both")) == has_ra_term(method), method
