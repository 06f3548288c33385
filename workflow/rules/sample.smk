rule sample:
    input:
        contexts=paths.CONTEXTS,
        model=lambda wc: model_input(wc.backbone),
        records=[paths.MUSIQUE_TRAIN] if config["sampling"].get("reference_traces") else [],
    output:
        samples=paths.SAMPLES,
        manifest=m(paths.SAMPLES),
    log:
        "logs/sample/{backbone}_{ctx}.log",
    params:
        cfg=lambda wc: slices.sample(config, wc.backbone),
    resources:
        gpu=1,
    conda:
        ENVS["generate"]
    run:
        if cmd := run_sample(input, output, params, wildcards, log):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
