# Downloads: every model and dataset a job needs from the internet is fetched by a rule of its
# own, on the submitting host (`localrule: True`), into resources/. On a cluster the compute
# nodes are assumed offline: every job there runs with HF_HUB_OFFLINE=1 (common.smk) on these
# local copies. The other downloads of the pipeline are fetch_musique (data.smk) and, for hub
# sources, bench_data (LongBench v1/v2; eval.smk); both are local rules too.

NLTK_DIR = paths.NLTK_DATA  # punkt_tab for IFEval (download_leaderboard)
if Path(NLTK_DIR).is_dir():
    os.environ.setdefault("NLTK_DATA", str(Path(NLTK_DIR).resolve()))


rule download_model:
    output:
        directory(paths.DOWNLOADED_MODEL),
    log:
        "logs/download/model_{backbone}.log",
    params:
        repo=lambda wc: BACKBONES[wc.backbone]["model"],
    localrule: True
    conda:
        ENVS["base"]
    run:
        if cmd := stage("download.model", params.repo, output[0], log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule download_ruler:
    output:
        directory(paths.RULER_SOURCES),
    log:
        "logs/download/ruler_sources.log",
    localrule: True
    conda:
        ENVS["base"]
    run:
        if cmd := stage("download.ruler_sources", output[0], config["eval"]["ruler"], log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


rule download_leaderboard:
    output:
        paths.LEADERBOARD_PREFETCHED,
    log:
        "logs/download/leaderboard.log",
    params:
        tasks=lambda wc: config["eval"]["leaderboard"]["tasks"],
    localrule: True
    conda:
        ENVS["leaderboard"]
    run:
        if cmd := stage("download.leaderboard", config["eval"]["leaderboard"], output[0], NLTK_DIR, log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)

