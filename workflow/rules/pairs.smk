rule pairs:
    input:
        samples_short="results/samples/{backbone}/short.jsonl",
        samples_long="results/samples/{backbone}/long.jsonl",
        ctx_short="results/contexts/{backbone}/short.jsonl",
        ctx_long="results/contexts/{backbone}/long.jsonl",
    output:
        pairs="results/pairs/{backbone}/pairs.jsonl",
        stats="results/pairs/{backbone}/pair_stats.json",
    log:
        "logs/pairs/{backbone}.log",
    params:
        pairs=config["pairs"],
    conda:
        ENVS["base"]
    run:
        stage("pipeline.pairs", input.samples_short, input.samples_long, input.ctx_short, input.ctx_long,
                       output.pairs, output.stats, config, SEED, log[0])


rule datasets:
    input:
        "results/pairs/{backbone}/pairs.jsonl",
    output:
        **{d: f"results/datasets/{{backbone}}/{d}.jsonl" for d in DATASETS},
    log:
        "logs/datasets/{backbone}.log",
    localrule: True  # splits one JSONL into the training sets: not worth a cluster job
    conda:
        ENVS["base"]
    run:
        stage("pipeline.datasets", input[0], dict(output.items()), config, log[0])
