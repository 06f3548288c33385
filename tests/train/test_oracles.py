"""Independent oracles for the training core.

Every expected value here is computed by code that shares nothing with `sequence_logps`,
`collate` or `policy_outputs`: the oracle tokenises with the chat template itself, runs the
model once per prefix (an explicit token loop) or once over all sequences of a step (one joint
forward), and picks each response token's log-prob by position in a Python loop. So a wrong
prompt in a stage (the long forward reading x_short), a shifted response mask, a detached
stage or a wrong micro-batch weighting makes the trainer disagree with the oracle.
"""
from __future__ import annotations

import json

import pytest
import torch

from solopo.generate.hf import load_model_and_tokenizer
from solopo.train.forward import compute_reference_logps, policy_outputs, tokenize_pair
from solopo.train.losses import LOSSES, LossConfig, PolicyOutputs, SeqLogps, get_loss
from solopo.train.setup import TrainConfig
from solopo.train.trainer import train

# long prompts differ from the short ones by extra documents *before* the question, as in the
# pipeline; responses of different lengths so that padding and per-row counts matter
ROWS = [
    {"id": f"q{i}", "x": f"Document 1:\nLokin born Zapex .\n\nQuestion: where was person {i} born ?",
     "x_long": f"Document 1:\nRador in Borke .\n\nDocument 2:\nLokin born Zapex .\n\nDocument 3:\nMi led Ke {i} ."
               f"\n\nQuestion: where was person {i} born ?",
     "y_w": "Lokin born Zapex ." + " ok" * i + " The answer is: Zapex",
     "y_l": "The answer is: Borke" + " no" * (2 - i % 3)}
    for i in range(4)
]
SEQS = {"chosen": ("x", "y_w"), "rejected": ("x", "y_l"), "long_chosen": ("x_long", "y_w"),
        "long_rejected": ("x_long", "y_l")}


