"""Software environments (workflow/envs/), the rules' dispatch into them, and the installed package.

Fast: the env files' form, a `conda:` on every rule that runs code, the call file a rule hands to
its env, the dispatch through shell(), no module locating files from the repository root, CI wiring.
Slow (run by `make test`): a wheel installed into a fresh venv runs toy_world -> contexts; the
generation/evaluation tests pass in a venv made from generate.yaml + leaderboard.yaml's pins minus
vLLM (transformers 5.19, not the .venv's 5.23); envs-check names the pins of a conflicting file.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from solopo import stage

ROOT = Path(__file__).resolve().parents[1]
ENV_DIR = ROOT / "workflow" / "envs"
UV = [sys.executable, "-m", "uv"]
LINKS = ["--find-links", "/opt/wheels"] if Path("/opt/wheels").is_dir() else []  # the CPU torch wheel
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {
    "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}


def _load_envs_check():
    spec = importlib.util.spec_from_file_location("envs_check", ROOT / "scripts" / "envs_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["envs_check"] = mod
    spec.loader.exec_module(mod)
    return mod


envs_check = _load_envs_check()


# --------------------------------------------------------------------------- env files
def test_one_env_file_per_stack_each_pinned_exactly():
    envs = {p.stem: envs_check.read_env(p) for p in sorted(ENV_DIR.glob("*.yaml"))}
    assert set(envs) == {"base", "generate", "leaderboard", "train"}
    for env in envs.values():
        assert env.python == "3.11"
        assert env.path.read_text().startswith("#"), f"{env.path.name}: the why goes in a comment at the top"
    v = {n: e.versions() for n, e in envs.items()}
    # the reason for separate envs: vLLM's transformers bound excludes the training pin
    assert v["generate"]["vllm"] == v["leaderboard"]["vllm"] == "0.32.0"
    assert v["generate"]["transformers"].startswith("5.19.") and v["train"]["transformers"] == "5.23.0"
    assert "torch" not in v["base"], "base is the no-GPU-stack env"
    assert envs_check.venv_mismatches(list(envs.values()), envs_check.requirements_pins()) == []


@pytest.mark.parametrize("body, message", [
    ("  - python=3.11\n  - pip\n  - pip:\n      - transformers>=5.19\n", "pip entry 'transformers>=5.19': not an exact pin"),
    ("  - pip\n  - pip:\n      - tqdm==4.70.1\n", "missing `python=X.Y`"),
    ("  - python=3.11\n  - numpy\n  - pip:\n      - tqdm==4.70.1\n", "dependency 'numpy': only python=X.Y, pip"),
    ("  - python=3.11\n  - pip:\n      - tqdm==4.70.1\n      - TQDM==4.70.0\n", "is pinned twice"),
])
def test_a_malformed_env_file_is_named_with_its_entry(tmp_path, body, message):
    f = tmp_path / "bad.yaml"
    f.write_text("channels:\n  - conda-forge\ndependencies:\n" + body)
    with pytest.raises(envs_check.EnvFileError) as e:
        envs_check.read_env(f)
    assert str(e.value).startswith(f"{f}: ") and message in str(e.value)


def test_a_pin_that_leaves_the_training_stack_is_reported(tmp_path):
    f = tmp_path / "train.yaml"
    f.write_text((ENV_DIR / "train.yaml").read_text().replace("trl==1.16.0", "trl==1.15.0"))
    msgs = envs_check.venv_mismatches([envs_check.read_env(f)], envs_check.requirements_pins())
    assert msgs == ["train.yaml: trl==1.15.0 but requirements.txt pins trl==1.16.0 "
                    "(the .venv is the training stack on CPU; keep them equal)"]


def test_the_cpu_test_env_is_generate_and_leaderboard_minus_vllm():
    pins = envs_check.cpu_test_pins()
    assert "transformers==5.19.0" in pins and "lm-eval[hf,ifeval,math]==0.4.13" in pins
    assert not any(p.lower().startswith("vllm") for p in pins)


def test_conflict_names_are_the_files_own_pins():
    env = envs_check.Env(Path("generate.yaml"), "3.11", ["vllm==0.32.0", "torch==2.13.0", "transformers==5.23.0"])
    msg = ("Because vllm==0.32.0 depends on transformers>=5.16.1,<5.20.0 and you require vllm==0.32.0, we can "
           "conclude that you require transformers>=5.16.1,<5.20.0.")
    assert envs_check.conflict_names(env, msg) == ["vllm==0.32.0", "transformers==5.23.0"]


# --------------------------------------------------------------------------- rules
def _workflow_rules(configfile: Path):
    """The parsed workflow's rules, from Snakemake's own API (no DAG, no jobs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(configfiles=[configfile]),
                          snakefile=ROOT / "Snakefile", workdir=ROOT)._workflow
        return list(wf.rules)


