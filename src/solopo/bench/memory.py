"""CPU peak memory of one benchmark step: the peak RSS increase over the process with the model loaded
(Linux /proc), measured in a fresh process per (method, length) so earlier steps leave nothing behind.

`python -m solopo.bench.memory` is that process: it reads one job (`job_spec`) as JSON on stdin and
prints its result as one JSON line. With a cap it is also the CPU probe of the max-length search:
a watchdog ends the step as soon as the RSS increase passes the cap (a failed probe costs seconds).
"""
from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path


def proc_status_kb(field: str) -> int | None:
    """A `/proc/self/status` figure in kB (VmRSS, VmHWM, VmSize); None where there is no /proc."""
    try:
        m = re.search(rf"^{field}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class RssMeter:
    """Peak RSS increase (MiB) over the RSS at `start()`; falls back to ru_maxrss where VmHWM cannot be reset."""

    def start(self) -> None:
        import resource

        gc.collect()
        self.reset = reset_peak_rss()
        self.rss0 = proc_status_kb("VmRSS") or 0
        self.maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak_mb(self) -> float:
        import resource

        if self.reset and proc_status_kb("VmHWM") is not None:
            peak = proc_status_kb("VmHWM")
        else:
            peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, self.maxrss0)
        return max(0.0, (peak - self.rss0) / 1024.0)


def job_spec(s: dict, runtime: tuple[str, str, str], method: str, long_len: int, cap_mb: float | None = None) -> dict:
    """The job of one measurement from the benchmark's settings `s` and (device, dtype, attention)."""
    return {"model": s["model"], "loss": s["losses"][method], "long_len": int(long_len), "short_len": s["short_len"],
            "response_len": s["response_len"], "dtype": runtime[1], "attn_implementation": runtime[2],
            "threads": s["threads"], "seed": s["seed"], "cap_mb": cap_mb,
            "malloc_mmap_threshold": s["malloc_mmap_threshold"]}


def measure_step(job: dict) -> dict:
    """In a fresh process: build the model, warm up on a tiny step, then measure the peak RSS increase
    of one step of (loss, long_len), ended early by the watchdog once it passes ``cap_mb``."""
    import resource

    import torch

    from solopo.bench.step import Step, build_model

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    L, S, R = job["long_len"], job["short_len"], job["response_len"]
    model = build_model(job["model"], L + R + 16, "cpu", job["dtype"], job["attn_implementation"], job["seed"])
    warm = Step(model, job["loss"], min(256, L), min(64, S), min(32, R), job["seed"])
    warm()
    del warm
    model.zero_grad(set_to_none=True)
    step = Step(model, job["loss"], L, S, R, job["seed"])
    cap_mb = job.get("cap_mb")
    meter = RssMeter()
    meter.start()
    done = threading.Event()

    def watchdog():
        while not done.wait(0.005):
            rss = proc_status_kb("VmRSS") or 0
            if (rss - meter.rss0) / 1024.0 > cap_mb:
                sys.stdout.write(json.dumps({"ok": False, "peak_mb": round((rss - meter.rss0) / 1024.0, 1),
                                             "error": f"RSS increase passed the cap of {cap_mb} MiB",
                                             "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
                sys.stdout.flush()
                os._exit(0)

    # a hard guard against a runaway probe: address space limited to 4x the cap above the current one
    t0 = time.perf_counter()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if cap_mb:
        vm = (proc_status_kb("VmSize") or 0) * 1024
        limit = vm + int(4 * cap_mb + 1024) * 2**20
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        threading.Thread(target=watchdog, daemon=True).start()
    ok, error = True, None
    try:
        step()
    except (MemoryError, RuntimeError) as e:  # the address-space guard
        ok, error = False, f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        done.set()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    seconds = time.perf_counter() - t0
    peak = meter.peak_mb()
    if cap_mb and peak > cap_mb:
        ok, error = False, error or f"peak RSS increase {peak:.0f} MiB > cap {cap_mb} MiB"
    return {"ok": ok, "peak_mb": round(peak, 1), "error": error, "seconds": round(seconds, 3),
            "rss_reset": meter.reset}


def run_in_subprocess(job: dict, timeout_s: float) -> dict:
    """`measure_step(job)` in a fresh `python -m solopo.bench.memory`; a crash or timeout is {"ok": False}."""
    from solopo.runtime import OFFLINE_ENV

    env = {**os.environ, **OFFLINE_ENV}
    if job.get("threads"):
        env["OMP_NUM_THREADS"] = str(job["threads"])
    if job.get("malloc_mmap_threshold"):
        env["MALLOC_MMAP_THRESHOLD_"] = str(int(job["malloc_mmap_threshold"]))
    try:
        proc = subprocess.run([sys.executable, "-m", "solopo.bench.memory"], input=json.dumps(job),
                              capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "peak_mb": None, "error": f"worker timed out after {timeout_s} s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"ok": False, "peak_mb": None,
            "error": f"worker exited with {proc.returncode}: {proc.stderr.strip()[-400:]}"}


if __name__ == "__main__":
    print(json.dumps(measure_step(json.loads(sys.stdin.read()))), flush=True)
