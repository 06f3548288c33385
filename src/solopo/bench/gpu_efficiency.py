"""The GPU check's efficiency sweep: SoLo vs vanilla long-context ORPO at real model sizes.

Unlike `solopo.bench.efficiency` (a small model, CPU memory measured per subprocess), this one is
made for one short window on one large GPU:

- the model is a randomly initialised Qwen2 of a real shape (Qwen2.5-7B, falling back to
  Qwen2.5-1.5B when 7B with its optimizer does not fit), built directly on the device in bf16;
- the memory a training run holds besides the step is resident: gradients and AdamW states (in the
  weights' dtype, as `solopo.train.trainer` keeps them for bf16 weights), and gradient checkpointing
  is on, so the maximum trainable length is that of a real (single-GPU, no offload) training run;
- x_long doubles from `start_len` until both methods run out of memory (or `max_len` / the time
  budget), each length timed (SoLo and vanilla interleaved) with its peak memory recorded; then the
  longest trainable length of each method is bisected between its last fit and its first OOM
  (the paper's Fig. 1b: 9K vanilla vs 19K SoLo under ZeRO-3 + offload on 4 x A100 80GB);
- every step goes through `solopo.bench.step.Step` (the trainer's `collate` + `sequence_logps` + the loss),
  on the model `solopo.bench.step.build_model` builds; the bisection is `solopo.bench.max_length`'s.

The CPU rehearsal runs the same code: the "device memory" is a cap in MiB on the static memory
(weights + gradients + optimizer) plus the step's peak RSS increase, and a step above it counts as
out of memory. A deadline bounds every phase: a step is started only if its time, extrapolated from
the steps already run, fits before it.
"""
from __future__ import annotations

import gc
import logging
import time

from solopo.bench.flops import flop_params, ratio_attention_only, ratio_linear_attention
from solopo.bench.max_length import bisect_longest
from solopo.bench.memory import RssMeter
from solopo.bench.step import METHODS, Step, build_model, is_oom, resolve_runtime

log = logging.getLogger(__name__)

# Qwen2.5 shapes (the released configs); `tie` as released (7B unties its LM head, 1.5B ties it)
SHAPES: dict[str, dict] = {
    "qwen2.5-7b": {"hidden_size": 3584, "num_layers": 28, "num_heads": 28, "num_kv_heads": 4,
                   "intermediate_size": 18944, "vocab_size": 152064, "tie": False},
    "qwen2.5-1.5b": {"hidden_size": 1536, "num_layers": 28, "num_heads": 12, "num_kv_heads": 2,
                     "intermediate_size": 8960, "vocab_size": 151936, "tie": True},
    "rehearsal": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
                  "intermediate_size": 128, "vocab_size": 2000, "tie": True},
}

GPU_SETTINGS: dict = {
    "models": ["qwen2.5-7b", "qwen2.5-1.5b"],  # the first that fits with its optimizer state
    "short_len": 1100,  # paper App. C: measured average |x_short| 1.1K
    "response_len": 1024,  # a 1K-token response (the paper does not state one)
    "start_len": 4096,
    "max_len": 262144,
    "granularity": 2048,  # of the max-length bisection
    "repeats": 2,  # timed steps per (method, length) up to `long_from`
    "long_from": 32768,  # from here: 1 timed step, no warm-up (each costs tens of seconds at 7B)
    "losses": {"vanilla": "orpo", "solo": "solo_orpo"},
    "device": "cuda", "dtype": "bfloat16", "attn_implementation": "auto",
    "gradient_checkpointing": True,
    "optimizer": True,  # hold gradients + AdamW states like a training run
    "capacity_mb": None,  # CPU rehearsal only: the emulated device memory
    "budget_s": 330,
    "seed": 0,
}

