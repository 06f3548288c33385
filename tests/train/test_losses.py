"""Tests for `solopo.train.losses`: hand-computed values, equality with TRL 1.16, SoLoPO invariants."""
from __future__ import annotations

import math
import os
import types
from collections import defaultdict
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
    get_method,
    list_losses,
    orpo_reward,
    simpo_reward,
    solo_ra_term,
)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# --------------------------------------------------------------------------------------------------
# A small batch (B = 2), as plain Python numbers for the hand computations
# --------------------------------------------------------------------------------------------------

B = dict(
    c=[-4.0, -6.0], c_n=[2, 3],  # chosen on the PO prompt (x_short for SoLo): summed logp, |y_w|
    r=[-5.0, -3.0], r_n=[4, 1],  # rejected on the PO prompt
    lc=[-7.0, -5.5], lr=[-9.0, -2.0],  # long_chosen / long_rejected (same token counts as on x_short)
    rc=[-4.5, -5.0], rr=[-4.0, -4.0],  # reference summed logps
    full_nll=[2.5, 1.5],  # LongPO full-sequence NLL of (x_long, y_w)
)
CFG = LossConfig(beta=0.1, gamma=0.5, orpo_lambda=0.1, alpha=1.0, longpo_lambda=0.01, longpo_beta=0.1)


def T(xs, **kw) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64, **kw)


def outputs(b=B, requires_grad: bool = False) -> PolicyOutputs:
    g = dict(requires_grad=requires_grad)
    n_c, n_r = torch.tensor(b["c_n"]), torch.tensor(b["r_n"])
    return PolicyOutputs(
        chosen=SeqLogps(T(b["c"], **g), n_c),
        rejected=SeqLogps(T(b["r"], **g), n_r),
        long_chosen=SeqLogps(T(b["lc"], **g), n_c),
        long_rejected=SeqLogps(T(b["lr"], **g), n_r),
        ref_chosen=T(b["rc"]),
        ref_rejected=T(b["rr"]),
        long_chosen_full_nll=T(b["full_nll"], **g),
    )


# ---- scalar references, written with the math module only --------------------------------------


def nls(z: float) -> float:
    """-log sigma(z)."""
    return math.log1p(math.exp(-z)) if z >= 0 else -z + math.log1p(math.exp(z))


def mean(xs) -> float:
    return sum(xs) / len(xs)


def log_odds(avg: float) -> float:
    return avg - math.log(1.0 - math.exp(avg))


def ref_po(fam: str, b=B, cfg=CFG) -> float:
    ls = cfg.label_smoothing
    per = []
    for i in range(2):
        aw, al = b["c"][i] / b["c_n"][i], b["r"][i] / b["r_n"][i]
        if fam == "dpo":
            z = cfg.beta * ((b["c"][i] - b["rc"][i]) - (b["r"][i] - b["rr"][i]))
            per.append((1 - ls) * nls(z) + ls * nls(-z))
        elif fam == "simpo":
            z = cfg.beta * aw - cfg.beta * al - cfg.gamma
            per.append((1 - ls) * nls(z) + ls * nls(-z))
        elif fam == "orpo":
            per.append(-aw + cfg.orpo_lambda * nls(log_odds(aw) - log_odds(al)))
    return mean(per)


def ref_reward(fam: str, logp: float, n: int, cfg=CFG) -> float:
    return {"dpo": cfg.beta * logp, "simpo": cfg.beta * logp / n, "orpo": log_odds(logp / n),
            "kl_dpo": logp, "kl_simpo": logp / n, "kl_orpo": logp / n}[fam]


def ref_ra(fam: str, which: str, b=B, cfg=CFG) -> float:
    short, long_, n = (b["c"], b["lc"], b["c_n"]) if which == "chosen" else (b["r"], b["lr"], b["r_n"])
    return mean([abs(ref_reward(fam, short[i], n[i], cfg) - ref_reward(fam, long_[i], n[i], cfg)) for i in range(2)])


def ref_loss(name: str, b=B, cfg=CFG) -> float:
    if name == "sft":
        return -mean([b["c"][i] / b["c_n"][i] for i in range(2)])
    if name == "longpo":
        dpo = mean(
            [nls(cfg.longpo_beta * ((b["lc"][i] - b["lr"][i]) - (b["rc"][i] - b["rr"][i]))) for i in range(2)]
        )
        return mean(b["full_nll"]) + cfg.longpo_lambda * dpo
    if name in ("dpo", "simpo", "orpo"):
        return ref_po(name, b, cfg)
    if name.startswith("solo_kl_"):
        fam = name.removeprefix("solo_kl_")
        return ref_po(fam, b, cfg) + cfg.alpha * ref_ra(f"kl_{fam}", "chosen", b, cfg)
    fam = name.removeprefix("solo_").removesuffix("_both")
    ra = ref_ra(fam, "chosen", b, cfg) + (ref_ra(fam, "rejected", b, cfg) if name.endswith("_both") else 0.0)
    return ref_po(fam, b, cfg) + cfg.alpha * ra


