if config["data"]["source"] == "toy":

    rule toy_world:
        output:
            train="results/data/musique_train.jsonl",
            dev="results/data/musique_dev.jsonl",
        log:
            "logs/data/toy_world.log",
        localrule: True  # seconds of CPU: not worth a cluster job
        conda:
            ENVS["base"]
        run:
            stage("pipeline.toy_world", output.train, output.dev, config, SEED, log[0])

else:

    rule fetch_musique:
        output:
            train="results/data/musique_train.jsonl",
            dev="results/data/musique_dev.jsonl",
        log:
            "logs/data/fetch_musique.log",
        localrule: True  # a download: compute nodes are offline
        resources:
            hf_download=1,
        conda:
            ENVS["base"]
        run:
            stage("pipeline.fetch_musique", output.train, output.dev, config, log[0])


rule tiny_model:
    output:
        directory("results/models/tiny"),
    log:
        "logs/models/tiny_model.log",
    params:
        cfg=config.get("tiny_model"),
    conda:
        ENVS["train"]
    run:
        stage("pipeline.tiny_model", output[0], config, config["tiny_model"].get("seed", SEED), log[0])


rule contexts:
    input:
        musique="results/data/musique_train.jsonl",
        model=lambda wc: model_input(wc.backbone),
    output:
        short="results/contexts/{backbone}/short.jsonl",
        long="results/contexts/{backbone}/long.jsonl",
    log:
        "logs/contexts/{backbone}.log",
    params:
        data=config["data"],
    conda:
        ENVS["base"]
    run:
        run_contexts(input, output, wildcards, log)