REHEARSAL_SETTINGS: dict = {
    **GPU_SETTINGS, "models": ["rehearsal"], "short_len": 64, "response_len": 32, "start_len": 128,
    "max_len": 8192, "granularity": 128, "repeats": 1, "long_from": 2048, "device": "cpu", "dtype": "float32",
    "attn_implementation": "sdpa", "capacity_mb": 50, "budget_s": 40,
}


class Device:
    """Peak memory and out-of-memory on CUDA (real) or on the CPU (emulated against `capacity_mb`)."""

    def __init__(self, device: str, capacity_mb: float | None):
        import torch

        self.torch, self.device, self.gpu = torch, device, device.startswith("cuda")
        if self.gpu:
            self.capacity_mb = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**20
            self.name = torch.cuda.get_device_name(torch.device(device))
        else:
            if not capacity_mb:
                raise ValueError("capacity_mb: the CPU rehearsal needs an emulated device memory in MiB")
            self.capacity_mb = float(capacity_mb)
            self.name = f"cpu ({torch.get_num_threads()} threads), emulated {capacity_mb:.0f} MiB device"
        self.static_mb = 0.0

    def resident_mb(self) -> float:
        return self.torch.cuda.memory_allocated() / 2**20 if self.gpu else self.static_mb

    def clean(self) -> None:
        gc.collect()
        if self.gpu:
            self.torch.cuda.synchronize()
            self.torch.cuda.empty_cache()

    def sync(self) -> None:
        if self.gpu:
            self.torch.cuda.synchronize()

    def run(self, fn) -> dict:
        """Run `fn` once: {"ok", "oom", "seconds", "peak_mb" (total, static included), "step_mb", "error"}."""
        torch = self.torch
        if self.gpu:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            meter = RssMeter()
            meter.start()
        t0 = time.perf_counter()
        ok, oom, err = True, False, None
        try:
            fn()
            self.sync()
        except (RuntimeError, MemoryError) as e:  # torch.cuda.OutOfMemoryError is a RuntimeError
            if not is_oom(e):
                raise
            ok, oom, err = False, True, f"{type(e).__name__}: {str(e)[:160]}"
        seconds = time.perf_counter() - t0
        if self.gpu:
            step_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
            peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            step_mb = meter.peak_mb()
            peak_mb = self.static_mb + step_mb
            if peak_mb > self.capacity_mb:  # the emulated device runs out of memory
                ok, oom, err = False, True, f"emulated OOM: {peak_mb:.0f} MiB > {self.capacity_mb:.0f} MiB"
        if oom:
            self.clean()
        return {"ok": ok, "oom": oom, "seconds": round(seconds, 4), "peak_mb": round(peak_mb, 1),
                "step_mb": round(step_mb, 1), "error": err}


def _prepare(shape_name: str, s: dict, dev: Device, runtime: tuple[str, str, str]):
    """Build the model, enable checkpointing, make gradients + AdamW states resident. OOM -> None."""
    import torch

    shape = SHAPES[shape_name]
    model = opt = None
    try:
        model = build_model(shape, s["max_len"] + s["response_len"] + 16, runtime[0], runtime[1], runtime[2],
                            s["seed"])
        if s["gradient_checkpointing"]:
            # non-reentrant: the inputs (token ids) need no grad; transformers' default would need a hook
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if s["optimizer"]:
            # one tiny real step: lr 0, so the weights stay as initialised, but grads and both AdamW
            # moments (in the weights' dtype, as the trainer holds them) are allocated and stay so
            opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
            Step(model, s["losses"]["solo"], 2 * 64, 64, 32, s["seed"])()
            opt.step()
            opt.zero_grad(set_to_none=False)
        dev.sync()
    except (RuntimeError, MemoryError) as e:
        if not is_oom(e):
            raise
        del model, opt
        dev.clean()
        return None, None, f"{shape_name}: out of memory while building the model and its optimizer state"
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(t.numel() * t.element_size() for st in (opt.state.values() if opt else []) for t in st.values()
                if torch.is_tensor(t))
    dev.static_mb = (2 * nbytes + state) / 2**20 if s["optimizer"] else nbytes / 2**20
    return model, opt, None


