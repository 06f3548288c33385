#!/usr/bin/env python3
"""`make envs-check`: every software environment in workflow/envs/ resolves, for the cluster's platform.

For each `workflow/envs/*.yaml` it checks the file's form (conda `channels`, `dependencies` holding
only `python=X.Y`, `pip` and a `pip:` section of exact `name==version` pins), then asks uv to resolve
the pinned set against the package index for Linux x86-64 (manylinux_2_28) and the env's Python:

    uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 -

A pin that conflicts (e.g. transformers==5.23.0 next to vllm==0.32.0, which requires <5.20) fails
with one line naming the env file and the conflicting pins, then uv's explanation. The train and
base envs' pins must also agree with requirements.txt wherever both pin a package: the project's
.venv (where the tests and the tiny preset run) is meant to be the training stack on CPU.

Exit status: 0 all resolve, 1 a conflict or a malformed file, 2 the index could not be reached.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]  # a repository script, not package code
ENV_DIR = ROOT / "workflow" / "envs"
PLATFORM = "x86_64-manylinux_2_28"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[(?P<extras>[A-Za-z0-9_,. -]+)\])?==(?P<version>[^\s;=<>!~,]+)$")
# envs whose pins must match requirements.txt (the .venv is the training stack on CPU)
SAME_AS_VENV = ("base", "train")


class EnvFileError(ValueError):
    pass


@dataclass
class Env:
    path: Path
    python: str
    pins: list[str]

    @property
    def name(self) -> str:
        return self.path.stem

    def versions(self) -> dict[str, str]:
        return {canon(PIN.match(p)["name"]): PIN.match(p)["version"] for p in self.pins}


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_env(path: Path) -> Env:
    """Parse one env file; raise EnvFileError naming the file and the offending entry."""
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EnvFileError(f"{path}: not YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("channels"), list) or not isinstance(doc.get("dependencies"), list):
        raise EnvFileError(f"{path}: needs `channels:` and `dependencies:` lists (conda environment file)")
    python, pins = None, None
    for dep in doc["dependencies"]:
        if isinstance(dep, dict) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pins = [str(p).strip() for p in dep["pip"]]
        elif isinstance(dep, str) and re.fullmatch(r"python\s*=+\s*\d+\.\d+(\.\d+)?", dep):
            python = re.split(r"=+", dep)[-1].strip()
        elif dep != "pip":
            raise EnvFileError(f"{path}: dependency {dep!r}: only python=X.Y, pip and a pip: list are allowed "
                               "(conda packages cannot be checked from PyPI; pin them under pip:)")
    if python is None:
        raise EnvFileError(f"{path}: dependencies: missing `python=X.Y`")
    if not pins:
        raise EnvFileError(f"{path}: dependencies: missing a non-empty `pip:` list")
    seen: dict[str, str] = {}
    for p in pins:
        m = PIN.match(p)
        if not m:
            raise EnvFileError(f"{path}: pip entry {p!r}: not an exact pin; write name==version (or name[extra]==version)")
        if canon(m["name"]) in seen:
            raise EnvFileError(f"{path}: pip entry {p!r}: {m['name']} is pinned twice (also {seen[canon(m['name'])]!r})")
        seen[canon(m["name"])] = p
    return Env(path, python, pins)


def requirements_pins(path: Path = ROOT / "requirements.txt") -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line.split("#")[0].strip())
        if m:
            out[canon(m["name"])] = m["version"]
    return out


def venv_mismatches(envs: list[Env], req: dict[str, str]) -> list[str]:
    """Pins of the base/train envs that differ from requirements.txt (the .venv the tests run in)."""
    out = []
    for env in envs:
        if env.name in SAME_AS_VENV:
            for name, v in env.versions().items():
                if name in req and req[name] != v:
                    out.append(f"{env.path.name}: {name}=={v} but requirements.txt pins {name}=={req[name]} "
                               "(the .venv is the training stack on CPU; keep them equal)")
    return out


def cpu_test_pins(names: tuple[str, ...] = ("generate", "leaderboard"), drop: str = "vllm") -> list[str]:
    """The named envs' pins together, minus `drop` (also as an extra): the CPU test env for their code."""
    pins: dict[str, str] = {}
    for n in names:
        for p in read_env(ENV_DIR / f"{n}.yaml").pins:
            m = PIN.match(p)
            if canon(m["name"]) == drop:
                continue
            extras = [e.strip() for e in (m["extras"] or "").split(",") if e.strip() and canon(e.strip()) != drop]
            pin = f"{m['name']}{'[' + ','.join(extras) + ']' if extras else ''}=={m['version']}"
            if canon(m["name"]) in pins and pins[canon(m["name"])] != pin:
                raise EnvFileError(f"{n}.yaml: {pin} differs from {pins[canon(m['name'])]} in another of {names}")
            pins[canon(m["name"])] = pin
    return list(pins.values())