# --------------------------------------------------------------------------------------------------
# 1. Hand-computed values
# --------------------------------------------------------------------------------------------------


def want_dpo() -> float:
    # z = 0.1 * [(-4+4.5) - (-5+4)] = 0.15 ; 0.1 * [(-6+5) - (-3+4)] = -0.2
    return (math.log1p(math.exp(-0.15)) + math.log1p(math.exp(0.2))) / 2


def test_literal_values():
    """A few values worked out on paper."""
    # sft: -mean(-4/2, -6/3) = 2
    assert get_loss("sft")(outputs(), CFG)[0].item() == pytest.approx(2.0, abs=1e-12)
    assert get_loss("dpo")(outputs(), CFG)[0].item() == pytest.approx(want_dpo(), abs=1e-12)
    # simpo: z = 0.1*(-2) - 0.1*(-1.25) - 0.5 = -0.575 ; 0.1*(-2) - 0.1*(-3) - 0.5 = -0.4
    want = (math.log1p(math.exp(0.575)) + math.log1p(math.exp(0.4))) / 2
    assert get_loss("simpo")(outputs(), CFG)[0].item() == pytest.approx(want, abs=1e-12)
    # solo_kl_dpo: dpo + 1.0 * mean(|-4+7|, |-6+5.5|) = dpo + 1.75
    assert get_loss("solo_kl_dpo")(outputs(), CFG)[0].item() == pytest.approx(want_dpo() + 1.75, abs=1e-12)
    # solo_dpo: dpo + 1.0 * mean(0.1*3, 0.1*0.5) = dpo + 0.175
    assert get_loss("solo_dpo")(outputs(), CFG)[0].item() == pytest.approx(want_dpo() + 0.175, abs=1e-12)
    # longpo: z = 0.1*[(-7+9) - (-4.5+4)] = 0.25 ; 0.1*[(-5.5+2) - (-5+4)] = -0.25
    want = 2.0 + 0.01 * (math.log1p(math.exp(-0.25)) + math.log1p(math.exp(0.25))) / 2
    assert get_loss("longpo")(outputs(), CFG)[0].item() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_matches_hand_computation(name):
    loss, metrics = get_loss(name)(outputs(), CFG)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(ref_loss(name), rel=1e-10, abs=1e-12)
    assert metrics["loss"].item() == pytest.approx(loss.item())
    assert all(not v.requires_grad and v.dim() == 0 for v in metrics.values())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_with_other_hyperparameters(name):
    cfg = LossConfig(beta=2.0, gamma=1.3, orpo_lambda=0.7, alpha=3.0, longpo_lambda=0.5, longpo_beta=0.3,
                     label_smoothing=0.2)
    assert get_loss(name)(outputs(), cfg)[0].item() == pytest.approx(ref_loss(name, cfg=cfg), rel=1e-10)


def test_metric_parts():
    _, m = get_loss("solo_orpo_both")(outputs(), CFG)
    assert m["po_loss"].item() == pytest.approx(ref_po("orpo"))
    assert m["nll"].item() == pytest.approx(2.0)
    assert m["ra_term/chosen"].item() == pytest.approx(ref_ra("orpo", "chosen"))
    assert m["ra_term/rejected"].item() == pytest.approx(ref_ra("orpo", "rejected"))
    assert m["ra_term"].item() == pytest.approx(ref_ra("orpo", "chosen") + ref_ra("orpo", "rejected"))
    _, m = get_loss("dpo")(outputs(), CFG)
    assert m["rewards/chosen"].item() == pytest.approx(0.1 * mean([0.5, -1.0]))
    assert m["rewards/rejected"].item() == pytest.approx(0.1 * mean([-1.0, 1.0]))
    assert m["rewards/margins"].item() == pytest.approx(mean([0.15, -0.2]))
    assert m["rewards/accuracies"].item() == pytest.approx(0.5)
    _, m = get_loss("longpo")(outputs(), CFG)
    assert m["nll"].item() == pytest.approx(2.0)
    assert m["rewards/accuracies"].item() == pytest.approx(0.5)


# --------------------------------------------------------------------------------------------------
# 2. Equality with TRL 1.16
# --------------------------------------------------------------------------------------------------


