"""Step time of the efficiency benchmark (with GPU or in-process memory beside it) and the profile
that explains a gap between a measured and a predicted ratio."""
from __future__ import annotations

import gc
import logging
import time

from solopo.bench.memory import RssMeter
from solopo.bench.step import METHODS, Step, count_forwards, is_oom, sync

log = logging.getLogger(__name__)


def time_steps(model, s: dict, device: str, memory: str) -> list[dict]:
    """Per long length: warm-up, then `repeats` interleaved timed steps (vanilla, solo, vanilla, solo, ...).
    memory: "cuda" (max_memory_allocated), "inprocess" (VmHWM reset) or anything else (not measured here).
    A method that runs out of memory at a length is recorded as "oom" there (no times), as in Table 10."""
    import torch

    def clean():
        model.zero_grad(set_to_none=True)
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    out = []
    for L in s["lengths"]:
        steps, res = {}, {}
        for m in METHODS:
            steps[m] = Step(model, s["losses"][m], L, s["short_len"], s["response_len"], s["seed"])
            res[m] = {"times": [], "mem": [], "forwards": None, "shapes": steps[m].shapes, "oom": False}
        for m in METHODS:  # warm-up, counting the policy forwards of one step
            calls, handle = count_forwards(model)
            clean()
            try:
                steps[m]()
                sync(device)
            except (RuntimeError, MemoryError) as e:
                if not is_oom(e):
                    raise
                res[m]["oom"] = True
                log.warning("L=%d %s: out of memory (%s)", L, m, str(e)[:120])
            finally:
                handle.remove()
            res[m]["forwards"] = calls[0]
        for _ in range(s["repeats"]):
            for m in METHODS:
                if res[m]["oom"]:
                    continue
                clean()
                if memory == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                elif memory == "inprocess":
                    meter = RssMeter()
                    meter.start()
                sync(device)
                t0 = time.perf_counter()
                steps[m]()
                sync(device)
                res[m]["times"].append(time.perf_counter() - t0)
                if memory == "cuda":
                    res[m]["mem"].append((torch.cuda.max_memory_allocated() - base) / 2**20)
                elif memory == "inprocess":
                    res[m]["mem"].append(meter.peak_mb())
        del steps
        clean()
        log.info("L=%d: vanilla %s s, solo %s s", L, [round(t, 3) for t in res["vanilla"]["times"]] or "OOM",
                 [round(t, 3) for t in res["solo"]["times"]] or "OOM")
        out.append({"long_len": L, **res})
    return out


def op_category(name: str) -> str:
    """Which term of the FLOP model an operator belongs to: attention (n^2), gemm (2 P n) or other."""
    n = name.lower()
    if any(k in n for k in ("scaled_dot_product", "flash", "attention", "sdpa")):
        return "attention"
    if "mm" in n or "matmul" in n or "linear" in n or "gemm" in n:
        return "gemm"
    return "other"


def profile_step(model, loss_name: str, long_len: int, short_len: int, response_len: int, device: str,
                 seed: int = 0, top_k: int = 12, warm_up: bool = True) -> dict:
    """torch.profiler of one step: top ops by self time and the self time in GEMMs (the FLOP model's
    2 P n), attention (its n^2 term) and everything else (not in the model)."""
    from torch.profiler import ProfilerActivity, profile

    step = Step(model, loss_name, long_len, short_len, response_len, seed)
    if warm_up:
        model.zero_grad(set_to_none=True)
        step()
        sync(device)
    model.zero_grad(set_to_none=True)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        step()
        sync(device)
    wall = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    gpu = device.startswith("cuda")
    events = []
    for e in prof.key_averages():
        self_us = getattr(e, "self_device_time_total", 0) if gpu else e.self_cpu_time_total
        events.append((e.key, float(self_us) / 1e3, int(e.count)))
    events.sort(key=lambda x: -x[1])
    cats = {"gemm": 0.0, "attention": 0.0, "other": 0.0}
    for name, ms, _ in events:
        # autograd-engine wrappers ("MmBackward0" ...) only dispatch: their self time is overhead
        cats["other" if name.startswith("autograd::") or "Backward" in name else op_category(name)] += ms
    total = sum(cats.values()) or 1.0
    return {"loss": loss_name, "long_len": long_len, "wall_s": round(wall, 3),
            "self_ms": {k: round(v, 1) for k, v in cats.items()},
            "share": {k: round(v / total, 3) for k, v in cats.items()},
            "top_ops": [{"op": n, "self_ms": round(ms, 2), "calls": c} for n, ms, c in events[:top_k]]}
