rule sample:
    input:
        contexts="results/contexts/{backbone}/{ctx}.jsonl",
        model=lambda wc: model_input(wc.backbone),
        records=["results/data/musique_train.jsonl"] if config["sampling"].get("reference_traces") else [],
    output:
        samples="results/samples/{backbone}/{ctx}.jsonl",
        manifest=m("results/samples/{backbone}/{ctx}.jsonl"),
    log:
        "logs/sample/{backbone}_{ctx}.log",
    params:
        cfg=lambda wc: slices.sample(config, wc.backbone),
    resources:
        gpu=1,
    conda:
        ENVS["generate"]
    run:
        run_sample(input, output, params, wildcards, log)