def _ids(tok, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Oracle tokenisation: chat-templated prompt ids and response ids + eos, encoded separately."""
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"], tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def _token_loop_logp(model, p: list[int], r: list[int]) -> float:
    """log pi(r | p) by an explicit loop: one forward per prefix, the last position's next-token log-prob."""
    total = 0.0
    with torch.no_grad():
        for j, target in enumerate(r):
            prefix = torch.tensor([p + r[:j]])
            logits = model(input_ids=prefix).logits[0, -1].double()
            total += float(logits.log_softmax(-1)[target])
    return total


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    return load_model_and_tokenizer(tiny_lm_dir, "cpu", "float32")


def test_sequence_logps_match_an_explicit_token_loop(lm):
    """The trainer's batched, padded log-probs (and response counts) of every sequence equal the loop's."""
    model, tok = lm
    with torch.no_grad():
        out = policy_outputs(model, tok, ROWS, tuple(SEQS), 512, "cpu")
    for name, (xf, yf) in SEQS.items():
        got = getattr(out, name)
        for i, row in enumerate(ROWS):
            p, r = _ids(tok, row[xf], row[yf])
            assert int(got.counts[i]) == len(r), (name, i)
            assert float(got.logps[i]) == pytest.approx(_token_loop_logp(model, p, r), abs=2e-4), (name, i)


def test_long_stage_reads_the_long_prompt(lm):
    """The long copies differ from the short ones (x_long != x) while the responses are the same."""
    model, tok = lm
    with torch.no_grad():
        out = policy_outputs(model, tok, ROWS, tuple(SEQS), 512, "cpu")
    assert torch.equal(out.chosen.counts, out.long_chosen.counts)
    assert (out.chosen.logps - out.long_chosen.logps).abs().min() > 1e-3
    assert (out.rejected.logps - out.long_rejected.logps).abs().min() > 1e-3


def test_longpo_full_sequence_nll_matches_the_token_loop(lm):
    """LongPO's NLL: mean over every predicted token of (x_long, y_w), prompt included, per sequence."""
    model, tok = lm
    with torch.no_grad():
        out = policy_outputs(model, tok, ROWS, get_loss("longpo").needs, 512, "cpu", full_nll=True)
    for i, row in enumerate(ROWS):
        p, r = _ids(tok, row["x_long"], row["y_w"])
        ids = p + r
        with torch.no_grad():
            logsm = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
        nll = -sum(float(logsm[t - 1, ids[t]]) for t in range(1, len(ids))) / (len(ids) - 1)
        assert float(out.long_chosen_full_nll[i]) == pytest.approx(nll, abs=1e-4)


def test_compute_reference_logps_matches_the_token_loop(lm):
    """Reference log-probs of y_w and y_l on the PO prompt, in chunks smaller than the row count."""
    model, tok = lm
    ref = compute_reference_logps(model, tok, ROWS, 512, batch_size=3)
    assert [r["id"] for r in ref] == [r["id"] for r in ROWS]
    for row, r in zip(ROWS, ref):
        assert r["ref_chosen"] == pytest.approx(_token_loop_logp(model, *_ids(tok, row["x"], row["y_w"])), abs=2e-4)
        assert r["ref_rejected"] == pytest.approx(_token_loop_logp(model, *_ids(tok, row["x"], row["y_l"])), abs=2e-4)


def _joint_outputs(model, tok, rows: list[dict], needs: tuple[str, ...], ref: list[dict] | None) -> PolicyOutputs:
    """All sequences of the step in ONE padded forward; per-row sums picked position by position."""
    names = [n for n in SEQS if n in needs]
    seqs = [_ids(tok, row[SEQS[n][0]], row[SEQS[n][1]]) for n in names for row in rows]
    width = max(len(p) + len(r) for p, r in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for k, (p, r) in enumerate(seqs):
        ids[k, : len(p) + len(r)] = torch.tensor(p + r)
        attn[k, : len(p) + len(r)] = 1
    logsm = model(input_ids=ids, attention_mask=attn).logits.float().log_softmax(-1)
    sums = []
    for k, (p, r) in enumerate(seqs):
        sums.append(sum(logsm[k, len(p) + j - 1, r[j]] for j in range(len(r))))
    out = PolicyOutputs()
    n = len(rows)
    for s, name in enumerate(names):
        counts = torch.tensor([len(seqs[s * n + i][1]) for i in range(n)])
        setattr(out, name, SeqLogps(torch.stack(sums[s * n : (s + 1) * n]), counts))
    if "long_chosen_full_nll" in needs:
        nll = []
        for i in range(n):
            k = names.index("long_chosen") * n + i
            full = seqs[k][0] + seqs[k][1]
            nll.append(-sum(logsm[k, t - 1, full[t]] for t in range(1, len(full))) / (len(full) - 1))
        out.long_chosen_full_nll = torch.stack(nll)
    if ref is not None:
        out.ref_chosen = torch.tensor([r["ref_chosen"] for r in ref])
        out.ref_rejected = torch.tensor([r["ref_rejected"] for r in ref])
    return out


def _ref_rows(rows: list[dict]) -> list[dict]:
    # arbitrary fixed reference values (their computation is tested above)
    return [{"id": r["id"], "ref_chosen": -30.0 - 2 * i, "ref_rejected": -20.0 + i} for i, r in enumerate(rows)]


def _grads(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])


@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_two_stage_step_equals_one_joint_forward(tiny_lm_dir, loss_name):
    """Loss and gradient of the trainer's two-stage forward equal those of one joint forward, for every loss."""
    spec = get_loss(loss_name)
    cfg = LossConfig(alpha=0.7)
    ref = _ref_rows(ROWS) if spec.needs_ref else None
    full_nll = "long_chosen_full_nll" in spec.needs
    results = []
    for joint in (True, False):
        model, tok = load_model_and_tokenizer(tiny_lm_dir, "cpu", "float32")
        model.zero_grad()
        po = (_joint_outputs(model, tok, ROWS, spec.needs, ref) if joint
              else policy_outputs(model, tok, ROWS, spec.needs, 512, "cpu", ref, full_nll))
        loss, metrics = spec.fn(po, cfg)
        loss.backward()
        results.append((float(loss), _grads(model), metrics))
    (l_joint, g_joint, m_joint), (l_two, g_two, m_two) = results
    assert g_joint.abs().sum() > 0
    assert l_two == pytest.approx(l_joint, rel=1e-5, abs=1e-6)
    torch.testing.assert_close(g_two, g_joint, rtol=1e-4, atol=1e-6)
    if "ra_term" in m_joint:
        # x_long != x_short for every row: the alignment term is never 0, and the trainer's equals the oracle's
        assert float(m_joint["ra_term"]) > 1e-4
        assert float(m_two["ra_term"]) == pytest.approx(float(m_joint["ra_term"]), rel=1e-4)


@pytest.mark.parametrize("method", ["solo_orpo", "solo_dpo_both", "longpo", "orpo_expand"])
def test_train_step_logs_the_oracle_loss_and_gradient_norm(tiny_lm_dir, tmp_path, method):
    """One optimiser step of `train` over two micro-batches: the logged loss and pre-clipping gradient
    norm equal the joint-forward oracle's on the whole batch (micro-batch weighting, stage wiring)."""
    from solopo.train.losses import get_method

    spec = get_loss(get_method(method).loss)
    ref = _ref_rows(ROWS) if spec.needs_ref else None
    lc = LossConfig(alpha=0.7)
    cfg = TrainConfig(learning_rate=1e-3, batch_size=4, micro_batch_size=2, max_length=512, dtype="float32",
                      max_grad_norm=1e9)
    train(tiny_lm_dir, ROWS, method, lc, cfg, 0, tmp_path / "out", tmp_path / "ck", ref=ref)
    logged = [json.loads(x) for x in (tmp_path / "out/train_log.jsonl").read_text().splitlines()]
    assert len(logged) == 1
    model, tok = load_model_and_tokenizer(tiny_lm_dir, "cpu", "float32")
    model.zero_grad()
    loss, metrics = spec.fn(_joint_outputs(model, tok, ROWS, spec.needs, ref), lc)
    loss.backward()
    assert logged[0]["loss"] == pytest.approx(float(loss), rel=1e-4, abs=1e-5)
    assert logged[0]["grad_norm"] == pytest.approx(float(_grads(model).norm()), rel=1e-3)
    if "ra_term" in metrics:
        assert logged[0]["ra_term"] == pytest.approx(float(metrics["ra_term"]), rel=1e-3) and logged[0]["ra_term"] > 0


# ----------------------------------------------------------------------------------- tokenize_pair
def test_tokenize_pair_without_truncation_is_prompt_then_response_then_eos(lm):
    _, tok = lm
    row = ROWS[1]
    ids, n = tokenize_pair(tok, row["x_long"], row["y_w"], 512)
    p, r = _ids(tok, row["x_long"], row["y_w"])
    assert ids == p + r and n == len(r) and ids[-1] == tok.eos_token_id


def _long_prompt(n_docs: int) -> str:
    from solopo.data.prompts import format_context, qa_prompt

    docs = [f"Person{i} born City{i} ." for i in range(1, n_docs + 1)]
    return qa_prompt(format_context(docs), "where was Person3 born ?")


def test_tokenize_pair_truncation_keeps_response_header_instruction_and_question(lm):
    """Over-long: the chat header, the instruction, the question and the whole response (+ eos) are
    kept; what is dropped lies inside the documents (truncation inside the context)."""
    _, tok = lm
    prompt, response = _long_prompt(40), "Person3 born City3 . The answer is: City3"
    p, r = _ids(tok, prompt, response)
    budget = (len(p) + len(r)) // 2
    ids, n = tokenize_pair(tok, prompt, response, budget)
    assert len(ids) <= budget
    assert n == len(r) and ids[-n:] == r  # the response (+ eos) is intact
    header = tok("<|im_start|>user\n", add_special_tokens=False)["input_ids"]
    assert ids[: len(header)] == header
    kept = tok.decode(ids[:-n])
    assert kept.startswith("<|im_start|>user\nAnswer the question based on the given documents.")
    assert kept.endswith("Question: where was Person3 born ?<|im_end|>\n<|im_start|>assistant\n")
    assert "Person1 born City1 ." in kept and "Person40 born City40 ." in kept  # a middle cut
    assert "Person20 born City20 ." not in kept
    # an untruncated pair is untouched
    assert tokenize_pair(tok, prompt, response, len(p) + len(r)) == (p + r, len(r))


def _template_parts(tok, prompt: str) -> tuple[list[int], list[int], list[int]]:
    """(head, documents, tail) ids of chat(prompt), split at the documents' span, each encoded alone."""
    from solopo.data.prompts import context_span
    from solopo.generate.chat import format_chat

    text = format_chat(tok, prompt)
    start = text.find(prompt)
    cs, ce = start + context_span(prompt)[0], start + context_span(prompt)[1]
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    return enc(text[:cs]), enc(text[cs:ce]), enc(text[ce:])


def test_tokenize_pair_truncation_fills_the_budget_with_the_documents_ends(lm):
    """The cut keeps exactly `max_length` tokens: the templated text around the documents whole, then the
    first ceil(k/2) and last floor(k/2) document tokens (k = what is left), for an odd and an even k."""
    _, tok = lm
    prompt, response = _long_prompt(40), "The answer is: City3"
    head, docs, tail = _template_parts(tok, prompt)
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    for budget in (len(head) + len(tail) + len(r) + 41, len(head) + len(tail) + len(r) + 40):
        k = budget - len(r) - len(head) - len(tail)
        ids, n = tokenize_pair(tok, prompt, response, budget)
        assert len(ids) == budget and n == len(r)
        assert ids == head + docs[: k - k // 2] + docs[len(docs) - k // 2:] + tail + r, budget


def test_tokenize_pair_errors_name_the_key_and_the_lengths(lm):
    _, tok = lm
    plain = "where was Person3 born ?"  # no documents to shorten
    p, r = _ids(tok, plain, "City3")
    with pytest.raises(ValueError) as e:
        tokenize_pair(tok, plain, "City3", len(p) + len(r) - 1)
    assert str(e.value) == (f"train.optim.max_length: a prompt of {len(p)} tokens does not fit with its response "
                            f"({len(p) - 1} tokens left) and has no documents to shorten; raise train.optim.max_length")
    prompt = _long_prompt(40)
    # a response longer than max_length keeps max_length - 1 tokens, leaving 1 for a prompt that cannot fit in it
    long_response = " ".join(["City3"] * 200)
    with pytest.raises(ValueError) as e:
        tokenize_pair(tok, prompt, long_response, 64)
    assert str(e.value).startswith("train.optim.max_length: the prompt without its documents takes ")
    assert str(e.value).endswith(" tokens, more than the 1 left beside the response; raise train.optim.max_length")


def test_policy_outputs_count_the_tokens_through_the_model(lm):
    """n_tokens (for tokens/s) = every sequence's prompt + response tokens, no padding."""
    model, tok = lm
    needs = ("chosen", "rejected", "long_chosen")
    with torch.no_grad():
        out = policy_outputs(model, tok, ROWS, needs, 512, "cpu")
    want = sum(len(p) + len(r) for n in needs for p, r in (_ids(tok, row[SEQS[n][0]], row[SEQS[n][1]]) for row in ROWS))
    assert out.n_tokens == want
    assert out.long_rejected is None and out.long_chosen_full_nll is None and out.ref_chosen is None


def test_compute_reference_logps_reports_progress_per_row(lm):
    model, tok = lm

    class Counter:
        total = 0

        def update(self, n: int) -> None:
            self.total += n

    progress = Counter()
    ref = compute_reference_logps(model, tok, ROWS, 512, batch_size=3, progress=progress)
    assert progress.total == len(ROWS) == len(ref)


def test_tokenize_pair_can_drop_every_document_and_names_the_lengths_it_needs(lm):
    """A budget of exactly the templated text + response keeps no document token (k = 0); one less is an
    error that names the text's length."""
    _, tok = lm
    prompt, response = _long_prompt(10), "The answer is: City3"
    head, _, tail = _template_parts(tok, prompt)
    r = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids, n = tokenize_pair(tok, prompt, response, len(head) + len(tail) + len(r))
    assert ids == head + tail + r and n == len(r)
    with pytest.raises(ValueError) as e:
        tokenize_pair(tok, prompt, response, len(head) + len(tail) + len(r) - 1)
    assert str(e.value) == (f"train.optim.max_length: the prompt without its documents takes {len(head) + len(tail)} "
                            f"tokens, more than the {len(head) + len(tail) - 1} left beside the response; raise "
                            "train.optim.max_length")


def _base_tokenizer_adding_bos(tok):
    """The tiny tokenizer as a base model's (Llama-style): no chat template, so the chat text is the
    prompt itself (found at offset 0), and a BOS that plain encoding prepends."""
    import copy

    from tokenizers import processors

    base = copy.deepcopy(tok)
    base.chat_template = None
    bos = "<|im_start|>"
    base.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, base.convert_tokens_to_ids(bos))])
    assert base("Person3")["input_ids"][0] == base.convert_tokens_to_ids(bos)  # the setting took
    return base


