"""Efficiency benchmark: FLOP model, one tiny measurement, the two-stage forward count, outputs."""
import json
import math

import pytest

from solopo.bench import efficiency as eff
from solopo.bench.flops import step_flops
from solopo.bench.max_length import bisect_longest, search_longest
from solopo.bench.memory import job_spec, run_in_subprocess
from solopo.bench.step import prepare_step

TINY_MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64,
              "vocab_size": 200}
TINY = {"model": TINY_MODEL, "short_len": 16, "response_len": 8, "lengths": [64, 128], "repeats": 1,
        "memory": "inprocess", "max_length": None, "profile": False, "threads": 1}


def test_attention_only_model_matches_the_paper():
    assert eff.speedup_attention_only(1 / 8) == pytest.approx(2 / (2 / 64 + 1)) == pytest.approx(1.9394, abs=1e-4)
    assert eff.ratio_attention_only(0.25) == pytest.approx(0.5625)
    assert eff.speedup_attention_only(1 / math.sqrt(2)) == pytest.approx(1.0)  # no gain from c = 70.7% on
    assert eff.speedup_attention_only(0.5) == pytest.approx(4 / 3)


def test_linear_attention_model_by_hand():
    # one sequence: 3 * (2 P n + layers * 4 d n^2)
    assert step_flops(10, 100, 2, 8) == 3 * (2 * 100 * 10 + 2 * 4 * 8 * 100)
    # vanilla 2 F(L+R), SoLo 2 F(S+R) + F(L+R): S=1, L=3, R=1, P=1, 1 layer, d=1 -> F(n) = 3 (2n + 4n^2)
    f2, f4 = 3 * (4 + 16), 3 * (8 + 64)
    assert eff.ratio_linear_attention(1, 3, 1, 1, 1, 1) == pytest.approx((2 * f2 + f4) / (2 * f4))
    # the reference model (P = 3,465,472): the ratios 0.743 / 0.595 / 0.532, worked out by hand for it
    model = eff.build_model(eff.DEFAULTS["model"], 512, "cpu", "float32", "sdpa")
    P = eff.flop_params(model)
    assert P == 4 * (2 * 256 * 256 + 2 * 256 * 128 + 256 + 2 * 128 + 3 * 256 * 704 + 2 * 256) + 256 + 2000 * 256
    for L, want in ((1024, 0.743), (2048, 0.595), (4096, 0.532)):
        assert eff.ratio_linear_attention(256, L, 128, P, 4, 256) == pytest.approx(want, abs=5e-4)
    # the attention-only model is the long-L limit
    assert eff.ratio_linear_attention(256, 1 << 22, 128, P, 4, 256) == pytest.approx(0.5, abs=1e-3)


def test_solo_step_does_two_forwards_vanilla_one():
    model = eff.build_model(TINY_MODEL, 256, "cpu", "float32", "sdpa")
    calls = []
    handle = model.register_forward_hook(lambda m, args, kwargs_or_out, *rest: calls.append(1))
    counts, shapes = {}, {}
    for loss in ("orpo", "solo_orpo"):
        calls.clear()
        model.zero_grad(set_to_none=True)
        step = prepare_step(model, loss, 128, 16, 8)
        assert math.isfinite(step())
        counts[loss], shapes[loss] = len(calls), step.shapes
        assert all(p.grad is not None for p in model.parameters())
    handle.remove()
    assert counts == {"orpo": 1, "solo_orpo": 2}
    assert shapes == {"orpo": [(2, 136)], "solo_orpo": [(2, 24), (1, 136)]}


def test_search_doubles_then_bisects():
    probe = lambda limit: (lambda L: {"ok": L <= limit})  # noqa: E731
    best, censored, probes = search_longest(probe(5000), 1024, 16384, 512)
    assert (best, censored) == (4608, False)
    assert [p["long_len"] for p in probes] == [1024, 2048, 4096, 8192, 6144, 5120, 4608]
    assert search_longest(probe(10**9), 1024, 16384, 512)[:2] == (16384, True)
    assert search_longest(probe(10), 1024, 16384, 512)[:2] == (None, False)


def test_settings_reject_unknown_keys_and_short_lengths():
    with pytest.raises(ValueError, match="unknown keys"):
        eff.settings({"lenghts": [1024]})
    with pytest.raises(ValueError, match="longer than"):
        eff.settings({"lengths": [128], "short_len": 256})


@pytest.mark.bench
def test_tiny_measurement_writes_json_manifest_and_plot(tmp_path):
    out, png = tmp_path / "bench" / "efficiency.json", tmp_path / "bench" / "efficiency.png"
    eff.run(TINY, out, png, tmp_path / "efficiency.log")
    res = json.loads(out.read_text())
    assert res["device"].startswith("cpu") and res["dtype"] == "float32" and res["attention_impl"] == "sdpa"
    assert res["short_len"] == 16 and res["response_len"] == 8 and "F(n)" in res["flop_model"]
    assert [r["long_len"] for r in res["rows"]] == [64, 128]
    for row in res["rows"]:
        for key in ("long_len", "c", "vanilla_step_s", "solo_step_s", "ratio_measured", "ratio_pred_attention_only",
                    "ratio_pred_linear_attention", "vanilla_peak_mb", "solo_peak_mb", "mem_ratio"):
            assert key in row
        assert row["vanilla_step_s"] > 0 and row["solo_step_s"] > 0
        assert row["ratio_measured"] == pytest.approx(row["solo_step_s"] / row["vanilla_step_s"], rel=1e-2)
        assert row["vanilla_forwards"] == 1 and row["solo_forwards"] == 2
        assert row["c"] == pytest.approx(16 / row["long_len"])
    assert res["rows"][1]["ratio_pred_attention_only"] == pytest.approx(eff.ratio_attention_only(0.125), abs=1e-4)
    assert res["max_length"] is None
    assert (tmp_path / "bench" / "efficiency.json.manifest.json").exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (tmp_path / "bench" / "efficiency.png.manifest.json").exists()


def test_cap_probe_fails_fast_in_a_fresh_process():
    """The max-length probe: a subprocess whose step passes the cap reports ok=False with its RSS increase."""
    s = eff.settings({"model": {**TINY_MODEL, "vocab_size": 2000}, "short_len": 16, "response_len": 8,
                      "lengths": [2048], "threads": 1})
    r = run_in_subprocess(job_spec(s, ("cpu", "float32", "sdpa"), "vanilla", 2048, cap_mb=5), 120)
    assert r["ok"] is False, r
    assert r["peak_mb"] > 5  # the logits alone are 2 x 2056 x 2000 floats (31 MiB)


def test_search_starts_above_a_length_known_to_fit():
    probe = lambda L: {"ok": L <= 5000}  # noqa: E731
    best, censored, probes = search_longest(probe, 1024, 16384, 512, known_ok=4096)
    assert (best, censored) == (4608, False)
    assert [p["long_len"] for p in probes] == [8192, 6144, 5120, 4608]
    assert search_longest(probe, 1024, 4096, 512, known_ok=4096) == (4096, True, [])


def test_bisection_stops_when_a_probe_declines():
    """The GPU sweep's budget: a probe answering None ends the bisection with what is known so far."""
    asked = []

    def fits(L):
        asked.append(L)
        return None if len(asked) == 3 else L <= 5000

    assert bisect_longest(fits, 4096, 8192, 256) == (4096, 5120, True)
    assert asked == [6144, 5120, 4608]
    assert bisect_longest(lambda L: L <= 5000, 4096, 8192, 256) == (4864, 5120, False)
