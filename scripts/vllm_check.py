#!/usr/bin/env python
"""`make vllm-check`: vLLM's own engine configuration for every (backbone, suite) plan of the paper preset,
under the generate environment's pins (workflow/envs/generate.yaml), on a CPU (docs/vllm_check.md).

Two halves:
* run with the project's .venv (the Makefile does): make the venv .venvs/vllm from generate.yaml's pins
  (kept while the pins hold), build the rehearsal backbones (solopo.rehearsal: the released config.json,
  tokenizer and chat template with small random weights) into a temporary folder, then run the second
  half and tests/vllm + tests/generate/test_long_context.py inside .venvs/vllm;
* `--models DIR` (inside .venvs/vllm): for each plan, build `vllm.config.ModelConfig` through
  `EngineArgs.create_model_config()` from exactly the keyword arguments VLLMBackend hands to `vllm.LLM`
  (`engine_kwargs`), `SamplingParams` from the suite's decoding settings (`sampling_kwargs`) and the
  token-id prompts (`token_prompts`), and check: the window is the plan's, rope_theta is the model's,
  the rope type is the plan's, no checkpoint generation defaults, max_tokens as configured, no second BOS,
  a prompt at the suite's token budget passes vLLM's length check. Any failure exits 1 naming the plan,
  with vLLM's own error when vLLM raised.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

VENV = ROOT / ".venvs" / "vllm"
CONFIG = ROOT / "config" / "config.yaml"
SUITES = ("ruler", "longbench_v1", "longbench_v2", "niah_plus")  # leaderboard: lm-eval builds its own engine
QUESTION = "Which city is the capital of the country where the Eiffel Tower stands?"
PYTEST_FILES = ["tests/vllm", "tests/generate/test_long_context.py"]


# ----------------------------------------------------------------------------- plans (no vLLM needed)


def suite_generations(bench: str, cfg: dict, seed: int) -> list[tuple[str, object]]:
    """(label, GenerationConfig) of each generate call the suite makes, built as its module builds them
    (solopo.sample / solopo.eval.<suite> `evaluate`: same config keys, same defaults)."""
    from solopo.eval.longbench_v1 import datasets_of, max_new_tokens_for
    from solopo.eval.longbench_v2 import prompt_kind as v2_kind
    from solopo.eval.niah_plus import default_max_new_tokens
    from solopo.generate import GenerationConfig as G

    if bench == "sampling":
        return [("sample", G(max_new_tokens=int(cfg["max_new_tokens"]), temperature=cfg["temperature"],
                             top_p=cfg["top_p"], n=int(cfg["n"]), seed=seed, batch_size=int(cfg["batch_size"])))]
    if bench == "ruler":
        ttg = int(cfg.get("tokens_to_generate", 32))
        return [("greedy", G(max_new_tokens=int(cfg.get("max_new_tokens", ttg)), temperature=0.0, n=1, seed=seed))]
    if bench == "longbench_v1":
        return [(name, G(max_new_tokens=max_new_tokens_for(name, cfg), temperature=0.0, n=1, seed=seed))
                for name in datasets_of(cfg)]
    if bench == "longbench_v2":
        kind, temp, s = v2_kind(cfg), float(cfg.get("temperature", 0.1)), int(cfg.get("seed", seed))
        cot, ans = int(cfg.get("max_new_tokens", 1024)), int(cfg.get("answer_max_new_tokens", 128))
        out = [("answer" if kind == "0shot" else "cot", G(max_new_tokens=ans if kind == "0shot" else cot,
                                                         temperature=temp, n=1, seed=s))]
        if kind == "0shot_cot":
            out.append(("answer", G(max_new_tokens=ans, temperature=temp, n=1, seed=s + 1)))
        return out
    if bench == "niah_plus":
        return [("greedy", G(max_new_tokens=int(cfg.get("max_new_tokens", default_max_new_tokens(cfg))),
                             temperature=0.0, n=1, seed=seed))]
    raise ValueError(f"vllm_check: unknown suite {bench!r}")


def paper_plans(config: dict) -> list[dict]:
    """One plan per (backbone, suite): what the workflow hands VLLMBackend, and the window expected.
    Sampling passes no max_model_len (pipeline.sample): vLLM's window is the native one."""
    from solopo.eval.budget import long_context_plan

    plans = []
    for b in config["backbones"]:
        base = {"backbone": b["name"], "trust_remote_code": bool(b.get("trust_remote_code", False))}
        plans.append({**base, "suite": "sampling", "max_model_len": None, "rope_scaling": None,
                      "window": b["context_window"], "needed": None,
                      "generations": suite_generations("sampling", config["sampling"], int(config["seed"]))})
        for bench in SUITES:
            if bench not in config["eval"]["benchmarks"]:
                continue
            cfg = config["eval"][bench]
            p = long_context_plan(b, bench, cfg)
            plans.append({**base, "suite": bench, "max_model_len": p["window"], "rope_scaling": p["rope_scaling"],
                          "window": p["window"], "needed": p["needed"],
                          "generations": suite_generations(bench, cfg, int(config["seed"]))})
    return plans