def test_tokenize_pair_cuts_a_base_models_documents_without_adding_special_tokens(lm):
    """A base model's prompt starts the text (offset 0: still a prompt with documents to shorten), and no
    piece of the cut gains the BOS its tokenizer adds by default: the ids are the text's own tokens."""
    _, tok = lm
    base = _base_tokenizer_adding_bos(tok)
    prompt, response = _long_prompt(40), "The answer is: City3"
    head, docs, tail = _template_parts(base, prompt)
    assert head and base.convert_tokens_to_ids("<|im_start|>") not in head + docs + tail
    r = base(response, add_special_tokens=False)["input_ids"] + [base.eos_token_id]
    budget = len(head) + len(tail) + len(r) + 21
    ids, n = tokenize_pair(base, prompt, response, budget)
    assert ids == head + docs[:11] + docs[len(docs) - 10:] + tail + r and n == len(r)
    # untruncated, too: the prompt's own tokens, no BOS in front
    text_ids = base(prompt, add_special_tokens=False)["input_ids"]
    assert tokenize_pair(base, prompt, response, 10_000) == (text_ids + r, len(r))


def test_tokenize_pair_keeps_a_pair_that_fits_exactly(lm):
    """prompt + response + eos == max_length fits: no cut, so a prompt without documents is no error."""
    _, tok = lm
    plain = "where was Person3 born ?"
    p, r = _ids(tok, plain, "City3")
    assert tokenize_pair(tok, plain, "City3", len(p) + len(r)) == (p + r, len(r))


