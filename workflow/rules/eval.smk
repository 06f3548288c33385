rule bench_data:
    input:
        dev=paths.MUSIQUE_DEV,
    output:
        directory(paths.BENCH_DATA),
    log:
        "logs/benchmarks/{bench}.log",
    params:
        cfg=lambda wc: slices.bench_data(config, wc.bench),
    localrule: True  # fixtures are light; hub sources are downloads (compute nodes are offline)
    conda:
        ENVS["base"]
    run:
        cfg = scoped(params, "bench_data")
        if cmd := stage("pipeline.bench_data", wildcards.bench, input.dev, None, output[0], cfg, cfg["seed"], log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule bench_data_tokenized:
    input:
        dev=paths.MUSIQUE_DEV,
        model=lambda wc: model_input(wc.backbone),
        sources=lambda wc: ruler_sources_input(wc.bench),
    output:
        directory(paths.BENCH_DATA_TOKENIZED),
    log:
        "logs/benchmarks/{backbone}_{bench}.log",
    params:
        cfg=lambda wc: slices.bench_data(config, wc.bench, wc.backbone),
    conda:
        ENVS["base"]
    run:
        if cmd := run_bench_data_tokenized(input, output, params, wildcards, log):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        json=paths.EVAL_JSON,
        manifest=m(paths.EVAL_JSON),
        predictions=paths.EVAL_PREDICTIONS,
        predictions_manifest=m(paths.EVAL_PREDICTIONS),
    log:
        "logs/eval/{run}_{bench}.log",
    params:
        cfg=lambda wc: slices.evaluate(config, RUNS[wc.run], wc.bench),
        long_context=eval_long_context,
    message:
        "evaluate {wildcards.run} on {wildcards.bench}: {params.long_context[summary]}"
    resources:
        gpu=1,
    conda:
        eval_env
    run:
        if cmd := run_evaluate(input, output, params, wildcards, log):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
