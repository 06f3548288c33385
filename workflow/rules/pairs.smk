rule pairs:
    input:
        samples_short=paths.fill(paths.SAMPLES, ctx="short"),
        samples_long=paths.fill(paths.SAMPLES, ctx="long"),
        ctx_short=paths.fill(paths.CONTEXTS, ctx="short"),
        ctx_long=paths.fill(paths.CONTEXTS, ctx="long"),
    output:
        pairs=paths.PAIRS,
        stats=paths.PAIR_STATS,
        pairs_manifest=m(paths.PAIRS),
        stats_manifest=m(paths.PAIR_STATS),
    log:
        "logs/pairs/{backbone}{seedtag}.log",
    params:
        # one pair draw per seed of train.seeds from the shared samples (`@s<seed>`; none: the first seed)
        cfg=lambda wc: slices.pairs(config, wc.backbone, split_seed_tag(wc.seedtag)[1]),
    conda:
        ENVS["base"]
    run:
        cfg = scoped(params, "pairs")
        if cmd := stage("pipeline.pairs", input.samples_short, input.samples_long, input.ctx_short, input.ctx_long,
                        output.pairs, output.stats, cfg, cfg["seed"], log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule datasets:
    input:
        paths.PAIRS,
    output:
        **{d: paths.fill(paths.DATASET, dataset=d) for d in DATASETS},
        **{f"{d}_manifest": m(paths.fill(paths.DATASET, dataset=d)) for d in DATASETS},
    log:
        "logs/datasets/{backbone}{seedtag}.log",
    params:
        cfg=lambda wc: slices.datasets(config, wc.backbone),
    localrule: True  # splits one JSONL into the training sets: not worth a cluster job
    conda:
        ENVS["base"]
    run:
        if cmd := stage("pipeline.datasets", input[0], {d: output[d] for d in DATASETS}, scoped(params, "datasets"), log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
