"""Efficiency benchmark: SoLo's two-stage forward against vanilla long-context PO (paper §6).

One training *step* (forward + backward of a real loss, no optimizer update) of a randomly
initialised model of a real architecture (a scaled-down Qwen2), two ways:

- **vanilla** long-context PO (ORPO on x_long, loss ``orpo``): ONE concatenated forward of
  (x_long, y_w) and (x_long, y_l), a batch of 2 sequences of L + R tokens;
- **SoLo** (SoLo-ORPO, loss ``solo_orpo``): the trainer's two-stage forward, the short pair
  together (batch 2 of S + R), then the long chosen copy apart (batch 1 of L + R).

Both go through the library's own pieces (`forward.collate`, `forward.sequence_logps`,
`losses.get_loss(...).fn`), staged exactly as `forward.policy_outputs` stages them (`solopo.bench.step`).

Measured per long length L: the step time (minimum over ``repeats`` after a warm-up step, the
two methods interleaved A, B, A, B in one process) and the peak memory of the step (CPU: the
peak RSS increase of the step over the process with the model loaded, each (method, L) in a
fresh subprocess (`solopo.bench.memory`) with a fixed glibc mmap threshold so that the RSS follows the live tensors;
GPU: ``torch.cuda.max_memory_allocated`` above the memory before the step). ``memory_lengths``
adds lengths where only the memory is measured (the longest length both methods still run).
Beside each measurement: the paper's attention-only prediction (Eq. 11-12), SoLo/vanilla =
(2c^2 + 1) / 2 with c = |x_short| / |x_long| = S / L, and a linear + attention FLOP model
(`solopo.bench.flops`). `solopo.bench.max_length` binary-searches the longest L each method can train
under one memory cap (the paper's Fig. 1b: 9K vanilla vs 19K SoLo). Memory is compared with
the tokens held at the peak, (2(S+R) + (L+R)) / (2(L+R)): SoLo keeps the short pair's graph
through the long backward, so its memory tends to half of vanilla's only as L grows.

Where a measured ratio is off the linear + attention prediction by more than
``profile_tolerance``, the step of each method is profiled (`torch.profiler`) and the top ops
and the time in GEMMs / attention / everything else are recorded, which explains the gap.

CLI: ``python -m solopo.bench.efficiency --out results/bench/efficiency.json
[--lengths 1024 2048 4096] [--repeats 3] [--cap-mb 1024]``.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from solopo.bench.efficiency_plot import plot, table
from solopo.bench.flops import (
    FLOP_MODEL,
    attention_ratio,
    flop_params,
    ratio_attention_only,
    ratio_linear_attention,
    speedup_attention_only,
    token_ratio,
)
from solopo.bench.max_length import max_trainable_length
from solopo.bench.memory import job_spec, run_in_subprocess
from solopo.bench.step import METHODS, MODEL_DEFAULTS, build_model, resolve_runtime
from solopo.bench.timing import profile_step, time_steps
from solopo.mappings import deep_merge

log = logging.getLogger(__name__)

DEFAULTS: dict = {
    "model": MODEL_DEFAULTS,
    "short_len": 256,  # |x_short| = S
    "response_len": 128,  # |y| = R
    "lengths": [1024, 2048, 4096],  # |x_long| = L
    "repeats": 3,
    "losses": {"vanilla": "orpo", "solo": "solo_orpo"},
    "device": "auto",  # auto | cpu | cuda
    "dtype": "auto",  # auto (CPU float32, GPU bfloat16) | float32 | bfloat16 | float16
    "attn_implementation": "auto",  # auto (GPU flash_attention_2 if installed, else sdpa) | sdpa | eager | ...
    "threads": None,  # torch intra-op threads (None: leave torch's default)
    "memory": "subprocess",  # CPU peak memory: subprocess (fresh process per measurement) | inprocess | off
    "memory_lengths": [8192],  # extra long lengths where only the peak memory is measured (no timing)
    # glibc's mmap threshold in the memory subprocesses: a fixed one returns every freed tensor to the OS,
    # so the peak RSS follows the live tensors (deterministic, like CUDA's max_memory_allocated); null: glibc default
    "malloc_mmap_threshold": 65536,
    "max_length": {"cap_mb": 1024, "lo": 1024, "hi": 16384, "granularity": 256},  # null: skip the search
    "profile": True,  # profile lengths whose ratio is off the linear + attention prediction
    "profile_tolerance": 0.10,
    "profile_top_k": 12,
    "worker_timeout_s": 900,
    "seed": 0,
}

__all__ = ["DEFAULTS", "FLOP_MODEL", "build_model", "flop_params", "main", "max_trainable_length", "measure", "plot",
           "profile_step", "ratio_attention_only", "ratio_linear_attention", "run", "settings",
           "speedup_attention_only", "table", "time_steps"]


# how peak memory was measured, by `memory: subprocess` (True) or in-process (False), for the markdown
MEMORY_HOW = {True: "a fresh subprocess per (method, length)",
              False: "in-process, VmHWM reset before each step; allocator caching can hide part of it"}

def settings(config: dict | None) -> dict:
    """`DEFAULTS` overridden by `config` (the ``bench.efficiency`` block), checked."""
    unknown = set(config or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"bench.efficiency: unknown keys {sorted(unknown)}; allowed: {', '.join(DEFAULTS)}")
    s = deep_merge(DEFAULTS, config or {})
    s["lengths"] = sorted(int(x) for x in s["lengths"])
    s["memory_lengths"] = sorted(int(x) for x in s["memory_lengths"] or [] if int(x) not in s["lengths"])
    if not s["lengths"] or s["lengths"][0] <= s["short_len"]:
        raise ValueError(f"bench.efficiency.lengths: {s['lengths']} must be non-empty and longer than "
                         f"short_len ({s['short_len']})")
    if s["repeats"] < 1:
        raise ValueError(f"bench.efficiency.repeats: {s['repeats']}; allowed: >= 1")
    if s["memory"] not in ("subprocess", "inprocess", "off"):
        raise ValueError(f"bench.efficiency.memory: {s['memory']!r}; allowed: subprocess, inprocess, off")
    return s


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


def _peaks(s: dict, timed: list[dict], mem_only: list[dict], mem_mode: str, runtime: tuple[str, str, str],
           notes: list[str]) -> dict[tuple[str, int], float | None]:
    """Peak memory per (method, L): from the timed steps (GPU, in-process) or a fresh process each (CPU)."""
    peaks: dict[tuple[str, int], float | None] = {}
    for t in timed + mem_only:
        L = t["long_len"]
        for m in METHODS:
            if mem_mode in ("cuda", "inprocess"):
                peaks[(m, L)] = max(t[m]["mem"]) if t[m]["mem"] else None
            elif s["memory"] == "subprocess":
                r = run_in_subprocess(job_spec(s, runtime, m, L), s["worker_timeout_s"])
                peaks[(m, L)] = r["peak_mb"] if r["ok"] else None
                if not r["ok"]:
                    notes.append(f"memory worker {m} L={L} failed: {r['error']}")
            else:
                peaks[(m, L)] = None
    return peaks


def _row(t: dict, peaks: dict, S: int, R: int, P: int, layers: int, hidden: int) -> dict:
    """One length's measurements beside the two predictions."""
    L = t["long_len"]
    c = S / L
    tv = min(t["vanilla"]["times"]) if t["vanilla"]["times"] else None
    ts = min(t["solo"]["times"]) if t["solo"]["times"] else None
    pv, ps = peaks[("vanilla", L)], peaks[("solo", L)]
    ratio = ts / tv if tv and ts else None
    pred_la = ratio_linear_attention(S, L, R, P, layers, hidden)
    return {
        "long_len": L, "c": _r(c), "seq_len_long": L + R, "seq_len_short": S + R,
        "vanilla_step_s": _r(tv, 6), "solo_step_s": _r(ts, 6),
        "ratio_measured": _r(ratio), "ratio_pred_attention_only": _r(ratio_attention_only(c)),
        "ratio_pred_linear_attention": _r(pred_la),
        "speedup_measured": _r(1 / ratio) if ratio else None,
        "speedup_pred_attention_only": _r(speedup_attention_only(c)),
        "speedup_pred_linear_attention": _r(1 / pred_la),
        "rel_dev_from_linear_attention": _r(ratio / pred_la - 1) if ratio else None,
        "vanilla_peak_mb": _r(pv, 1), "solo_peak_mb": _r(ps, 1),
        "mem_ratio": _r(ps / pv) if pv and ps is not None else None,
        # activations grow with the tokens held at the peak: SoLo keeps the short pair's graph through backward
        "mem_ratio_pred_tokens": _r(token_ratio(S, L, R)),
        "timed": not t.get("memory_only", False),
        "vanilla_oom": t["vanilla"]["oom"], "solo_oom": t["solo"]["oom"],
        "vanilla_times_s": [_r(x, 6) for x in t["vanilla"]["times"]],
        "solo_times_s": [_r(x, 6) for x in t["solo"]["times"]],
        "vanilla_forwards": t["vanilla"]["forwards"], "solo_forwards": t["solo"]["forwards"],
        "vanilla_batches": [list(x) for x in t["vanilla"]["shapes"]],
        "solo_batches": [list(x) for x in t["solo"]["shapes"]],
    }


