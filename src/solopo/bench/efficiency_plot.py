"""The efficiency benchmark's figure (step time, peak memory, speed-up against L) and markdown table."""
from __future__ import annotations

from solopo.bench.flops import ratio_linear_attention, speedup_attention_only


def plot(result: dict, path) -> None:
    """Step time, peak memory and speed-up against L (SoLo vs vanilla, with the two predictions)."""
    from solopo.report.plots import pyplot

    plt = pyplot()
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


def table(result: dict) -> str:
    """The rows as a markdown table, and the max-length result under it."""
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
