"""Efficiency benchmark: SoLo's two-stage forward against vanilla long-context PO (paper §6).

One training *step* (forward + backward of a real loss, no optimizer update) of a randomly
initialised model of a real architecture (a scaled-down Qwen2), two ways:

- **vanilla** long-context PO (ORPO on x_long, loss ``orpo``): ONE concatenated forward of
  (x_long, y_w) and (x_long, y_l), a batch of 2 sequences of L + R tokens;
- **SoLo** (SoLo-ORPO, loss ``solo_orpo``): the trainer's two-stage forward, the short pair
  together (batch 2 of S + R), then the long chosen copy apart (batch 1 of L + R).

Both go through the library's own pieces (`forward._collate`, `forward.sequence_logps`,
`losses.get_loss(...).fn`), staged exactly as `forward.policy_outputs` stages them.

Measured per long length L: the step time (minimum over ``repeats`` after a warm-up step, the
two methods interleaved A, B, A, B in one process) and the peak memory of the step (CPU: the
peak RSS increase of the step over the process with the model loaded, each (method, L) in a
fresh subprocess with a fixed glibc mmap threshold so that the RSS follows the live tensors;
GPU: ``torch.cuda.max_memory_allocated`` above the memory before the step). ``memory_lengths``
adds lengths where only the memory is measured (the longest length both methods still run).
Beside each measurement: the paper's attention-only prediction (Eq. 11-12), SoLo/vanilla =
(2c^2 + 1) / 2 with c = |x_short| / |x_long| = S / L, and a linear + attention FLOP model
(`FLOP_MODEL`). `max_trainable_length` binary-searches the longest L each method can train
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
import copy
import gc
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

METHODS = ("vanilla", "solo")

DEFAULTS: dict = {
    # the stack_probe reference architecture (Qwen2, random init)
    "model": {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2,
              "intermediate_size": 704, "vocab_size": 2000},
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

FLOP_MODEL = ("per sequence of n tokens, F(n) = 3 * (2*P*n + layers*4*d*n^2) (forward + backward = 3 x forward; "
              "2*P*n for the weight matmuls, P = non-embedding parameters + the LM head; layers*4*d*n^2 for QK^T and AV "
              "with a full n x n score matrix); vanilla = 2*F(L+R); SoLo = 2*F(S+R) + F(L+R); "
              "ratio_pred_linear_attention = SoLo / vanilla. Attention only (paper Eq. 11-12): "
              "ratio_pred_attention_only = (2*c^2 + 1) / 2, speedup = 2 / (2*c^2 + 1), c = S / L.")


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def settings(config: dict | None) -> dict:
    """`DEFAULTS` overridden by `config` (the ``bench.efficiency`` block), checked."""
    unknown = set(config or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"bench.efficiency: unknown keys {sorted(unknown)}; allowed: {', '.join(DEFAULTS)}")
    s = _merge(DEFAULTS, config or {})
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


# --------------------------------------------------------------------------------------------------
# FLOP model
# --------------------------------------------------------------------------------------------------


def ratio_attention_only(c: float) -> float:
    """SoLo / vanilla attention cost (paper Eq. 11): (2c^2 + 1) L^2 / (2 L^2), c = |x_short| / |x_long|."""
    return (2 * c * c + 1) / 2


def speedup_attention_only(c: float) -> float:
    """Paper Eq. 12: vanilla / SoLo = 2 / (2c^2 + 1); c = 1/8 gives 1.94x, no gain from c = 1/sqrt(2) on."""
    return 2 / (2 * c * c + 1)


def step_flops(n: int, params: int, layers: int, hidden: int) -> float:
    """Forward + backward FLOPs of one sequence of n tokens: 3 * (2 P n + layers * 4 d n^2)."""
    return 3.0 * (2.0 * params * n + layers * 4.0 * hidden * n * n)


def ratio_linear_attention(short_len: int, long_len: int, response_len: int, params: int, layers: int,
                           hidden: int) -> float:
    """SoLo / vanilla step FLOPs: (2 F(S+R) + F(L+R)) / (2 F(L+R))."""
    f_short = step_flops(short_len + response_len, params, layers, hidden)
    f_long = step_flops(long_len + response_len, params, layers, hidden)
    return (2 * f_short + f_long) / (2 * f_long)


def flop_params(model) -> int:
    """P of the FLOP model: the parameters that multiply every token, i.e. all but the input embedding,
    plus the LM head (counted even when tied to the embedding)."""
    cfg = model.config
    seen, total = set(), 0
    for name, p in model.named_parameters():  # named_parameters skips tied duplicates
        if id(p) in seen or "embed_tokens" in name:
            continue
        seen.add(id(p))
        total += p.numel()
    if getattr(cfg, "tie_word_embeddings", False):
        total += cfg.vocab_size * cfg.hidden_size
    return int(total)


# --------------------------------------------------------------------------------------------------
# Model and step
# --------------------------------------------------------------------------------------------------


def resolve_runtime(device: str = "auto", dtype: str = "auto", attn: str = "auto") -> tuple[str, str, str]:
    """(device, dtype name, attention implementation): CPU float32 + sdpa; GPU bfloat16 +
    flash_attention_2 when the flash-attn package is installed, else sdpa."""
    import importlib.util

    from solopo.runtime import pick_device

    device = pick_device(device)
    gpu = device.startswith("cuda")
    if dtype == "auto":
        dtype = "bfloat16" if gpu else "float32"
    if attn == "auto":
        attn = "flash_attention_2" if gpu and importlib.util.find_spec("flash_attn") is not None else "sdpa"
    return device, dtype, attn


def build_model(model_cfg: dict, max_positions: int, device: str = "cpu", dtype: str = "float32",
                attn_implementation: str = "sdpa", seed: int = 0):
    """A randomly initialised Qwen2ForCausalLM of the given size, in train mode (no dropout in Qwen2)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from solopo.runtime import MODEL_LOAD_LOCK, TORCH_RNG_LOCK

    m = _merge(DEFAULTS["model"], model_cfg)
    cfg = Qwen2Config(vocab_size=m["vocab_size"], hidden_size=m["hidden_size"],
                      intermediate_size=m["intermediate_size"], num_hidden_layers=m["num_layers"],
                      num_attention_heads=m["num_heads"], num_key_value_heads=m["num_kv_heads"],
                      max_position_embeddings=int(max_positions), tie_word_embeddings=True,
                      attn_implementation=attn_implementation, use_cache=False)
    with MODEL_LOAD_LOCK, TORCH_RNG_LOCK:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg)
    model.to(device=device, dtype=getattr(torch, dtype))
    model.train()
    return model