def test_longpo_full_nll_of_a_two_token_row_averages_over_its_one_target(lm):
    """NLL_full averages over the targets a row has: a 2-token row has one (its mean is that token's NLL),
    beside a longer row, padded; both log-prob paths give one sum per row (batch 2 < width 5)."""
    from solopo.train.forward import sequence_logps

    model, _ = lm
    short, full = [5, 17], [5, 17, 23, 9, 41]
    batch = {"input_ids": torch.tensor([short + [0, 0, 0], full]),
             "attention_mask": torch.tensor([[1, 1, 0, 0, 0], [1] * 5]),
             "response_mask": torch.tensor([[False, True, False, False, False], [False, False, True, True, True]])}
    with torch.no_grad():
        sums, counts, nll = sequence_logps(model, batch, full_nll=True)
        response_only = sequence_logps(model, batch)  # the other path: log-softmax at response tokens only
    assert counts.tolist() == [1, 3] and response_only[0].shape == sums.shape == (2,)  # one value per row
    assert torch.allclose(response_only[0], sums, atol=1e-5) and response_only[2] is None
    assert sums[0].item() == pytest.approx(_token_loop_logp(model, short[:1], short[1:]), abs=1e-5)
    assert nll[0].item() == pytest.approx(-_token_loop_logp(model, short[:1], short[1:]), abs=1e-5)
    assert nll[1].item() == pytest.approx(-_token_loop_logp(model, full[:1], full[1:]) / 4, abs=1e-5)