def _explain(row: dict, model, s: dict, device: str, notes: list[str]) -> dict:
    """Profile both methods at a row off the FLOP model; the profile's time-weighted prediction goes into
    the row, the explanation into `notes`."""
    S, R, L = s["short_len"], s["response_len"], row["long_len"]
    prof = {m: profile_step(model, s["losses"][m], L, S, R, device, s["seed"], s["profile_top_k"], warm_up=False)
            for m in METHODS}
    v, so = prof["vanilla"]["self_ms"], prof["solo"]["self_ms"]
    tot_v, tot_s = sum(v.values()), sum(so.values())
    # time-weighted model: vanilla's own time split, each part scaled by how its cost grows --
    # GEMMs and the other (elementwise, per-token) ops with the token count, attention with n^2
    r_tok, r_att = token_ratio(S, L, R), attention_ratio(S, L, R)
    weighted = ((v["gemm"] + v["other"]) * r_tok + v["attention"] * r_att) / max(1e-9, tot_v)
    prof.update({
        "long_len": L,
        "ratio_profiled": _r(tot_s / max(1e-9, tot_v)),
        "ratio_by_category": {k: _r(so[k] / max(1e-9, v[k])) for k in v},
        "token_ratio": _r(r_tok), "attention_ratio": _r(r_att),
        "ratio_pred_time_weighted": _r(weighted),
    })
    row["ratio_pred_time_weighted"] = _r(weighted)
    notes.append(
        f"L={L}: measured SoLo/vanilla {row['ratio_measured']:.3f} vs linear+attention FLOP prediction "
        f"{row['ratio_pred_linear_attention']:.3f} ({row['rel_dev_from_linear_attention']:+.1%}). "
        f"Profile (self time, vanilla | SoLo): GEMM {v['gemm']:.0f} | {so['gemm']:.0f} ms, attention "
        f"{v['attention']:.0f} | {so['attention']:.0f} ms, ops outside the FLOP model (log-softmax, "
        f"elementwise, norms, rotary, copies) {v['other']:.0f} | {so['other']:.0f} ms "
        f"({prof['vanilla']['share']['other']:.0%} | {prof['solo']['share']['other']:.0%}). "
        f"Per-category SoLo/vanilla: " + ", ".join(f"{k} {x:.3f}" for k, x in prof["ratio_by_category"].items())
        + f" (token-count ratio {r_tok:.3f}, attention n^2 ratio {r_att:.3f}). Weighting the two cost "
        f"laws by vanilla's measured time split instead of FLOPs predicts {weighted:.3f} "
        f"({row['ratio_measured'] / weighted - 1:+.1%} from the measured ratio).")
    return prof


