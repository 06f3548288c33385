from solopo.report.findings import ra_plot_runs
from solopo.report.science import SEED_BENCHES, page_settings, seeds_meta
from solopo.config import Run
from solopo.tune import train_slice, tune_bench_slice, tune_runs

# Statistics over seeds (train.seeds): one page from the per-(run, seed) evaluations of the normal
# train/evaluate rules — means over seeds with t-intervals, paired bootstraps over items against
# report.baselines, plots (solopo.report.science). In `all` when train.seeds has more than one seed.
# The toy-science experiment is a preset of this DAG (docs/toy_science.md):
#   snakemake toy_science --profile profiles/local --configfile config/tiny.yaml config/toy_science.yaml
SEEDS_META = seeds_meta(config)
SEEDS_BENCHES = [b for b in SEED_BENCHES if b in config["eval"]["benchmarks"]]
SEEDS_PAGE = [paths.SEEDS_MD, paths.SEEDS_JSON] + [paths.fill(paths.SEEDS_PLOT, plot=p) for p in paths.SEEDS_PLOTS]
SEEDS_PAGE += [paths.SEEDS_RA_PLOT] if ra_plot_runs(SEEDS_META) else []  # the RA gradient per side over training


SEEDS_EVALS = expand(paths.EVAL_JSON, run=list(SEEDS_META), bench=SEEDS_BENCHES)
SEEDS_PREDS = expand(paths.EVAL_PREDICTIONS, run=list(SEEDS_META), bench=SEEDS_BENCHES)
SEEDS_MODELS = {r: paths.fill(paths.TRAIN_MODEL, run=r) for r in train_runs()}  # training cost: their manifests


rule report_seeds:
    input:
        evals=SEEDS_EVALS,
        preds=SEEDS_PREDS,
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
        if cmd := stage("report.science.write_seeds_page", list(input.evals), SEEDS_MODELS, output.md, params.meta,
                        params.settings, log[0]):
            shell(cmd)  # in the rule's env / as its own process (solopo.stage)


# The toy-science experiment's target: every (run, seed) evaluation and the seeds page.
rule toy_science:
    input:
        evals=SEEDS_EVALS,
        page=SEEDS_PAGE,
    localrule: True


# Learning-rate tuning on held-out dev questions (report.tune; solopo.tune), DAG jobs like the rest:
#   snakemake toy_science_tune --configfile config/tiny.yaml config/toy_science.yaml   (make toy-science-tune)
# Each (probe method, rate) trains on the first seed's training set (pipeline.train, as rule train) and is
# scored on a RULER set built from its own dev questions (pipeline.evaluate, as rule evaluate); never
# the test items. results/tune/chosen.json holds the best rate per family, copied into the preset by hand.
TUNE = tune_runs(config)
if TUNE and config["data"]["source"] == "toy":
    TUNE_SPEC = {
        name: {
            "run": Run(name, PRIMARY, r["method"]),
            "dataset": get_method(r["method"]).dataset,
            "ref": get_loss(get_method(r["method"]).loss).needs_ref,
        }
        for name, r in TUNE.items()
    }
    TUNE_BENCH = paths.TUNE_BENCH

    wildcard_constraints:
        trun=_alt(TUNE),

    rule tune_questions:
        input:
            test=paths.MUSIQUE_DEV,  # the test fixtures' questions: none of them is reused
        output:
            questions=paths.TUNE_QUESTIONS,
            manifest=m(paths.TUNE_QUESTIONS),
        log:
            "logs/tune/questions.log",
        params:
            cfg=slices.project(config, ("seed", "tiny_model.entities", "tiny_model.hop_weights")),
            n=config["report"]["tune"]["dev_questions"],
        localrule: True
        conda:
            ENVS["base"]
        run:
            cfg = scoped(params, "tune_questions")
            if cmd := stage("tune.tune_questions", output.questions, input.test, cfg, cfg["seed"], params.n, log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)

    rule tune_bench:
        input:
            dev=paths.TUNE_QUESTIONS,
            model=model_input(PRIMARY),
        output:
            directory(TUNE_BENCH),
        log:
            "logs/tune/bench.log",
        params:
            cfg=tune_bench_slice(slices.bench_data(config, "ruler", PRIMARY), config["report"]["tune"]["dev_items"]),
        conda:
            ENVS["base"]
        run:
            cfg = scoped(params, "bench_data")
            if cmd := stage("pipeline.bench_data", "ruler", input.dev, model_path(PRIMARY), output[0], cfg, cfg["seed"], log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)

    rule tune_train:
        input:
            data=lambda wc: paths.fill(paths.DATASET, backbone=PRIMARY, seedtag="", dataset=TUNE_SPEC[wc.trun]["dataset"]),
            ref=lambda wc: paths.fill(paths.REF_LOGPS, backbone=PRIMARY, seedtag="", dataset=TUNE_SPEC[wc.trun]["dataset"]) if TUNE_SPEC[wc.trun]["ref"] else [],
            model=model_input(PRIMARY),
        output:
            model=directory(paths.TUNE_MODEL),
        log:
            "logs/tune/train_{trun}.log",
        params:
            run=lambda wc: train_slice(slices.train(config, TUNE_SPEC[wc.trun]["run"]), TUNE[wc.trun]),
            head=lambda wc, input, output: [input.data, input.ref or None, model_path(PRIMARY), output.model, wc.trun,
                                            TUNE[wc.trun]["method"], None],
        resources:
            gpu=4 if config["preset"] == "paper" else 0,
        conda:
            ENVS["train"]
        run:
            if cmd := stage("pipeline.train", *params.head, slices.scoped(params.run, config, "train"), params.run["seed"], log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)

    rule tune_evaluate:
        input:
            data=TUNE_BENCH,
            model=paths.TUNE_MODEL,
        output:
            json=paths.TUNE_EVAL_JSON,
            manifest=m(paths.TUNE_EVAL_JSON),
            predictions=paths.TUNE_EVAL_PREDICTIONS,
            predictions_manifest=m(paths.TUNE_EVAL_PREDICTIONS),
        log:
            "logs/tune/eval_{trun}.log",
        params:
            cfg=lambda wc: slices.evaluate(config, TUNE_SPEC[wc.trun]["run"], "ruler"),
            kw={
                "trust_remote_code": BACKBONES[PRIMARY].get("trust_remote_code", False),
                "long_context": long_context_plan(BACKBONES[PRIMARY], "ruler", config["eval"]["ruler"]),
            },
        resources:
            gpu=1,
        conda:
            ENVS["generate"]
        run:
            if cmd := run_tune_evaluate(input, output, params, wildcards, log):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)

    rule toy_science_tune:
        input:
            expand(paths.TUNE_EVAL_JSON, trun=list(TUNE)),
        output:
            paths.TUNE_CHOSEN,
        log:
            "logs/tune/chosen.log",
        params:
            runs=TUNE,
        localrule: True
        conda:
            ENVS["base"]
        run:
            if cmd := stage("tune.choose", list(input), output[0], params.runs, log[0]):
                shell(cmd)  # in the rule's env / as its own process (solopo.stage)
