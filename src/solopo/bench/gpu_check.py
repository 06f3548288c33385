"""One prepared GPU check: `scripts/gpu_check.sh` / `make gpu-check` run this module.

Needs only torch + transformers (and their own dependencies: safetensors, tokenizers, PyYAML,
numpy, tqdm) and this repository's `src/` on PYTHONPATH: no trl, deepspeed, snakemake, vLLM or
matplotlib (a built-in PNG writer stands in when matplotlib is missing). Writes under `--out`
(default `$OUT`, else `results/gpu_check`):

- `tiny.json`        training (solo_orpo, orpo_long; bf16, gradient checkpointing) + HF evaluation
                     of the tiny preset on the device (`solopo.bench.gpu_tiny`), with its checks;
- `efficiency.json`  SoLo vs vanilla step time / peak memory per x_long and the longest trainable
                     length of each, Qwen2.5-7B-shaped (`solopo.bench.gpu_efficiency`);
- `gpu_check.json`   both, the environment, the checks and the wall times;
- `gpu_check.md`     the summary tables (the README's table is copied from here);
- `efficiency.png`   the efficiency plot.

Each phase runs in its own process under a time limit (a clean CUDA context, and a phase that
hangs or crashes cannot take the other's results with it); the efficiency phase writes its partial
result after every length. `--cpu-rehearsal` runs the same phases at toy sizes on the CPU with the
packages the GPU image lacks made unimportable, so the script cannot rot. Exit status 0 only when
every check passed.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("solopo.gpu_check")

# importable in the rehearsal only if the GPU image has them (it has torch, transformers, accelerate, peft)
NOT_ON_IMAGE = ("trl", "deepspeed", "snakemake", "vllm", "lm_eval", "datasets", "jsonschema", "matplotlib",
                "pandas", "scipy", "sklearn", "nltk", "rouge_score", "word2number", "flash_attn", "pytest")
PAPER = {"vanilla_max_len": 9 * 1024, "solo_max_len": 19 * 1024, "ratio": 19 / 9,
         "setting": "Qwen2.5-7B, ZeRO-3 + offload, 4 x A100 80GB (Fig. 1b)"}


def forbid_imports(names=NOT_ON_IMAGE) -> None:
    """Make `names` behave as not installed (import fails, importlib.util.find_spec returns None)."""
    for n in names:
        if n not in sys.modules or sys.modules[n] is None:
            sys.modules[n] = None  # type: ignore[assignment]


def environment() -> dict:
    import importlib.util

    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda,
           "flash_attn_installed": importlib.util.find_spec("flash_attn") is not None}
    # no device properties here: they would create a CUDA context in this (parent) process, holding
    # GPU memory the phases' processes then lack; each phase records its device itself
    if env["cuda_available"]:
        env["device_count"] = torch.cuda.device_count()
    return env


# --------------------------------------------------------------------------------------------------
# Phases (each runs in a child process: python -m solopo.bench.gpu_check --phase NAME ...)
# --------------------------------------------------------------------------------------------------


def _write(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def run_phase(name: str, out: Path, rehearsal: bool, deadline: float, config_dir: str) -> None:
    if name == "tiny":
        from solopo.bench import gpu_tiny

        s = gpu_tiny.REHEARSAL_SETTINGS if rehearsal else gpu_tiny.GPU_SETTINGS
        res = gpu_tiny.run(out / "tiny", s, config_dir)
        res["settings"] = s
        _write(out / "tiny.json", res)
    elif name == "efficiency":
        from solopo.bench import gpu_efficiency

        s = gpu_efficiency.REHEARSAL_SETTINGS if rehearsal else gpu_efficiency.GPU_SETTINGS
        res = gpu_efficiency.sweep(s, deadline, progress=lambda partial: _write(out / "efficiency.json",
                                                                                 {**partial, "partial": True}))
        res["settings"] = s
        _write(out / "efficiency.json", res)
    else:
        raise ValueError(f"--phase {name!r}: allowed values are tiny, efficiency")


def _child(name: str, out: Path, rehearsal: bool, deadline: float, config_dir: str, timeout: float) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if rehearsal:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # freed tensors go back to the OS: RSS follows live memory
    else:
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # less fragmentation after an OOM
    cmd = [sys.executable, "-m", "solopo.bench.gpu_check", "--phase", name, "--out", str(out), "--deadline",
           str(deadline), "--config-dir", config_dir] + (["--cpu-rehearsal"] if rehearsal else [])
    t0 = time.time()
    with open(out / f"{name}.log", "w") as fh:
        try:
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
            status = "ok" if rc == 0 else f"failed (exit {rc}, see {name}.log)"
        except subprocess.TimeoutExpired:
            status = f"killed after the {timeout:.0f} s limit (see {name}.log)"
    return {"status": status, "wall_s": round(time.time() - t0, 1)}


# --------------------------------------------------------------------------------------------------
# Summary: checks, markdown, plot
# --------------------------------------------------------------------------------------------------


def _f(x, nd=2, unit=""):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{nd}f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def _mem(mb):
    """GiB from 1 GiB on, else MiB (the rehearsal's toy sizes)."""
    if not mb:
        return "–"
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def _k(L):
    return "–" if L is None else (f"{L / 1024:g}K" if L % 1024 == 0 else f"{L / 1024:.1f}K")


def checks(tiny: dict | None, eff: dict | None) -> dict:
    c = {f"tiny_{k}": bool(v) for k, v in ((tiny or {}).get("checks") or {}).items()}
    if not tiny:
        c["tiny_ran"] = False
    rows = (eff or {}).get("rows") or []
    c["efficiency_both_methods_timed"] = any(r["vanilla_step_s"] and r["solo_step_s"] for r in rows)
    ml = (eff or {}).get("max_length") or {}
    c["efficiency_max_length_found"] = bool(ml.get("vanilla") and ml.get("solo"))
    return c


def markdown(summary: dict) -> str:
    env, tiny, eff = summary["environment"], summary.get("tiny") or {}, summary.get("efficiency") or {}
    mode = "CPU rehearsal (toy sizes; not a measurement)" if summary["rehearsal"] else "GPU"
    L = [f"# GPU check — {mode}", "",
         f"Device: **{eff.get('device') or env.get('device') or 'cpu'}**; torch {env['torch']}, transformers "
         f"{env['transformers']}, CUDA {env.get('cuda')}; wall time {summary['wall_s']:.0f} s; "
         f"all checks passed: **{summary['passed']}**.", ""]
    if eff.get("rows") is not None:
        m = eff.get("model") or {}
        L += ["## Efficiency: SoLo-ORPO vs vanilla long-context ORPO (one training step)", "",
              f"Model {m.get('name', '–')} shape (Qwen2, random init, {(m.get('total_params') or 0) / 1e6:,.1f} M "
              f"parameters), {eff.get('dtype')}, attention `{eff.get('attention_impl')}`, gradient checkpointing "
              f"{'on' if eff.get('gradient_checkpointing') else 'off'}, {eff.get('optimizer') or 'no optimizer state'} "
              f"({_mem(eff.get('static_mb'))} static of {_mem(eff.get('device_memory_mb'))} device memory); "
              f"|x_short| = {eff.get('short_len')}, |y| = {eff.get('response_len')}.", "",
              "| x_long | vanilla step s | SoLo step s | runtime cut | predicted SoLo/vanilla (FLOPs) | vanilla peak "
              "| SoLo peak |", "|---|---|---|---|---|---|---|"]
        for r in eff["rows"]:
            tv = "OOM" if r["vanilla_oom"] else _f(r["vanilla_step_s"], 3)
            ts = "OOM" if r["solo_oom"] else _f(r["solo_step_s"], 3)
            cut = _f(r["runtime_cut_pct"], 0, " %")
            L.append(f"| {_k(r['long_len'])} | {tv} | {ts} | {cut} | {_f(r['ratio_pred_linear_attention'], 3)} | "
                     f"{_mem(r['vanilla_peak_mb'])} | {_mem(r['solo_peak_mb'])} |")
        ml = eff.get("max_length") or {}
        cen = ml.get("censored") or {}
        L += ["", f"**Longest trainable x_long** ({ml.get('applies_to', '–')}): vanilla **{_k(ml.get('vanilla'))}**"
              f"{' (censored)' if cen.get('vanilla') else ''}, SoLo **{_k(ml.get('solo'))}**"
              f"{' (censored)' if cen.get('solo') else ''}, ratio **{_f(ml.get('ratio'), 2)}x** "
              f"(paper: 9K vs 19K, 2.1x, {PAPER['setting']})."]
        if eff.get("stopped_early"):
            L.append(f"Stopped early: {eff['stopped_early']}.")
        for t in eff.get("models_tried") or []:
            if not t["fits"]:
                L.append(f"Not used: {t['reason']}.")
    if tiny:
        L += ["", "## Tiny preset on the device: training through the trainer, HF-backend evaluation", "",
              f"{tiny.get('dtype')}, gradient checkpointing {'on' if tiny.get('gradient_checkpointing') else 'off'}; "
              f"pairs {tiny.get('pairs')}.", "",
              "| run | steps | loss first → last | ruler score | longbench_v1 score |", "|---|---|---|---|---|"]
        for run, ev in (tiny.get("eval") or {}).items():
            tr = (tiny.get("train") or {}).get(run)
            loss = f"{tr['losses'][0]:.4f} → {tr['losses'][-1]:.4f}" if tr and tr["losses"] else "–"
            L.append(f"| {run} | {tr['steps'] if tr else 0} | {loss} | {_f((ev.get('ruler') or {}).get('score'))} | "
                     f"{_f((ev.get('longbench_v1') or {}).get('score'))} |")
    L += ["", "## Checks", "", "| check | passed |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in summary["checks"].items()]
    L += ["", "| phase | status | wall s |", "|---|---|---|"]
    L += [f"| {k} | {v['status']} | {v['wall_s']} |" for k, v in summary["phases"].items()]
    return "\n".join(L) + "\n"


def plot(eff: dict, path: Path) -> str:
    """The efficiency plot; matplotlib when installed, else the built-in PNG writer. Returns which."""
    rows = eff.get("rows") or []
    Ls = [r["long_len"] for r in rows]
    ml = eff.get("max_length") or {}
    m = eff.get("model") or {}
    title = (f"SoLo vs vanilla ORPO step, {m.get('name', '?')} shape, {eff.get('device', '?')}, {eff.get('dtype')}, "
             f"S={eff.get('short_len')}, R={eff.get('response_len')}")
    probes = [p for p in ml.get("probes", []) if p["ok"]]
    big = max([r.get("vanilla_peak_mb") or 0 for r in rows] + [eff.get("device_memory_mb") or 0]) >= 1024
    unit, div = ("GiB", 1024) if big else ("MiB", 1)

    def mem(meth):  # the sweep's peaks and the max-length probes' peaks, by length
        pts = sorted([(r["long_len"], r[f"{meth}_peak_mb"]) for r in rows if r.get(f"{meth}_peak_mb")]
                     + [(p["long_len"], p["peak_mb"]) for p in probes if p["method"] == meth])
        return {"x": [x for x, _ in pts], "y": [y / div for _, y in pts]}

    pred = [r["vanilla_step_s"] * r["ratio_pred_linear_attention"] if r.get("vanilla_step_s") else None for r in rows]
    mem_hline = [{"label": "device memory", "y": eff["device_memory_mb"] / div}] if eff.get("device_memory_mb") else []
    S = eff.get("short_len") or 1
    panels = [
        {"title": "step time (fwd+bwd)", "xlabel": "x_long tokens", "ylabel": "seconds", "xticks": Ls,
         "series": [{"label": "vanilla", "x": Ls, "y": [r["vanilla_step_s"] for r in rows]},
                    {"label": "SoLo", "x": Ls, "y": [r["solo_step_s"] for r in rows]},
                    {"label": "SoLo FLOP pred.", "x": Ls, "y": pred, "dash": True}]},
        {"title": f"peak memory; max trainable vanilla {_k(ml.get('vanilla'))}, SoLo {_k(ml.get('solo'))}",
         "xlabel": "x_long tokens", "ylabel": unit, "xticks": Ls,
         "series": [{"label": "vanilla", **mem("vanilla")}, {"label": "SoLo", **mem("solo")}], "hlines": mem_hline},
        {"title": "speed-up vanilla/SoLo", "xlabel": "x_long tokens", "ylabel": "x", "xticks": Ls,
         "series": [{"label": "measured", "x": Ls, "y": [1 / r["ratio_measured"] if r.get("ratio_measured") else None
                                                         for r in rows]},
                    {"label": "FLOP model", "x": Ls, "y": [1 / r["ratio_pred_linear_attention"] for r in rows],
                     "dash": True},
                    {"label": "paper 2/(2c2+1)", "x": Ls, "y": [2 / (2 * (S / L) ** 2 + 1) for L in Ls], "dash": True}]},
    ]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from solopo.bench.png import panels_png

        panels_png(panels, title, path)
        return "builtin"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, p in zip(axes, panels):
        for k, s in enumerate(p["series"]):
            pts = [(x, y) for x, y in zip(s["x"], s["y"]) if x and y]
            if pts:
                ax.plot(*zip(*pts), "--" if s.get("dash") else "o-", color=f"C{[3, 0, 2][k % 3]}", label=s["label"])
        for h in p.get("hlines", []):
            ax.axhline(h["y"], color="grey", ls="--", lw=1, label=h["label"])
        if p is panels[1]:
            for meth, colour in (("vanilla", "C3"), ("solo", "C0")):
                if ml.get(meth):
                    ax.axvline(ml[meth], color=colour, ls=":", lw=1.2)
        ax.set(title=p["title"], xlabel=p["xlabel"], ylabel=p["ylabel"], xscale="log", yscale="log")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title + " (dotted: max trainable length)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return "matplotlib"


def summarize(out: Path, rehearsal: bool, phases: dict, env: dict, t_start: float) -> dict:
    read = lambda name: json.loads((out / name).read_text()) if (out / name).exists() else None  # noqa: E731
    tiny, eff = read("tiny.json"), read("efficiency.json")
    c = checks(tiny, eff)
    summary = {"rehearsal": rehearsal, "environment": env, "phases": phases, "checks": c,
               "passed": all(c.values()) and all(p["status"] == "ok" for p in phases.values()),
               "wall_s": round(time.time() - t_start, 1), "paper": PAPER, "tiny": tiny, "efficiency": eff}
    summary["plot"] = plot(eff or {}, out / "efficiency.png")
    _write(out / "gpu_check.json", summary)
    (out / "gpu_check.md").write_text(markdown(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m solopo.bench.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "results/gpu_check")
    ap.add_argument("--cpu-rehearsal", action="store_true", help="every step at toy sizes on the CPU")
    ap.add_argument("--budget-s", type=float, default=None, help="whole-check wall budget (GPU 470, rehearsal 400)")
    ap.add_argument("--config-dir", default="config", help="holds config.yaml and tiny.yaml")
    ap.add_argument("--phases", nargs="+", default=["tiny", "efficiency"], choices=["tiny", "efficiency"])
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.cpu_rehearsal:
        forbid_imports()
    out = Path(a.out)
    if a.phase:
        if a.cpu_rehearsal:
            import torch

            torch.set_num_threads(1)
        run_phase(a.phase, out, a.cpu_rehearsal, a.deadline, a.config_dir)
        return 0
    import torch

    if not a.cpu_rehearsal and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False); run it on a GPU machine, or "
              "use --cpu-rehearsal for the toy-size CPU run", file=sys.stderr)
        return 2
    t_start = time.time()
    # the rehearsal's work is bounded by its sizes (the emulated device runs out of memory by 4K); its
    # budget only guards against a hang, so a loaded CI machine does not cut the sweep short
    budget = a.budget_s or (400.0 if a.cpu_rehearsal else 470.0)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("tiny.json", "efficiency.json", "gpu_check.json", "gpu_check.md", "efficiency.png"):
        (out / stale).unlink(missing_ok=True)
    env = environment()
    if a.cpu_rehearsal:
        env["made_unimportable"] = list(NOT_ON_IMAGE)  # the phases run as on the GPU image
    log.info("gpu check (%s) -> %s; %s", "CPU rehearsal" if a.cpu_rehearsal else "GPU", out, env)
    phases = {}
    margin = 15.0  # the summary and the last process exit
    if "tiny" in a.phases:
        # the tiny phase gets a bounded share; what it leaves goes to the efficiency sweep
        limit = 0.45 * budget if a.cpu_rehearsal else 200.0
        phases["tiny"] = _child("tiny", out, a.cpu_rehearsal, t_start + limit, a.config_dir, limit)
    if "efficiency" in a.phases:
        left = budget - (time.time() - t_start) - margin
        # the sweep stops itself at `deadline` (it starts no step that would overrun); the kill is a backstop
        phases["efficiency"] = _child("efficiency", out, a.cpu_rehearsal, time.time() + left - 20, a.config_dir,
                                      max(30.0, left))
    summary = summarize(out, a.cpu_rehearsal, phases, env, t_start)
    print((out / "gpu_check.md").read_text())
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
