"""Loss registry: SFT, DPO, SimPO, ORPO, their SoLoPO variants, and LongPO.

Every loss is a pure function of per-sequence log-prob **sums** and response-token **counts**
(1-D tensors of shape [B]), packed in `PolicyOutputs`, plus the hyper-parameters in `LossConfig`.
It returns `(loss, metrics)`: a scalar tensor that carries the gradient, and a dict of detached
0-dim tensors for logging (`loss`, the loss parts, `rewards/*`, `logps/*`).

Conventions (LLaMA-Factory `src/llamafactory/train/dpo/trainer.py`, the paper's training stack; App. G.4):

- DPO uses the summed log-prob ``log pi(y|x) = sum_t log pi(y_t | x, y_<t)``.
- SimPO and ORPO use the length-averaged log-prob ``avg(y|x) = log pi(y|x) / |y|`` (`SeqLogps.mean`).

Field naming in `PolicyOutputs`: ``chosen`` / ``rejected`` are the pair on **the PO prompt**,
whatever context it holds. For the vanilla short methods and for SoLoPO this is x_short; for the
long and Expand-Long methods the trainer puts (x_long, y) there. ``long_chosen`` / ``long_rejected``
are the extra long-context copies that SoLoPO (the RA term) and LongPO (the policy side) need.

Expand-Long-PO (SoLoPO §2.2) needs no loss of its own: it is plain `dpo` / `simpo` / `orpo` (and `sft`
for Expand-Long-SFT) on data whose PO prompt is x_long. `METHODS` maps every pipeline method to its
(loss, dataset) pair.

Losses (registry names, see `list_losses()`):

- ``sft``                                  NLL of the chosen response on the PO prompt.
- ``dpo``, ``simpo``, ``orpo``             the vanilla algorithms on the PO prompt.
- ``solo_{dpo,simpo,orpo}``                short PO + alpha * chosen-only SoLo-RA (paper default, Eq. 9).
- ``solo_{dpo,simpo,orpo}_both``           short PO + alpha * (RA on y_w + RA on y_l).
- ``solo_kl_{dpo,simpo,orpo}``             short PO + alpha * SoLo-KL (Eq. 10, ablation), on the family's
                                           log-prob normalisation (sum for DPO, mean for SimPO/ORPO).
- ``longpo``                               LongPO as implemented in DAMO-NLP-SG/LongPO (train/longdpo_trainer.py).

Choices the paper does not pin down (Table 1 and App. H.7 leave them open; a reconstruction), made here:

- SoLo-DPO drops the reference from the RA term: r = beta * log pi(y|x) (no reference forward on x_long).
- SoLo-ORPO adds alpha * RA to the whole vanilla ORPO loss (NLL + lambda * OR); alpha is not scaled by lambda.
- Gradients flow through both sides of |r(x_s, y) - r(x_l, y)| by default, as the paper states no
  stop-gradient; `LossConfig.ra_stop_grad_short` makes the short-context reward a fixed target.

Sequences, rewards (with their closed-form slopes) and the RA term itself live in `solopo.train.rewards`
and are re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F

from solopo.train.rewards import (
    KL_LOGP,
    Metrics,
    SeqLogps,
    dpo_reward,
    dpo_reward_slope,
    log1mexp,
    mean_logp,
    orpo_reward,
    orpo_reward_slope,
    ra_gradient_metrics,
    ra_reward,
    sigmoid_pref_loss,
    simpo_reward,
    simpo_reward_slope,
    solo_ra_term,
    summed_logp,
)

# --------------------------------------------------------------------------------------------------
# Inputs and hyper-parameters
# --------------------------------------------------------------------------------------------------


@dataclass
class PolicyOutputs:
    """The sequences a loss may need; a field is None when the trainer did not compute it.

    ``chosen``/``rejected`` are the pair on the PO prompt (x_short for short/SoLo/SoLo-KL methods,
    x_long for long/expand methods). ``long_*`` are the long-context copies used by SoLoPO and LongPO.
    """

    chosen: SeqLogps | None = None  # log pi(y_w | x_po)
    rejected: SeqLogps | None = None  # log pi(y_l | x_po)
    long_chosen: SeqLogps | None = None  # log pi(y_w | x_long)
    long_rejected: SeqLogps | None = None  # log pi(y_l | x_long)
    ref_chosen: torch.Tensor | None = None  # reference summed logps of y_w on x_po (DPO); on x_short (LongPO)
    ref_rejected: torch.Tensor | None = None
    long_chosen_full_nll: torch.Tensor | None = None  # LongPO: mean NLL over ALL tokens of (x_long, y_w), per sequence
    # tokens of each sequence run (prompt + response), per forward stage: "po" (the pair on x_po), "long"
    seq_tokens: dict[str, list[int]] = field(default_factory=dict)


# The LongPO release's training command (DAMO-NLP-SG/LongPO README, train/train_longpo.py): the
# LongPO run has its own optimiser and loss block (`train.longpo`) because SoLoPO kept LongPO's
# defaults. The one place these defaults live: a config value overrides each key, and
# LossConfig's LongPO fields default to the same numbers.
LONGPO_DEFAULTS = {"optimizer": "rmsprop", "learning_rate": 5e-7, "lr_scheduler": "cosine", "warmup_ratio": 0.1,
                   "weight_decay": 0.0, "beta": 0.01, "lambda": 0.01}


@dataclass(frozen=True)
class LossConfig:
    """Hyper-parameters of every loss (defaults: LLaMA-Factory `pref_beta`/`simpo_gamma`, ORPO lambda, LongPO paper).

    beta:            DPO/SimPO temperature (also SoLo-DPO/SimPO reward scale).
    gamma:           SimPO target margin in reward units: -logsigmoid(beta * diff - gamma).
    orpo_lambda:     weight of the ORPO odds-ratio term (NLL weight 1). Plays the role of TRL ORPOConfig.beta
                     and LLaMA-Factory `pref_beta` for `pref_loss: orpo`.
    alpha:           weight of the SoLo-RA / SoLo-KL term.
    longpo_lambda:   weight of the LongPO DPO term (NLL weight 1).
    longpo_beta:     LongPO DPO temperature.
    label_smoothing: conservative-DPO label smoothing for the sigmoid losses (DPO, SimPO), in [0, 0.5).
    ra_stop_grad_short: SoLo-RA only (not SoLo-KL): detach the short-context reward, so that only the long
                     side receives the RA gradient (default False: both sides, the paper read literally).
    """

    beta: float = 0.1
    gamma: float = 0.5
    orpo_lambda: float = 0.1
    alpha: float = 1.0
    longpo_lambda: float = LONGPO_DEFAULTS["lambda"]
    longpo_beta: float = LONGPO_DEFAULTS["beta"]
    label_smoothing: float = 0.0
    ra_stop_grad_short: bool = False

    def __post_init__(self) -> None:
        for name in ("beta", "longpo_beta"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LossConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("orpo_lambda", "alpha", "longpo_lambda"):
            if getattr(self, name) < 0:
                raise ValueError(f"LossConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"LossConfig.label_smoothing must lie in [0, 0.5), got {self.label_smoothing}")
        if not isinstance(self.ra_stop_grad_short, bool):  # a string "false" would read as True
            raise TypeError(f"LossConfig.ra_stop_grad_short must be true or false, got {self.ra_stop_grad_short!r}")


def _require(out: PolicyOutputs, names: tuple[str, ...], loss: str) -> None:
    missing = [n for n in names if getattr(out, n) is None]
    if missing:
        raise ValueError(f"loss '{loss}' needs PolicyOutputs fields {', '.join(missing)}, which are None")


# --------------------------------------------------------------------------------------------------
# Logged metrics
# --------------------------------------------------------------------------------------------------


def _reward_metrics(chosen: torch.Tensor, rejected: torch.Tensor, prefix: str = "rewards") -> Metrics:
    chosen, rejected = chosen.detach(), rejected.detach()
    return {
        f"{prefix}/chosen": chosen.mean(),
        f"{prefix}/rejected": rejected.mean(),
        f"{prefix}/margins": (chosen - rejected).mean(),
        f"{prefix}/accuracies": (chosen > rejected).float().mean(),
    }


def _logp_metrics(out: PolicyOutputs) -> Metrics:
    metrics: Metrics = {}
    for name in ("chosen", "rejected", "long_chosen", "long_rejected"):
        s = getattr(out, name)
        if s is not None:
            metrics[f"logps/{name}"] = s.logps.detach().mean()
    return metrics


# --------------------------------------------------------------------------------------------------
# Vanilla losses (on the PO prompt)
# --------------------------------------------------------------------------------------------------


def sft_loss(out: PolicyOutputs, cfg: LossConfig) -> tuple[torch.Tensor, Metrics]:
    """Supervised fine-tuning on the chosen response (per-sequence length-averaged NLL):

    L_SFT = -mean_i [ log pi(y_w_i | x_i) / |y_w_i| ]

    x is the PO prompt: x_short (sft_short), x_long (sft_long, sft_expand).
    """
    _require(out, ("chosen",), "sft")
    nll = -out.chosen.mean.mean()
    return nll, {"loss": nll.detach(), "nll": nll.detach(), **_logp_metrics(out)}


def dpo_loss(out: PolicyOutputs, cfg: LossConfig) -> tuple[torch.Tensor, Metrics]:
    """DPO with summed log-probs (TRL `loss_type="sigmoid"`; conservative DPO when label_smoothing > 0):

    z   = beta * [ (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x)) ]
    L   = mean_i [ -(1 - eps) log sigma(z_i) - eps log sigma(-z_i) ]

    Metrics: rewards = beta * (log pi - log pi_ref).
    """
    _require(out, ("chosen", "rejected", "ref_chosen", "ref_rejected"), "dpo")
    chosen_lr = out.chosen.logps - out.ref_chosen
    rejected_lr = out.rejected.logps - out.ref_rejected
    loss = sigmoid_pref_loss(cfg.beta * (chosen_lr - rejected_lr), cfg.label_smoothing).mean()
    metrics = {"loss": loss.detach(), "po_loss": loss.detach()}
    metrics |= _reward_metrics(cfg.beta * chosen_lr, cfg.beta * rejected_lr)
    return loss, metrics | _logp_metrics(out)


def simpo_loss(out: PolicyOutputs, cfg: LossConfig) -> tuple[torch.Tensor, Metrics]:
    """SimPO with length-averaged log-probs (TRL CPOTrainer `loss_type="simpo"`, `cpo_alpha=0`):

    z   = beta / |y_w| * log pi(y_w|x) - beta / |y_l| * log pi(y_l|x) - gamma
    L   = mean_i [ -(1 - eps) log sigma(z_i) - eps log sigma(-z_i) ]

    Metrics: rewards = beta / |y| * log pi(y|x).
    """
    _require(out, ("chosen", "rejected"), "simpo")
    r_w, r_l = simpo_reward(out.chosen, cfg.beta), simpo_reward(out.rejected, cfg.beta)
    loss = sigmoid_pref_loss(r_w - r_l - cfg.gamma, cfg.label_smoothing).mean()
    metrics = {"loss": loss.detach(), "po_loss": loss.detach()}
    return loss, metrics | _reward_metrics(r_w, r_l) | _logp_metrics(out)


def orpo_loss(out: PolicyOutputs, cfg: LossConfig) -> tuple[torch.Tensor, Metrics]:
    """ORPO with length-averaged log-probs (LLaMA-Factory `sft_loss + beta * odds_ratio_loss`):

    avg(y)   = log pi(y|x) / |y|,   r(y) = avg(y) - log(1 - exp(avg(y)))        (log-odds, >= float32)
    NLL      = -mean_i avg(y_w_i)
    L_OR     = -mean_i log sigma( r(y_w_i) - r(y_l_i) )
    L        = NLL + lambda * L_OR

    Metrics: rewards = log-odds r(y); `nll`, `or_loss`. Note that TRL's ORPOTrainer computes its NLL
    over prompt + response tokens; here (as in LLaMA-Factory) it is the response-averaged NLL.
    """
    _require(out, ("chosen", "rejected"), "orpo")
    r_w, r_l = orpo_reward(out.chosen), orpo_reward(out.rejected)
    nll = -out.chosen.mean.mean()
    or_loss = -F.logsigmoid(r_w - r_l).mean()
    loss = nll + cfg.orpo_lambda * or_loss
    metrics = {"loss": loss.detach(), "po_loss": loss.detach(), "nll": nll.detach(), "or_loss": or_loss.detach()}
    return loss, metrics | _reward_metrics(r_w, r_l) | _logp_metrics(out)


_VANILLA: dict[str, Callable[[PolicyOutputs, LossConfig], tuple[torch.Tensor, Metrics]]] = {
    "dpo": dpo_loss,
    "simpo": simpo_loss,
    "orpo": orpo_loss,
}


# --------------------------------------------------------------------------------------------------
# SoLoPO
# --------------------------------------------------------------------------------------------------


def solo_loss(
    out: PolicyOutputs, cfg: LossConfig, *, family: str, both: bool = False
) -> tuple[torch.Tensor, Metrics]:
    """SoLoPO (Eq. 9): short-context PO plus short-to-long reward alignment.

    chosen-only (default):  L = L_PO(x_s, y_w, y_l) + alpha * mean_i | r(x_s, y_w) - r(x_l, y_w) |
    both:                   L = ... + alpha * mean_i | r(x_s, y_l) - r(x_l, y_l) |   (added)

    L_PO is the vanilla `family` loss on ``chosen``/``rejected`` (which hold x_short). Rewards r and their
    slopes r' = dr/d avg, avg = log pi(y|x) / |y| (`solopo.train.rewards`):
      dpo:   beta * log pi(y|x)   (reference dropped)               r' = beta * |y|
      simpo: beta / |y| * log pi(y|x)                                r' = beta
      orpo:  avg - log(1 - exp(avg))                                 r' = 1 / (1 - exp(avg))

    RA gradient, with d_i = r(x_s, y_i) - r(x_l, y_i) over a batch of B:
      d RA / d avg(x_l, y_i) = -sign(d_i) * r'(avg(x_l, y_i)) / B
      d RA / d avg(x_s, y_i) = +sign(d_i) * r'(avg(x_s, y_i)) / B,   or 0 with ``cfg.ra_stop_grad_short``
    (then r(x_s, y) is a detached target). Both sizes are logged per example (`ra_gradient_metrics`).
    """
    reward_fn, slope_fn = ra_reward(family, cfg.beta)
    needs = ("long_chosen", "long_rejected") if both else ("long_chosen",)
    _require(out, needs, f"solo_{family}{'_both' if both else ''}")
    po, metrics = _VANILLA[family](out, cfg)
    sg = cfg.ra_stop_grad_short
    ra = solo_ra_term(out.chosen, out.long_chosen, reward_fn, sg)
    metrics["ra_term/chosen"] = ra.detach()
    if both:
        ra_rejected = solo_ra_term(out.rejected, out.long_rejected, reward_fn, sg)
        metrics["ra_term/rejected"] = ra_rejected.detach()
        ra = ra + ra_rejected
    loss = po + cfg.alpha * ra
    metrics |= {"loss": loss.detach(), "po_loss": po.detach(), "ra_term": ra.detach()}
    metrics["ra_rewards/short_chosen"] = reward_fn(out.chosen).detach().mean()
    metrics["ra_rewards/long_chosen"] = reward_fn(out.long_chosen).detach().mean()
    metrics |= ra_gradient_metrics(out.chosen, out.long_chosen, reward_fn, slope_fn, sg)
    return loss, metrics | _logp_metrics(out)


def solo_kl_loss(out: PolicyOutputs, cfg: LossConfig, *, family: str) -> tuple[torch.Tensor, Metrics]:
    """SoLo-KL (Eq. 10, ablation): short-context PO plus the absolute single-sample KL estimate at y_w:

    L = L_PO(x_s, y_w, y_l) + alpha * mean_i | lp(y_w|x_s) - lp(y_w|x_l) |

    lp is the log-prob as the family's reward normalises it (`KL_LOGP`): summed for DPO, averaged
    over the response tokens for SimPO and ORPO.
    """
    if family not in _VANILLA:
        raise ValueError(f"unknown PO family '{family}': allowed values are {', '.join(_VANILLA)}")
    _require(out, ("long_chosen",), f"solo_kl_{family}")
    po, metrics = _VANILLA[family](out, cfg)
    kl = solo_ra_term(out.chosen, out.long_chosen, KL_LOGP[family])
    loss = po + cfg.alpha * kl
    metrics |= {"loss": loss.detach(), "po_loss": po.detach(), "ra_term": kl.detach()}
    return loss, metrics | _logp_metrics(out)


# --------------------------------------------------------------------------------------------------
# LongPO
# --------------------------------------------------------------------------------------------------


def longpo_loss(out: PolicyOutputs, cfg: LossConfig) -> tuple[torch.Tensor, Metrics]:
    """LongPO as implemented (DAMO-NLP-SG/LongPO `LongPOMTLMUlyssesTrainer` in train/longdpo_trainer.py; LongPO paper Eq. 12-14):

    z     = beta' * [ (log pi(y_w|x_l) - log pi(y_l|x_l)) - (log pi_ref(y_w|x_s) - log pi_ref(y_l|x_s)) ]
    L_DPO = mean_i -log sigma(z_i)
    L     = mean_i NLL_full(x_l, y_w)_i + lambda' * L_DPO

    The policy sees x_long (``long_chosen``/``long_rejected``); the reference sees x_short
    (``ref_chosen``/``ref_rejected``); NLL_full averages over all tokens of the long chosen sequence,
    prompt included. beta' = longpo_beta, lambda' = longpo_lambda.
    """
    _require(out, ("long_chosen", "long_rejected", "ref_chosen", "ref_rejected", "long_chosen_full_nll"), "longpo")
    chosen_lr = out.long_chosen.logps - out.ref_chosen
    rejected_lr = out.long_rejected.logps - out.ref_rejected
    dpo = -F.logsigmoid(cfg.longpo_beta * (chosen_lr - rejected_lr)).mean()
    nll = out.long_chosen_full_nll.mean()
    loss = nll + cfg.longpo_lambda * dpo
    metrics = {"loss": loss.detach(), "po_loss": dpo.detach(), "nll": nll.detach()}
    metrics |= _reward_metrics(cfg.longpo_beta * chosen_lr, cfg.longpo_beta * rejected_lr)
    return loss, metrics | _logp_metrics(out)


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

LossFn = Callable[[PolicyOutputs, LossConfig], tuple[torch.Tensor, Metrics]]


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its function, the `PolicyOutputs` fields it reads, whether it needs a reference model."""

    name: str
    fn: LossFn
    needs: tuple[str, ...]
    needs_ref: bool
    family: str  # "sft" | "dpo" | "simpo" | "orpo" | "longpo"
    variant: str = "vanilla"  # "vanilla" | "solo" | "solo_both" | "solo_kl" | "longpo"
    config_keys: tuple[str, ...] = field(default=())  # LossConfig fields the loss reads

    def __call__(self, out: PolicyOutputs, cfg: LossConfig) -> tuple[torch.Tensor, Metrics]:
        return self.fn(out, cfg)


