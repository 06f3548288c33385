# Toy-science experiment (issue 15): `snakemake --profile profiles/local --configfile config/tiny.yaml
# config/toy_science.yaml toy_science` (or `make toy-science`). Not part of `all`. One job: its own
# worker pool (science.jobs processes) runs the (method, λ, seed) trainings and evaluations; finished
# runs are kept in results/science/runs and reused by a rerun with the same settings.


rule toy_science:
    input:
        model="results/models/tiny",
    output:
        md="results/report/toy_science.md",
        json="results/report/toy_science.md.json",
        plots=multiext("results/report/toy_science_", "ruler_by_length.png", "lambda.png", "cost.png"),
    params:
        science=config.get("science"),
    threads: lambda wildcards: workflow.resource_settings.cores or 1  # read when scheduled (see bench.smk)
    log:
        "logs/report/toy_science.log",
    conda:
        ENVS["train"]  # trains and evaluates (HF generate) in one job: the training stack
    run:
        stage("science.experiment", config, input.model, "results/science", output.md, log[0])


rule toy_science_tune:
    input:
        model="results/models/tiny",
    output:
        "results/science/tune/chosen.json",
    threads: lambda wildcards: workflow.resource_settings.cores or 1  # read when scheduled (see bench.smk)
    log:
        "logs/report/toy_science_tune.log",
    conda:
        ENVS["train"]
    run:
        stage("science.tune", config, input.model, "results/science", log[0])