def _estimate(times: dict[int, float], L: int) -> float:
    """Seconds of a step at L, extrapolated from the longest timed length (cost ~ n^1.6, conservative
    between the linear and the attention terms); 0 when nothing has been timed yet."""
    if not times:
        return 0.0
    L0 = max(times)
    return times[L0] * max(1.0, (L / L0)) ** 1.6


def sweep(settings: dict | None = None, deadline: float | None = None, progress=None) -> dict:
    """Run the sweep and the max-length search; returns the JSON-ready result (partial on a deadline)."""
    import torch

    s = {**GPU_SETTINGS, **(settings or {})}
    t_start = time.time()
    deadline = deadline or (t_start + float(s["budget_s"]))
    runtime = resolve_runtime(s["device"], s["dtype"], s["attn_implementation"])
    dev = Device(runtime[0], s["capacity_mb"])
    S, R = int(s["short_len"]), int(s["response_len"])
    out: dict = {"device": dev.name, "device_memory_mb": round(dev.capacity_mb), "dtype": runtime[1],
                 "attention_impl": None, "gradient_checkpointing": bool(s["gradient_checkpointing"]),
                 "optimizer": "AdamW, gradients and moments resident in the weights' dtype" if s["optimizer"] else None,
                 "short_len": S, "response_len": R, "losses": s["losses"], "models_tried": [], "rows": [],
                 "max_length": None, "stopped_early": None, "versions": {"torch": torch.__version__}}
    model = None
    for name in s["models"]:
        model, opt, why = _prepare(name, s, dev, runtime)
        if model is None:
            out["models_tried"].append({"model": name, "fits": False, "reason": why})
            continue
        first = {m: dev.run(Step(model, s["losses"][m], int(s["start_len"]), S, R, s["seed"]))
                 for m in METHODS}
        if first["vanilla"]["oom"]:
            out["models_tried"].append({"model": name, "fits": False, "reason": f"{name}: vanilla step at "
                                        f"L={s['start_len']} out of memory with the optimizer state resident"})
            del model, opt
            dev.clean()
            model = None
            continue
        out["models_tried"].append({"model": name, "fits": True})
        break
    if model is None:
        out["stopped_early"] = "no model shape fits the device with its optimizer state"
        return out
    out["attention_impl"] = getattr(model.config, "_attn_implementation", runtime[2])
    P = flop_params(model)
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    out["model"] = {"name": name, "architecture": "Qwen2ForCausalLM (random init)", **SHAPES[name],
                    "total_params": sum(p.numel() for p in model.parameters()), "flop_params": P}
    out["static_mb"] = round(dev.static_mb, 1)

    times: dict[str, dict[int, float]] = {m: {} for m in METHODS}
    fit: dict[str, int | None] = {m: None for m in METHODS}
    oom_at: dict[str, int | None] = {m: None for m in METHODS}
    L = int(s["start_len"])
    while L <= int(s["max_len"]) and any(oom_at[m] is None for m in METHODS):
        long = L >= int(s["long_from"])
        reps = 1 if long else int(s["repeats"])
        alive = [m for m in METHODS if oom_at[m] is None]
        need = sum(_estimate(times[m], L) * (reps + (0 if long else 1)) for m in alive)
        if time.time() + need > deadline:
            out["stopped_early"] = f"time budget: L={L} would need ~{need:.0f} s"
            break
        steps = {m: Step(model, s["losses"][m], L, S, R, s["seed"]) for m in alive}
        res = {m: {"runs": []} for m in alive}
        for m in alive:  # warm-up (not timed) below `long_from`
            if not long:
                r = dev.run(steps[m])
                if r["oom"]:
                    res[m]["runs"].append(r)
        for _ in range(reps):
            for m in alive:
                if any(r["oom"] for r in res[m]["runs"]):
                    continue
                res[m]["runs"].append(dev.run(steps[m]))
        del steps
        dev.clean()
        row = {"long_len": L, "c": round(S / L, 4)}
        for m in METHODS:
            runs = res.get(m, {"runs": []})["runs"]
            ok = [r for r in runs if r["ok"]]
            oom = oom_at[m] is not None or any(r["oom"] for r in runs)
            if oom and oom_at[m] is None:
                oom_at[m] = L
            if ok:
                fit[m] = L
                times[m][L] = min(r["seconds"] for r in ok)
            row.update({f"{m}_oom": oom, f"{m}_step_s": round(min(r["seconds"] for r in ok), 4) if ok else None,
                        f"{m}_times_s": [r["seconds"] for r in ok],
                        f"{m}_peak_mb": max(r["peak_mb"] for r in ok) if ok else None,
                        f"{m}_step_mb": max(r["step_mb"] for r in ok) if ok else None})
        tv, ts = row["vanilla_step_s"], row["solo_step_s"]
        pred = ratio_linear_attention(S, L, R, P, layers, hidden)
        row.update({"ratio_measured": round(ts / tv, 4) if tv and ts else None,
                    "runtime_cut_pct": round(100 * (1 - ts / tv), 1) if tv and ts else None,
                    "ratio_pred_linear_attention": round(pred, 4),
                    "ratio_pred_attention_only": round(ratio_attention_only(S / L), 4),
                    "mem_ratio": round(row["solo_peak_mb"] / row["vanilla_peak_mb"], 4)
                    if row["vanilla_peak_mb"] and row["solo_peak_mb"] else None})
        out["rows"].append(row)
        log.info("L=%d: vanilla %s s %s MiB, SoLo %s s %s MiB", L, tv, row["vanilla_peak_mb"], ts, row["solo_peak_mb"])
        if progress:
            progress(out)
        L *= 2

    # longest trainable length: bisect between the last fit and the first OOM of each method
    ml: dict = {"vanilla": fit["vanilla"], "solo": fit["solo"], "granularity": int(s["granularity"]),
                "censored": {}, "probes": [], "applies_to": "weights + gradients + AdamW states + the step, "
                "under the whole device memory" if dev.gpu else f"static + step RSS under {dev.capacity_mb:.0f} MiB"}
    best = dict(fit)

    def fits(m: str, L: int) -> bool | None:
        """One max-length probe of `m` at L; None when it would not end before the deadline."""
        if time.time() + _estimate(times[m], L) > deadline:
            return None
        r = dev.run(Step(model, s["losses"][m], L, S, R, s["seed"]))
        ml["probes"].append({"method": m, "long_len": L, **r})
        log.info("max-length probe %s L=%d: %s", m, L, "fits" if r["ok"] else "OOM")
        if r["ok"]:  # the bisection probes above the longest fit only
            best[m], times[m][L] = L, r["seconds"]
        if progress:  # a phase killed during the search still leaves the probes so far
            progress({**out, "max_length": {**ml, m: best[m]}})
        return r["ok"]

    for m in METHODS:
        good, bad = fit[m], oom_at[m]
        ml["censored"][m] = bad is None  # never ran out: the true maximum is above (budget or max_len)
        if good is not None and bad is not None:
            good, bad, stopped = bisect_longest(lambda L, m=m: fits(m, L), good, bad, int(s["granularity"]))
            if stopped:
                ml["censored"][m] = True
                out["stopped_early"] = out["stopped_early"] or f"time budget during the {m} max-length search"
        ml[m] = good
        ml[f"{m}_first_oom"] = bad
    ml["ratio"] = round(ml["solo"] / ml["vanilla"], 3) if ml["vanilla"] and ml["solo"] else None
    out["max_length"] = ml
    out["wall_s"] = round(time.time() - t_start, 1)
    model = None  # the probe closure shares this variable: rebinding it frees the weights before the cache is emptied
    dev.clean()
    return out