def uv_cmd() -> list[str]:
    return [sys.executable, "-m", "uv"]


def conflict_names(env: Env, message: str) -> list[str]:
    """The env's own pins that uv's explanation names, in file order (the packages to look at)."""
    words = {canon(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]", message)}
    return [p for p in env.pins if canon(PIN.match(p)["name"]) in words]


def resolve(env: Env, timeout: float = 300) -> tuple[int, str]:
    """Resolve the env's pins with uv; (0, '') when they resolve, else (1 conflict | 2 index unreachable, message)."""
    cmd = uv_cmd() + ["pip", "compile", "--quiet", "--no-header", "--python-version", env.python,
                      "--python-platform", PLATFORM, "-"]
    try:
        r = subprocess.run(cmd, input="\n".join(env.pins) + "\n", capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 2, f"{env.path.relative_to(ROOT)}: uv pip compile did not finish in {timeout:.0f} s"
    if r.returncode == 0:
        return 0, ""
    err = (r.stderr or r.stdout).strip()
    where = env.path.relative_to(ROOT) if env.path.is_relative_to(ROOT) else env.path
    if re.search(r"(Failed to fetch|error sending request|dns error|Could not connect|network)", err, re.I) and \
            "No solution found" not in err:
        return 2, f"{where}: the package index could not be reached: {err.splitlines()[-1]}"
    names = conflict_names(env, err)
    head = f"{where}: no solution for the pinned set (Python {env.python}, {PLATFORM})"
    head += f": conflicting pins: {', '.join(names)}" if names else ""
    return 1, head + "\n" + "\n".join("    " + line for line in err.splitlines())


def check(paths: list[Path]) -> int:
    envs, status = [], 0
    for p in paths:
        try:
            envs.append(read_env(p))
        except EnvFileError as e:
            print(f"envs-check: {e}", file=sys.stderr)
            status = 1
    for msg in venv_mismatches(envs, requirements_pins()):
        print(f"envs-check: workflow/envs/{msg}", file=sys.stderr)
        status = 1
    with ThreadPoolExecutor(max_workers=4) as pool:  # network-bound: resolve the files at once
        results = list(pool.map(resolve, envs))
    codes = [status]
    for env, (rc, msg) in zip(envs, results):
        codes.append(rc)
        if rc:
            print(f"envs-check: {msg}", file=sys.stderr)
        else:
            print(f"envs-check: {env.path.relative_to(ROOT) if env.path.is_relative_to(ROOT) else env.path}: "
                  f"{len(env.pins)} pins resolve (Python {env.python}, {PLATFORM})")
    return 1 if 1 in codes else max(codes)  # a conflict outranks an unreachable index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="env files (default: workflow/envs/*.yaml)")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.files] or sorted(ENV_DIR.glob("*.yaml"))
    if not paths:
        print(f"envs-check: no env files in {ENV_DIR}", file=sys.stderr)
        return 1
    return check(paths)


if __name__ == "__main__":
    sys.exit(main())