def test_every_rule_that_runs_code_declares_an_env():
    rules = {r.name: r for r in _workflow_rules(ROOT / "config" / "tiny.yaml")}
    code = {n: r for n, r in rules.items() if not r.norun}
    assert len(code) >= 18, sorted(code)  # downloads, data, sample, pairs, train, eval, report, efficiency
    assert sorted(n for n, r in code.items() if r.conda_env is None) == [], "rules without conda:"

    def env_of(name, **wildcards):
        rule = rules[name]
        wc = {k: wildcards.get(k, "x") for k in rule.wildcard_names}
        path = Path(str(rule.expand_conda_env(wc).file)).resolve()
        assert path.parent == ENV_DIR and path.is_file(), (name, path)  # relative to the rules folder, resolved
        return path.stem

    got = {n: env_of(n) for n in code if n != "evaluate"}
    assert got["sample"] == "generate" and got["train"] == got["ref_logps"] == got["tiny_model"] == "train"
    assert got["contexts"] == got["pairs"] == got["report_tables"] == "base"
    assert env_of("evaluate", bench="ruler") == "generate" and env_of("evaluate", bench="leaderboard") == "leaderboard"
    text = "".join(f.read_text() for f in (ROOT / "workflow" / "rules").glob("*.smk"))
    assert "from solopo import pipeline" not in text, "rule bodies call stage(...), which can run in the env"


NO_TORCH = """
import sys, yaml
sys.modules["torch"] = None  # base.yaml has no torch: importing it must fail, not fall back
from solopo import pipeline
cfg, out, model = yaml.safe_load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
pipeline.toy_world(f"{out}/train.jsonl", f"{out}/dev.jsonl", cfg, 1, f"{out}/toy.log")
pipeline.contexts(f"{out}/train.jsonl", model, f"{out}/short.jsonl", f"{out}/long.jsonl", cfg, 1, f"{out}/ctx.log")
assert sys.modules["torch"] is None
"""


def test_base_env_stages_run_without_torch(tmp_path, tiny_lm_dir):
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for k, v in yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text()).items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    cfg["data"].update(toy={"train_questions": 6, "dev_questions": 3}, short_tokens=256, long_tokens=512)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path / "cfg.yaml"), str(tmp_path), tiny_lm_dir],
                       capture_output=True, text=True, timeout=300, env=dict(CLEAN_ENV, PYTHONPATH=str(ROOT / "src")))
    assert r.returncode == 0, r.stderr[-3000:]
    assert len((tmp_path / "long.jsonl").read_text().splitlines()) == 6


# --------------------------------------------------------------------------- stage dispatch
def test_call_file_round_trips_integer_keys_and_snakemake_strings(tmp_path):
    class IOFile(str):  # Snakemake's paths are str subclasses
        pass

    cfg = {"toy": {"hop_weights": {2: 0.8, 3: 0.2}}, "lr": 3.0e-3, "none": None}
    f = stage.write_call(tmp_path / "x.call.yaml", "pipeline.toy_world", (IOFile("a.jsonl"), ["b"]), {"cfg": cfg})
    spec = yaml.safe_load(f.read_text())
    assert spec == {"function": "pipeline.toy_world", "args": ["a.jsonl", ["b"]], "kwargs": {"cfg": cfg}}
    with pytest.raises(stage.StageError, match=r"kwargs\['x'\]: a object cannot be passed"):
        stage.write_call(tmp_path / "y.call.yaml", "pipeline.toy_world", (), {"x": object()})
    with pytest.raises(stage.StageError, match="do not survive the round trip"):
        stage.write_call(tmp_path / "z.call.yaml", "pipeline.toy_world", ({"pair": (1, 2)},), {})
    with pytest.raises(stage.StageError, match="no such function in the solopo package"):
        stage.resolve("os.system")


def _toy_args(folder: Path) -> tuple:
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    cfg["data"]["toy"] = {"train_questions": 6, "dev_questions": 3}
    return (str(folder / "train.jsonl"), str(folder / "dev.jsonl"), cfg, 42, str(folder / "toy_world.log"))


