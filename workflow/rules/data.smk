if config["data"]["source"] == "toy":

    rule toy_world:
        output:
            train=paths.MUSIQUE_TRAIN,
            dev=paths.MUSIQUE_DEV,
            train_manifest=m(paths.MUSIQUE_TRAIN),
            dev_manifest=m(paths.MUSIQUE_DEV),
        log:
            "logs/data/toy_world.log",
        params:
            cfg=slices.toy_world(config),
        localrule: True  # seconds of CPU: not worth a cluster job
        conda:
            ENVS["base"]
        run:
            cfg = scoped(params, "toy_world")
            if cmd := stage("pipeline.toy_world", output.train, output.dev, cfg, cfg["seed"], log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)

else:

    rule fetch_musique:
        input:
            **slices.musique_files(config),
        output:
            train=paths.MUSIQUE_TRAIN,
            dev=paths.MUSIQUE_DEV,
            train_manifest=m(paths.MUSIQUE_TRAIN),
            dev_manifest=m(paths.MUSIQUE_DEV),
        log:
            "logs/data/fetch_musique.log",
        params:
            cfg=slices.fetch_musique(config),
        localrule: True  # a download: compute nodes are offline
        resources:
            hf_download=1,
        conda:
            ENVS["base"]
        run:
            if cmd := stage("pipeline.fetch_musique", output.train, output.dev, scoped(params, "fetch_musique"), log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule tiny_model:
    output:
        directory(paths.fill(paths.BUILT_MODEL, backbone="tiny")),
    log:
        "logs/models/tiny_model.log",
    params:
        cfg=slices.tiny_model(config),
    conda:
        ENVS["train"]
    run:
        cfg = scoped(params, "tiny_model")
        tm = cfg["tiny_model"]
        if cmd := stage("pipeline.tiny_model", output[0], cfg, tm["seed"] if "seed" in tm else cfg["seed"], log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


REHEARSAL_BACKBONES = [b["name"] for b in config["backbones"] if b.get("build") == "rehearsal"]

if REHEARSAL_BACKBONES:

    rule rehearsal_model:
        """The released backbone's tokenizer, chat template and config with small random weights
        (config/paper_rehearsal.yaml: the paper preset rehearsed on a CPU)."""
        output:
            directory(paths.BUILT_MODEL),
        wildcard_constraints:
            backbone="|".join(REHEARSAL_BACKBONES),
        log:
            "logs/models/rehearsal_{backbone}.log",
        params:
            seed=config["seed"],
        conda:
            ENVS["train"]
        run:
            if cmd := stage("rehearsal.rehearsal_model", wildcards.backbone, output[0], params.seed, log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule contexts:
    input:
        musique=paths.MUSIQUE_TRAIN,
        model=lambda wc: model_input(wc.backbone),
    output:
        short=paths.fill(paths.CONTEXTS, ctx="short"),
        long=paths.fill(paths.CONTEXTS, ctx="long"),
        short_manifest=m(paths.fill(paths.CONTEXTS, ctx="short")),
        long_manifest=m(paths.fill(paths.CONTEXTS, ctx="long")),
    log:
        "logs/contexts/{backbone}.log",
    params:
        cfg=lambda wc: slices.contexts(config, wc.backbone),
    conda:
        ENVS["base"]
    run:
        if cmd := run_contexts(input, output, params, wildcards, log):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)
