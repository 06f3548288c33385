"""Repository-level rules: the README is a reference, docs are current, nothing points outside the repository."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Files outside the repository (a planning folder) and tracker numbers mean nothing to a reader of a
# clone: code, docs and generated output cite the paper, the upstream file or a commit instead.
OUTSIDE_REFERENCE = re.compile(r"shared/spec|shared/seeds|\bspec §|\bspec (?:data|solopo|paper)\b|"
                               r"\bissues? \d+\b|\bissue-\d+\b", re.I)


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = [ROOT / f for f in out.stdout.split("\0") if f]
    return [f for f in files if f.is_file() and f.suffix not in {".png", ".whl", ".safetensors", ".json"}
            and f.name != Path(__file__).name]


def test_nothing_points_to_files_outside_the_repository_or_to_issue_numbers():
    hits = []
    for f in tracked_text_files():
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_REFERENCE.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, f"{len(hits)} references:\n" + "\n".join(hits[:40])


def test_readme_is_a_reference_of_at_most_250_lines_whose_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for link in re.findall(r"\]\(((?!https?:)[^)#]+)\)", readme):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_config_reference_is_current_and_every_key_has_a_meaning():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_reference
    finally:
        sys.path.pop(0)
    assert config_reference.undocumented() == []
    assert (ROOT / "docs/config.md").read_text() == config_reference.render(), (
        "docs/config.md is out of date: run .venv/bin/python scripts/config_reference.py")


def test_no_junk_is_tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in out if re.fullmatch(r"slurm-\d+\.out|.*\.whl", f)], out