def _batch_f32(seed: int = 0, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    counts_c = torch.randint(1, 50, (n,), generator=g)
    counts_r = torch.randint(1, 50, (n,), generator=g)
    # average log-probs in (-3, -0.01): includes values near 0, where log(1 - exp(x)) needs care
    avg_c = -(torch.rand(n, generator=g) * 3 + 0.01)
    avg_r = -(torch.rand(n, generator=g) * 3 + 0.01)
    chosen = SeqLogps((avg_c * counts_c).float(), counts_c)
    rejected = SeqLogps((avg_r * counts_r).float(), counts_r)
    ref_c = chosen.logps + torch.randn(n, generator=g) * 3
    ref_r = rejected.logps + torch.randn(n, generator=g) * 3
    return PolicyOutputs(chosen=chosen, rejected=rejected, ref_chosen=ref_c, ref_rejected=ref_r)


def _accelerator():
    return types.SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)


def test_dpo_equals_trl_dpotrainer_compute_loss():
    """Runs TRL's own `DPOTrainer._compute_loss` (trl/trainer/dpo_trainer.py, 1.16.0) as an unbound method.

    `self` is a stand-in with the attributes that method reads, the model a stub whose output carries the
    per-token completion log-probs (TRL sums `outputs.log_probs` over the sequence). Each sequence's summed
    log-prob is put on its first completion position, zeros elsewhere. Reference log-probs come precomputed
    (`precompute_ref_logps=True`), so `_compute_loss` reads them from the batch.
    """
    from trl import DPOTrainer

    for beta in (0.1, 0.7):
        out = _batch_f32(seed=1)
        n, L = out.chosen.logps.numel(), 6
        logps = torch.cat([out.chosen.logps, out.rejected.logps])
        per_token = torch.zeros(2 * n, L - 1)
        per_token[:, 0] = logps

        def model(**kwargs):
            return types.SimpleNamespace(
                log_probs=per_token,
                entropy=torch.zeros(2 * n, L - 1),
                mean_logits=torch.zeros(2 * n, L - 1),
                is_top1=torch.zeros(2 * n, L - 1, dtype=torch.bool),
            )

        model.training = True
        stand_in = types.SimpleNamespace(
            model=model, accelerator=_accelerator(), aux_loss_enabled=False, ld_alpha=None,
            precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"], loss_weights=[1.0],
            beta=beta, use_weighting=False, _metrics={"train": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
        )
        completion_mask = torch.zeros(2 * n, L, dtype=torch.long)
        completion_mask[:, 1:] = 1
        inputs = {
            "input_ids": torch.ones(2 * n, L, dtype=torch.long),
            "attention_mask": torch.ones(2 * n, L, dtype=torch.long),
            "completion_mask": completion_mask,
            "ref_chosen_logps": out.ref_chosen,
            "ref_rejected_logps": out.ref_rejected,
        }
        trl_loss = DPOTrainer._compute_loss(stand_in, model, inputs, return_outputs=False)
        ours, m = get_loss("dpo")(out, LossConfig(beta=beta))
        assert ours.item() == pytest.approx(trl_loss.item(), abs=1e-5)
        trl_m = stand_in._metrics["train"]
        for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
            assert m[key].item() == pytest.approx(trl_m[key][0], abs=1e-5), key


def test_dpo_label_smoothing_equals_trl_cpo_sigmoid():
    """TRL 1.16's DPO `sigmoid` has no label smoothing; conservative DPO survives in CPOTrainer's `sigmoid` loss
    (trl/experimental/cpo/cpo_trainer.py `cpo_loss`), which is reference-free: zero references make them equal."""
    from trl.experimental.cpo import CPOTrainer

    out = _batch_f32(seed=2)
    out = replace(out, ref_chosen=torch.zeros_like(out.ref_chosen), ref_rejected=torch.zeros_like(out.ref_rejected))
    for ls in (0.0, 0.1, 0.3):
        stand_in = types.SimpleNamespace(alpha=0.0, beta=0.2, loss_type="sigmoid", label_smoothing=ls,
                                         accelerator=_accelerator())
        losses, _, _ = CPOTrainer.cpo_loss(stand_in, out.chosen.logps, out.rejected.logps)
        ours, _ = get_loss("dpo")(out, LossConfig(beta=0.2, label_smoothing=ls))
        assert ours.item() == pytest.approx(losses.mean().item(), abs=1e-5)


def test_simpo_equals_trl_cpo_simpo():
    """`CPOTrainer.cpo_loss` (loss_type="simpo", cpo_alpha=0, AlphaPO alpha=0) called as an unbound method on a
    stand-in `self`; CPO feeds it average log-probs for simpo (`average_log_prob=loss_type in ["ipo","simpo"]`)."""
    from trl.experimental.cpo import CPOTrainer

    out = _batch_f32(seed=3)
    for beta, gamma, ls in ((0.1, 0.5, 0.0), (2.0, 1.0, 0.0), (2.5, 1.4, 0.2)):
        stand_in = types.SimpleNamespace(alpha=0.0, beta=beta, loss_type="simpo", simpo_gamma=gamma,
                                         label_smoothing=ls, accelerator=_accelerator())
        losses, chosen_r, rejected_r = CPOTrainer.cpo_loss(stand_in, out.chosen.mean, out.rejected.mean)
        ours, m = get_loss("simpo")(out, LossConfig(beta=beta, gamma=gamma, label_smoothing=ls))
        assert ours.item() == pytest.approx(losses.mean().item(), abs=1e-5)
        assert m["rewards/chosen"].item() == pytest.approx(chosen_r.mean().item(), abs=1e-5)
        assert m["rewards/rejected"].item() == pytest.approx(rejected_r.mean().item(), abs=1e-5)


def test_orpo_equals_trl_orpo_odds_ratio_loss():
    """`ORPOTrainer.odds_ratio_loss` (trl/experimental/orpo/orpo_trainer.py) as an unbound method, with TRL's `beta`
    = our `orpo_lambda`; the total is TRL's `policy_nll_loss - losses.mean()` with the same NLL value (TRL takes
    its NLL over prompt+response tokens, we over the response: that input is given, not compared)."""
    from trl.experimental.orpo import ORPOTrainer

    out = _batch_f32(seed=4)
    for lam in (0.1, 0.25, 1.0):
        stand_in = types.SimpleNamespace(beta=lam, accelerator=_accelerator())
        losses, _, _, _, log_odds_mean = ORPOTrainer.odds_ratio_loss(stand_in, out.chosen.mean, out.rejected.mean)
        ours, m = get_loss("orpo")(out, LossConfig(orpo_lambda=lam))
        nll = -out.chosen.mean.mean()
        assert ours.item() == pytest.approx((nll - losses.mean()).item(), abs=1e-5)
        assert (lam * m["or_loss"]).item() == pytest.approx(-losses.mean().item(), abs=1e-5)
        assert m["rewards/margins"].item() == pytest.approx(log_odds_mean.item(), abs=1e-5)


# --------------------------------------------------------------------------------------------------
# 3-5. SoLoPO invariants
# --------------------------------------------------------------------------------------------------

SOLO = sorted(n for n, s in LOSSES.items() if s.variant in ("solo", "solo_both", "solo_kl"))


def test_solo_variants_are_registered():
    assert len(SOLO) == 9
    assert {LOSSES[n].family for n in SOLO} == {"dpo", "simpo", "orpo"}


@pytest.mark.parametrize("name", SOLO)
def test_solo_alpha_zero_equals_short_po(name):
    spec = get_loss(name)
    cfg = replace(CFG, alpha=0.0)
    solo, m = spec(outputs(), cfg)
    po, _ = get_loss(spec.family)(outputs(), cfg)
    assert solo.item() == po.item()
    assert m["po_loss"].item() == po.item()


@pytest.mark.parametrize("name", SOLO)
def test_solo_ra_zero_when_long_equals_short(name):
    b = dict(B, lc=B["c"], lr=B["r"])
    loss, m = get_loss(name)(outputs(b), CFG)
    assert m["ra_term"].item() == 0.0
    assert loss.item() == get_loss(LOSSES[name].family)(outputs(b), CFG)[0].item()


@pytest.mark.parametrize("name", SOLO)
def test_ra_term_gradient_reaches_short_and_long(name):
    out = outputs(requires_grad=True)
    _, m = get_loss(name)(out, CFG)
    spec = get_loss(name)
    reward_fn = {"dpo": lambda s: CFG.beta * s.logps, "simpo": lambda s: simpo_reward(s, CFG.beta),
                 "orpo": orpo_reward}[spec.family]
    if spec.variant == "solo_kl":
        reward_fn = (lambda s: s.logps) if spec.family == "dpo" else (lambda s: s.mean)  # noqa: E731
    ra = solo_ra_term(out.chosen, out.long_chosen, reward_fn)
    if spec.variant == "solo_both":
        ra = ra + solo_ra_term(out.rejected, out.long_rejected, reward_fn)
    assert ra.item() == pytest.approx(m["ra_term"].item())
    ra.backward()
    assert out.chosen.logps.grad is not None and (out.chosen.logps.grad != 0).all()
    assert out.long_chosen.logps.grad is not None and (out.long_chosen.logps.grad != 0).all()
    if spec.variant == "solo_both":
        assert (out.long_rejected.logps.grad != 0).all()


@pytest.mark.parametrize("name", SOLO)
def test_full_loss_gradient_reaches_long_chosen(name):
    out = outputs(requires_grad=True)
    loss, _ = get_loss(name)(out, CFG)
    loss.backward()
    assert (out.long_chosen.logps.grad != 0).all()
    assert (out.chosen.logps.grad != 0).all()


def test_solo_dpo_ra_ignores_reference():
    """SoLo-DPO's RA drops pi_ref (SoLoPO Table 1): changing the reference changes only the PO part."""
    out = outputs()
    _, m1 = get_loss("solo_dpo")(out, CFG)
    _, m2 = get_loss("solo_dpo")(replace(out, ref_chosen=out.ref_chosen + 3.0), CFG)
    assert m1["ra_term"].item() == m2["ra_term"].item()
    assert m1["po_loss"].item() != m2["po_loss"].item()


# --------------------------------------------------------------------------------------------------
# 6. Registry
# --------------------------------------------------------------------------------------------------


def test_get_loss_unknown_name():
    with pytest.raises(ValueError, match=r"unknown loss 'nope': allowed values are .*dpo.*solo_orpo_both"):
        get_loss("nope")
    with pytest.raises(ValueError, match="allowed values are"):
        get_method("nope")


def test_list_losses():
    assert list_losses() == sorted(
        ["sft", "dpo", "simpo", "orpo", "longpo"]
        + [f"solo_{f}{s}" for f in ("dpo", "simpo", "orpo") for s in ("", "_both")]
        + [f"solo_kl_{f}" for f in ("dpo", "simpo", "orpo")]
    )


def test_methods_table_is_complete():
    want = {f"sft_{d}": ("sft", f"sft_{d}", False) for d in ("short", "long", "expand")}
    for f in ("dpo", "simpo", "orpo"):
        want |= {f"{f}_{d}": (f, d, False) for d in ("short", "long", "expand")}
        want |= {f"solo_{f}": (f"solo_{f}", "solo", False), f"solo_{f}_both": (f"solo_{f}_both", "solo", False),
                 f"solo_kl_{f}": (f"solo_kl_{f}", "solo", False),
                 f"solo_{f}_sg": (f"solo_{f}", "solo", True)}  # SoLo-RA with the short reward a fixed target
    want["longpo"] = ("longpo", "solo", False)
    assert {k: tuple(v) for k, v in METHODS.items()} == want
    assert {m.loss for m in METHODS.values()} == set(LOSSES)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_needs_fields_are_sufficient_and_necessary(name):
    spec = get_loss(name)
    full = outputs()
    only = PolicyOutputs(**{f: getattr(full, f) for f in spec.needs})
    assert spec(only, CFG)[0].item() == pytest.approx(ref_loss(name))
    for f in spec.needs:
        with pytest.raises(ValueError, match=f):
            spec(replace(only, **{f: None}), CFG)
    assert spec.needs_ref == ("ref_chosen" in spec.needs)


def test_needs_ref():
    assert {n for n, s in LOSSES.items() if s.needs_ref} == {
        "dpo", "solo_dpo", "solo_dpo_both", "solo_kl_dpo", "longpo"}


def test_config_validation():
    with pytest.raises(ValueError, match="beta"):
        LossConfig(beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        LossConfig(label_smoothing=0.5)
    with pytest.raises(ValueError, match="shape"):
        SeqLogps(torch.zeros(2), torch.ones(3))


# SoLo-KL (Eq. 10) on the family's normalisation, so that it equals SoLo-RA up to the reward constant.
def test_solo_kl_simpo_equals_solo_simpo_alignment_up_to_beta():
    cfg = LossConfig(beta=2.5, gamma=0.5, orpo_lambda=0.1, alpha=1.0)
    _, kl = get_loss("solo_kl_simpo")(outputs(), cfg)
    _, ra = get_loss("solo_simpo")(outputs(), cfg)
    assert kl["ra_term"].item() * cfg.beta == pytest.approx(ra["ra_term"].item(), rel=1e-12)
    _, kl_dpo = get_loss("solo_kl_dpo")(outputs(), cfg)
    _, ra_dpo = get_loss("solo_dpo")(outputs(), cfg)
    assert kl_dpo["ra_term"].item() * cfg.beta == pytest.approx(ra_dpo["ra_term"].item(), rel=1e-12)
