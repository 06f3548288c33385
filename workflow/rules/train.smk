rule ref_logps:
    input:
        data=paths.DATASET,
        model=lambda wc: model_input(wc.backbone),
    output:
        logps=paths.REF_LOGPS,
        manifest=m(paths.REF_LOGPS),
    log:
        "logs/ref_logps/{backbone}{seedtag}_{dataset}.log",
    params:
        cfg=lambda wc: slices.ref_logps(config, wc.backbone),
    resources:
        gpu=1,
    conda:
        ENVS["train"]
    run:
        if cmd := stage("pipeline.ref_logps", input.data, model_path(wildcards.backbone), output.logps, scoped(params, "ref_logps"),
                        log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule train:
    input:
        unpack(train_inputs),
    output:
        model=directory(paths.TRAIN_MODEL),
    log:
        "logs/train/{run}.log",
    params:
        run=train_params,
    resources:
        gpu=4 if config["preset"] == "paper" else 0,
    conda:
        ENVS["train"]
    run:
        if cmd := run_train(input, output, params, wildcards, log):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
