rule ref_logps:
    input:
        data="results/datasets/{backbone}/{dataset}.jsonl",
        model=lambda wc: model_input(wc.backbone),
    output:
        "results/ref_logps/{backbone}/{dataset}.jsonl",
    log:
        "logs/ref_logps/{backbone}_{dataset}.log",
    params:
        optim=config["train"]["optim"],
    resources:
        gpu=1,
    conda:
        ENVS["train"]
    run:
        stage("pipeline.ref_logps", input.data, model_path(wildcards.backbone), output[0], config, log[0])


rule train:
    input:
        unpack(train_inputs),
    output:
        directory("results/train/{run}/model"),
    log:
        "logs/train/{run}.log",
    params:
        run=train_params,
    resources:
        gpu=4 if config["preset"] == "paper" else 0,
    conda:
        ENVS["train"]
    run:
        run_train(input, output, wildcards, log)
