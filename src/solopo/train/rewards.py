"""Per-sequence log-probs, the PO rewards with their closed-form slopes, and the SoLo-RA term.

The building blocks of `solopo.train.losses` (which re-exports every public name here):

- `SeqLogps`: a sequence's summed response log-prob and its response-token count, shape [B].
- The rewards r(x, y) the SoLo-RA term aligns, each with its slope dr/d avg, the derivative with
  respect to the length-averaged log-prob ``avg = log pi(y|x) / |y|`` (the quantity SimPO and ORPO
  train on, so the slopes of the three families are comparable). The slopes are written out in
  closed form, so the training log can record how hard the RA term pushes each side without a
  second backward pass (`ra_gradient_metrics`).
- `solo_ra_term`: mean_i |r(x_short_i, y_i) - r(x_long_i, y_i)| (SoLoPO Eq. 9), with an optional
  stop-gradient on the short side.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

Metrics = dict[str, torch.Tensor]


@dataclass
class SeqLogps:
    """Per-sequence summed response log-prob and number of response tokens, both of shape [B]."""

    logps: torch.Tensor
    counts: torch.Tensor

    def __post_init__(self) -> None:
        if self.logps.shape != self.counts.shape or self.logps.dim() != 1:
            raise ValueError(
                f"SeqLogps: logps and counts must be 1-D of equal shape, got {tuple(self.logps.shape)} "
                f"and {tuple(self.counts.shape)}"
            )

    @property
    def mean(self) -> torch.Tensor:
        """Length-averaged log-prob ``log pi(y|x) / |y|`` (counts clamped to >= 1, so empty responses give 0)."""
        return self.logps / self.counts.clamp(min=1).to(self.logps.dtype)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """Numerically stable log(1 - exp(x)) for x < 0 (branch at -ln 2; same as TRL ORPO's `log1mexp`)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def sigmoid_pref_loss(logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-example (conservative) sigmoid preference loss.

    l(z) = -(1 - eps) * log sigma(z) - eps * log sigma(-z)
    """
    return -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing


# --------------------------------------------------------------------------------------------------
# Rewards and their slopes dr/d avg
# --------------------------------------------------------------------------------------------------


def dpo_reward(s: SeqLogps, beta: float) -> torch.Tensor:
    """SoLo-DPO reward with the reference dropped (no reference forward on x_long): r(x, y) = beta * log pi(y|x)."""
    return beta * s.logps


def dpo_reward_slope(s: SeqLogps, beta: float) -> torch.Tensor:
    """r = beta * |y| * avg, so dr/d avg = beta * |y| (a long response is pushed |y| times harder)."""
    return beta * s.counts.clamp(min=1).to(s.logps.dtype)


def simpo_reward(s: SeqLogps, beta: float) -> torch.Tensor:
    """SimPO reward: r(x, y) = beta / |y| * log pi(y|x)."""
    return beta * s.mean


def simpo_reward_slope(s: SeqLogps, beta: float) -> torch.Tensor:
    """r = beta * avg, so dr/d avg = beta (the same on every sequence)."""
    return torch.full_like(s.mean, beta)


def orpo_reward(s: SeqLogps) -> torch.Tensor:
    """ORPO reward, the log-odds of the length-normalised probability P = exp(avg):

    r(x, y) = log(P / (1 - P)) = avg - log(1 - exp(avg)),  avg = log pi(y|x) / |y|   (at least float32)
    """
    avg = s.mean
    avg = avg.to(torch.promote_types(avg.dtype, torch.float32))
    return avg - log1mexp(avg)


def orpo_reward_slope(s: SeqLogps) -> torch.Tensor:
    """dr/d avg = 1 + e^avg / (1 - e^avg) = 1 / (1 - e^avg) = -1 / expm1(avg): 10.5 at avg = -0.1,
    2.5 at -0.5, 1.6 at -1, -> 1 far below. A confident sequence's reward moves most per unit of avg."""
    avg = s.mean
    return -1.0 / torch.expm1(avg.to(torch.promote_types(avg.dtype, torch.float32)))


def summed_logp(s: SeqLogps) -> torch.Tensor:
    """The plain summed log-prob log pi(y|x) (no scaling)."""
    return s.logps


def mean_logp(s: SeqLogps) -> torch.Tensor:
    """The length-averaged log-prob log pi(y|x) / |y|."""
    return s.mean


# SoLo-KL's log-prob per family: the normalisation the family's reward uses (sum for DPO, mean for
# SimPO/ORPO, LLaMA-Factory). Then SoLo-KL equals SoLo-RA up to the reward's constant for DPO and
# SimPO ("the reward coefficients can be integrated into alpha", SoLoPO §4.2), so Fig. 2(b) compares
# them at comparable strength for one alpha. On summed log-probs, SimPO's KL term was |y|/beta times
# its RA term (a 15x spread across examples, measured), for every alpha.
KL_LOGP = {"dpo": summed_logp, "simpo": mean_logp, "orpo": mean_logp}

RewardFn = Callable[[SeqLogps], torch.Tensor]


def ra_reward(family: str, beta: float) -> tuple[RewardFn, RewardFn]:
    """The SoLo-RA reward of a PO family and its slope dr/d avg."""
    if family == "dpo":
        return partial(dpo_reward, beta=beta), partial(dpo_reward_slope, beta=beta)
    if family == "simpo":
        return partial(simpo_reward, beta=beta), partial(simpo_reward_slope, beta=beta)
    if family == "orpo":
        return orpo_reward, orpo_reward_slope
    raise ValueError(f"unknown PO family '{family}': allowed values are dpo, orpo, simpo")


# --------------------------------------------------------------------------------------------------
# SoLo-RA
# --------------------------------------------------------------------------------------------------


def solo_ra_term(short: SeqLogps, long: SeqLogps, reward_fn: RewardFn, stop_grad_short: bool = False) -> torch.Tensor:
    """Short-to-long reward alignment (SoLo-RA), averaged over the batch:

    RA = mean_i | r(x_short_i, y_i) - r(x_long_i, y_i) |              (default: both sides get gradient)
    RA = mean_i | sg[r(x_short_i, y_i)] - r(x_long_i, y_i) |          (stop_grad_short; sg = detach)

    With the stop-gradient the short-context reward is a fixed target that only the long side moves
    towards. With ``reward_fn=summed_logp`` this is the SoLo-KL estimate
    mean_i |log pi(y_i|x_short_i) - log pi(y_i|x_long_i)| (Eq. 10).
    """
    r_short = reward_fn(short)
    if stop_grad_short:
        r_short = r_short.detach()
    return (r_short - reward_fn(long)).abs().mean()


def ra_gradient_metrics(short: SeqLogps, long: SeqLogps, reward_fn: RewardFn, slope_fn: RewardFn,
                        stop_grad_short: bool = False) -> Metrics:
    """How hard the RA term pushes each side of the chosen response, in closed form (for the training log).

    With d_i = r(x_s, y_i) - r(x_l, y_i) and avg the length-averaged log-prob of y_i on each prompt:

    |d|d_i| / d avg_short_i| = |sign(d_i)| * r'(avg_short_i)     (0 under stop_grad_short)
    |d|d_i| / d avg_long_i|  = |sign(d_i)| * r'(avg_long_i)

    logged as batch means under `ra_grad/{short,long}_chosen` (per example: the loss gradient is
    alpha / B times this), beside the means of avg under `avg_logps/{short,long}_chosen`. r' > 0 for
    every family, and sign(0) = 0 as autograd's |.| at a tie.
    """
    moving = (reward_fn(short) - reward_fn(long)).detach().sign().abs()
    g_long = moving * slope_fn(long).detach()
    g_short = torch.zeros_like(g_long) if stop_grad_short else moving * slope_fn(short).detach()
    return {"ra_grad/short_chosen": g_short.mean(), "ra_grad/long_chosen": g_long.mean(),
            "avg_logps/short_chosen": short.mean.detach().mean(), "avg_logps/long_chosen": long.mean.detach().mean()}