class Step:
    """One training step of `loss_name` (forward(s) + loss + backward), staged like
    `forward.policy_outputs`: the PO-prompt pair in one forward, the long copies in another.

    For a vanilla loss the PO prompt is x_long (long-context PO); for a SoLo loss it is x_short."""

    def __init__(self, model, loss_name: str, long_len: int, short_len: int, response_len: int, seed: int = 0,
                 loss_cfg=None):
        import torch

        from solopo.train.forward import _collate
        from solopo.train.losses import LossConfig, get_loss

        self.model = model
        self.spec = get_loss(loss_name)
        self.loss_cfg = loss_cfg or LossConfig()
        device = next(model.parameters()).device
        vocab = model.config.vocab_size
        g = torch.Generator().manual_seed(seed)

        def rand(n):
            return torch.randint(0, vocab, (n,), generator=g).tolist()

        x_long, x_short, y_w, y_l = rand(long_len), rand(short_len), rand(response_len), rand(response_len)
        x_po = x_long if self.spec.variant == "vanilla" else x_short
        fields = {"chosen": (x_po, y_w), "rejected": (x_po, y_l), "long_chosen": (x_long, y_w),
                  "long_rejected": (x_long, y_l)}
        needs = self.spec.needs
        self.stages = []
        for stage in (("chosen", "rejected"), ("long_chosen", "long_rejected")):
            names = [n for n in stage if n in needs]
            if names:
                seqs = [(fields[n][0] + fields[n][1], response_len) for n in names]
                self.stages.append((names, _collate(seqs, 0, device)))
        self.shapes = [tuple(b["input_ids"].shape) for _, b in self.stages]

    def __call__(self) -> float:
        from solopo.train.forward import sequence_logps
        from solopo.train.losses import PolicyOutputs, SeqLogps

        out = PolicyOutputs()
        for names, batch in self.stages:
            sums, counts, _ = sequence_logps(self.model, batch)
            for k, name in enumerate(names):
                setattr(out, name, SeqLogps(sums[k:k + 1], counts[k:k + 1]))
        loss, _ = self.spec.fn(out, self.loss_cfg)
        loss.backward()
        return float(loss.detach())