def test_a_deployed_rule_gets_the_command_that_runs_python_m_solopo_stage(tmp_path, monkeypatch):
    """With software deployed, prepare returns the command for the run block's shell() (which wraps it in the
    env); here the command really runs. Without deployment the stage runs in-process and returns None."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOLOPO_STAGE_SUBPROCESS", raising=False)
    monkeypatch.delenv(stage.CLUSTER_FLAG, raising=False)
    (tmp_path / "env").mkdir()
    args = _toy_args(tmp_path / "env")
    cmd = stage.prepare("pipeline.toy_world", args, {}, ROOT / "src", deployed=True)
    call = stage.call_file_path("pipeline.toy_world", stage.call_text("pipeline.toy_world", args, {}))
    assert cmd == f"PYTHONPATH={ROOT / 'src'} python -m solopo stage {tmp_path / call}"
    assert not (tmp_path / "env" / "train.jsonl").exists()  # nothing ran yet: shell() runs it
    env = dict(CLEAN_ENV, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(cmd.format(), shell=True, check=True, env=env, cwd=tmp_path, timeout=300)

    (tmp_path / "here").mkdir()
    here = _toy_args(tmp_path / "here")
    assert stage.prepare("pipeline.toy_world", here, {}, ROOT / "src", deployed=False) is None  # ran in-process
    for name in ("train.jsonl", "dev.jsonl"):
        assert (tmp_path / "env" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()


def test_rules_reach_the_stage_through_shell_in_their_own_run_block():
    """No frame inspection of Snakemake's run functions: each run block calls shell() itself on the command
    the stage returns, so Snakemake's public shell() sees the job's env, threads and resources."""
    import re as _re

    src = (ROOT / "src/solopo/stage.py").read_text()
    assert "__is_snakemake_rule_func" not in src and "_getframe" not in src and "f_locals" not in src
    for f in (ROOT / "workflow/rules").glob("*.smk"):
        for block in _re.findall(r"\n(\s*)run:\n((?:\1    .*\n|\s*\n)+)", f.read_text()):
            body = block[1]
            if "stage(" in body or _re.search(r"run_(contexts|sample|train|evaluate)\(", body):
                assert _re.search(r"if cmd := (stage|run_\w+)\(", body) and "shell(cmd)" in body, (f.name, body)


@pytest.mark.slow
def test_snakemake_runs_a_rule_through_python_m_solopo_stage(tmp_path):
    """The env path end to end minus activation: snakemake's own run block, its shell(), the call file."""
    (tmp_path / "small.yaml").write_text("data: {toy: {train_questions: 6, dev_questions: 3}}\n")
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "results/data/musique_train.jsonl",
                        "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
                        "--printshellcmds", "--configfile", str(ROOT / "config" / "tiny.yaml"), str(tmp_path / "small.yaml")],
                       capture_output=True, text=True, timeout=600, env=dict(CLEAN_ENV, SOLOPO_STAGE_SUBPROCESS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    calls = list((tmp_path / "logs" / "stage_calls").glob("pipeline.toy_world-*.yaml"))
    assert len(calls) == 1, "no call file: the job ran in-process, not as `python -m solopo stage`"
    call = calls[0]
    spec = yaml.safe_load(call.read_text())
    assert spec["function"] == "pipeline.toy_world" and spec["args"][:2] == ["results/data/musique_train.jsonl",
                                                                            "results/data/musique_dev.jsonl"]
    assert spec["args"][2]["tiny_model"]["hop_weights"] == {2: 0.8, 3: 0.2}  # integer keys crossed intact
    here = tmp_path / "here"
    here.mkdir()
    from solopo import pipeline

    pipeline.toy_world(str(here / "train.jsonl"), str(here / "dev.jsonl"), *spec["args"][2:4], str(here / "t.log"))
    assert (here / "train.jsonl").read_bytes() == (tmp_path / "results" / "data" / "musique_train.jsonl").read_bytes()


# --------------------------------------------------------------------------- installed package
def test_no_module_finds_files_by_walking_up_to_the_repository():
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "src").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"__file__.*parents?\b.*\.\.|__file__\)?\.resolve\(\)\.parents\[", line)]
    assert offenders == []


def test_ci_runs_the_readme_test_command_whose_suite_includes_envs_check():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 make test$", ci, re.M)
    assert "make test" in readme
    make = (ROOT / "Makefile").read_text()
    # make test runs the whole suite (the slow tests too), and the suite runs scripts/envs_check.py
    assert re.search(r'^test: env.*\n\t.*pytest .*-m "not bench" .*tests$', make, re.M)
    assert "scripts/envs_check.py" in (ROOT / "tests" / "test_lint.py").read_text()
    assert re.search(r"^envs-check: .*\n\t.*scripts/envs_check.py", make, re.M)


