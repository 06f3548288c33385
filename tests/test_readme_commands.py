"""Every shell command the README shows works exactly as typed.

Commands are read from README.md itself, so a command added there later is tested without
editing this file:
- fenced code blocks tagged bash/sh/shell/console, and untagged blocks one of whose lines starts
  with a command: every line (a trailing `# comment` and a leading `$ ` dropped), typed after the
  block's earlier `cd`/`export`/`source` lines; a `text` block is not shell (how a section opts out
  of a command that cannot run here, e.g. the GPU check);
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
`--executor` naming a non-local executor) get `-n`, a hub client (`hf`) gets `--help`, a pytest
command gets `--collect-only -q` (the test command runs those tests itself); everything else runs
for real. A `make` target whose recipe would reach the hub or a cluster runs its recipe's
snakemake lines with `-n`. The checkout is named `solopo`, as the README's clone: a block that
starts with `cd solopo` is typed in the folder above it.

Also the acceptance checks: the tiny one-target command rebuilds exactly the deleted
file; the paper preset gets past parsing and fails offline with the first download job's
one-line hub message.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
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
HUB_CLIENTS = {"hf", "huggingface-cli"}  # run with --help: the command exists and parses, nothing is sent
DRY_RUN = {"tests": "--collect-only -q"}  # else `-n` (Snakemake), `--help` (a hub client)
CHECKOUT_SKIP = {"results", "logs", ".snakemake", "config", ".pytest_cache", "reduced.yaml"}


# ---------------------------------------------------------------- extraction


def _words(cmd: str) -> list[str]:
    """The command's words without leading `NAME=value` environment assignments."""
    words = shlex.split(cmd)
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        words.pop(0)
    return words


def _first_word_is_command(span: str) -> bool:
    try:
        words = _words(span)
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
    """The line without a leading `$ ` prompt and without a trailing `# comment` (outside quotes)."""
    line = line.strip()
    line = line[2:] if line.startswith("$ ") else line
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
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


def _block_commands(lines: list[str]) -> list[tuple[str, str]]:
    """(command, set-up) per line of one shell block; the set-up is the block's earlier lines that change
    the shell's state (`cd`, `export`, `source`), as typed into the same terminal before it."""
    found, setup = [], []
    for line in filter(None, map(_strip_comment, lines)):
        found.append((line, " && ".join(setup)))
        if line.split()[0] in BUILTINS:
            setup.append(line)
    return found


def readme_commands(text: str) -> list[tuple[str, str]]:
    """Every shell command in the README's code blocks and tables, in order, without duplicates, as
    (command as typed, set-up typed before it in the same block). Blocks tagged bash/sh/shell/console
    are shell; an untagged block is shell when one of its lines starts with a command; `text` and
    other tags are not."""
    commands: list[tuple[str, str]] = []
    lang, block = None, []  # lang None: outside a fence
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\S*)", line)
        if fence and lang is None:
            lang, block = fence.group(1).lower(), []
        elif fence:
            if lang in SHELL_LANGS or (lang == "" and any(_first_word_is_command(_strip_comment(b)) for b in block)):
                commands.extend(_block_commands(block))
            lang = None
        elif lang is not None:
            block.append(line)
        elif line.lstrip().startswith("|"):
            commands.extend((c, "") for c in _row_commands(line))
    unique: dict[str, str] = {}
    for cmd, setup in commands:
        if cmd not in SETUP:
            unique.setdefault(cmd, setup)
    return list(unique.items())


# ---------------------------------------------------------------- classification


def _last_command(line: str) -> str:
    """The last command of a `a && b; c` line: the one a `-n` or `--help` appended to the line reaches."""
    return re.split(r"&&|\|\||;", line)[-1].strip()


def _runs_pytest(cmd: str) -> bool:
    words = _words(_last_command(cmd))
    return bool(words) and (Path(words[0]).name == "pytest" or words[1:3] == ["-m", "pytest"])


def _snakemake_args(cmd: str) -> list[str] | None:
    words = _words(_last_command(cmd))
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
    import yte  # profiles may be YTE templates (slurm/profile.yaml is); Snakemake renders them so

    path = cwd / name
    files = [path] if path.is_file() else sorted(path.glob("profile*.yaml")) + sorted(path.glob("config*.yaml"))
    if not files:
        return None
    with open(files[0]) as stream:
        return (yte.process_yaml(stream, require_use_yte=True) or {}).get("executor")


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

    words = _words(_last_command(cmd)) or [""]
    if Path(words[0]).name in HUB_CLIENTS:
        return None if {"--help", "-h"} & set(words) else "hub"
    if _runs_pytest(cmd):
        return None if "--collect-only" in words else "tests"
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
    out = subprocess.run(["make", "-n", *_words(target_cmd)[1:]], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.strip()]


