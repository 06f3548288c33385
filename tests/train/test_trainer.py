"""The trainer: two-stage forward = one-at-a-time gradients; SIGKILL-style resume; safe loading."""
import json

import pytest
import torch

from solopo.generate.hf import load_model_and_tokenizer
from solopo.train.forward import policy_outputs
from solopo.train.losses import LossConfig, get_loss
from solopo.train.setup import TrainConfig
from solopo.train.trainer import train


def _rows(n=6):
    return [{"id": f"q{i}", "x": f"Question {i} short ?", "x_long": f"Many documents here . Question {i} long ?",
             "y_w": f"right answer {i} . The answer is: A{i}", "y_l": "wrong . The answer is: B"} for i in range(n)]


def test_two_stage_forward_matches_one_at_a_time(tiny_lm_dir):
    rows = _rows(3)
    spec = get_loss("solo_orpo_both")
    cfg = LossConfig(alpha=0.7)
    grads = []
    for batched in (True, False):
        model, tok = load_model_and_tokenizer(tiny_lm_dir, "cpu", "float32")
        model.zero_grad()
        if batched:
            loss, _ = spec.fn(policy_outputs(model, tok, rows, spec.needs, 256, "cpu"), cfg)
        else:
            # every sequence in its own forward, then the same loss on the gathered log-probs
            outs = [policy_outputs(model, tok, [r], spec.needs, 256, "cpu") for r in rows]
            merged = outs[0]
            for name in ("chosen", "rejected", "long_chosen", "long_rejected"):
                parts = [getattr(o, name) for o in outs]
                setattr(merged, name, type(parts[0])(torch.cat([p.logps for p in parts]), torch.cat([p.counts for p in parts])))
            loss, _ = spec.fn(merged, cfg)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def _final_weights(path):
    from safetensors.torch import load_file

    return load_file(f"{path}/model.safetensors")


def test_resume_after_kill_gives_same_weights(tiny_lm_dir, tmp_path):
    rows = _rows(8)
    cfg = TrainConfig(learning_rate=1e-3, batch_size=2, micro_batch_size=1, save_steps=1, max_length=128, dtype="float32")
    lc = LossConfig(alpha=1.0)
    train(tiny_lm_dir, rows, "solo_orpo", lc, cfg, 5, tmp_path / "a", tmp_path / "ck_a")
    with pytest.raises(KeyboardInterrupt):  # the job dies after step 2 (as under SIGKILL: nothing else is written)
        train(tiny_lm_dir, rows, "solo_orpo", lc, cfg, 5, tmp_path / "b", tmp_path / "ck_b", stop_after_step=2)
    assert not (tmp_path / "b").exists()
    stats = train(tiny_lm_dir, rows, "solo_orpo", lc, cfg, 5, tmp_path / "b", tmp_path / "ck_b")
    assert stats["resumed_from_step"] == 2
    a, b = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


class _Evil:
    """A pickle that runs code on load: it creates the folder `target`."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.target,))


def test_pickle_checkpoint_is_refused_by_the_trainers_loader(tiny_lm_dir, tmp_path):
    """Resuming goes through the trainer's own checkpoint loader, which must not unpickle code."""
    rows = _rows(4)
    cfg = TrainConfig(learning_rate=1e-3, batch_size=2, micro_batch_size=2, save_steps=1, max_length=128, dtype="float32")
    with pytest.raises(KeyboardInterrupt):
        train(tiny_lm_dir, rows, "sft_short", LossConfig(), cfg, 0, tmp_path / "o", tmp_path / "ck", stop_after_step=1)
    state = tmp_path / "ck/step-1/trainer_state.pt"
    assert state.exists() and (tmp_path / "ck/step-1/COMPLETE").exists()
    torch.save({"optimizer": _Evil(tmp_path / "pwned"), "scheduler": {}, "step": 1}, state)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        train(tiny_lm_dir, rows, "sft_short", LossConfig(), cfg, 0, tmp_path / "o", tmp_path / "ck")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "o").exists()


def test_reference_needed_for_dpo(tiny_lm_dir, tmp_path):
    with pytest.raises(ValueError, match="reference log-probs"):
        train(tiny_lm_dir, _rows(2), "dpo_short", LossConfig(), TrainConfig(), 0, tmp_path / "o", tmp_path / "c")


def test_train_log_gives_the_mean_sequence_lengths_the_model_saw(tiny_lm_dir, tmp_path):
    from solopo.generate.hf import load_tokenizer
    from solopo.train.forward import tokenize_pair

    rows = _rows(2)
    cfg = TrainConfig(learning_rate=1e-3, batch_size=2, micro_batch_size=1, save_steps=0, max_length=128, dtype="float32")
    train(tiny_lm_dir, rows, "solo_orpo", LossConfig(alpha=1.0), cfg, 5, tmp_path / "a", tmp_path / "ck")
    (record,) = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    tok = load_tokenizer(tiny_lm_dir)

    def mean(prompt: str, responses: tuple[str, ...]) -> float:
        lengths = [len(tokenize_pair(tok, r[prompt], r[y], 128)[0]) for r in rows for y in responses]
        return round(sum(lengths) / len(lengths), 1)

    # SoLo-ORPO runs both responses on x_short and the chosen one on x_long (the RA term's default side)
    assert get_loss("solo_orpo").needs == ("chosen", "rejected", "long_chosen")
    assert record["tokens/po"] == mean("x", ("y_w", "y_l")) and record["tokens/long"] == mean("x_long", ("y_w",))
    assert record["tokens/long"] > record["tokens/po"]
