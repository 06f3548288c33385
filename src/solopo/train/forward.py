"""The training forward pass, shared by every loop (single process, DeepSpeed, reference log-probs).

`tokenize_pair` builds chat(prompt) + response + eos, cutting only the middle of the prompt's
documents when too long; `sequence_logps` sums the response tokens' log-probs (and, for LongPO,
the mean NLL over the whole sequence); `policy_outputs` runs the paper's two-stage forward
(App. G.4): the PO-prompt pair in one concatenated forward, the long copies in another, so the
short pair is never padded to the long length and gradients flow through both.
"""
from __future__ import annotations

import torch

from solopo.generate.chat import format_chat
from solopo.train.losses import PolicyOutputs, SeqLogps

SEQUENCE_FIELDS = {"chosen": ("x", "y_w"), "rejected": ("x", "y_l"),
                   "long_chosen": ("x_long", "y_w"), "long_rejected": ("x_long", "y_l")}


def tokenize_pair(tok, prompt: str, response: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of chat(prompt) + response + eos, and the number of response tokens.

    Over-long sequences lose tokens from the middle of the prompt's documents, never the chat
    template, the instruction or the question (a left cut removed the system/user header), and
    never response tokens: the response must be identical in the short and long copies (RA
    compares the same y). A prompt whose documents cannot be located, or whose non-document
    part alone does not fit, is an error naming the lengths."""
    text = format_chat(tok, prompt)
    p = tok(text, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    r = r[:max_length - 1]
    if len(p) + len(r) > max_length:
        p = _truncate_documents(tok, text, prompt, max_length - len(r), len(p))
    return p + r, len(r)


def _truncate_documents(tok, text: str, prompt: str, budget: int, n_prompt: int) -> list[int]:
    """Prompt ids of at most `budget` tokens: the templated text around the documents kept whole,
    the documents' first and last halves of what fits (LongBench's middle cut, applied to the
    documents only)."""
    from solopo.data.prompts import context_span

    span, at = context_span(prompt), text.find(prompt)
    if span is None or at < 0:
        raise ValueError(f"train.optim.max_length: a prompt of {n_prompt} tokens does not fit with its response "
                         f"({budget} tokens left) and has no documents to shorten; raise train.optim.max_length")
    cs, ce = at + span[0], at + span[1]
    ids = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    head, docs, tail = ids(text[:cs]), ids(text[cs:ce]), ids(text[ce:])
    keep = budget - len(head) - len(tail)
    if keep < 0:
        raise ValueError(f"train.optim.max_length: the prompt without its documents takes {len(head) + len(tail)} "
                         f"tokens, more than the {budget} left beside the response; raise train.optim.max_length")
    return head + docs[:keep - keep // 2] + docs[len(docs) - keep // 2:] + tail


def collate(seqs: list[tuple[list[int], int]], pad_id: int, device) -> dict:
    """Right-padded batch of (token ids, response length) sequences: input_ids, attention_mask, response_mask."""
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    resp = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, (s, n_resp) in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
        resp[i, len(s) - n_resp : len(s)] = True
    return {"input_ids": ids.to(device), "attention_mask": attn.to(device), "response_mask": resp.to(device)}


# Positions per chunk of the full-sequence NLL (LongPO): the LM head's output for one chunk is
# chunk x vocabulary floats (1,024 x 152K x 4 B = 0.6 GB), never the whole sequence's.
NLL_CHUNK = 1024


def sequence_logps(model, batch: dict, full_nll: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-sequence summed log-prob of the response tokens, response-token counts and,
    optionally, the mean NLL over all tokens (LongPO's NLL over the whole long sequence).

    The LM head runs only where its output is used. At a 152K vocabulary the logits of a 9.2K-token
    sequence are 5.6 GB in float32 (and as much again for their gradient), nearly all of them at prompt
    positions that no loss reads: response log-probs take the logits of the response positions only
    (`logits_to_keep`, the positions any row of the batch needs), the full NLL is computed chunk by chunk
    from the decoder's last hidden state, each chunk recomputed in the backward pass (checkpointed)."""
    targets = batch["input_ids"][:, 1:]
    resp = batch["response_mask"][:, 1:]  # position t predicts token t + 1
    counts = resp.sum(-1)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if full_nll:
        hidden = model.get_decoder()(**inputs).last_hidden_state[:, :-1]
        token_logps = _chunked_token_logps(model.get_output_embeddings(), hidden, targets)
        sums = (token_logps * resp).sum(-1)
        valid = batch["attention_mask"][:, 1:].bool()
        nll = -(token_logps * valid).sum(-1) / valid.sum(-1).clamp(min=1)
        return sums, counts, nll
    keep = resp.any(0).nonzero().squeeze(-1)  # positions whose logits some row needs
    logits = model(**inputs, logits_to_keep=keep).logits  # [batch, len(keep), vocab]
    kept = resp[:, keep]
    picked = logits[kept].float().log_softmax(-1).gather(-1, targets[:, keep][kept].unsqueeze(-1)).squeeze(-1)
    rows = torch.arange(resp.shape[0], device=resp.device).unsqueeze(1).expand_as(kept)[kept]
    sums = torch.zeros(resp.shape[0], dtype=picked.dtype, device=picked.device).index_add(0, rows, picked)
    return sums, counts, None


