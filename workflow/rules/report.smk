rule report_tables:
    input:
        expand("results/eval/{run}_{bench}.json", run=list(RUNS), bench=config["eval"]["benchmarks"]),
        stats=expand("results/pairs/{backbone}/pair_stats.json", backbone=list(BACKBONES)),
    output:
        table3="results/report/table3.md",
        summary="results/report/summary.csv",
    log:
        "logs/report/tables.log",
    run:
        from solopo.report import tables

        tables.write_report(list(input), output.table3, output.summary, log[0])