def _max_length(s: dict, peaks: dict, model, gpu: bool) -> dict:
    """The max-length search of both methods under ``max_length.cap_mb``."""
    cap = float(s["max_length"]["cap_mb"])
    # lengths whose measured peak (CPU: same quantity as the cap) already fits need no probe
    known = {m: max((L for (mm, L), pk in peaks.items() if mm == m and pk is not None and pk <= cap
                     and not gpu), default=None) for m in METHODS}
    res = {m: max_trainable_length(m, cap, s, model if gpu else None, known[m]) for m in METHODS}
    v, so = res["vanilla"]["max_len"], res["solo"]["max_len"]
    return {"cap_mb": cap, "vanilla": v, "solo": so, "ratio": _r(so / v, 3) if v and so else None,
            "granularity": res["vanilla"]["granularity"], "cap_applies_to": res["vanilla"]["cap_applies_to"],
            "censored_at_hi": {m: res[m]["censored_at_hi"] for m in METHODS},
            "known_to_fit_from_rows": known,
            "probes": {m: res[m]["probes"] for m in METHODS}}


def _acceptance(rows: list[dict], tol: float) -> dict:
    both = [r for r in rows if r["mem_ratio"] is not None]
    return {
        "time_tolerance": tol,
        "time_within_tolerance": {str(r["long_len"]): abs(r["rel_dev_from_linear_attention"]) <= tol
                                  for r in rows if r["rel_dev_from_linear_attention"] is not None},
        # rows off the FLOP model: does the profile's time-weighted model account for the measured ratio?
        "profile_time_weighted_within_tolerance": {
            str(r["long_len"]): abs(r["ratio_measured"] / r["ratio_pred_time_weighted"] - 1) <= tol
            for r in rows if r.get("ratio_pred_time_weighted")},
        "longest_len_with_both_memories": both[-1]["long_len"] if both else None,
        "mem_ratio_at_longest": both[-1]["mem_ratio"] if both else None,
        "mem_ratio_ok": (both[-1]["mem_ratio"] <= 0.55) if both else None,
    }


