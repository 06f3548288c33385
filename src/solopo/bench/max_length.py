"""The longest x_long each method can train under a memory cap (the paper's Fig. 1b: 9K vanilla vs
19K SoLo): doubling until a probe fails, then bisection to a granularity."""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

from solopo.bench.memory import job_spec, run_in_subprocess
from solopo.bench.step import Step, build_model, resolve_runtime

log = logging.getLogger(__name__)


def bisect_longest(fits: Callable[[int], bool | None], good: int, bad: int, granularity: int
                   ) -> tuple[int, int, bool]:
    """Narrow (`good` fits, `bad` does not) until they are `granularity` apart, probing multiples of it.
    `fits(L)` answers True / False, or None to stop early (a time budget). Returns (good, bad, stopped)."""
    while bad - good > granularity:
        mid = (good + bad) // 2 // granularity * granularity
        if mid <= good:
            mid = good + granularity
        if mid >= bad:
            break
        ok = fits(mid)
        if ok is None:
            return good, bad, True
        good, bad = (mid, bad) if ok else (good, mid)
    return good, bad, False


def search_longest(probe: Callable[[int], dict], lo: int, hi: int, granularity: int, known_ok: int | None = None
                   ) -> tuple[int | None, bool, list[dict]]:
    """Doubling from `lo` (up to `hi`) until a probe fails, then bisection to `granularity`.
    `known_ok`: a length already known to fit (doubling starts above it, no probe is spent on it).
    Returns (longest length that fit or None, censored = even `hi` fit, probes)."""
    probes: list[dict] = []

    def fits(L: int) -> bool:
        r = {"long_len": int(L), **probe(int(L))}
        probes.append(r)
        log.info("probe L=%d: %s", L, r)
        return r["ok"]

    good, bad, L = None, None, lo
    if known_ok is not None and known_ok >= lo:
        good = known_ok
        if known_ok >= hi:
            return good, True, probes
        L = min(2 * known_ok, hi)
    while True:
        if fits(L):
            good = L
        else:
            bad = L
            break
        if L >= hi:
            break
        L = min(2 * L, hi)
    if good is None:
        return None, False, probes
    if bad is None:
        return good, True, probes
    good, _, _ = bisect_longest(fits, good, bad, granularity)
    return good, False, probes


def _cuda_probe(model, s: dict, method: str, mem_cap_mb: float, device: str) -> Callable[[int], dict]:
    """A probe in this process: the cap is the whole CUDA caching allocator of the process (weights
    included), enforced with set_per_process_memory_fraction; a probe fails on OutOfMemoryError."""
    import torch

    total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    frac = min(1.0, mem_cap_mb * 2**20 / total)

    def probe(L: int) -> dict:
        torch.cuda.set_per_process_memory_fraction(frac)
        model.zero_grad(set_to_none=True)
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        ok, err = True, None
        try:
            Step(model, s["losses"][method], L, s["short_len"], s["response_len"], s["seed"])()
            torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError as e:
            ok, err = False, f"OutOfMemoryError: {str(e)[:160]}"
        finally:
            model.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction(1.0)
        return {"ok": ok, "peak_mb": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1),
                "error": err, "seconds": round(time.perf_counter() - t0, 3)}

    return probe


def max_trainable_length(method: str, mem_cap_mb: float, s: dict, model=None, known_ok: int | None = None) -> dict:
    """Longest x_long length L (to `granularity`) at which one step of `method` ("vanilla" / "solo")
    stays within `mem_cap_mb`; `s`: the benchmark's checked settings (`efficiency.settings`).

    CPU: each probe is a fresh subprocess; the cap applies to the peak RSS increase of the step over
    the process with the model loaded (activations, gradients, temporaries; the weights of the tiny
    model are a few MiB). GPU: in-process, the cap is the whole CUDA caching allocator of the process
    (weights included). `known_ok`: a length already measured within the cap (the search starts above it)."""
    ml = s["max_length"]
    if not ml:
        raise ValueError("bench.efficiency.max_length: null; the search needs cap_mb, lo, hi and granularity")
    runtime = resolve_runtime(s["device"], s["dtype"], s["attn_implementation"])
    device = runtime[0]
    if device.startswith("cuda"):
        if model is None:
            model = build_model(s["model"], ml["hi"] + s["response_len"] + 16, device, runtime[1], runtime[2], s["seed"])
        probe = _cuda_probe(model, s, method, mem_cap_mb, device)
        applies_to = "total CUDA memory of the process (weights included), set_per_process_memory_fraction"
    else:
        def probe(L: int) -> dict:
            return run_in_subprocess(job_spec(s, runtime, method, L, mem_cap_mb), s["worker_timeout_s"])

        applies_to = "peak RSS increase of the step over the process with the model loaded (fresh process per probe)"
    best, censored, probes = search_longest(probe, int(ml["lo"]), int(ml["hi"]), int(ml["granularity"]), known_ok)
    return {"method": method, "loss": s["losses"][method], "cap_mb": mem_cap_mb, "max_len": best,
            "censored_at_hi": censored, "granularity": int(ml["granularity"]), "cap_applies_to": applies_to,
            "probes": probes}
