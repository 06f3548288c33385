from solopo.report.tables import eval_targets, filter_meta, output_paths, report_targets, run_meta, sweeps

# Report: tables (paper layout, with the paper's own numbers below the run rows) and plots,
# built from the eval JSONs alone. The HTML files and PNGs are the items of `snakemake --report`.
REPORT_DIR = paths.REPORT_DIR
REPORT_META = run_meta(config)
SWEEPS = sweeps(REPORT_META)  # {default run name: (backbone, SoLo method)}: one lambda plot each
REPORT_BENCHES = config["eval"]["benchmarks"]  # not BENCHES: common.smk's benchmark table
REPORT_OUTPUTS = report_targets(config, REPORT_DIR)  # every report file: for rule all (get_final_output)
_TABLES = output_paths(REPORT_DIR)
_TABLE_ITEMS = {
    "table3": ("Table 3", "LongBench v1 QA and RULER QA"),
    "table4": ("Table 4", "LongBench v2 and Open LLM Leaderboard"),
    "ablations": ("Tables 5, 9 and Fig. 2", "ablations: chosen-only vs both, SoLo-RA vs SoLo-KL, SoLo vs Expand-Long"),
    "lambda_sweep": ("λ sweep (Fig. 4)", "score per lambda of each SoLo method"),
}


wildcard_constraints:
    sweep=_alt(SWEEPS) if SWEEPS else "(?!)",


rule report_tables:
    input:
        eval_targets(DEFAULT_RUNS, REPORT_BENCHES),  # the first seed's runs (more seeds: science.smk's page)
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
        # declared, so a failed job removes them with the tables (no manifest beside a deleted file)
        **{f"{name}_manifest": m(path) for name, path in _TABLES.items()},
    log:
        "logs/report/tables.log",
    params:
        meta=REPORT_META,
    conda:
        ENVS["base"]
    run:
        if cmd := stage("report.tables.write_tables", list(input), REPORT_DIR, params.meta, log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule report_lambda_plot:
    input:
        lambda wc: eval_targets(filter_meta(REPORT_META, *SWEEPS[wc.sweep])["runs"], REPORT_BENCHES),
    output:
        report(paths.LAMBDA_PLOT, caption="../report/lambda_sweep_plot.rst",
               category="Plots", subcategory="Lambda sweep", labels={"SoLo method": "{sweep}", "figure": "score vs λ"}),
        m(paths.LAMBDA_PLOT),
    log:
        "logs/report/lambda_sweep_{sweep}.log",
    params:
        meta=lambda wc: filter_meta(REPORT_META, *SWEEPS[wc.sweep]),
    conda:
        ENVS["base"]
    run:
        if cmd := stage("report.plots.write_lambda_sweep", list(input), output[0], *SWEEPS[wildcards.sweep], params.meta, log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule report_ruler_plot:
    input:
        lambda wc: eval_targets(filter_meta(REPORT_META, wc.backbone)["runs"], ["ruler"]),
    output:
        report(paths.RULER_PLOT, caption="../report/ruler_plot.rst",
               category="Plots", subcategory="RULER by length", labels={"backbone": "{backbone}", "figure": "score vs length"}),
        m(paths.RULER_PLOT),
    log:
        "logs/report/ruler_by_length_{backbone}.log",
    params:
        meta=lambda wc: filter_meta(REPORT_META, wc.backbone),
    conda:
        ENVS["base"]
    run:
        if cmd := stage("report.plots.write_ruler_by_length", list(input), output[0], wildcards.backbone, params.meta, log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
