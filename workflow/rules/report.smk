from solopo.report.tables import filter_meta, output_paths, run_meta, sweeps

# Report: tables (paper layout, with the paper's own numbers below the run rows) and plots,
# built from the eval JSONs alone. The HTML files and PNGs are the items of `snakemake --report`.
REPORT_DIR = "results/report"
REPORT_META = run_meta(config)
SWEEPS = sweeps(REPORT_META)  # {default run name: (backbone, SoLo method)}: one lambda plot each
RULER_PLOT_BACKBONES = list(BACKBONES) if "ruler" in config["eval"]["benchmarks"] else []
_TABLES = output_paths(REPORT_DIR)
_TABLE_ITEMS = {
    "table3": ("Table 3", "LongBench v1 QA and RULER QA"),
    "table4": ("Table 4", "LongBench v2 and Open LLM Leaderboard"),
    "ablations": ("Fig. 2, Tables 5 and 9", "chosen-only vs both, SoLo-RA vs SoLo-KL, SoLo vs Expand-Long"),
    "lambda_sweep": ("Fig. 4 (table)", "score per lambda of each SoLo method"),
}


def _eval_jsons(runs):
    return expand("results/eval/{run}_{bench}.json", run=list(runs), bench=config["eval"]["benchmarks"])


def report_outputs():
    """Every file the report rules write (for rule all / get_final_output)."""
    out = list(_TABLES.values())
    out += [f"{REPORT_DIR}/lambda_sweep_{s}.png" for s in SWEEPS]
    out += [f"{REPORT_DIR}/ruler_by_length_{b}.png" for b in RULER_PLOT_BACKBONES]
    return out


wildcard_constraints:
    sweep=_alt(SWEEPS) if SWEEPS else "(?!)",


rule report_tables:
    input:
        _eval_jsons(RUNS),
    output:
        **{f"{name}_html": report(_TABLES[f"{name}_html"], caption=f"../report/{name}.rst", category="Tables",
                                  labels={"table": label, "content": content})
           for name, (label, content) in _TABLE_ITEMS.items()},
        **{f"{name}_csv": report(_TABLES[f"{name}_csv"], caption="../report/csv.rst", category="Data (CSV)",
                                 labels={"file": f"{name}.csv", "content": content})
           for name, (label, content) in _TABLE_ITEMS.items()},
        **{f"{name}_md": _TABLES[f"{name}_md"] for name in _TABLE_ITEMS},
        summary=report(_TABLES["summary"], caption="../report/csv.rst", category="Data (CSV)",
                       labels={"file": "summary.csv", "content": "one score per run and benchmark"}),
    log:
        "logs/report/tables.log",
    params:
        meta=REPORT_META,
    run:
        from solopo.report import tables

        tables.write_tables(list(input), REPORT_DIR, params.meta, log[0])


rule report_lambda_plot:
    input:
        lambda wc: _eval_jsons(filter_meta(REPORT_META, *SWEEPS[wc.sweep])["runs"]),
    output:
        report(f"{REPORT_DIR}/lambda_sweep_{{sweep}}.png", caption="../report/lambda_sweep_plot.rst",
               category="Plots", subcategory="Lambda sweep", labels={"SoLo method": "{sweep}", "figure": "score vs λ"}),
    log:
        "logs/report/lambda_sweep_{sweep}.log",
    params:
        meta=lambda wc: filter_meta(REPORT_META, *SWEEPS[wc.sweep]),
    run:
        from solopo.report import plots

        backbone, method = SWEEPS[wildcards.sweep]
        plots.write_lambda_sweep(list(input), output[0], backbone, method, params.meta)
        Path(log[0]).write_text(f"{output[0]}: {len(params.meta['runs'])} runs\n")


rule report_ruler_plot:
    input:
        lambda wc: expand("results/eval/{run}_ruler.json", run=list(filter_meta(REPORT_META, wc.backbone)["runs"])),
    output:
        report(f"{REPORT_DIR}/ruler_by_length_{{backbone}}.png", caption="../report/ruler_plot.rst",
               category="Plots", subcategory="RULER by length", labels={"backbone": "{backbone}", "figure": "score vs length"}),
    log:
        "logs/report/ruler_by_length_{backbone}.log",
    params:
        meta=lambda wc: filter_meta(REPORT_META, wc.backbone),
    run:
        from solopo.report import plots

        plots.write_ruler_by_length(list(input), output[0], wildcards.backbone, params.meta)
        Path(log[0]).write_text(f"{output[0]}: {len(params.meta['runs'])} runs\n")
