"""Shared test helpers for the eval tests: toy MuSiQue-schema records, a tiny BPE tokenizer, a tiny Qwen2, and
a scripted fake generation backend. Plain functions (no fixtures); import them with
`from tests.eval.helpers import ...`."""
from __future__ import annotations

import random

CHATML = ("{% for m in messages %}{{'<|im_start|>'+m['role']+'\n'+m['content']+'<|im_end|>\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}")

# ----------------------------------------------------------------------------- toy records

_SYL = ["ka", "lo", "mir", "ten", "vas", "dor", "pel", "quin", "ra", "sul", "tem", "zo", "bri", "fan", "gol", "hex"]


def toy_name(rng, k=3):
    """A made-up capitalised name of `k` syllables drawn from `rng`."""
    return "".join(rng.choice(_SYL) for _ in range(k)).capitalize()


def valley_records(n=9, n_other=4, seed=0):
    """MuSiQue-Ans-schema 2-hop records about fictional entities (answers unambiguous), shuffled paragraphs
    with `n_other` distractors each; names are random syllables drawn from `seed`."""
    rng = random.Random(seed)
    recs = []
    for k in range(n):
        person, town, region = toy_name(rng), toy_name(rng), toy_name(rng, 2)
        paras = [
            {"title": person, "is_supporting": True,
             "paragraph_text": f"{person} is a painter who was born in {town}. {person} painted rivers and hills. "
                               f"Critics praised the early work of {person}."},
            {"title": town, "is_supporting": True,
             "paragraph_text": f"{town} is a small town in the {region} valley. It was founded in {1500 + k}. "
                               f"The town of {town} is known for its bridges."},
        ]
        for _ in range(n_other):
            t, o = toy_name(rng), toy_name(rng)
            paras.append({"title": t, "is_supporting": False,
                          "paragraph_text": f"{t} is a village near {o}. The people of {t} grow apples. "
                                            f"Its market opens on {rng.choice(['Monday', 'Friday'])}."})
        order = list(range(len(paras)))
        rng.shuffle(order)
        paragraphs = [dict(paras[j], idx=i) for i, j in enumerate(order)]
        sup = {p["title"]: p["idx"] for p in paragraphs if p["is_supporting"]}
        recs.append({
            "id": f"2hop__{k}1_{k}2",
            "paragraphs": paragraphs,
            "question": f"In which valley was {person} born?",
            "question_decomposition": [
                {"id": k * 10 + 1, "question": f"{person} >> place of birth", "answer": town,
                 "paragraph_support_idx": sup[person]},
                {"id": k * 10 + 2, "question": "#1 >> located in the valley", "answer": region,
                 "paragraph_support_idx": sup[town]},
            ],
            "answer": region,
            "answer_aliases": [f"{region} valley"] if k % 3 == 0 else [],
            "answerable": True,
        })
    return recs


PEOPLE = ["Alder Vonn", "Brisa Kale", "Corin Dusk", "Delia Marsh", "Evan Thorne", "Fara Quill", "Garen Holt",
          "Hela Brook"]
TOWNS = ["Mossgate", "Tarnby", "Quillford", "Ebbencroft", "Lowmere", "Stavenholm", "Kestrel Bay", "Orrin Vale"]


def river_records(n: int = 8):
    """MuSiQue-schema records of a small fixed fictional world (2-hop: person -> birthplace -> river)."""
    recs = []
    for i in range(n):
        person, town, river = PEOPLE[i], TOWNS[i], f"River {chr(65 + i)}ven"
        paras = [
            {"idx": 0, "title": person, "paragraph_text": f"{person} is a painter who was born in {town}.",
             "is_supporting": True},
            {"idx": 1, "title": town, "paragraph_text": f"{town} is a market town on the {river}.",
             "is_supporting": True},
            {"idx": 2, "title": TOWNS[(i + 1) % n], "paragraph_text": f"{TOWNS[(i + 1) % n]} has an old mill.",
             "is_supporting": False},
        ]
        recs.append({
            "id": f"2hop__{i}_{i + 100}", "paragraphs": paras,
            "question": f"Which river flows through the birthplace of {person}?",
            "question_decomposition": [
                {"id": i, "question": f"{person} >> place of birth", "answer": town, "paragraph_support_idx": 0},
                {"id": i + 100, "question": "#1 >> located next to body of water", "answer": river,
                 "paragraph_support_idx": 1}],
            "answer": river, "answer_aliases": [f"the {river}"] if i % 2 else [], "answerable": True,
        })
    return recs


# ----------------------------------------------------------------------------- tiny tokenizer and model


def tiny_tokenizer(corpus):
    """A 400-token byte-level BPE trained on `corpus`, with ChatML specials and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<|endoftext|>",
                                 eos_token="<|im_end|>", pad_token="<pad>")
    hf.chat_template = CHATML
    return hf


def records_tokenizer(records, extra=()):
    """`tiny_tokenizer` trained on the records' paragraphs and questions, plus `extra` texts repeated 3 times."""
    corpus = [p["paragraph_text"] for r in records for p in r["paragraphs"]] + [r["question"] for r in records]
    return tiny_tokenizer(corpus + list(extra) * 3)


def tiny_qwen2(tok, **config):
    """A random 1-layer Qwen2 (seed 0) sized for `tok`; `config` adds or overrides Qwen2Config fields."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "num_key_value_heads": 1, "intermediate_size": 64, "vocab_size": len(tok),
                         "tie_word_embeddings": True, "bos_token_id": tok.bos_token_id,
                         "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id, **config})
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg).eval()


def tiny_lm(corpus):
    """A random 1-layer Qwen2 and a BPE tokenizer trained on `corpus` (ChatML chat template)."""
    tok = tiny_tokenizer(corpus)
    return tiny_qwen2(tok), tok


def tiny_backend(tok):
    """`tiny_qwen2(tok)` wrapped as the HF backend."""
    from solopo.generate.hf import HFBackend

    return HFBackend(None, model=tiny_qwen2(tok), tokenizer=tok)


# ----------------------------------------------------------------------------- fake backend


class FakeBackend:
    """Answers each prompt with `respond(prompt, call_index)` and records the calls."""

    def __init__(self, tokenizer, respond):
        self.tokenizer, self.respond, self.calls = tokenizer, respond, []

    def generate(self, prompts, cfg):
        self.calls.append((list(prompts), cfg))
        k = len(self.calls) - 1
        return [[self.respond(p, k)] for p in prompts]


def scripted(script):
    """A `respond` for FakeBackend: the output scripted for the first question of `script` found in the prompt
    (empty when none is)."""
    def respond(prompt, _call):
        hits = [v for q, v in script.items() if q in prompt]
        return hits[0] if hits else ""
    return respond
