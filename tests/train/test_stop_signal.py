"""SIGTERM (scancel, preemption, a time limit's --signal) and Ctrl-C stop training at the next step
boundary with a checkpoint of that step; the rerun resumes from it and ends with the weights of an
uninterrupted run. Before this, the signal either killed the job mid-step or was not seen at all,
and the rerun resumed from the last periodic checkpoint."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from solopo import runtime
from solopo.train.checkpoints import INTERRUPTED
from solopo.train.losses import LossConfig
from solopo.train.setup import TrainConfig
from solopo.train.trainer import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stop_handlers():
    """This test process's SIGTERM/SIGINT handlers and stop flag, restored afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    runtime.clear_stop()
    assert runtime.install_job_stop_handlers()  # pytest runs tests in the main thread
    yield
    for s, h in saved.items():
        signal.signal(s, h)
    runtime.clear_stop()


def _rows(n):
    return [{"id": f"q{i}", "x": f"Question {i} short ?", "x_long": f"Many documents here . Question {i} long ?",
             "y_w": f"right answer {i} . The answer is: A{i}", "y_l": "wrong . The answer is: B"} for i in range(n)]


class _SignalAfter:
    """A progress bar that sends `sig` to this process once `step` steps are done (mid-run, as scancel)."""

    def __init__(self, step: int, sig: int = signal.SIGTERM):
        self.step, self.sig, self.done, self.total = step, sig, 0, 0

    def update(self, n: int) -> None:
        self.done += n
        if n and self.done == self.step:
            os.kill(os.getpid(), self.sig)


def test_sigterm_saves_at_the_next_step_boundary_and_the_rerun_resumes_there(tiny_lm_dir, tmp_path, stop_handlers):
    rows, lc = _rows(16), LossConfig(alpha=1.0)
    # 8 steps, periodic checkpoints at 4 and 8 only: a resume from step 3 can only come from the stop
    cfg = TrainConfig(learning_rate=1e-3, batch_size=2, micro_batch_size=1, save_steps=4, max_length=128, dtype="float32")
    ref = train(tiny_lm_dir, rows, "solo_orpo", lc, cfg, 5, tmp_path / "a", tmp_path / "ck_a")

    ck = tmp_path / "ck_b"
    with pytest.raises(runtime.Interrupted) as e:  # SIGTERM lands during step 3
        train(tiny_lm_dir, rows, "solo_orpo", lc, cfg, 5, tmp_path / "b", ck, progress=_SignalAfter(2))
    assert str(e.value) == f"interrupted (SIGTERM) after step 3 of 8: saved checkpoint {ck / 'step-3'}; the rerun resumes from it"
    assert "\n" not in str(e.value)
    assert sorted(p.name for p in ck.glob("step-*")) == ["step-3"]
    assert (ck / "step-3" / "COMPLETE").exists() and (ck / "step-3" / INTERRUPTED).exists()
    assert not (tmp_path / "b").exists()

    runtime.clear_stop()
    stats = train(tiny_lm_dir, rows, "solo_orpo", lc, cfg, 5, tmp_path / "b", ck)
    assert stats["resumed_from_step"] == 3
    # the stop's checkpoint was a resume point only: the folder is an uninterrupted run's
    assert stats["checkpoints"] == ref["checkpoints"] == ["step-4", "step-8"]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "a/model.safetensors"), load_file(tmp_path / "b/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a/train_log.jsonl").read_bytes() == (tmp_path / "b/train_log.jsonl").read_bytes()


def test_a_stop_on_a_scheduled_step_keeps_that_checkpoint(tiny_lm_dir, tmp_path, stop_handlers):
    """Ctrl-C takes the same path; a stop on a save_steps step keeps the regular checkpoint (no marker)."""
    cfg = TrainConfig(learning_rate=1e-3, batch_size=2, micro_batch_size=1, save_steps=2, max_length=128, dtype="float32")
    with pytest.raises(runtime.Interrupted, match=r"^interrupted \(Ctrl-C\) after step 2 of 4: saved checkpoint "):
        train(tiny_lm_dir, _rows(8), "sft_short", LossConfig(), cfg, 0, tmp_path / "o", tmp_path / "ck",
              progress=_SignalAfter(1, signal.SIGINT))
    assert (tmp_path / "ck/step-2/COMPLETE").exists() and not (tmp_path / "ck/step-2" / INTERRUPTED).exists()


def _config() -> dict:
    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    cfg = merge(yaml.safe_load((ROOT / "config/config.yaml").read_text()),
                yaml.safe_load((ROOT / "config/tiny.yaml").read_text()))
    cfg["train"]["optim"].update(learning_rate=1e-3, sft_learning_rate=1e-3, batch_size=2, micro_batch_size=1,
                                 save_steps=1000, max_length=128, dtype="float32", keep_checkpoints=2)
    cfg["train"].update(select_checkpoint="final", deepspeed="none")
    return cfg


def test_stage_process_exits_143_with_one_line_after_saving(tiny_lm_dir, tmp_path):
    """`python -m solopo stage` (how a job on a cluster node runs): SIGTERM mid-training -> the
    checkpoint of the next step boundary, exit status 143, one line on stderr."""
    from solopo.stage import write_call

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(400)))  # 200 steps: the signal lands mid-run
    log = tmp_path / "train.log"
    call = write_call(tmp_path / "train.log.call.yaml", "pipeline.train",
                      [str(data), None, tiny_lm_dir, "results/train/r/model", "r", "sft_short", None, _config(), 3,
                       str(log)], {})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "solopo", "stage", str(call)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while "step 3/200" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < 300, "training did not start"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    last = err.strip().splitlines()[-1]
    hit = re.fullmatch(r"interrupted \(SIGTERM\) after step (\d+) of 200: saved checkpoint "
                       r"results/checkpoints/r/step-\1; the rerun resumes from it", last)
    assert hit, err[-3000:]
    step = int(hit.group(1))
    assert 3 <= step <= 6, last  # the step under way when the signal came, or the next one
    ck = tmp_path / f"results/checkpoints/r/step-{step}"
    assert (ck / "COMPLETE").exists() and (ck / INTERRUPTED).exists()
    assert not (tmp_path / "results/train/r/model").exists()
