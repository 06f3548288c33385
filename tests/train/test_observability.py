"""Training is observable and bounded, on the single-process path of the
workflow's train job (pipeline.train): a line per optimizer step in the job log, TensorBoard event
files under the run's folder, `keep_checkpoints` bounding the checkpoint folder (weights kept for
checkpoint selection), a model card, and a model folder that AutoModelForCausalLM loads.
The 2-process DeepSpeed path checks the same in tests/train/test_multiprocess.py."""
from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from solopo.train.monitor import StepLogger

LOSS = {"beta": 0.1, "simpo_beta": 2.5, "gamma": 0.5, "orpo_lambda": 0.1, "longpo_beta": 0.1, "longpo_lambda": 0.01}


def _cfg(**train) -> dict:
    optim = {"learning_rate": 1e-3, "sft_learning_rate": 1e-3, "batch_size": 2, "micro_batch_size": 1, "max_length": 96,
             "save_steps": 1, "keep_checkpoints": 2, "dtype": "float32"}
    return {"train": {"loss": LOSS, "optim": optim, "deepspeed": "none", "select_checkpoint": "final",
                      "report_to": "tensorboard", **train}}


def _run(tmp_path, monkeypatch, model: str, cfg: dict, n_rows: int = 8):
    from solopo import pipeline

    monkeypatch.chdir(tmp_path)  # checkpoints live under results/checkpoints/<run>
    rows = [{"id": f"q{i}", "x": f"Question {i} ?", "x_long": f"Long documents . Question {i} ?",
             "y_w": f"yes {i} . The answer is: A", "y_l": "no . The answer is: B"} for i in range(n_rows)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pipeline.train("rows.jsonl", None, model, "results/train/run/model", "run", "solo_orpo", 1.0, cfg, 3, "train.log")
    return tmp_path / "results/train/run/model"


def test_train_job_logs_steps_writes_tensorboard_card_and_bounded_checkpoints(tiny_lm_dir, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoModelForCausalLM

    model_dir = _run(tmp_path, monkeypatch, tiny_lm_dir, _cfg())
    log = (tmp_path / "train.log").read_text()
    assert all(f"step {s}/4 loss " in log for s in range(1, 5)) and "margin " in log and "tokens/s " in log
    assert list((tmp_path / "results/checkpoints/run/tensorboard").glob("events.out.tfevents.*"))  # the live copy
    events = EventAccumulator(str(model_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert {"train/lr", "train/rewards/margins", "train/tokens_per_s", "train/ra_grad/short_chosen",
            "train/ra_grad/long_chosen"} <= set(events.Tags()["scalars"])
    # keep_checkpoints: 2 (select_checkpoint: final -> older ones are deleted)
    assert sorted(p.name for p in (tmp_path / "results/checkpoints/run").glob("step-*")) == ["step-3", "step-4"]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    card = (model_dir / "README.md").read_text()
    for must in ("base_model:", tiny_lm_dir, "`solo_orpo`", "λ", "`1.0`", "rows.jsonl", "8 rows",
                 manifest["config_hash"], manifest["inputs"]["rows.jsonl"], "AutoModelForCausalLM.from_pretrained"):
        assert must in card, must
    from safetensors.torch import load_file

    saved = load_file(model_dir / "model.safetensors")
    loaded = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())


def test_train_log_records_the_ra_mechanism_per_step_and_the_switch_reaches_it(tiny_lm_dir, tmp_path, monkeypatch):
    """SoLo-ORPO's train_log.jsonl: per step the RA gradient size on each side (ORPO's slope 1 / (1 - e^avg)
    is > 1 on a moving side) and the length-averaged log-probs; with train.loss.ra_stop_grad_short the
    short side's is 0, the manifest records the key, and the RA-mechanism figure renders from the logs."""
    from solopo.report.plots import write_ra_mechanism

    logs = {}
    for stop in (False, True):
        (tmp_path / str(stop)).mkdir()
        model_dir = _run(tmp_path / str(stop), monkeypatch, tiny_lm_dir, _cfg(report_to="none",
                         loss={**LOSS, "ra_stop_grad_short": stop}), n_rows=4)
        recs = [json.loads(x) for x in (model_dir / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in recs] == [1, 2]
        for r in recs:
            assert r["ra_grad/long_chosen"] > 1.0 and r["avg_logps/short_chosen"] < 0 and r["avg_logps/long_chosen"] < 0
            assert (r["ra_grad/short_chosen"] == 0.0) if stop else (r["ra_grad/short_chosen"] > 1.0)
        manifest = json.loads((model_dir / "manifest.json").read_text())
        assert manifest["config"]["train"]["loss"]["ra_stop_grad_short"] is stop
        logs[f"stop_grad {stop}"] = str(model_dir / "train_log.jsonl")
    write_ra_mechanism(logs, str(tmp_path / "ra.png"), "SoLo-ORPO")
    assert (tmp_path / "ra.png").read_bytes()[:4] == b"\x89PNG"


def test_keep_checkpoints_keeps_weights_for_checkpoint_selection(tiny_lm_dir, tmp_path):
    from solopo.train.checkpoints import latest_checkpoint
    from solopo.train.losses import LossConfig
    from solopo.train.selection import checkpoint_state
    from solopo.train.setup import TrainConfig
    from solopo.train.trainer import train

    rows = [{"id": f"q{i}", "x": f"Q {i} ?", "x_long": f"L . Q {i} ?", "y_w": f"yes {i}", "y_l": "no"} for i in range(8)]
    cfg = TrainConfig(learning_rate=1e-3, batch_size=2, micro_batch_size=2, save_steps=1, max_length=64, dtype="float32",
                      keep_checkpoints=1, keep_checkpoint_weights=True)
    train(tiny_lm_dir, rows, "solo_orpo", LossConfig(), cfg, 0, tmp_path / "out", tmp_path / "ck")
    cks = sorted((tmp_path / "ck").glob("step-*"))
    assert [c.name for c in cks] == ["step-1", "step-2", "step-3", "step-4"]
    assert [(c / "trainer_state.pt").exists() for c in cks] == [False, False, False, True]  # only the newest resumes
    assert all((c / "model.safetensors").exists() for c in cks)  # every one can still be scored
    assert latest_checkpoint(tmp_path / "ck").name == "step-4"
    assert checkpoint_state(cks[0]).keys() == checkpoint_state(cks[-1]).keys()


def test_step_line_and_report_to_errors(tmp_path, monkeypatch):
    mon = StepLogger("none", None, 78)
    assert mon.line({"step": 3, "loss": 0.69314, "rewards/margins": 0.0123, "lr": 1e-6}, 5120.4, 12.06) == \
        "step 3/78 loss 0.6931 margin 0.0123 lr 1.00e-06 tokens/s 5120 (12.1 s)"
    assert "margin -" in mon.line({"step": 1, "loss": 1.0, "lr": 1e-5})  # SFT has no reward margin
    with pytest.raises(ValueError, match="train.report_to 'mlflow': allowed values are none, tensorboard, wandb"):
        StepLogger("mlflow", tmp_path, 1)
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(RuntimeError, match="train.report_to: wandb needs the `wandb` package"):
        StepLogger("wandb", tmp_path, 1)
    calls = []
    fake = types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw)) or types.SimpleNamespace(
        log=lambda d, step: calls.append(("log", step, d)), finish=lambda: calls.append(("finish",))))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    mon = StepLogger("wandb", tmp_path / "wb", 2, run_name="solo_orpo", config={"lr": 1e-3})
    mon.log({"step": 1, "loss": 0.5, "lr": 1e-3}, 100.0, 1.0)
    mon.close()
    assert calls[0][1]["name"] == "solo_orpo" and calls[1] == ("log", 1, {"train/loss": 0.5, "train/lr": 1e-3,
                                                                          "train/tokens_per_s": 100.0})
    assert calls[-1] == ("finish",)