def load_paper_config(path: Path = CONFIG) -> dict:
    import yaml

    from solopo.config import validate_config

    config = yaml.safe_load(path.read_text())
    validate_config(config, ROOT)
    return config


# ----------------------------------------------------------------------------- checks (inside .venvs/vllm)


def vllm_error(e: BaseException) -> str:
    """vLLM's own error, with the vLLM frame that raised it (one line)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/vllm/" in f.filename]
    where = f" at {frames[-1].filename.split('site-packages/')[-1]}:{frames[-1].lineno} {frames[-1].name}" \
        if frames else ""
    text = " ".join(str(e).split())[:300]
    return f"vLLM raised {type(e).__name__}: {text}{where}"


def check_plan(plan: dict, model_dir: str) -> list[tuple[str, bool, str]]:
    """[(check, passed, detail)] for one plan; a vLLM exception is one failed check carrying its message."""
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.renderers.params import TokenizeParams
    from vllm.tokenizers.registry import cached_tokenizer_from_config

    from solopo.generate import check_window
    from solopo.generate.chat import format_chat
    from solopo.generate.long_context import model_rope, read_model_config
    from solopo.generate.vllm import engine_kwargs, sampling_kwargs, token_prompts

    out: list[tuple[str, bool, str]] = []
    kw = engine_kwargs(model_dir, plan["trust_remote_code"], 1, plan["max_model_len"], 0.9, plan["rope_scaling"])
    try:
        mc = EngineArgs(**kw).create_model_config()
    except Exception as e:  # noqa: BLE001 - every vLLM failure is reported, named
        return [("engine configuration", False, vllm_error(e))]
    out.append(("window", mc.max_model_len == plan["window"], f"max_model_len {mc.max_model_len}, plan {plan['window']}"))
    model_cfg, where = read_model_config(model_dir)
    native_type, theta = model_rope(model_cfg, where)
    rope = dict(getattr(mc.hf_config, "rope_parameters", None) or {})
    want_type = (plan["rope_scaling"] or {}).get("type") or native_type
    out.append(("rope_theta", rope.get("rope_theta") == theta, f"{rope.get('rope_theta')}, config.json {theta}"))
    out.append(("rope type", rope.get("rope_type") == want_type, f"{rope.get('rope_type')}, expected {want_type}"))
    if plan["rope_scaling"]:
        factor = plan["rope_scaling"]["factor"]
        out.append(("rope factor", rope.get("factor") == factor, f"{rope.get('factor')}, plan {factor}"))
    diff = mc.get_diff_sampling_param()
    out.append(("no checkpoint sampling defaults", diff == {}, f"{diff}"))
    tok = cached_tokenizer_from_config(mc)
    ids = token_prompts(tok, [format_chat(tok, QUESTION)])[0]["prompt_token_ids"]
    bos = tok.bos_token_id
    n_bos = ids.count(bos) if bos is not None else 0
    text_ids = tok(format_chat(tok, QUESTION), add_special_tokens=True)["input_ids"]  # vLLM's text-prompt path
    text_bos = text_ids.count(bos) if bos is not None else 0
    out.append(("one BOS at most", n_bos <= 1 and (n_bos == 0 or ids[0] == bos),
                f"{n_bos} in the prompt ids ({text_bos} if given as text)"))
    for label, gen in plan["generations"]:
        try:
            sp = SamplingParams(**sampling_kwargs(gen))
        except Exception as e:  # noqa: BLE001
            out.append((f"SamplingParams {label}", False, vllm_error(e)))
            continue
        ok = (sp.max_tokens == gen.max_new_tokens and sp.n == gen.n and sp.temperature == gen.temperature
              and sp.seed == gen.seed and sp.top_k in (0, -1) and sp.min_p == 0.0 and sp.repetition_penalty == 1.0
              and sp.top_p == (1.0 if gen.temperature == 0 else gen.top_p))
        detail = (f"max_tokens {sp.max_tokens} (configured {gen.max_new_tokens}), n {sp.n}, temperature "
                  f"{sp.temperature}, top_p {sp.top_p}, top_k {sp.top_k}, seed {sp.seed}")
        out.append((f"SamplingParams {label}", ok, detail))
    if plan["needed"]:
        # a prompt at the suite's budget (prompt + generation = `needed`): the backend's window check and
        # vLLM's own length check on token prompts (renderers.params.TokenizeParams) both let it through
        gen_tokens = max(g.max_new_tokens for _, g in plan["generations"])
        filler = tok(" the", add_special_tokens=False)["input_ids"][-1]
        full = ids + [filler] * (plan["needed"] - gen_tokens - len(ids))
        try:
            check_window([full], gen_tokens, plan["max_model_len"])
            TokenizeParams(max_total_tokens=mc.max_model_len, max_output_tokens=gen_tokens,
                           add_special_tokens=False).apply_post_tokenization(tok, {"prompt_token_ids": list(full)})
            out.append(("budget prompt fits", True, f"{len(full)} + {gen_tokens} tokens in {mc.max_model_len}"))
        except Exception as e:  # noqa: BLE001
            out.append(("budget prompt fits", False, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"))
    return out


def run_checks(models: Path, config: dict) -> int:
    failed = 0
    for plan in paper_plans(config):
        t0 = time.time()
        results = check_plan(plan, str(models / plan["backbone"]))
        bad = [r for r in results if not r[1]]
        failed += bool(bad)
        head = f"{plan['backbone']:<11} {plan['suite']:<13} window {plan['window']:>6}"
        print(f"{'FAIL' if bad else 'ok  '} {head} ({len(results)} checks, {time.time() - t0:.1f} s)")
        for name, ok, detail in results:
            if not ok or os.environ.get("VLLM_CHECK_VERBOSE"):
                print(f"       {'FAILED' if not ok else 'passed'} {name}: {detail}")
    print(f"vllm-check: {failed} plan(s) failed" if failed else "vllm-check: every plan passed")
    return 1 if failed else 0


# ----------------------------------------------------------------------------- setup (project .venv)


def generate_pins() -> list[str]:
    import envs_check

    return envs_check.read_env(ROOT / "workflow" / "envs" / "generate.yaml").pins


def ensure_venv() -> tuple[Path, float]:
    """.venvs/vllm with generate.yaml's pins (+ the project's pytest), rebuilt when the pins change."""
    import pytest

    pins = generate_pins() + [f"pytest=={pytest.__version__}"]
    stamp = VENV / ".solopo-pins"
    key = "\n".join(pins)
    if stamp.is_file() and stamp.read_text() == key:
        return VENV / "bin" / "python", 0.0
    t0 = time.time()
    shutil.rmtree(VENV, ignore_errors=True)
    uv = [sys.executable, "-m", "uv"]
    print(f"vllm-check: creating {VENV.relative_to(ROOT)} ({', '.join(pins[:3])}, ...; ~8 GB)", flush=True)
    subprocess.run(uv + ["venv", "-q", "--python", "3.11", str(VENV)], check=True, timeout=300)
    r = subprocess.run(uv + ["pip", "install", "-q", "--python", str(VENV / "bin" / "python"), *pins], check=False,
                       timeout=3600)
    if r.returncode != 0:
        sys.exit(f"vllm-check: installing generate.yaml's pins into {VENV} failed (uv exit {r.returncode})")
    stamp.write_text(key)
    return VENV / "bin" / "python", time.time() - t0


def build_models(out: Path, config: dict) -> None:
    """The paper backbones' rehearsal folders (released config.json, tokenizer, chat template)."""
    from solopo.rehearsal import build_backbone

    for b in config["backbones"]:
        build_backbone(b["name"], out / b["name"], int(config["seed"]))


