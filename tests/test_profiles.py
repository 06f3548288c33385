"""How profiles/default/ layers with the profiles a user names, read through Snakemake's own parser.

Snakemake loads profiles/default/ for every run of the workflow and lets it override any
`--profile` key by key (snakemake/cli.py `parse_args`). The default profile therefore applies
only when no global profile is named: plain `snakemake <target>` and `snakemake --unlock` get a
core count and the workstation settings; `--profile slurm` and `--profile profiles/local` parse
exactly as if the default profile did not exist (`--workflow-profile none`), so a cluster run is
unaffected.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _parse(monkeypatch, argv: list[str]) -> dict:
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["snakemake", *argv])  # the profile's condition reads the real command line
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    _, args = parse_args(argv)
    # some values (resources, rate limits) have no __eq__: compare what they print
    def plain(value):
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        return repr(vars(value)) if hasattr(value, "__dict__") else repr(value)

    return {key: plain(value) for key, value in vars(args).items()}


@pytest.mark.parametrize("argv", [["results/eval/solo_orpo_ruler.json"], ["--unlock"],
                                  ["--profile", "none", "all"]])
def test_plain_commands_get_workstation_settings(monkeypatch, argv):
    from snakemake.utils import available_cpu_count  # what Snakemake makes of `cores: all`

    args = _parse(monkeypatch, argv)
    assert args["cores"] == available_cpu_count()
    assert args["rerun_incomplete"] and args["printshellcmds"] and args["show_failed_logs"]
    assert args["executor"] is None and args["jobs"] is None


@pytest.mark.parametrize("argv", [["--profile", "slurm", "all"], ["all", "--profile=slurm"],
                                  ["--profile", "profiles/local", "all"], ["--prof", "profiles/local", "all"]])
def test_a_named_profile_is_not_overridden_by_the_default_one(monkeypatch, argv):
    with_default = _parse(monkeypatch, argv)
    without = _parse(monkeypatch, [*argv, "--workflow-profile", "none"])
    without.pop("workflow_profile"), with_default.pop("workflow_profile")
    assert with_default == without


def test_slurm_profile_keeps_its_own_settings(monkeypatch):
    args = _parse(monkeypatch, ["--profile", "slurm", "all"])
    assert args["executor"] == "slurm" and args["cores"] is None  # jobs get `--cores all` in their allocation
    local = _parse(monkeypatch, ["--profile", "profiles/local", "all"])
    assert local["cores"] == 2 and local["force_use_threads"]


def test_snakemake_profile_environment_variable_counts_as_a_named_profile(monkeypatch):
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["snakemake", "all"])
    monkeypatch.setenv("SNAKEMAKE_PROFILE", "slurm")
    _, args = parse_args(["all"])
    assert args.executor == "slurm" and args.cores is None


def test_parsing_needs_no_core_count(tmp_path):
    """`snakemake --profile slurm --unlock` has no core count (none is set for a cluster run): a rule with
    `threads: workflow.cores` stopped every such command while parsing."""
    import subprocess

    snakemake = str(Path(sys.executable).parent / "snakemake")
    out = subprocess.run([snakemake, "--profile", "slurm", "--unlock", "--directory", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Unlocked working directory" in out.stdout + out.stderr, out.stderr[-3000:]


# --------------------------------------------------------------------------- software deployment
def _deployment(monkeypatch, sdm: str | None) -> set[str]:
    if sdm is None:
        monkeypatch.delenv("SOLOPO_SDM", raising=False)  # the shipped profile, untouched
    else:
        monkeypatch.setenv("SOLOPO_SDM", sdm)
    from snakemake.cli import parse_args

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["snakemake", "--profile", "slurm", "all"])
    _, args = parse_args(["--profile", "slurm", "all"])
    return {m.name.lower() for m in args.software_deployment_method or ()}


def test_shipped_slurm_profile_deploys_each_rules_conda_env(monkeypatch):
    assert _deployment(monkeypatch, None) == {"conda"}
    assert _deployment(monkeypatch, "conda apptainer") == {"conda", "apptainer"}
    assert _deployment(monkeypatch, "none") == set()  # where no conda exists (these tests, CI)


def test_an_unknown_deployment_switch_is_one_clear_error(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _deployment(monkeypatch, "docker")
    assert "SOLOPO_SDM='docker': allowed are 'conda' (default), 'conda apptainer', 'none'" in capsys.readouterr().err


EXPECTED_ENV = {  # rule -> env file (README "Running the paper preset"); evaluate depends on the benchmark
    "download_model": "base", "download_ruler": "base", "fetch_musique": "base", "contexts": "base",
    "bench_data": "base", "bench_data_tokenized": "base", "pairs": "base", "datasets": "base",
    "report_tables": "base", "report_lambda_plot": "base", "report_ruler_plot": "base",
    "sample": "generate", "download_leaderboard": "leaderboard", "ref_logps": "train", "train": "train",
}


def test_paper_dry_run_through_the_profile_gives_every_job_its_conda_env(monkeypatch, tmp_path):
    """`snakemake --profile slurm all -n` on the paper preset, planned by Snakemake's API with the deployment
    settings the shipped profile parses to: every job that runs code has its rule's conda env."""
    from snakemake.settings import types as t

    from tests.snakemake_plan import planned_workflow

    methods = _deployment(monkeypatch, None)
    deployment = t.DeploymentSettings(deployment_method=frozenset(t.DeploymentMethod.parse_choice(m)
                                                                   for m in methods))
    with planned_workflow(tmp_path, None, deployment=deployment) as w:
        envs: dict[str, set[str]] = {}
        for job in w.dag.needrun_jobs():
            if job.rule.name == "all":
                continue
            # Snakemake activates the job's env only when conda is a deployment method (Job.get_log_error_info,
            # Job.format_wildcards use the same condition)
            deployed = t.DeploymentMethod.CONDA in w.deployment_settings.deployment_method
            env = job.conda_env if deployed else None
            assert env is not None, f"{job}: no conda env under the shipped profile"
            envs.setdefault(job.rule.name, set()).add(Path(env.file.get_path_or_uri(secret_free=True)).stem)
    assert envs.pop("evaluate") == {"generate", "leaderboard"}
    assert envs == {rule: {EXPECTED_ENV[rule]} for rule in envs}, envs
    assert {"sample", "train", "contexts", "pairs", "report_tables"} <= set(envs)