_PAIR = ("chosen", "rejected")
_REF = ("ref_chosen", "ref_rejected")
_FAMILY_KEYS = {
    "dpo": ("beta", "label_smoothing"),
    "simpo": ("beta", "gamma", "label_smoothing"),
    "orpo": ("orpo_lambda",),
}


def _build_registry() -> dict[str, LossSpec]:
    reg: dict[str, LossSpec] = {"sft": LossSpec("sft", sft_loss, ("chosen",), False, "sft")}
    for fam, fn in _VANILLA.items():
        ref = fam == "dpo"
        base = _PAIR + (_REF if ref else ())
        keys = _FAMILY_KEYS[fam]
        reg[fam] = LossSpec(fam, fn, base, ref, fam, "vanilla", keys)
        reg[f"solo_{fam}"] = LossSpec(
            f"solo_{fam}", partial(solo_loss, family=fam, both=False), base + ("long_chosen",), ref, fam, "solo",
            keys + ("alpha", "ra_stop_grad_short"),
        )
        reg[f"solo_{fam}_both"] = LossSpec(
            f"solo_{fam}_both", partial(solo_loss, family=fam, both=True), base + ("long_chosen", "long_rejected"),
            ref, fam, "solo_both", keys + ("alpha", "ra_stop_grad_short"),
        )
        reg[f"solo_kl_{fam}"] = LossSpec(
            f"solo_kl_{fam}", partial(solo_kl_loss, family=fam), base + ("long_chosen",), ref, fam, "solo_kl",
            keys + ("alpha",),
        )
    reg["longpo"] = LossSpec(
        "longpo", longpo_loss, ("long_chosen", "long_rejected") + _REF + ("long_chosen_full_nll",), True, "longpo",
        "longpo", ("longpo_beta", "longpo_lambda"),
    )
    return dict(sorted(reg.items()))


