# SoLoPO reproduction pipeline. The workflow lives in workflow/; this file lets
# `snakemake` find it from the repository root.
include: "workflow/Snakefile"


rule default:
    input:
        rules.all.input,
    default_target: True