def _copy_package_source(dest: Path) -> Path:
    """pyproject.toml + src/ only: the build must not depend on, or write into, the work tree."""
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    return dest


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_toy_world_to_contexts(tmp_path, tiny_lm_dir):
    t0 = time.time()
    (tmp_path / "pkg").mkdir()
    src = _copy_package_source(tmp_path / "pkg")
    subprocess.run(UV + ["build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(src)], check=True,
                   capture_output=True, text=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("solopo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # every file of the package's source tree ships: code, schema, DeepSpeed configs, fixtures
    tree = {str(p.relative_to(src / "src")) for p in (src / "src" / "solopo").rglob("*") if p.is_file()}
    assert {"solopo/schemas/config.schema.yaml", "solopo/train/deepspeed/zero3.json",
            "solopo/eval/fixtures/leaderboard/gpqa/main.jsonl"} <= tree
    assert sorted(tree - names) == [], f"missing from {wheel.name}"
    venv = tmp_path / "venv"
    subprocess.run(UV + ["venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run(UV + ["pip", "install", "--python", str(py), *LINKS, str(wheel)],
                       capture_output=True, text=True, timeout=600, env=CLEAN_ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    t_install = time.time() - t0

    wd = tmp_path / "wd"
    wd.mkdir()
    where = subprocess.run([str(py), "-c", "import solopo; print(solopo.__file__)"], capture_output=True, text=True,
                           cwd=wd, env=CLEAN_ENV, check=True).stdout.strip()
    assert where.startswith(str(venv)) and "site-packages" in where, where
    backbone = {k: v for k, v in yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())["backbones"][0].items()
                if k != "build"} | {"model": tiny_lm_dir}  # a given model folder: no tiny_model job
    (wd / "wheel.yaml").write_text(yaml.safe_dump({
        "backbones": [backbone],
        "data": {"toy": {"train_questions": 8, "dev_questions": 4}, "short_tokens": 256, "long_tokens": 512},
        "train": {"optim": {"max_length": 640}}}))  # must hold long_tokens + sampling.max_new_tokens
    r = subprocess.run([str(venv / "bin" / "snakemake"), "results/contexts/tiny/short.jsonl", "--snakefile",
                        str(ROOT / "Snakefile"), "--directory", str(wd), "--cores", "1", "--configfile",
                        str(ROOT / "config" / "tiny.yaml"), str(wd / "wheel.yaml")],
                       capture_output=True, text=True, timeout=900, cwd=wd, env=CLEAN_ENV)
    assert r.returncode == 0, r.stderr[-4000:]
    assert "done contexts" in (wd / "logs" / "contexts" / "tiny.log").read_text()
    rows = [json.loads(line) for line in (wd / "results" / "contexts" / "tiny" / "long.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["ctx"] == "long" for r in rows)
    print(f"wheel: build+install {t_install:.0f} s, toy_world->contexts {time.time() - t0 - t_install:.0f} s")


def _cpu_test_venv() -> Path:
    """A venv from generate.yaml + leaderboard.yaml's pins minus vLLM, kept under .venvs/ while the pins hold."""
    pins = envs_check.cpu_test_pins() + ["pytest==" + __import__("pytest").__version__]
    key = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
    venv = ROOT / ".venvs" / f"generate-{key}"
    stamp = venv / ".solopo-pins"
    if stamp.is_file() and stamp.read_text() == "\n".join(pins):
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(UV + ["venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    r = subprocess.run(UV + ["pip", "install", "--python", str(venv / "bin" / "python"), *LINKS, *pins],
                       capture_output=True, text=True, timeout=600, env=CLEAN_ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    stamp.write_text("\n".join(pins))
    return venv


@pytest.mark.slow
def test_generation_and_evaluation_tests_pass_under_the_generate_envs_pins():
    t0 = time.time()
    venv = _cpu_test_venv()
    py = str(venv / "bin" / "python")
    t_venv = time.time() - t0
    env = dict(CLEAN_ENV, PYTHONPATH=str(ROOT / "src"))  # as in a rule's env: solopo from the workflow's src/
    got = subprocess.run([py, "-c", "import transformers, solopo; print(transformers.__version__, solopo.__file__)"],
                         capture_output=True, text=True, env=env, check=True).stdout.split()
    assert got == ["5.19.0", str(ROOT / "src" / "solopo" / "__init__.py")]
    r = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/generate", "tests/eval"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=1200)
    tail = r.stdout[-4000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    summary = r.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    print(f"generate env (transformers 5.19.0): venv {t_venv:.0f} s, tests {time.time() - t0 - t_venv:.0f} s: {summary}")


@pytest.mark.slow
def test_envs_check_fails_naming_the_conflicting_pins(tmp_path):
    bad = tmp_path / "generate.yaml"
    bad.write_text((ENV_DIR / "generate.yaml").read_text().replace("transformers==5.19.0", "transformers==5.23.0"))
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "envs_check.py"), str(bad)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode == 2:
        pytest.fail(f"the package index could not be reached: {r.stderr}")
    assert r.returncode == 1
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"envs-check: {bad}: no solution for the pinned set") and \
        first.endswith("conflicting pins: vllm==0.32.0, transformers==5.23.0"), r.stderr