def measure(config: dict | None = None) -> dict:
    """Run the benchmark described in the module docstring; returns the JSON-ready result."""
    import torch

    t_start = time.time()
    s = settings(config)
    device, dtype, attn = resolve_runtime(s["device"], s["dtype"], s["attn_implementation"])
    gpu = device.startswith("cuda")
    if s["threads"]:
        torch.set_num_threads(int(s["threads"]))
    S, R = s["short_len"], s["response_len"]
    model = build_model(s["model"], max(s["lengths"]) + R + 16, device, dtype, attn, s["seed"])
    attn_used = getattr(model.config, "_attn_implementation", attn)
    P = flop_params(model)
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    notes: list[str] = []

    mem_mode = "cuda" if gpu else ("inprocess" if s["memory"] == "inprocess" else "none")
    timed = time_steps(model, s, device, mem_mode)
    # CPU peak memory in fresh processes (vanilla, solo interleaved per length)
    mem_only = [{"long_len": L, "memory_only": True} for L in s["memory_lengths"]] if s["memory"] == "subprocess" \
        and not gpu else []
    peaks = _peaks(s, timed, mem_only, mem_mode, (device, dtype, attn), notes)
    empty = {"times": [], "forwards": None, "shapes": [], "oom": False}
    rows = [_row(t, peaks, S, R, P, layers, hidden)
            for t in sorted(timed + [{**x, "vanilla": empty, "solo": empty} for x in mem_only],
                            key=lambda x: x["long_len"])]

    # profiles where the measured ratio is off the linear + attention prediction
    tol = float(s["profile_tolerance"])
    profiles = [_explain(row, model, s, device, notes) for row in rows if s["profile"]
                and row["rel_dev_from_linear_attention"] is not None and abs(row["rel_dev_from_linear_attention"]) > tol]
    max_length = _max_length(s, peaks, model, gpu) if s["max_length"] and s["max_length"].get("cap_mb") else None
    if not gpu:
        notes.append("CPU peak memory = peak RSS increase of one step over the process with the model loaded "
                     f"({MEMORY_HOW[s['memory'] == 'subprocess']}).")
    notes.append("memory: with O(n)-memory attention (SDPA / FlashAttention) the activations grow with the tokens "
                 "held at the peak, and SoLo holds the short pair's graph through the long backward, so "
                 "SoLo/vanilla memory -> (2(S+R) + (L+R)) / (2(L+R)) (mem_ratio_pred_tokens): 0.5 only as L grows "
                 "(<= 0.55 needs L+R >= 20(S+R)).")
    notes.append("step = forward(s) + loss + backward, no optimizer update; times are the minimum over repeats "
                 "after one warm-up step per method, the methods interleaved in one process.")
    threads = torch.get_num_threads()
    return {
        "device": torch.cuda.get_device_name(0) if gpu else f"cpu ({threads} thread{'s' if threads != 1 else ''})",
        "dtype": dtype, "attention_impl": attn_used,
        "model": {"architecture": "Qwen2ForCausalLM (random init)", **deep_merge(MODEL_DEFAULTS, s["model"]),
                  "flop_params": P, "total_params": sum(p.numel() for p in model.parameters())},
        "short_len": S, "response_len": R, "repeats": s["repeats"], "losses": s["losses"],
        "rows": rows, "max_length": max_length, "flop_model": FLOP_MODEL, "acceptance": _acceptance(rows, tol),
        "profiles": profiles, "notes": notes,
        "versions": {"torch": torch.__version__}, "wall_s": round(time.time() - t_start, 1),
    }


