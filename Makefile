# Two entry points; both create .venv on first use (scripts/bootstrap.sh).
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRL_EXPERIMENTAL_SILENCE := 1
# One intra-op thread per job: the local profile runs 2 jobs at once on 2 cores, and
# oversubscribed OpenMP threads spin-wait (measured: a tiny generate call 0.14 s -> 12 s).
# The tiny model's pre-training, which runs alone, sets its own thread count.
export OMP_NUM_THREADS := 1
SNAKEMAKE := .venv/bin/snakemake

.PHONY: tiny test test-all dryrun-paper lint report env clean gpu-check toy-science toy-science-tune

env:
	@./scripts/bootstrap.sh

tiny: env  ## the whole pipeline on the tiny preset (offline, CPU)
	$(SNAKEMAKE) all --profile profiles/local --configfile config/tiny.yaml

test: env  ## the test suite (includes the tiny end-to-end run, marked slow)
	.venv/bin/python -m pytest -q -m "slow or not slow" tests

test-fast: env
	.venv/bin/python -m pytest -q tests

dryrun-paper: env  ## the paper preset's DAG, no cluster needed
	$(SNAKEMAKE) --profile slurm all -n

report: env  ## snakemake --report: one offline HTML file with the tables and plots
	$(SNAKEMAKE) --profile profiles/local --configfile config/tiny.yaml --report results/report/report.html

lint: env
	$(SNAKEMAKE) --lint --configfile config/tiny.yaml

clean:
	rm -rf results logs .snakemake

# The prepared GPU check (issue 16): needs only python + torch + transformers (no .venv, no network).
# make gpu-check OUT=/some/folder              on a GPU machine, <= 8 min on an H200
# make gpu-check ARGS=--cpu-rehearsal          the toy-size CPU run the tests do
gpu-check:
	./scripts/gpu_check.sh $(if $(OUT),--out $(OUT),) $(ARGS)

# Toy-science experiment (issue 15; not in the test command): ~90 min on 2 idle cores
toy-science: env
	$(SNAKEMAKE) toy_science --profile profiles/local --configfile config/tiny.yaml config/toy_science.yaml

toy-science-tune: env  ## learning rates per family on the dev split; write the choice into config/toy_science.yaml
	$(SNAKEMAKE) toy_science_tune --profile profiles/local --configfile config/tiny.yaml config/toy_science.yaml
