"""Every shell command the README shows works exactly as typed (issue 17).

Commands are read from README.md itself, so a command added there later is tested without
editing this file:
- fenced code blocks tagged bash/sh/shell/console: every line (a trailing `# comment` and a
  leading `$ ` are dropped);
- table rows: every code span whose first word is a command (on PATH after
  `source .venv/bin/activate`, a shell builtin, or an executable file of the repository), and,
  for a span such as `--configfile config/tiny.yaml` that a cell says to "add", the preceding
  command of that cell with the span added (both are tested).
The set-up commands `make tiny` and `make test` are left out: CI runs them anyway.

Each command runs in its own checkout-like folder (the repository's entries linked, `results/`,
`logs/` and `.snakemake/` copied from a tiny-preset tree built once per session) with
`.venv/bin` on PATH, offline. `config/tiny.yaml` there is the tiny preset with the reduced test
settings (tests/reduced_pipeline.REDUCED) merged in, exactly the config the tree was built with,
so `--configfile config/tiny.yaml` sees an up-to-date tree. Commands that would reach the hub
(a snakemake build on a config with a `source: hub` or a hub model) or a cluster (a profile or
`--executor` naming a non-local executor) get `-n`; everything else runs for real. A `make`
target whose recipe would reach the hub or a cluster runs its recipe's snakemake lines with `-n`.

Also the issue's acceptance checks: the tiny one-target command rebuilds exactly the deleted
file; the paper preset gets past parsing and fails offline with the first download job's
one-line hub message.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.reduced_pipeline import ENV, REDUCED, ROOT

README = ROOT / "README.md"
SETUP = {"make tiny", "make test"}  # CI runs these anyway (`.ci/run` is `make test`)
SHELL_LANGS = {"bash", "sh", "shell", "console"}
BUILTINS = {"source", ".", "cd", "export", "unset"}
VENV_BIN = ROOT / ".venv" / "bin"
# snakemake flags under which no job is executed (so neither the hub nor a cluster is reached)
NO_EXEC = {"-n", "--dry-run", "--dryrun", "--unlock", "--lint", "--list", "-l", "--list-rules", "--list-target-rules",
           "--summary", "-S", "--detailed-summary", "-D", "--dag", "--rulegraph", "--filegraph", "--report",
           "--cleanup-metadata", "--list-changes", "--lc", "--list-untracked", "--lu", "--touch", "-t", "--help", "-h"}
LOCAL_EXECUTORS = {None, "local", "dryrun", "touch"}
CHECKOUT_SKIP = {"results", "logs", ".snakemake", "config", ".pytest_cache", "reduced.yaml"}


# ---------------------------------------------------------------- extraction


def _first_word_is_command(span: str) -> bool:
    try:
        words = shlex.split(span)
    except ValueError:
        return False
    if not words:
        return False
    word = words[0]
    if word in BUILTINS:
        return True
    if not re.fullmatch(r"[\w./-]+", word) or word.startswith("-"):
        return False
    if "/" in word:
        path = ROOT / word
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(word, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}") is not None


def _strip_comment(line: str) -> str:
    line = line.strip()
    line = line[2:] if line.startswith("$ ") else line
    try:
        return shlex.join(shlex.split(line, comments=True))
    except ValueError:  # unbalanced quotes: keep as typed, the run will show the problem
        return line


def _row_commands(row: str) -> list[str]:
    """Commands in one table row: command spans, and each 'add `--x`' span appended to the cell's last command."""
    found: list[str] = []
    last_cmd, text_since = None, ""
    for span, bar, text in re.findall(r"`([^`]+)`|(\|)|([^`|]+)", row):
        if bar:
            last_cmd, text_since = None, ""
        elif text:
            text_since += text
        elif _first_word_is_command(span):
            found.append(span.strip())
            last_cmd, text_since = span.strip(), ""
        elif last_cmd and span.startswith("-") and re.search(r"\badd\b", text_since):
            found.append(f"{last_cmd} {span.strip()}")
            text_since = ""
    return found


def readme_commands(text: str) -> list[str]:
    """Every shell command in the README's shell code blocks and tables, in order, without duplicates."""
    commands: list[str] = []
    lang = None  # None: outside a fence
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence:
            lang = fence.group(1).lower() if lang is None else None
            continue
        if lang is not None:
            if lang in SHELL_LANGS and line.strip() and not line.strip().startswith("#"):
                commands.append(_strip_comment(line))
        elif line.lstrip().startswith("|"):
            commands.extend(_row_commands(line))
    return [c for c in dict.fromkeys(commands) if c not in SETUP]


