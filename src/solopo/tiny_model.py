"""The tiny preset's "instruct model": a small Qwen2 built from scratch and pre-trained,
in a few CPU minutes, to answer toy-world questions from its context with a chain of
thought ending in "The answer is: X". Saved as a normal HF folder (safetensors) that
`AutoModelForCausalLM.from_pretrained` loads offline.

Recipe (settled by CPU trials of model size, steps and data mix): training
examples mix context sizes from the bare evidence up to beyond the long budget, so the
model reads both short and long contexts, better on short ones (the gap SoLoPO targets).
"""
from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

from solopo.data import toy_world
from solopo.data.contexts import render_prompt
from solopo.data.prompts import QA_COT_TEMPLATE, format_document

log = logging.getLogger(__name__)

CHATML = ("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}")
SPECIAL = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def build_tokenizer(corpus: list[str], vocab_size: int):
    """Byte-level BPE trained on `corpus`, with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<|endoftext|>",
                                 eos_token="<|im_end|>", pad_token="<pad>")
    hf.chat_template = CHATML
    return hf


def build_model(tokenizer, hidden_size: int, num_layers: int, num_heads: int, num_kv_heads: int,
                intermediate_size: int, max_positions: int, seed: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                      max_position_embeddings=max_positions, tie_word_embeddings=True,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg)


def _example(rng: random.Random, entities, hop_weights, pool_docs, max_distractors: int,
             questions: int = 1) -> tuple[str, list[tuple[str, str]]]:
    """One pre-training conversation: a context holding the evidence of `questions` toy
    questions plus distractors; the first user turn is exactly the pipeline's QA prompt, later
    turns ask the other questions about the same documents (more lookups per context token)."""
    recs = [toy_world.make_record(rng, entities, rng.choices(list(hop_weights), list(hop_weights.values()))[0],
                                  uid=0, num_paragraphs=20) for _ in range(questions)]
    support = [p["title"] for r in recs for p in r["paragraphs"] if p["is_supporting"]]
    if len(set(support)) < len(support):  # two questions sharing a fact subject could contradict each other
        recs = recs[:1]
    gold = [format_document(p["title"], p["paragraph_text"]) for r in recs for p in r["paragraphs"] if p["is_supporting"]]
    titles = {p["title"] for r in recs for p in r["paragraphs"]}
    own = [format_document(p["title"], p["paragraph_text"]) for p in recs[0]["paragraphs"] if not p["is_supporting"]
           and p["title"] not in {q["title"] for r in recs[1:] for q in r["paragraphs"]}]
    # Skewed towards few distractors: reading short contexts is learnt first and best.
    k = min(max_distractors, int(max_distractors * rng.random() ** 2))
    extra = [d for d in rng.sample(pool_docs, min(len(pool_docs), 2 * k + 5)) if d.split("\n", 1)[0] not in titles]
    distractors = (own + extra)[:k]
    prompt = render_prompt(gold, distractors, recs[0]["question"], str(rng.random()))
    turns = [(prompt, recs[0]["cot"])] + [(f"Question: {r['question']}", r["cot"]) for r in recs[1:]]
    return prompt, turns


def _conversation_ids(tok, turns: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids of a ChatML conversation and labels on the assistant answers only."""
    from solopo.generate.chat import format_chat

    ids, labels = [], []
    for i, (user, answer) in enumerate(turns):
        text = format_chat(tok, user) if i == 0 else "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n"
        u = tok(text, add_special_tokens=False)["input_ids"]
        a = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        nl = tok("\n", add_special_tokens=False)["input_ids"] if i < len(turns) - 1 else []
        ids += u + a + nl
        labels += [-100] * len(u) + a + [-100] * len(nl)
    return ids, labels


def train_tiny_model(out_dir: str | Path, cfg: dict, seed: int, progress=None) -> dict:
    """Build, pre-train and save the tiny model. Returns training statistics."""
    import torch


    t0 = time.time()
    # Nothing else computes while the tiny model pre-trains (every model-dependent job waits
    # for it), so it may use all cores even when OMP_NUM_THREADS=1 keeps the other jobs at one.
    threads_before = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    rng = random.Random(seed)
    sizes = cfg["entities"]
    entities = toy_world.default_entities(sizes)
    hop_weights = toy_world.hop_weights(cfg)
    recs = toy_world.generate_records(400, seed + 1, hop_weights, sizes)
    pool_docs = sorted({format_document(p["title"], p["paragraph_text"]) for r in recs for p in r["paragraphs"]})
    corpus = [QA_COT_TEMPLATE] * 50 + [r["cot"] for r in recs] + pool_docs + [r["question"] for r in recs]
    corpus += ["Document 1:\nDocument 2:\nDocument 3:\nDocument 10:\nDocument 20:"] * 20
    tok = build_tokenizer(corpus, cfg["vocab_size"])
    model = build_model(tok, cfg["hidden_size"], cfg["num_layers"], cfg["num_heads"], cfg["num_kv_heads"],
                        cfg["intermediate_size"], cfg["max_positions"], seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.0)
    steps, bs, warm = cfg["steps"], cfg["batch_size"], max(1, int(0.05 * cfg["steps"]))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        batch_ids, batch_labels = [], []
        # Curriculum: the distractor cap grows from 0 to max over the first half. With the
        # bare evidence the copy circuit (induction) forms in ~1,000 steps; distractors then
        # teach matching the question's entity. Without it the loss sits on a plateau far longer.
        cap = min(cfg["max_distractors"], int(cfg["max_distractors"] * step / max(1, cfg.get("curriculum_fraction", 0.5) * steps)))
        for _ in range(bs):
            _, turns = _example(rng, entities, hop_weights, pool_docs, cap, cfg.get("questions_per_context", 1))
            ids_, labels_ = _conversation_ids(tok, turns)
            batch_ids.append(ids_)
            batch_labels.append(labels_)
        width = max(len(x) for x in batch_ids)
        ids = torch.full((bs, width), tok.pad_token_id)
        labels = torch.full((bs, width), -100)
        mask = torch.zeros((bs, width), dtype=torch.long)
        for i, (x, y) in enumerate(zip(batch_ids, batch_labels)):
            ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if progress is not None:
            progress.update(1)
        if step % 200 == 0 or step == steps - 1:
            log.info("tiny model step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.time() - t0)
    del gen
    torch.set_num_threads(threads_before)
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "vocab_size": len(tok), "steps": steps,
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "first_loss": round(losses[0], 4),
            "train_seconds": round(time.time() - t0, 1)}
