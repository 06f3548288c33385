rule bench_data:
    input:
        dev="results/data/musique_dev.jsonl",
    output:
        directory("results/benchmarks/{bench}"),
    log:
        "logs/benchmarks/{bench}.log",
    params:
        cfg=lambda wc: slices.bench_data(config, wc.bench),
    localrule: True  # fixtures are light; hub sources are downloads (compute nodes are offline)
    conda:
        ENVS["base"]
    run:
        cfg = scoped(params, "bench_data")
        stage("pipeline.bench_data", wildcards.bench, input.dev, None, output[0], cfg, cfg["seed"], log[0])


rule bench_data_tokenized:
    input:
        dev="results/data/musique_dev.jsonl",
        model=lambda wc: model_input(wc.backbone),
        sources=lambda wc: ruler_sources_input(wc.bench),
    output:
        directory("results/benchmarks/{backbone}/{bench}"),
    log:
        "logs/benchmarks/{backbone}_{bench}.log",
    params:
        cfg=lambda wc: slices.bench_data(config, wc.bench, wc.backbone),
    conda:
        ENVS["base"]
    run:
        cfg = scoped(params, "bench_data")
        stage("pipeline.bench_data", wildcards.bench, input.dev, model_path(wildcards.backbone), output[0], cfg,
              cfg["seed"], log[0], input.sources or None)


rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        json="results/eval/{run}_{bench}.json",
        manifest=m("results/eval/{run}_{bench}.json"),
        predictions="results/eval/{run}_{bench}.predictions.jsonl",
        predictions_manifest=m("results/eval/{run}_{bench}.predictions.jsonl"),
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
        run_evaluate(input, output, params, wildcards, log)
