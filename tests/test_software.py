"""A job outside its rule's env names the cause (wrong env) and the fix, for each stack that only one env has."""
from __future__ import annotations

import sys

import pytest

from solopo.software import STACKS, MissingStack, require


def _block(monkeypatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError, as where it is absent


@pytest.mark.parametrize("module,env", [("vllm", "generate"), ("lm_eval", "leaderboard"), ("deepspeed", "train")])
def test_missing_stack_says_the_job_is_outside_its_rules_env(monkeypatch, module, env):
    _block(monkeypatch, module)
    with pytest.raises(MissingStack) as e:
        require(module)
    msg = str(e.value)
    assert "\n" not in msg
    assert "not running in its rule's env" in msg and f"workflow/envs/{env}.yaml" in msg
    assert "--profile slurm" in msg and "--sdm conda" in msg and "make envs-check" in msg
    assert "pip install" not in msg and ".[vllm]" not in msg  # there is no such extra
    assert set(STACKS) == {"vllm", "lm_eval", "deepspeed"}


def test_vllm_backend_without_vllm_gives_the_env_error(monkeypatch):
    from solopo.generate.vllm import VLLMBackend

    _block(monkeypatch, "vllm")
    with pytest.raises(MissingStack, match=r"workflow/envs/generate\.yaml.*or, on a CPU, set sampling\.backend"):
        VLLMBackend("/nonexistent/model")


def test_deepspeed_launch_without_deepspeed_stops_before_starting_ranks(monkeypatch, tmp_path):
    from solopo.train.launch import launch_deepspeed

    _block(monkeypatch, "deepspeed")
    with pytest.raises(MissingStack, match=r"train\.deepspeed needs `deepspeed`.*workflow/envs/train\.yaml"):
        launch_deepspeed(str(tmp_path / "d.jsonl"), None, "m", tmp_path / "out", tmp_path / "ckpt", "dpo", None,
                         None, 0, "zero3_offload", str(tmp_path / "log"))
    assert not list(tmp_path.iterdir())  # nothing written: no args file, no rank started


def test_leaderboard_without_lm_eval_gives_the_env_error(monkeypatch, tmp_path):
    from solopo.eval.leaderboard import evaluate

    _block(monkeypatch, "lm_eval")
    with pytest.raises(MissingStack, match=r"workflow/envs/leaderboard\.yaml"):
        evaluate(str(tmp_path), {}, tmp_path / "work")
