"""Training and data fidelity to the paper: each test fails on the code before the fix (checked once)."""
from __future__ import annotations

from solopo.pairs import build_pairs


def hop_count(qid: str) -> str:
    return qid.split("hop")[0] + "hop"


# ----------------------------------------------------------------------------- item 11
def _rows(ids):
    samples = [{"id": i, "responses": ["The answer is: X", "The answer is: Y"], "answers": ["X"]} for i in ids]
    ctxs = [{"id": i, "question": f"q {i}", "answers": ["X"], "prompt": f"p {i}"} for i in ids]
    return {"short": samples, "long": samples}, {"short": ctxs, "long": ctxs}


def test_pair_selection_is_seeded_random_and_stratified_by_hop_count():
    # MuSiQue's file order: grouped by hop count, 2-hop first (60/30/10 here)
    ids = [f"2hop__{k}" for k in range(60)] + [f"3hop1__{k}" for k in range(30)] + [f"4hop1__{k}" for k in range(10)]
    samples, ctxs = _rows(ids)
    rows, stats = build_pairs(samples, ctxs, seed=1, num_pairs=20)
    chosen = [r["id"] for r in rows if r["short"]]
    mix = {h: sum(hop_count(i) == h for i in chosen) for h in ("2hop", "3hop", "4hop")}
    assert mix == {"2hop": 12, "3hop": 6, "4hop": 2}  # file order would give 20 two-hop questions
    assert chosen != ids[:20] and chosen[:3] != ids[:3]
    assert stats["hop_mix"]["short"] == mix and stats["hop_mix"]["inputs"] == {"2hop": 60, "3hop": 30, "4hop": 10}
    again, _ = build_pairs(samples, ctxs, seed=1, num_pairs=20)
    other, _ = build_pairs(samples, ctxs, seed=2, num_pairs=20)
    assert [r["id"] for r in again] == [r["id"] for r in rows]  # seeded
    assert {r["id"] for r in other if r["short"]} != set(chosen)


# ----------------------------------------------------------------------------- item 10
def test_over_long_prompt_is_cut_inside_the_documents_not_the_template_or_question():
    from solopo.data.prompts import format_context, qa_prompt
    from solopo.generate.chat import format_chat
    from solopo.train.forward import tokenize_pair
    from tests.eval.helpers import tiny_tokenizer

    docs = [f"Town{k} lies on river {k}. It has {k} bridges and a market." for k in range(40)]
    question = "Which river flows through Town7?"
    prompt = qa_prompt(format_context(docs), question)
    tok = tiny_tokenizer(docs + [prompt, question, "The answer is: river 7"])
    response = "Town7 lies on river 7. The answer is: river 7"
    ids, n_resp = tokenize_pair(tok, prompt, response, max_length=160)
    full = tok(format_chat(tok, prompt), add_special_tokens=False)["input_ids"]
    assert len(full) + n_resp > 160 and len(ids) == 160  # truncation happened, the budget is used
    text = tok.decode(ids[:-n_resp])
    assert text.startswith("<|im_start|>user\nAnswer the question based on the given documents.")  # header kept
    assert text.endswith(f"Question: {question}<|im_end|>\n<|im_start|>assistant\n")                 # question kept
    assert "Document 1:" in text and "Document 40:" in text and "Document 20:" not in text          # middle cut
    assert ids[-n_resp:] == tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