def _chunked_token_logps(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target_t | h_t) for every position, the head applied NLL_CHUNK positions at a time."""
    from torch.utils.checkpoint import checkpoint

    def chunk_logps(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return head(h).float().log_softmax(-1).gather(-1, t.unsqueeze(-1)).squeeze(-1)

    parts = []
    for start in range(0, hidden.shape[1], NLL_CHUNK):
        h, t = hidden[:, start:start + NLL_CHUNK], targets[:, start:start + NLL_CHUNK]
        parts.append(checkpoint(chunk_logps, h, t, use_reentrant=False) if torch.is_grad_enabled()
                     else chunk_logps(h, t))
    return torch.cat(parts, dim=1)


def policy_outputs(model, tok, rows: list[dict], needs: tuple[str, ...], max_length: int, device,
                   ref: list[dict] | None = None, full_nll: bool = False) -> PolicyOutputs:
    """Run the two-stage forward for one micro-batch and pack the loss inputs."""
    out = PolicyOutputs()
    out.n_tokens = 0  # tokens through the model (prompt + response, no padding), for tokens/s
    stages = {"po": [n for n in ("chosen", "rejected") if n in needs],
              "long": [n for n in ("long_chosen", "long_rejected") if n in needs]}
    for stage_name, stage in stages.items():
        if not stage:
            continue
        seqs = [tokenize_pair(tok, r[SEQUENCE_FIELDS[n][0]], r[SEQUENCE_FIELDS[n][1]], max_length) for n in stage for r in rows]
        want_nll = full_nll and stage[0] == "long_chosen"
        out.seq_tokens[stage_name] = [len(s) for s, _ in seqs]
        out.n_tokens += sum(out.seq_tokens[stage_name])
        sums, counts, nll = sequence_logps(model, collate(seqs, tok.pad_token_id, device), want_nll)
        for k, name in enumerate(stage):
            sl = slice(k * len(rows), (k + 1) * len(rows))
            setattr(out, name, SeqLogps(sums[sl], counts[sl]))
            if want_nll and name == "long_chosen":
                out.long_chosen_full_nll = nll[sl]
    if ref is not None:
        out.ref_chosen = torch.tensor([r["ref_chosen"] for r in ref], device=device)
        out.ref_rejected = torch.tensor([r["ref_rejected"] for r in ref], device=device)
    return out


# The per-step length sums, in the order the DeepSpeed loop reduces them over ranks.
LENGTH_SUMS = ("po_tokens", "po_sequences", "long_tokens", "long_sequences")


def add_lengths(sums: dict[str, float], po: PolicyOutputs) -> None:
    """Add one micro-batch's sequence lengths to a step's `LENGTH_SUMS`."""
    for stage, lengths in po.seq_tokens.items():
        sums[f"{stage}_tokens"] = sums.get(f"{stage}_tokens", 0) + sum(lengths)
        sums[f"{stage}_sequences"] = sums.get(f"{stage}_sequences", 0) + len(lengths)


def mean_lengths(sums: dict[str, float]) -> dict[str, float]:
    """The train log's `tokens/po` and `tokens/long`: mean tokens per sequence (prompt + response) of the
    step's PO-prompt pairs and long copies, as the model saw them (after `train.optim.max_length`)."""
    return {f"tokens/{stage}": round(sums[f"{stage}_tokens"] / sums[f"{stage}_sequences"], 1)
            for stage in ("po", "long") if sums.get(f"{stage}_sequences")}


def compute_reference_logps(model, tok, rows: list[dict], max_length: int, batch_size: int = 8,
                            progress=None) -> list[dict]:
    """Summed log-probs of y_w and y_l on each row's PO prompt x under the frozen model."""
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            po = policy_outputs(model, tok, chunk, ("chosen", "rejected"), max_length, device)
            out += [{"id": r["id"], "ref_chosen": float(c), "ref_rejected": float(rj)}
                    for r, c, rj in zip(chunk, po.chosen.logps, po.rejected.logps)]
            if progress is not None:
                progress.update(len(chunk))
    return out
