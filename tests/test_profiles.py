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
    `threads: workflow.cores` stopped every such command while parsing (issue 17 item 2)."""
    import subprocess

    snakemake = str(Path(sys.executable).parent / "snakemake")
    out = subprocess.run([snakemake, "--profile", "slurm", "--unlock", "--directory", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Unlocked working directory" in out.stdout + out.stderr, out.stderr[-3000:]
