# Two entry points; both create .venv on first use (scripts/bootstrap.sh).
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRL_EXPERIMENTAL_SILENCE := 1
# One intra-op thread per job: the local profile runs 2 jobs at once on 2 cores, and
# oversubscribed OpenMP threads spin-wait (measured: a tiny generate call 0.14 s -> 12 s).
# The tiny model's pre-training, which runs alone, sets its own thread count.
export OMP_NUM_THREADS := 1
SNAKEMAKE := .venv/bin/snakemake

.PHONY: tiny test test-all dryrun-paper lint report env clean mutation

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

# Mutation score of the core modules (mutmut, not part of `make test`: ~1 mutant/s per module on one
# core). Writes docs/mutation.md; MODULES="metrics pairs" limits the run.
mutation: env
	.venv/bin/python -m uv pip install --python .venv/bin/python -q mutmut==3.8.1
	.venv/bin/python scripts/mutation.py $(if $(MODULES),--modules $(MODULES))

clean:
	rm -rf results logs .snakemake
