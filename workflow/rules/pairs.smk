rule pairs:
    input:
        samples_short="results/samples/{backbone}/short.jsonl",
        samples_long="results/samples/{backbone}/long.jsonl",
        ctx_short="results/contexts/{backbone}/short.jsonl",
        ctx_long="results/contexts/{backbone}/long.jsonl",
    output:
        pairs="results/pairs/{backbone}{seedtag}/pairs.jsonl",
        stats="results/pairs/{backbone}{seedtag}/pair_stats.json",
        pairs_manifest=m("results/pairs/{backbone}{seedtag}/pairs.jsonl"),
        stats_manifest=m("results/pairs/{backbone}{seedtag}/pair_stats.json"),
    log:
        "logs/pairs/{backbone}{seedtag}.log",
    params:
        # one pair draw per seed of train.seeds from the shared samples (`@s<seed>`; none: the first seed)
        cfg=lambda wc: slices.pairs(config, wc.backbone, split_seed_tag(wc.seedtag)[1]),
    conda:
        ENVS["base"]
    run:
        cfg = scoped(params, "pairs")
        stage("pipeline.pairs", input.samples_short, input.samples_long, input.ctx_short, input.ctx_long,
              output.pairs, output.stats, cfg, cfg["seed"], log[0])


rule datasets:
    input:
        "results/pairs/{backbone}{seedtag}/pairs.jsonl",
    output:
        **{d: f"results/datasets/{{backbone}}{{seedtag}}/{d}.jsonl" for d in DATASETS},
        **{f"{d}_manifest": m(f"results/datasets/{{backbone}}{{seedtag}}/{d}.jsonl") for d in DATASETS},
    log:
        "logs/datasets/{backbone}{seedtag}.log",
    params:
        cfg=lambda wc: slices.datasets(config, wc.backbone),
    localrule: True  # splits one JSONL into the training sets: not worth a cluster job
    conda:
        ENVS["base"]
    run:
        stage("pipeline.datasets", input[0], {d: output[d] for d in DATASETS}, scoped(params, "datasets"), log[0])
