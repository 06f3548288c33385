"""Checkpoint selection keeps the best-scoring checkpoint of the epoch."""
from pathlib import Path

import torch

from solopo.generate.hf import load_model_and_tokenizer
from solopo.train.losses import LossConfig
from solopo.train.selection import checkpoint_state, select_checkpoint
from solopo.train.setup import TrainConfig
from solopo.train.trainer import train


def test_best_checkpoint_is_loaded(tiny_lm_dir, tmp_path):
    rows = [{"id": f"q{i}", "x": f"Q{i} ?", "y_w": f"A{i} . The answer is: A", "y_l": "The answer is: B"} for i in range(6)]
    cfg = TrainConfig(learning_rate=1e-2, batch_size=2, micro_batch_size=2, save_steps=1, max_length=64, dtype="float32")
    train(tiny_lm_dir, rows, "orpo_short", LossConfig(), cfg, 0, tmp_path / "final", tmp_path / "ck")
    cks = sorted(Path(tmp_path / "ck").glob("step-*"), key=lambda p: int(p.name[5:]))
    assert [c.name for c in cks] == ["step-1", "step-2", "step-3"]
    model, _ = load_model_and_tokenizer(str(tmp_path / "final"), "cpu", "float32")
    scores = iter([10.0, 30.0, 20.0])
    result = select_checkpoint(model, cks, lambda m: next(scores))
    assert result == {"scores": {"step-1": 10.0, "step-2": 30.0, "step-3": 20.0}, "selected": "step-2"}
    want = checkpoint_state(cks[1])
    got = model.state_dict()
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    other = checkpoint_state(cks[2])
    assert any(not torch.equal(other[k], want[k]) for k in want)  # the choice matters
