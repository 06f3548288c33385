rule sample:
    input:
        contexts="results/contexts/{backbone}/{ctx}.jsonl",
        model=lambda wc: model_input(wc.backbone),
    output:
        "results/samples/{backbone}/{ctx}.jsonl",
    log:
        "logs/sample/{backbone}_{ctx}.log",
    params:
        sampling=config["sampling"],
    resources:
        gpu=1,
    conda:
        ENVS["generate"]
    run:
        stage("pipeline.sample", input.contexts, model_path(wildcards.backbone), output[0], config, SEED, log[0],
                        backend_kwargs(wildcards.backbone))