def run(config: dict | None, out_json, out_png, log_file=None) -> dict:
    """Snakemake entry point: measure, plot, write the JSON and PNG (atomically, with manifests)."""
    from solopo.artifacts import atomic_path, write_json, write_manifest

    handler, bench_log = None, logging.getLogger("solopo.bench")  # the parent of every benchmark module's logger
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        bench_log.addHandler(handler)
        bench_log.setLevel(logging.INFO)
    try:
        started = time.time()
        result = measure(config)
        cfg_slice = settings(config)
        with atomic_path(out_png) as tmp:
            plot(result, tmp)
            write_manifest(out_png, cfg_slice, started=started)
        write_manifest(out_json, cfg_slice, started=started)
        write_json(out_json, result)
        log.info("wrote %s and %s", out_json, out_png)
        return result
    finally:
        if handler is not None:
            bench_log.removeHandler(handler)
            handler.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solopo.bench.efficiency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/bench/efficiency.json")
    ap.add_argument("--png", default=None, help="default: --out with .png")
    ap.add_argument("--config", default=None, help="a YAML file: a pipeline config (bench.efficiency is read) or the block itself")
    ap.add_argument("--lengths", type=int, nargs="+")
    ap.add_argument("--memory-lengths", type=int, nargs="*", help="extra lengths, memory only")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--short-len", type=int)
    ap.add_argument("--response-len", type=int)
    ap.add_argument("--cap-mb", type=float, help="memory cap of the max-length search (0: skip the search)")
    ap.add_argument("--memory", choices=["subprocess", "inprocess", "off"])
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--no-profile", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg: dict = {}
    if a.config:
        import yaml

        loaded = yaml.safe_load(Path(a.config).read_text()) or {}
        cfg = loaded.get("bench", {}).get("efficiency", loaded) if "bench" in loaded else loaded
    for key, val in (("lengths", a.lengths), ("memory_lengths", a.memory_lengths), ("repeats", a.repeats),
                     ("short_len", a.short_len), ("response_len", a.response_len), ("memory", a.memory),
                     ("device", a.device), ("threads", a.threads)):
        if val is not None:
            cfg[key] = val
    if a.cap_mb is not None:
        cfg["max_length"] = None if a.cap_mb <= 0 else {**(cfg.get("max_length") or {}), "cap_mb": a.cap_mb}
    if a.no_profile:
        cfg["profile"] = False
    png = a.png or str(Path(a.out).with_suffix(".png"))
    result = run(cfg, a.out, png)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
