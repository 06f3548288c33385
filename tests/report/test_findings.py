"""The seeds page's findings (solopo.report.findings) by hand, and the stop-gradient SoLo runs
(`solo_*_sg`) the λ-collapse finding compares with the paper's reading."""
from __future__ import annotations

import json

import pytest

from solopo.report import findings
from solopo.report.plots import family_of
from solopo.report.tables import method_label


def _c(run, baseline, score, delta, lo, hi, p=0.01):
    return {"run": run, "baseline": baseline, "score": score, "delta": delta, "lo": lo, "hi": hi, "p": p,
            "resolved": lo > 0 or hi < 0}


META = {"base": {"method": "base", "lambda": None, "seed": None},
        "sft_long": {"method": "sft_long", "lambda": None, "seed": 0},
        "orpo_long": {"method": "orpo_long", "lambda": None, "seed": 0},
        "solo_orpo_lam0.3": {"method": "solo_orpo", "lambda": 0.3, "seed": 0},
        "solo_orpo": {"method": "solo_orpo", "lambda": 1.0, "seed": 0},
        "solo_orpo_lam3.0": {"method": "solo_orpo", "lambda": 3.0, "seed": 0},
        "solo_orpo_lam0.0": {"method": "solo_orpo", "lambda": 0.0, "seed": 0},
        "solo_orpo_sg_lam0.3": {"method": "solo_orpo_sg", "lambda": 0.3, "seed": 0},
        "solo_orpo_sg_lam3.0": {"method": "solo_orpo_sg", "lambda": 3.0, "seed": 0},
        "solo_orpo@s1": {"method": "solo_orpo", "lambda": 1.0, "seed": 1},
        "solo_kl_orpo": {"method": "solo_kl_orpo", "lambda": 1.0, "seed": 0}}


def label(run):
    m = META.get(run, {"method": run})
    return method_label(m["method"], m.get("lambda"))


def test_headroom_is_the_best_candidates_paired_gain_over_base():
    comps = [_c("sft_long", "base", "ruler@768", 1.0, -0.5, 2.5), _c("orpo_long", "base", "ruler@768", 3.0, 1.0, 5.0),
             _c("orpo_long", "base", "ruler@256", 9.0, 7.0, 11.0)]
    h = findings.headroom(comps, findings.longest_ruler_key(["ruler@256", "ruler@768", "ruler", "longbench_v1"]))
    assert h["checked"] and h["holds"] and h["run"] == "orpo_long" and h["key"] == "ruler@768" and h["delta"] == 3.0
    assert findings.headroom_text(h, label).startswith("**Headroom: yes.** ORPO-long")
    comps[1].update(delta=0.8, lo=-1.0, hi=2.6)  # the best gain's interval now holds zero
    h = findings.headroom(comps, "ruler@768")
    assert h["checked"] and not h["holds"] and h["run"] == "sft_long"
    assert findings.headroom_text(h, label).startswith("**Headroom: no.**") and "cannot be read" in \
        findings.headroom_text(h, label)
    none = findings.headroom(comps, None)
    assert not none["checked"] and findings.headroom_text(none, label).startswith("**Headroom: not checked**")


def test_versus_long_baselines_needs_every_baseline_beaten():
    comps = [_c("solo_orpo", "orpo_long", "ruler@768", 2.0, 0.5, 3.5), _c("solo_orpo", "orpo_expand", "ruler@768", 1.0,
                                                                           -0.2, 2.2),
             _c("solo_orpo_sg_lam0.3", "orpo_long", "ruler@768", 3.0, 1.0, 5.0),
             _c("solo_orpo_sg_lam0.3", "orpo_expand", "ruler@768", 2.0, 0.1, 3.9)]
    v = findings.versus_long_baselines(comps, "ruler@768", ["solo_orpo", "solo_orpo_sg_lam0.3"])
    assert v["winners"] == ["solo_orpo_sg_lam0.3"]
    assert "resolved better than ORPO-long and Expand-Long-ORPO: SoLo-ORPO (stop-grad) (λ=0.3)" in \
        findings.versus_text(v, label)
    comps[2].update(lo=-1.0)
    v = findings.versus_long_baselines(comps, "ruler@768", ["solo_orpo", "solo_orpo_sg_lam0.3"])
    assert v["winners"] == [] and "no SoLo run is resolved better" in findings.versus_text(v, label)