def orchestrate() -> int:
    config = load_paper_config()
    python, t_venv = ensure_venv()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               VLLM_LOGGING_LEVEL="ERROR", PYTHONWARNINGS="ignore")
    with tempfile.TemporaryDirectory(prefix="vllm_check_models_") as tmp:
        t0 = time.time()
        build_models(Path(tmp), config)
        t_models = time.time() - t0
        t0 = time.time()
        rc = subprocess.run([str(python), str(Path(__file__).resolve()), "--models", tmp], check=False, cwd=ROOT,
                            env=env).returncode
        t_checks = time.time() - t0
        t0 = time.time()
        rt = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *PYTEST_FILES], check=False,
                            cwd=ROOT, env={**env, "SOLOPO_VLLM_CHECK_MODELS": tmp}).returncode
        t_tests = time.time() - t0
    print(f"vllm-check: venv {t_venv:.0f} s, models {t_models:.0f} s, checks {t_checks:.0f} s, tests {t_tests:.0f} s")
    return 1 if rc or rt else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, help="folder of <backbone>/ model folders: run the checks here "
                                                 "(inside .venvs/vllm)")
    a = p.parse_args(argv)
    if a.models is None:
        return orchestrate()
    missing = [b["name"] for b in load_paper_config()["backbones"] if not (a.models / b["name"] / "config.json").is_file()]
    if missing:
        print(f"vllm-check: {a.models}: no model folder for {', '.join(missing)} (python -m solopo.rehearsal build "
              f"<backbone> {a.models}/<backbone>)", file=sys.stderr)
        return 1
    return run_checks(a.models, load_paper_config())


if __name__ == "__main__":
    sys.exit(main())