LOSSES: dict[str, LossSpec] = _build_registry()


def list_losses() -> list[str]:
    """Sorted names of all registered losses."""
    return list(LOSSES)


def get_loss(name: str) -> LossSpec:
    """The `LossSpec` registered under ``name``; ValueError naming the allowed values otherwise."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss '{name}': allowed values are {', '.join(LOSSES)}") from None


# --------------------------------------------------------------------------------------------------
# Methods of the pipeline -> (loss, dataset)
# --------------------------------------------------------------------------------------------------


class MethodSpec(NamedTuple):
    """A training method of the pipeline: the loss it optimises, the dataset it trains on, and whether it
    forces ``LossConfig.ra_stop_grad_short`` (the `solo_{dpo,simpo,orpo}_sg` runs: SoLo-RA with the short
    reward a fixed target, beside the paper's reading in one config)."""

    loss: str
    dataset: str
    ra_stop_grad_short: bool = False


def _build_methods() -> dict[str, MethodSpec]:
    methods = {f"sft_{d}": MethodSpec("sft", f"sft_{d}") for d in ("short", "long", "expand")}
    for fam in _VANILLA:
        methods |= {f"{fam}_{d}": MethodSpec(fam, d) for d in ("short", "long", "expand")}
        methods[f"solo_{fam}"] = MethodSpec(f"solo_{fam}", "solo")
        methods[f"solo_{fam}_both"] = MethodSpec(f"solo_{fam}_both", "solo")
        methods[f"solo_{fam}_sg"] = MethodSpec(f"solo_{fam}", "solo", ra_stop_grad_short=True)
        methods[f"solo_kl_{fam}"] = MethodSpec(f"solo_kl_{fam}", "solo")
    methods["longpo"] = MethodSpec("longpo", "solo")
    return methods


METHODS: dict[str, MethodSpec] = _build_methods()


def get_method(name: str) -> MethodSpec:
    """The (loss, dataset) of pipeline method ``name``; ValueError naming the allowed values otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method '{name}': allowed values are {', '.join(METHODS)}") from None


__all__ = [
    "KL_LOGP", "LOSSES", "METHODS", "LossConfig", "LossSpec", "MethodSpec", "Metrics", "PolicyOutputs", "SeqLogps",
    "dpo_loss", "dpo_reward", "dpo_reward_slope", "get_loss", "get_method", "list_losses", "log1mexp", "longpo_loss",
    "mean_logp", "orpo_loss", "orpo_reward", "orpo_reward_slope", "ra_gradient_metrics", "ra_reward", "sft_loss",
    "sigmoid_pref_loss", "simpo_loss", "simpo_reward", "simpo_reward_slope", "solo_kl_loss", "solo_loss",
    "solo_ra_term", "summed_logp",
]