def test_lambda_collapse_per_method_and_whether_the_stop_gradient_removes_it(tmp_path):
    assert sorted(findings.lambda_pairs(META)) == [("solo_orpo_lam3.0", "solo_orpo_lam0.3"),
                                                   ("solo_orpo_sg_lam3.0", "solo_orpo_sg_lam0.3")]
    comps = [_c("solo_orpo_lam3.0", "solo_orpo_lam0.3", "ruler", -7.6, -9.0, -6.0),
             _c("solo_orpo_sg_lam3.0", "solo_orpo_sg_lam0.3", "ruler", -0.4, -1.9, 1.1)]
    col = findings.lambda_collapse(comps, META, "ruler")
    assert [(c["method"], c["collapses"]) for c in col] == [("solo_orpo", True), ("solo_orpo_sg", False)]
    logs = {}
    for run, (short, long_) in {"solo_orpo": (2.4, 1.2), "solo_orpo_sg_lam0.3": (0.0, 1.5)}.items():
        path = tmp_path / f"{run}.jsonl"
        path.write_text("".join(json.dumps({"step": s, "ra_grad/short_chosen": short, "ra_grad/long_chosen": long_,
                                            "avg_logps/short_chosen": -0.2 - 0.1 * s, "avg_logps/long_chosen": -0.9})
                                + "\n" for s in (1, 2)))
        logs[run] = str(path)
    grads = findings.ra_gradients(logs)
    assert grads["solo_orpo"]["grad_short"] == pytest.approx(2.4) and grads["solo_orpo"]["logp_short_last"] == \
        pytest.approx(-0.4)
    text = findings.collapse_text(col, grads, META, label, "ruler")
    assert "SoLo-ORPO: λ 0.3 → 3 changes ruler by -7.6 [-9.0, -6.0] (collapses)" in text
    assert "The stop-gradient removes the collapse." in text and "short side gets 2.0-2.0x" in text
    comps[1].update(hi=-0.1)
    assert "does not remove" in findings.collapse_text(findings.lambda_collapse(comps, META, "ruler"), {}, META, label,
                                                       "ruler")


def test_the_ra_plot_reads_the_first_seeds_solo_ra_runs_at_positive_lambda():
    assert sorted(findings.ra_plot_runs(META)) == ["solo_orpo", "solo_orpo_lam0.3", "solo_orpo_lam3.0",
                                                   "solo_orpo_sg_lam0.3", "solo_orpo_sg_lam3.0"]


def test_stop_gradient_methods_force_the_switch_and_are_named():
    from solopo.stages.train import loss_config
    from solopo.train.losses import get_method

    assert get_method("solo_orpo_sg") == ("solo_orpo", "solo", True)
    assert get_method("solo_orpo").ra_stop_grad_short is False
    cfg = {"train": {"loss": {"beta": 0.1, "simpo_beta": 2.0, "gamma": 0.5, "orpo_lambda": 0.1,
                              "ra_stop_grad_short": False}}}
    assert loss_config(cfg, "solo_orpo_sg", 1.0).ra_stop_grad_short is True
    assert loss_config(cfg, "solo_orpo", 1.0).ra_stop_grad_short is False
    cfg["train"]["loss"]["ra_stop_grad_short"] = True
    assert loss_config(cfg, "solo_orpo", 1.0).ra_stop_grad_short is True
    assert loss_config(cfg, "solo_kl_orpo", 1.0).ra_stop_grad_short is False  # SoLo-KL has no RA term
    assert method_label("solo_orpo_sg", 0.3) == "SoLo-ORPO (stop-grad) (λ=0.3)"
    assert family_of("solo_simpo_sg") == ("simpo", "solo_sg")
