"""The LM head runs only where a loss reads its output (memory at real lengths and a 152K vocabulary).

The values themselves are checked against independent oracles in test_oracles.py; here, what the
head is applied to: the response positions for the log-probs, at most NLL_CHUNK positions at a time
for LongPO's full-sequence NLL, and the chunked NLL's gradient equals the unchunked one."""
from __future__ import annotations

import pytest
import torch

from solopo.generate.hf import load_model_and_tokenizer
from solopo.train import forward
from solopo.train.forward import sequence_logps


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    return load_model_and_tokenizer(tiny_lm_dir, "cpu", "float32")


def _batch(prompt_lens: list[int], resp_lens: list[int], vocab: int) -> dict:
    g = torch.Generator().manual_seed(0)
    width = max(p + r for p, r in zip(prompt_lens, resp_lens))
    ids = torch.zeros((len(prompt_lens), width), dtype=torch.long)
    attn = torch.zeros_like(ids)
    resp = torch.zeros_like(ids, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompt_lens, resp_lens)):
        ids[i, : p + r] = torch.randint(3, vocab, (p + r,), generator=g)
        attn[i, : p + r] = 1
        resp[i, p : p + r] = True
    return {"input_ids": ids, "attention_mask": attn, "response_mask": resp}


@pytest.fixture
def head_inputs(lm):
    """Positions per call of the LM head during the test."""
    seen: list[int] = []
    handle = lm[0].get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    yield seen
    handle.remove()


def test_response_logps_apply_the_head_to_the_response_positions_only(lm, head_inputs):
    model, _ = lm
    batch = _batch([60, 40], [5, 9], model.config.vocab_size)
    seen = head_inputs
    sums, counts, nll = sequence_logps(model, batch)
    # row 0 predicts its response from positions 59..63, row 1 from 39..47: 5 + 9 positions, no overlap
    assert seen == [14] and counts.tolist() == [5, 9] and nll is None
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    token = full.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    assert torch.allclose(sums, (token * batch["response_mask"][:, 1:]).sum(-1), atol=1e-5)


def test_full_nll_applies_the_head_in_chunks_with_the_unchunked_gradient(lm, head_inputs, monkeypatch):
    model, _ = lm
    batch = _batch([70], [6], model.config.vocab_size)
    monkeypatch.setattr(forward, "NLL_CHUNK", 16)
    seen = head_inputs
    model.zero_grad()
    sums, _, nll = sequence_logps(model, batch, full_nll=True)
    (nll.sum() - sums.sum()).backward()
    chunked = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert seen[:5] == [16, 16, 16, 16, 11] and max(seen) <= 16  # 75 positions; recomputation in backward
    model.zero_grad()
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    token = full.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)
    ref_sums = (token * batch["response_mask"][:, 1:]).sum(-1)
    ref_nll = -token.mean(-1)
    assert torch.allclose(sums, ref_sums, atol=1e-5) and torch.allclose(nll, ref_nll, atol=1e-5)
    (ref_nll.sum() - ref_sums.sum()).backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(chunked[name], p.grad, atol=1e-5), name
