# Efficiency benchmark (paper §6, Eq. 11-12, Table 10, Fig. 1b): one training step of SoLo-ORPO's
# two-stage forward against vanilla long-context ORPO, timed and memory-measured per long length,
# with the FLOP-model predictions and the longest trainable length under a memory cap.
# Not part of `all`: run it alone (`snakemake results/bench/efficiency.json`). It reserves every core
# of a local run so that no other job disturbs the timing. The count is read when the job is
# scheduled, not at parse time (`workflow.cores` raised for any command without a core count, e.g.
# `snakemake --unlock`); where none is set (a cluster run) the job has its own allocation: 1.


rule efficiency:
    output:
        json=paths.EFFICIENCY_JSON,
        png=paths.EFFICIENCY_PNG,
        json_manifest=m(paths.EFFICIENCY_JSON),
        png_manifest=m(paths.EFFICIENCY_PNG),
    params:
        cfg=lambda wildcards: config["bench"]["efficiency"],
    threads: lambda wildcards: workflow.resource_settings.cores or 1
    log:
        "logs/bench/efficiency.log",
    conda:
        ENVS["train"]
    run:
        if cmd := stage("bench.efficiency.run", params.cfg, output.json, output.png, log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