# ---------------------------------------------------------------- classification


def _snakemake_args(cmd: str) -> list[str] | None:
    words = shlex.split(cmd)
    if words and Path(words[0]).name == "snakemake":
        return words[1:]
    return None


def _option_values(args: list[str], *names: str) -> list[str]:
    values, i = [], 0
    while i < len(args):
        opt, eq, val = args[i].partition("=")
        if opt in names:
            if eq:
                values.append(val)
            else:
                i += 1
                while i < len(args) and not args[i].startswith("-"):
                    values.append(args[i])
                    i += 1
                continue
        i += 1
    return values


def _profile_executor(name: str, cwd: Path) -> str | None:
    path = cwd / name
    files = [path] if path.is_file() else sorted(path.glob("profile*.yaml")) + sorted(path.glob("config*.yaml"))
    if not files:
        return None
    return (yaml.safe_load(files[0].read_text()) or {}).get("executor")


def _reaches_hub(config: dict) -> bool:
    """A data or benchmark `source: hub`, or a backbone that is neither built here nor a local folder."""
    def sources(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "source":
                    yield value
                yield from sources(value)
        elif isinstance(node, list):
            for item in node:
                yield from sources(item)

    hub_model = any(not b.get("build") and not Path(str(b.get("model", ""))).exists() for b in config.get("backbones", []))
    return hub_model or "hub" in set(sources(config))


def dry_run_reason(cmd: str, cwd: Path) -> str | None:
    """'cluster' or 'hub' when running `cmd` for real would submit jobs or download; None otherwise."""
    from snakemake.utils import update_config

    args = _snakemake_args(cmd)
    if args is None or NO_EXEC & {a.partition("=")[0] for a in args}:
        return None
    executors = _option_values(args, "--executor", "-e") + [
        _profile_executor(p, cwd) for p in _option_values(args, "--profile") if p != "none"]
    if any(e not in LOCAL_EXECUTORS for e in executors):
        return "cluster"
    config = yaml.safe_load((cwd / "config/config.yaml").read_text())
    for f in _option_values(args, "--configfile", "--configfiles"):
        update_config(config, yaml.safe_load((cwd / f).read_text()) or {})
    return "hub" if _reaches_hub(config) else None


def _make_recipe(target_cmd: str, cwd: Path, env: dict) -> list[str]:
    out = subprocess.run(["make", "-n", *shlex.split(target_cmd)[1:]], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.strip()]


def plan(cmd: str, cwd: Path, env: dict) -> tuple[str, list[str]]:
    """How the test runs `cmd`: ('real' | 'dry-run: hub' | 'dry-run: cluster', shell lines)."""
    reason = dry_run_reason(cmd, cwd)
    if reason:
        return f"dry-run: {reason}", [f"{cmd} -n"]
    if shlex.split(cmd)[0] == "make":
        recipe = _make_recipe(cmd, cwd, env)
        reasons = {dry_run_reason(line, cwd) for line in recipe} - {None}
        if reasons:  # run the recipe's snakemake lines dry instead of the target
            return f"dry-run: {'/'.join(sorted(reasons))}", [f"{line} -n" for line in recipe if _snakemake_args(line)]
    return "real", [cmd]


# ---------------------------------------------------------------- the checkout


def checkout(tree: Path | None, dest: Path) -> Path:
    """A folder that looks like the repository after `make tiny` on the reduced tiny preset."""
    from snakemake.utils import update_config

    dest.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name not in CHECKOUT_SKIP:
            (dest / entry.name).symlink_to(entry)
    (dest / "config").mkdir()
    for entry in (ROOT / "config").iterdir():
        (dest / "config" / entry.name).symlink_to(entry)
    (dest / "config/tiny.yaml").unlink()
    tiny = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    update_config(tiny, yaml.safe_load(REDUCED))  # what `--configfile config/tiny.yaml reduced.yaml` gives
    (dest / "config/tiny.yaml").write_text(yaml.safe_dump(tiny, sort_keys=False))
    if tree is not None:
        for name in ("results", "logs", ".snakemake"):
            if (tree / name).exists():
                shutil.copytree(tree / name, dest / name, symlinks=True,
                                ignore=shutil.ignore_patterns("locks", "log"))
    return dest


def shell_env(dest: Path) -> dict:
    """The environment after `source .venv/bin/activate`, offline (as CI runs the tests)."""
    return {**ENV, "PATH": f"{dest / '.venv/bin'}{os.pathsep}{ENV.get('PATH', '')}", "VIRTUAL_ENV": str(ROOT / ".venv"),
            "TRL_EXPERIMENTAL_SILENCE": "1"}


def run_shell(line: str, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _job_counts(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)\s+(\d+)$", text, re.M))


# ---------------------------------------------------------------- tests

COMMANDS = readme_commands(README.read_text())


def test_extraction_finds_the_documented_commands():
    """The extractor sees code-block lines, table commands and 'add' variants; prose and set-up stay out."""
    sample = "\n".join([
        "```bash", "make tiny    # set-up", "source .venv/bin/activate  # PATH", "```",
        "```", "Snakefile                 -> includes workflow/Snakefile", "```",
        "| what | command |", "|---|---|",
        "| one | `snakemake results/x.json` (add `--configfile config/tiny.yaml` for tiny) |",
        "| sweep | add values to `train.lambdas.solo_orpo` in `config/config.yaml`: `[1.0, 0.5]` |",
        "| dry | `make dryrun-paper` (= `snakemake --profile slurm all -n`) |",
        "Prose `snakemake results/bench/efficiency.json` is not a code block.",
    ])
    assert readme_commands(sample) == [
        "source .venv/bin/activate", "snakemake results/x.json", "snakemake results/x.json --configfile config/tiny.yaml",
        "make dryrun-paper", "snakemake --profile slurm all -n"]
    assert len(COMMANDS) >= 8, COMMANDS


@pytest.mark.slow
@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_command_works_as_typed(cmd, reduced_tree, tmp_path):
    dest = checkout(reduced_tree, tmp_path / "checkout")
    env = shell_env(dest)
    mode, lines = plan(cmd, dest, env)
    for line in lines:
        out = run_shell(line, dest, env)
        assert out.returncode == 0, (f"README command failed ({mode}): {cmd}\nran: {line}\n"
                                     f"{(out.stdout + out.stderr)[-3000:]}")
        if mode.startswith("dry-run") and _snakemake_args(line):
            assert "This was a dry-run" in out.stdout + out.stderr or "Nothing to be done" in out.stdout + out.stderr


@pytest.mark.slow
def test_one_target_rebuilds_exactly_that_file(reduced_tree, tmp_path):
    """Acceptance: `rm` the eval JSON, the README's tiny one-target command (no other flag) rebuilds only it."""
    dest = checkout(reduced_tree, tmp_path / "checkout")
    target = dest / "results/eval/solo_orpo_ruler.json"
    target.unlink()
    out = run_shell("snakemake results/eval/solo_orpo_ruler.json --configfile config/tiny.yaml", dest, shell_env(dest))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    counts = _job_counts(text)
    assert counts.get("evaluate") == "1" and counts.get("total") == "1", counts
    assert target.exists()


@pytest.mark.slow
def test_paper_preset_fails_offline_at_the_first_download_job(tmp_path):
    """Acceptance: plain `snakemake <target>` on the paper preset parses, schedules, and the first job
    (a download) fails offline with a one-line message naming the hub; nothing else is attempted."""
    dest = checkout(None, tmp_path / "checkout")
    out = run_shell("snakemake results/eval/solo_orpo_ruler.json", dest, shell_env(dest))
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    assert "Workflow requires a total number of cores" not in text and "cores have to be specified" not in text
    assert int(_job_counts(text)["total"]) > 1, text[-3000:]  # past parsing: the DAG was built
    started = re.findall(r"^(?:local)?rule (\w+):$", text, re.M)
    failed = re.findall(r"^Error in rule (\w+):$", text, re.M)
    assert started and started[0] in failed and set(failed) <= set(started), (started, failed, text[-3000:])
    # Snakemake prints a job's exception as `<Type> in file "...", line N:` and then its message
    messages = re.findall(r'^\w+ in file ".*", line \d+:\n(.*)\n', text, re.M)
    assert messages, text[-3000:]
    for message in messages:  # one line each, naming the hub (and how to work offline)
        assert re.search(r"HF_HUB_OFFLINE|\bhub\b", message) and len(message) < 400, message