def plan(cmd: str, setup: str, checkout: Path, env: dict) -> tuple[str, list[str], Path]:
    """How the test runs `cmd` in `checkout`: (mode, shell lines, working directory); mode is 'real',
    'dry-run: hub', 'dry-run: cluster' or 'dry-run: tests'. A dry run is `-n` for Snakemake, `--help`
    for a hub client and `--collect-only -q` for pytest (the test command runs those tests anyway)."""
    for segment in re.split(r"&&|\|\||;", cmd)[:-1]:
        assert dry_run_reason(segment, checkout) is None, f"cannot dry-run the middle of: {cmd}"
    reason, lines = dry_run_reason(cmd, checkout), [cmd]
    if reason:
        lines = [f"{cmd} {DRY_RUN.get(reason, '-n' if _snakemake_args(cmd) else '--help')}"]
    elif _words(cmd)[0] == "make":
        recipe = _make_recipe(cmd, checkout, env)
        reasons = {dry_run_reason(line, checkout) for line in recipe} - {None}
        if reasons:  # run the recipe's snakemake lines dry instead of the target
            reason, lines = "/".join(sorted(reasons)), [f"{line} -n" for line in recipe if _snakemake_args(line)]
    # a block that starts with `cd <clone>` is typed in the folder above the clone
    cwd = checkout.parent if re.match(rf"cd\s+{re.escape(checkout.name)}\b", setup or cmd) else checkout
    return (f"dry-run: {reason}" if reason else "real"), [f"{setup} && {line}" if setup else line
                                                           for line in lines], cwd


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
    """The extractor sees shell-block lines (with the block's earlier cd/export/source lines as set-up),
    table commands and 'add' variants; prose, `text` blocks, non-shell blocks and set-up stay out."""
    sample = "\n".join([
        "```bash", "make tiny    # set-up", "source .venv/bin/activate  # PATH", "```",
        "```", "Snakefile                 -> includes workflow/Snakefile", "```",
        "```", "cd solopo && make env   # a clone", "export A='x # y'", "hf auth login", "```",
        "```bash", "OMP_NUM_THREADS=1 .venv/bin/python -m pytest -s tests/x.py", "```",
        "```text", "make toy-science", "```",
        "| what | command |", "|---|---|",
        "| one | `snakemake results/x.json` (add `--configfile config/tiny.yaml` for tiny) |",
        "| sweep | add values to `train.lambdas.solo_orpo` in `config/config.yaml`: `[1.0, 0.5]` |",
        "| dry | `make dryrun-paper` (= `snakemake --profile slurm all -n`) |",
        "Prose `snakemake results/bench/efficiency.json` is not a code block.",
    ])
    assert readme_commands(sample) == [
        ("source .venv/bin/activate", ""), ("cd solopo && make env", ""), ("export A='x # y'", "cd solopo && make env"),
        ("hf auth login", "cd solopo && make env && export A='x # y'"),
        ("OMP_NUM_THREADS=1 .venv/bin/python -m pytest -s tests/x.py", ""), ("snakemake results/x.json", ""),
        ("snakemake results/x.json --configfile config/tiny.yaml", ""), ("make dryrun-paper", ""),
        ("snakemake --profile slurm all -n", "")]
    assert len(COMMANDS) >= 8, COMMANDS


def test_commands_that_would_reach_the_hub_a_cluster_or_the_test_suite_run_dry(tmp_path):
    dest = checkout(None, tmp_path / "solopo")
    env = shell_env(dest)
    cases = {
        ("snakemake results/eval/solo_orpo_ruler.json", ""): ("dry-run: hub", "snakemake results/eval/solo_orpo_ruler.json -n"),
        ("snakemake x --configfile config/tiny.yaml", ""): ("real", "snakemake x --configfile config/tiny.yaml"),
        ("snakemake --profile slurm all", ""): ("dry-run: cluster", "snakemake --profile slurm all -n"),
        ("snakemake --profile slurm all -n", ""): ("real", "snakemake --profile slurm all -n"),
        ("snakemake --unlock", ""): ("real", "snakemake --unlock"),
        (".venv/bin/hf auth login", "cd solopo"): ("dry-run: hub", "cd solopo && .venv/bin/hf auth login --help"),
        ("A=1 pytest tests/x.py", ""): ("dry-run: tests", "A=1 pytest tests/x.py --collect-only -q"),
        ("make dryrun-paper", ""): ("real", "make dryrun-paper"),
    }
    for (cmd, setup), (mode, line) in cases.items():
        got_mode, lines, cwd = plan(cmd, setup, dest, env)
        assert (got_mode, lines) == (mode, [line]), cmd
        assert cwd == (dest.parent if setup else dest)


@pytest.fixture(scope="module")
def readme_runs(reduced_tree, tmp_path_factory) -> dict[str, tuple[str, list]]:
    """Every README command run once in its own checkout, two at a time (each is one mostly
    single-threaded Snakemake parse; CI has 2 cores): command -> (mode, [(line, result)])."""
    base = tmp_path_factory.mktemp("readme_commands")

    def run(numbered: tuple[int, tuple[str, str]]) -> tuple[str, list]:
        number, (cmd, setup) = numbered
        dest = checkout(reduced_tree, base / str(number) / "solopo")  # the README's clone is `solopo`
        env = shell_env(dest)
        mode, lines, cwd = plan(cmd, setup, dest, env)
        return mode, [(line, run_shell(line, cwd, env)) for line in lines]

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((cmd for cmd, _ in COMMANDS), pool.map(run, enumerate(COMMANDS))))


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [cmd for cmd, _ in COMMANDS])
def test_readme_command_works_as_typed(cmd, readme_runs):
    mode, runs = readme_runs[cmd]
    for line, out in runs:
        text = out.stdout + out.stderr
        assert out.returncode == 0, f"README command failed ({mode}): {cmd}\nran: {line}\n{text[-3000:]}"
        if mode.startswith("dry-run") and _snakemake_args(line):
            assert "This was a dry-run" in text or "Nothing to be done" in text, text[-3000:]


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
