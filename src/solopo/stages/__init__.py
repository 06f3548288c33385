"""The pipeline's stages as plain functions, one per Snakemake rule, grouped by what they build:
`data` (records, contexts, the toy model), `prefs` (samples, pairs, datasets, reference log-probs),
`train` (the runs), `bench` (benchmark folders and evaluations). `resume` holds the keys that
decide whether a restarted job may reuse what an interrupted one left. solopo.pipeline re-exports
them under the names the workflow's rules call."""
