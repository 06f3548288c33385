from solopo.report.science import SEED_BENCHES, page_settings, seeds_meta

# Statistics over seeds (train.seeds): one page from the per-(run, seed) evaluations of the normal
# train/evaluate rules — means over seeds with t-intervals, paired bootstraps over items against
# report.baselines, plots (solopo.report.science). In `all` when train.seeds has more than one seed.
# The toy-science experiment is a preset of this DAG (docs/toy_science.md):
#   snakemake toy_science --profile profiles/local --configfile config/tiny.yaml config/toy_science.yaml
SEEDS_META = seeds_meta(config)
SEEDS_BENCHES = [b for b in SEED_BENCHES if b in config["eval"]["benchmarks"]]
SEEDS_PAGE = [f"{REPORT_DIR}/seeds.md", f"{REPORT_DIR}/seeds.md.json"] + [
    f"{REPORT_DIR}/seeds_{p}.png" for p in ("ruler_by_length", "lambda", "cost")
]


SEEDS_EVALS = expand("results/eval/{run}_{bench}.json", run=list(SEEDS_META), bench=SEEDS_BENCHES)
SEEDS_MODELS = {r: f"results/train/{r}/model" for r in train_runs()}  # training cost: their manifests


rule report_seeds:
    input:
        evals=SEEDS_EVALS,
        preds=[e.replace(".json", ".predictions.jsonl") for e in SEEDS_EVALS],
        models=list(SEEDS_MODELS.values()),
    output:
        md=SEEDS_PAGE[0],
        json=SEEDS_PAGE[1],
        plots=SEEDS_PAGE[2:],
    log:
        "logs/report/seeds.log",
    params:
        meta=SEEDS_META,
        settings=page_settings(config),
    localrule: True  # statistics over JSON files: seconds
    conda:
        ENVS["base"]
    run:
        stage("report.science.write_seeds_page", list(input.evals), SEEDS_MODELS, output.md, params.meta,
              params.settings, log[0])


# The toy-science experiment's target: every (run, seed) evaluation and the seeds page.
rule toy_science:
    input:
        evals=SEEDS_EVALS,
        page=SEEDS_PAGE,
    localrule: True