def prepare_step(model, loss_name: str, long_len: int, short_len: int, response_len: int, seed: int = 0) -> Step:
    return Step(model, loss_name, long_len, short_len, response_len, seed)


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------------
# CPU memory: peak RSS of the step (Linux /proc)
# --------------------------------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class _RssMeter:
    """Peak RSS increase (MiB) over the RSS at `start()`; falls back to ru_maxrss where VmHWM cannot be reset."""

    def start(self) -> None:
        import resource

        gc.collect()
        self.reset = _reset_peak_rss()
        self.rss0 = _proc_status_kb("VmRSS") or 0
        self.maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak_mb(self) -> float:
        import resource

        if self.reset and _proc_status_kb("VmHWM") is not None:
            peak = _proc_status_kb("VmHWM")
        else:
            peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, self.maxrss0)
        return max(0.0, (peak - self.rss0) / 1024.0)


def _worker(job: dict) -> dict:
    """Run in a fresh process: build the model, warm up on a tiny step, then measure the peak RSS
    increase of one step of (method, long_len). With ``cap_mb`` a watchdog ends the step as soon as
    the RSS increase passes the cap (a failed probe costs seconds, not a whole long step)."""
    import resource

    import torch

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
    meter = _RssMeter()
    meter.start()
    over = threading.Event()
    done = threading.Event()

    def watchdog():
        while not done.wait(0.005):
            rss = _proc_status_kb("VmRSS") or 0
            if (rss - meter.rss0) / 1024.0 > cap_mb:
                over.set()
                sys.stdout.write(json.dumps({"ok": False, "peak_mb": round((rss - meter.rss0) / 1024.0, 1),
                                             "error": f"RSS increase passed the cap of {cap_mb} MiB",
                                             "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
                sys.stdout.flush()
                os._exit(0)

    # a hard guard against a runaway probe: address space limited to 4x the cap above the current one
    t0 = time.perf_counter()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if cap_mb:
        vm = (_proc_status_kb("VmSize") or 0) * 1024
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


def _run_worker(job: dict, timeout_s: float) -> dict:
    from solopo.runtime import OFFLINE_ENV

    env = {**os.environ, **OFFLINE_ENV}
    if job.get("threads"):
        env["OMP_NUM_THREADS"] = str(job["threads"])
    if job.get("malloc_mmap_threshold"):
        env["MALLOC_MMAP_THRESHOLD_"] = str(int(job["malloc_mmap_threshold"]))
    try:
        proc = subprocess.run([sys.executable, "-m", "solopo.bench.efficiency", "--worker"], input=json.dumps(job),
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "peak_mb": None, "error": f"worker timed out after {timeout_s} s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    return {"ok": False, "peak_mb": None,
            "error": f"worker exited with {proc.returncode}: {proc.stderr.strip()[-400:]}"}


def _job(s: dict, runtime: tuple[str, str, str], method: str, long_len: int, cap_mb: float | None = None) -> dict:
    return {"model": s["model"], "loss": s["losses"][method], "long_len": int(long_len), "short_len": s["short_len"],
            "response_len": s["response_len"], "dtype": runtime[1], "attn_implementation": runtime[2],
            "threads": s["threads"], "seed": s["seed"], "cap_mb": cap_mb,
            "malloc_mmap_threshold": s["malloc_mmap_threshold"]}


# --------------------------------------------------------------------------------------------------
# Timing (and GPU / in-process memory)
# --------------------------------------------------------------------------------------------------


def _count_forwards(model):
    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


def _is_oom(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "out of memory" in msg or "can't allocate memory" in msg or "cannot allocate memory" in msg))


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
            calls, handle = _count_forwards(model)
            clean()
            try:
                steps[m]()
                _sync(device)
            except (RuntimeError, MemoryError) as e:
                if not _is_oom(e):
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
                    meter = _RssMeter()
                    meter.start()
                _sync(device)
                t0 = time.perf_counter()
                steps[m]()
                _sync(device)
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


# --------------------------------------------------------------------------------------------------
# Longest trainable length under a memory cap
# --------------------------------------------------------------------------------------------------


def _search(probe, lo: int, hi: int, granularity: int, known_ok: int | None = None
            ) -> tuple[int | None, bool, list[dict]]:
    """Doubling from `lo` (up to `hi`) until a probe fails, then bisection to `granularity`.
    `known_ok`: a length already known to fit (doubling starts above it, no probe is spent on it).
    Returns (longest length that fit or None, censored = even `hi` fit, probes)."""
    probes: list[dict] = []

    def run(L):
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
        if run(L):
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
    while bad - good > granularity:
        mid = (good + bad) // 2 // granularity * granularity
        if mid <= good:
            mid = good + granularity
        if mid >= bad:
            break
        if run(mid):
            good = mid
        else:
            bad = mid
    return good, False, probes


def max_trainable_length(method: str, mem_cap_mb: float, config: dict | None = None, model=None,
                         known_ok: int | None = None) -> dict:
    """Longest x_long length L (to `granularity`) at which one step of `method` ("vanilla" / "solo")
    stays within `mem_cap_mb`.

    CPU: each probe is a fresh subprocess; the cap applies to the peak RSS increase of the step over
    the process with the model loaded (activations, gradients, temporaries; the weights of the tiny
    model are a few MiB). GPU: in-process, the cap is the whole CUDA caching allocator of the process
    (weights included), enforced with ``torch.cuda.set_per_process_memory_fraction``; a probe fails
    on ``torch.cuda.OutOfMemoryError``. `known_ok`: a length already measured within the cap (the
    search starts above it)."""
    s = settings(config)
    ml = s["max_length"] or DEFAULTS["max_length"]
    runtime = resolve_runtime(s["device"], s["dtype"], s["attn_implementation"])
    device = runtime[0]
    if device.startswith("cuda"):
        import torch

        if model is None:
            model = build_model(s["model"], ml["hi"] + s["response_len"] + 16, device, runtime[1], runtime[2], s["seed"])
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        frac = min(1.0, mem_cap_mb * 2**20 / total)

        def probe(L):
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

        applies_to = "total CUDA memory of the process (weights included), set_per_process_memory_fraction"
    else:
        def probe(L):
            return _run_worker(_job(s, runtime, method, L, mem_cap_mb), s["worker_timeout_s"])

        applies_to = "peak RSS increase of the step over the process with the model loaded (fresh process per probe)"
    best, censored, probes = _search(probe, int(ml["lo"]), int(ml["hi"]), int(ml["granularity"]), known_ok)
    return {"method": method, "loss": s["losses"][method], "cap_mb": mem_cap_mb, "max_len": best,
            "censored_at_hi": censored, "granularity": int(ml["granularity"]), "cap_applies_to": applies_to,
            "probes": probes}


# --------------------------------------------------------------------------------------------------
# Profile (explains a gap between measured and predicted ratio)
# --------------------------------------------------------------------------------------------------


def _category(name: str) -> str:
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
        _sync(device)
    model.zero_grad(set_to_none=True)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        step()
        _sync(device)
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
        cats["other" if name.startswith("autograd::") or "Backward" in name else _category(name)] += ms
    total = sum(cats.values()) or 1.0
    return {"loss": loss_name, "long_len": long_len, "wall_s": round(wall, 3),
            "self_ms": {k: round(v, 1) for k, v in cats.items()},
            "share": {k: round(v / total, 3) for k, v in cats.items()},
            "top_ops": [{"op": n, "self_ms": round(ms, 2), "calls": c} for n, ms, c in events[:top_k]]}


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


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
    notes = []

    mem_mode = "cuda" if gpu else ("inprocess" if s["memory"] == "inprocess" else "none")
    timed = time_steps(model, s, device, mem_mode)

    # CPU peak memory in fresh processes (vanilla, solo interleaved per length)
    peaks: dict[tuple[str, int], float | None] = {}
    mem_only = [{"long_len": L, "memory_only": True} for L in s["memory_lengths"]] if s["memory"] == "subprocess" \
        and not gpu else []
    for t in timed + mem_only:
        L = t["long_len"]
        for m in METHODS:
            if mem_mode in ("cuda", "inprocess"):
                peaks[(m, L)] = max(t[m]["mem"]) if t[m]["mem"] else None
            elif s["memory"] == "subprocess":
                r = _run_worker(_job(s, (device, dtype, attn), m, L), s["worker_timeout_s"])
                peaks[(m, L)] = r["peak_mb"] if r["ok"] else None
                if not r["ok"]:
                    notes.append(f"memory worker {m} L={L} failed: {r['error']}")
            else:
                peaks[(m, L)] = None

    rows = []
    empty = {"times": [], "forwards": None, "shapes": [], "oom": False}
    for t in sorted(timed + [{**x, "vanilla": empty, "solo": empty} for x in mem_only], key=lambda x: x["long_len"]):
        L = t["long_len"]
        c = S / L
        tv = min(t["vanilla"]["times"]) if t["vanilla"]["times"] else None
        ts = min(t["solo"]["times"]) if t["solo"]["times"] else None
        pv, ps = peaks[("vanilla", L)], peaks[("solo", L)]
        ratio = ts / tv if tv and ts else None
        pred_la = ratio_linear_attention(S, L, R, P, layers, hidden)
        rows.append({
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
            "mem_ratio_pred_tokens": _r((2 * (S + R) + (L + R)) / (2 * (L + R))),
            "timed": not t.get("memory_only", False),
            "vanilla_oom": t["vanilla"]["oom"], "solo_oom": t["solo"]["oom"],
            "vanilla_times_s": [_r(x, 6) for x in t["vanilla"]["times"]],
            "solo_times_s": [_r(x, 6) for x in t["solo"]["times"]],
            "vanilla_forwards": t["vanilla"]["forwards"], "solo_forwards": t["solo"]["forwards"],
            "vanilla_batches": [list(x) for x in t["vanilla"]["shapes"]],
            "solo_batches": [list(x) for x in t["solo"]["shapes"]],
        })

    # profiles where the measured ratio is off the linear + attention prediction
    profiles = []
    tol = float(s["profile_tolerance"])
    if s["profile"]:
        for row in rows:
            if row["rel_dev_from_linear_attention"] is not None and abs(row["rel_dev_from_linear_attention"]) > tol:
                prof = {m: profile_step(model, s["losses"][m], row["long_len"], S, R, device, s["seed"],
                                        s["profile_top_k"], warm_up=False) for m in METHODS}
                L = row["long_len"]
                v, so = prof["vanilla"]["self_ms"], prof["solo"]["self_ms"]
                tot_v, tot_s = sum(v.values()), sum(so.values())
                # time-weighted model: vanilla's own time split, each part scaled by how its cost grows --
                # GEMMs and the other (elementwise, per-token) ops with the token count, attention with n^2
                r_tok = (2 * (S + R) + (L + R)) / (2 * (L + R))
                r_att = (2 * (S + R) ** 2 + (L + R) ** 2) / (2 * (L + R) ** 2)
                weighted = ((v["gemm"] + v["other"]) * r_tok + v["attention"] * r_att) / max(1e-9, tot_v)
                prof.update({
                    "long_len": L,
                    "ratio_profiled": _r(tot_s / max(1e-9, tot_v)),
                    "ratio_by_category": {k: _r(so[k] / max(1e-9, v[k])) for k in v},
                    "token_ratio": _r(r_tok), "attention_ratio": _r(r_att),
                    "ratio_pred_time_weighted": _r(weighted),
                })
                row["ratio_pred_time_weighted"] = _r(weighted)
                profiles.append(prof)
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

    max_length = None
    if s["max_length"] and s["max_length"].get("cap_mb"):
        cap = float(s["max_length"]["cap_mb"])
        # lengths whose measured peak (CPU: same quantity as the cap) already fits need no probe
        known = {m: max((L for (mm, L), pk in peaks.items() if mm == m and pk is not None and pk <= cap
                         and not gpu), default=None) for m in METHODS}
        res = {m: max_trainable_length(m, cap, s, model if gpu else None, known[m]) for m in METHODS}
        v, so = res["vanilla"]["max_len"], res["solo"]["max_len"]
        max_length = {"cap_mb": cap, "vanilla": v, "solo": so, "ratio": _r(so / v, 3) if v and so else None,
                      "granularity": res["vanilla"]["granularity"], "cap_applies_to": res["vanilla"]["cap_applies_to"],
                      "censored_at_hi": {m: res[m]["censored_at_hi"] for m in METHODS},
                      "known_to_fit_from_rows": known,
                      "probes": {m: res[m]["probes"] for m in METHODS}}

    both = [r for r in rows if r["mem_ratio"] is not None]
    acceptance = {
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
    if not gpu:
        notes.append("CPU peak memory = peak RSS increase of one step over the process with the model loaded "
                     f"({'a fresh subprocess per (method, length)' if s['memory'] == 'subprocess' else 'in-process, VmHWM reset before each step; allocator caching can hide part of it'}).")
    notes.append("memory: with O(n)-memory attention (SDPA / FlashAttention) the activations grow with the tokens "
                 "held at the peak, and SoLo holds the short pair's graph through the long backward, so "
                 "SoLo/vanilla memory -> (2(S+R) + (L+R)) / (2(L+R)) (mem_ratio_pred_tokens): 0.5 only as L grows "
                 "(<= 0.55 needs L+R >= 20(S+R)).")
    notes.append("step = forward(s) + loss + backward, no optimizer update; times are the minimum over repeats "
                 "after one warm-up step per method, the methods interleaved in one process.")
    return {
        "device": torch.cuda.get_device_name(0) if gpu else f"cpu ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})",
        "dtype": dtype, "attention_impl": attn_used,
        "model": {"architecture": "Qwen2ForCausalLM (random init)", **_merge(DEFAULTS["model"], s["model"]),
                  "flop_params": P, "total_params": sum(p.numel() for p in model.parameters())},
        "short_len": S, "response_len": R, "repeats": s["repeats"], "losses": s["losses"],
        "rows": rows, "max_length": max_length, "flop_model": FLOP_MODEL, "acceptance": acceptance,
        "profiles": profiles, "notes": notes,
        "versions": {"torch": torch.__version__}, "wall_s": round(time.time() - t_start, 1),
    }


# --------------------------------------------------------------------------------------------------
# Plot and outputs
# --------------------------------------------------------------------------------------------------


def plot(result: dict, path) -> None:
    """Step time, peak memory and speed-up against L (SoLo vs vanilla, with the two predictions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    nan = float("nan")

    def col(key, scale_key=None):
        return [nan if r[key] is None else r[key] * (r[scale_key] if scale_key else 1) for r in rows]

    Ls = [r["long_len"] for r in rows]
    S, R = result["short_len"], result["response_len"]
    m = result["model"]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.3))
    # (a) step time
    ax[0].plot(Ls, col("vanilla_step_s"), "o-", color="C3", label="vanilla (1 fwd, 2 x (L+R))")
    ax[0].plot(Ls, col("solo_step_s"), "s-", color="C0", label="SoLo (2 x (S+R), then 1 x (L+R))")
    ax[0].plot(Ls, col("vanilla_step_s", "ratio_pred_linear_attention"), "--", color="C0",
               alpha=0.7, label="SoLo predicted: vanilla x linear+attn ratio")
    ax[0].plot(Ls, col("vanilla_step_s", "ratio_pred_attention_only"), ":", color="C2",
               label="SoLo predicted: vanilla x (2c²+1)/2")
    ax[0].set(title="step time (fwd + bwd)", xlabel="long context L (tokens)", ylabel="seconds")
    # (b) memory
    if any(r["vanilla_peak_mb"] is not None for r in rows):
        ax[1].plot(Ls, col("vanilla_peak_mb"), "o-", color="C3", label="vanilla")
        ax[1].plot(Ls, col("solo_peak_mb"), "s-", color="C0", label="SoLo")
        ax[1].plot(Ls, col("vanilla_peak_mb", "mem_ratio_pred_tokens"), "--", color="C0", alpha=0.7,
                   label="SoLo predicted: vanilla x (2(S+R)+(L+R))/(2(L+R))")
    ml = result.get("max_length")
    if ml:
        ax[1].axhline(ml["cap_mb"], color="grey", ls="--", lw=1, label=f"cap {ml['cap_mb']:.0f} MiB")
        for meth, colour in (("vanilla", "C3"), ("solo", "C0")):
            if ml[meth]:
                ax[1].axvline(ml[meth], color=colour, ls=":", lw=1.2,
                              label=f"max L under cap, {'SoLo' if meth == 'solo' else meth}: {ml[meth]}")
    ax[1].set(title="peak memory of the step", xlabel="long context L (tokens)", ylabel="MiB")
    # (c) speed-up
    lo, hi = min(Ls), max(Ls)
    if ml:
        hi = max(hi, *(x for x in (ml["vanilla"], ml["solo"]) if x))
    grid = [lo * (hi / lo) ** (i / 60) for i in range(61)] if hi > lo else [lo]
    ax[2].plot(grid, [speedup_attention_only(S / L) for L in grid], ":", color="C2",
               label="paper 2/(2c²+1), c=S/L")
    ax[2].plot(grid, [1 / ratio_linear_attention(S, L, R, m["flop_params"], m["num_layers"], m["hidden_size"])
                      for L in grid], "--", color="C0", label="FLOP model, linear + attention")
    ax[2].plot(Ls, col("speedup_measured"), "s", color="C0", ms=8, label="measured")
    ax[2].axhline(1.0, color="grey", lw=0.8)
    ax[2].set(title="speed-up vanilla / SoLo", xlabel="long context L (tokens)", ylabel="x")
    ax[0].set_yscale("log")
    for a in ax:
        a.set_xscale("log", base=2)
        a.grid(alpha=0.3)
        a.legend(fontsize=7.5)
    fig.suptitle(f"SoLo vs vanilla long-context ORPO step — {result['device']}, {result['dtype']}, "
                 f"{result['attention_impl']}; Qwen2 d={m['hidden_size']}, {m['num_layers']} layers; S={S}, R={R}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def run(config: dict | None, out_json, out_png, log_file=None) -> dict:
    """Snakemake entry point: measure, plot, write the JSON and PNG (atomically, with manifests)."""
    from solopo.artifacts import atomic_path, write_json, write_manifest

    handler = None
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
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
            log.removeHandler(handler)
            handler.close()


def _table(result: dict) -> str:
    lines = ["| L | c | vanilla s | SoLo s | ratio | pred lin+attn | pred attn-only | vanilla MiB | SoLo MiB | mem ratio "
             "| pred tokens |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(x, nd=3):
        return "–" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    for r in result["rows"]:
        tv = "OOM" if r.get("vanilla_oom") else f(r["vanilla_step_s"])
        ts = "OOM" if r.get("solo_oom") else f(r["solo_step_s"])
        lines.append(f"| {r['long_len']} | {f(r['c'])} | {tv} | {ts} | {f(r['ratio_measured'])} | "
                     f"{f(r['ratio_pred_linear_attention'])} | {f(r['ratio_pred_attention_only'])} | "
                     f"{f(r['vanilla_peak_mb'], 0)} | {f(r['solo_peak_mb'], 0)} | {f(r['mem_ratio'])} | "
                     f"{f(r['mem_ratio_pred_tokens'])} |")
    ml = result.get("max_length")
    if ml:
        lines.append(f"\nmax trainable L under {ml['cap_mb']:.0f} MiB: vanilla {ml['vanilla']}, SoLo {ml['solo']}, "
                     f"ratio {ml['ratio']}")
    return "\n".join(lines)


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
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(_worker(json.loads(sys.stdin.read()))), flush=True)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg: dict = {}
    if a.config:
        import yaml

        loaded = yaml.safe_load(Path(a.config).read_text()) or {}
        cfg = loaded.get("bench", {}).get("efficiency", loaded) if "bench" in loaded else loaded
    for key, val in (("lengths", a.lengths), ("memory_lengths", a.memory_lengths), ("repeats", a.repeats), ("short_len", a.short_len),
                     ("response_len", a.response_len), ("memory", a.memory), ("device", a.device),
                     ("threads", a.threads)):
        if val is not None:
            cfg[key] = val
    if a.cap_mb is not None:
        cfg["max_length"] = None if a.cap_mb <= 0 else {**(cfg.get("max_length") or {}), "cap_mb": a.cap_mb}
    if a.no_profile:
        cfg["profile"] = False
    png = a.png or str(Path(a.out).with_suffix(".png"))
    result = run(cfg, a.out, png)
    print(_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
