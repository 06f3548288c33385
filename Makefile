# Two entry points; both create .venv on first use (scripts/bootstrap.sh).
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRL_EXPERIMENTAL_SILENCE := 1
# One intra-op thread per job: the local profile runs 2 jobs at once on 2 cores, and
# oversubscribed OpenMP threads spin-wait (measured: a tiny generate call 0.14 s -> 12 s).
# The tiny model's pre-training, which runs alone, sets its own thread count.
export OMP_NUM_THREADS := 1
SNAKEMAKE := .venv/bin/snakemake

.PHONY: paper-rehearsal tiny test test-bench test-all dryrun-paper lint report env envs-check clean gpu-check toy-science toy-science-tune mutation vllm-check

env:
	@./scripts/bootstrap.sh

tiny: env  ## the whole pipeline on the tiny preset (offline, CPU)
	$(SNAKEMAKE) all --profile profiles/local --configfile config/tiny.yaml

# Two pytest-xdist workers, one per core: the test command's time is its CPU work (three workers
# made it slower: the tiny end-to-end run's pre-training, the longest single job, got 2/3 of a core;
# 16 min 45 s against 15 min 41 s on two, 2026-12-03). tests/conftest.py groups each file into one
# unit, heaviest first. PYTEST_WORKERS= runs serially.
PYTEST_WORKERS ?= -n 2

# The suite includes the tiny end-to-end run (marked slow) and what `make lint` and `make envs-check`
# check (tests/test_lint.py), so those run beside the other tests, not before them. The measurement
# rehearsals (marked bench: the GPU check's CPU run, the efficiency plot; ~1.5 min) run in `make test-bench`.
test: env  ## the test suite
	.venv/bin/python -m pytest -q -m "not bench" $(PYTEST_WORKERS) tests

test-bench: env
	.venv/bin/python -m pytest -q -m bench $(PYTEST_WORKERS) tests

test-fast: env
	.venv/bin/python -m pytest -q tests

# Each workflow/envs/*.yaml's pins resolve for Linux x86-64 and the env's Python (uv against the
# package index; ~20 s); a conflict fails naming the pins. Checked inside `make test` too (tests/test_lint.py), so CI runs it.
envs-check: env
	.venv/bin/python scripts/envs_check.py

# The profile deploys each rule's conda env; where conda is not on PATH (a laptop, CI) the plan is made with
# deployment off (SOLOPO_SDM=none), so it lists the jobs but not their envs.
dryrun-paper: env  ## the paper preset's DAG, no cluster needed
	@command -v conda >/dev/null || echo "[dryrun-paper] conda is not on PATH: planning with SOLOPO_SDM=none (jobs' envs not shown)"
	SOLOPO_SDM=$${SOLOPO_SDM:-$$(command -v conda >/dev/null && echo conda || echo none)} $(SNAKEMAKE) --profile slurm all -n

report: env  ## snakemake --report: one offline HTML file with the tables and plots
	$(SNAKEMAKE) --profile profiles/local --configfile config/tiny.yaml --report results/report/report.html

# Zero findings: ruff (pyflakes, pycodestyle, isort; pyproject.toml) over the Python, `snakemake --lint` over the
# workflow on both presets. Checked inside `make test` too (tests/test_lint.py).
lint: env
	.venv/bin/ruff check src tests scripts
	$(SNAKEMAKE) --lint --configfile config/tiny.yaml
	$(SNAKEMAKE) --lint

# Mutation score of the core modules (mutmut, not part of `make test`: ~1 mutant/s per module on one
# core). Writes docs/mutation.md; MODULES="metrics pairs" limits the run; SURVIVORS=1 reruns only the
# last run's surviving mutants (after adding tests); RESUME=1 goes on with an interrupted run.
mutation: env
	.venv/bin/python -m uv pip install --python .venv/bin/python -q mutmut==3.8.1
	.venv/bin/python scripts/mutation.py $(if $(MODULES),--modules $(MODULES)) $(if $(SURVIVORS),--survivors-only) $(if $(RESUME),--resume)

clean:
	rm -rf results logs .snakemake

# The prepared GPU check: needs only python + torch + transformers (no .venv, no network).
# make gpu-check OUT=/some/folder              on a GPU machine, <= 8 min on an H200
# make gpu-check ARGS=--cpu-rehearsal          the toy-size CPU run the tests do
gpu-check:
	./scripts/gpu_check.sh $(if $(OUT),--out $(OUT),) $(ARGS)

# vLLM's engine configuration (window, rope, sampling parameters, prompt ids) for every (backbone, suite)
# plan of the paper preset, under generate.yaml's pins, on a CPU (docs/vllm_check.md). Not in `make test`:
# it makes .venvs/vllm (vLLM with its CUDA torch: 8.1 GB, about 1 min to install), then ~3 min.
vllm-check: env
	.venv/bin/python scripts/vllm_check.py

# Toy-science experiment (not in the test command): a preset of the same DAG, one training and
# evaluation job per (run, seed); the page is results/report/seeds.md (docs/toy_science.md)
# The paper preset rehearsed on this CPU (config/paper_rehearsal.yaml: the released tokenizers, configs and
# chat templates with small random weights, the paper's lengths; docs/paper_rehearsal.md). Training runs on
# 2 CPU ranks with the paper's ZeRO-3 + offload. Not part of `make test` (about an hour on 2 cores, see the doc).
# Every job is its own process (SOLOPO_STAGE_SUBPROCESS=1), as on a cluster: its jobs take minutes, so the
# seconds of importing torch do not matter, and two generation jobs then use both cores (as threads of one
# process they take turns: the sampling RNG is one global stream, held for each generate call).
paper-rehearsal: env
	SOLOPO_STAGE_SUBPROCESS=1 DS_ACCELERATOR=cpu SOLOPO_TRAIN_PROCESSES=2 $(SNAKEMAKE) all --profile profiles/local --configfile config/config.yaml config/paper_rehearsal.yaml

toy-science: env
	$(SNAKEMAKE) toy_science --profile profiles/local --configfile config/tiny.yaml config/toy_science.yaml

toy-science-tune: env  ## learning rates per family on held-out dev questions (report.tune); copy results/tune/chosen.json into the preset
	$(SNAKEMAKE) toy_science_tune --profile profiles/local --configfile config/tiny.yaml config/toy_science.yaml
