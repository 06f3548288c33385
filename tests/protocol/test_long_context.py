"""Long context: the backbone's long-context setting on every suite that needs it, a 128K
NIAH-Plus item within each paper backbone's window, and the official NIAH-Plus prompt by default.

The real Qwen2.5 / Llama-3.1 tokenizers cannot be downloaded offline: the 128K item is built with a
word-level tokenizer carrying each backbone's chat-template layout (special tokens and default
system turn). It checks the budget logic and the template overhead, not the real token counts;
the evaluation backends check the real counts at run time (`check_window`, `niah_plus.fit_context`).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from solopo.eval import niah_plus
from solopo.eval.budget import long_context_plan
from solopo.generate.chat import format_chat

ROOT = Path(__file__).resolve().parents[2]
PAPER = yaml.safe_load((ROOT / "config/config.yaml").read_text())
BACKBONES = {b["name"]: b for b in PAPER["backbones"]}

# The two released templates' layout for one user turn with a generation prompt.
TEMPLATES = {
    "qwen25_7b": ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                  "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
    "llama31_8b": ("{{ bos_token }}<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                   "Today Date: 26 Jul 2024\n\n<|eot_id|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                   "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
                   "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"),
}
SPECIALS = ["<unk>", "<|begin_of_text|>", "<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>"]
WORDS = [f"w{i}" for i in range(300)]


def word_tokenizer(template: str):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + ["\n\n"])}
    text = " ".join(niah_plus.TASK_DESCRIPTIONS.values()) + " Document The following are given passages Question " \
        "Answer Who lives in Zorvath ? Kelmin the painter . : \n system user assistant You are Qwen created by " \
        "Alibaba Cloud a helpful Cutting Knowledge Date December 2023 Today 26 Jul 2024 , 0 1 2 3 4 5 6 7 8 9"
    for w in WORDS + text.replace(".", " . ").replace(",", " , ").replace(":", " : ").replace("?", " ? ").split():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # words and blank lines are tokens (a paragraph break is one token, as in the real BPEs)
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n\n|\S+"), behavior="removed", invert=True)
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<|begin_of_text|>",
                                 eos_token="<|eot_id|>", pad_token="<unk>")
    hf.add_special_tokens({"additional_special_tokens": SPECIALS[2:]})
    hf.chat_template = template
    return hf


def _item_128k(tok, length: int = 128000) -> dict:
    hay = [" ".join(WORDS[(k * 7 + j) % len(WORDS)] for j in range(60)) + " ." for k in range(400)]
    needle = {"id": "n1", "question": "Who lives in Zorvath ?", "answers": ["Kelmin"],
              "docs": ["Kelmin the painter lives in Zorvath ."]}
    [item] = niah_plus.build_items([needle], hay, tok, [length], [50.0], kind="single", tolerance=0.01)
    return item


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_128k_niah_plus_item_fits_each_backbones_window(name):
    b, cfg = BACKBONES[name], PAPER["eval"]["niah_plus"]
    assert max(cfg["lengths"]) == 128000
    tok = word_tokenizer(TEMPLATES[name])
    item = _item_128k(tok)
    assert 0.99 * 128000 <= item["measured_length"] <= 128000
    prompt_ids = tok(format_chat(tok, niah_plus.user_prompt(item, cfg["prompt"])), add_special_tokens=False)["input_ids"]
    plan = long_context_plan(b, "niah_plus", cfg)
    assert len(prompt_ids) + cfg["max_new_tokens"] <= plan["needed"] <= plan["window"]
    assert len(prompt_ids) + cfg["max_new_tokens"] > b["context_window"] or name == "llama31_8b"
    if name == "qwen25_7b":  # 32K natively: the official YaRN, factor 4 over 32,768
        assert plan["long_context"] and plan["window"] == 131072
        assert plan["rope_scaling"] == {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    else:
        assert not plan["long_context"] and plan["window"] == 131072
    # one token short of the window: the haystack is shortened away from the needle, nothing else
    window = len(prompt_ids) + cfg["max_new_tokens"] - 50
    fitted, cut = niah_plus.fit_context(item, cfg["prompt"], tok, window, cfg["max_new_tokens"])
    n = len(tok(format_chat(tok, niah_plus.user_prompt(fitted, cfg["prompt"])), add_special_tokens=False)["input_ids"])
    assert cut >= 50 and n + cfg["max_new_tokens"] <= window and "Kelmin the painter lives in Zorvath" in fitted["context"]


def test_every_suite_over_the_native_window_gets_the_long_context_setting():
    plans = {(b, s): long_context_plan(BACKBONES[b], s, PAPER["eval"][s])
             for b in BACKBONES for s in PAPER["eval"]["benchmarks"]}
    yarn = sorted(k for k, p in plans.items() if p["long_context"])
    assert yarn == [("qwen25_7b", "longbench_v2"), ("qwen25_7b", "niah_plus")]
    for p in plans.values():  # everything else fits natively, generation included
        assert p["needed"] is None or p["needed"] <= p["window"]
    assert "yarn x4 (window 131072)" in plans[("qwen25_7b", "niah_plus")]["summary"]


def test_evaluate_loads_the_model_with_the_plan(monkeypatch, tmp_path):
    """pipeline.evaluate hands the plan's rope scaling and window to the backend, for NIAH-Plus too."""
    from solopo import pipeline

    seen = {}

    class Stop(Exception):
        pass

    def fake_load(name, model, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr("solopo.generate.load_backend", fake_load)
    plan = long_context_plan(BACKBONES["qwen25_7b"], "niah_plus", PAPER["eval"]["niah_plus"])
    with pytest.raises(Stop):
        pipeline.evaluate("niah_plus", "m", str(tmp_path), str(tmp_path / "r.json"), "base", PAPER, 42,
                          str(tmp_path / "log"), {"trust_remote_code": False, "long_context": plan})
    assert seen == {"trust_remote_code": False, "rope_scaling": plan["rope_scaling"], "max_model_len": 131072}


# ----------------------------------------------------------------------------- item 2
def test_niah_plus_defaults_to_the_official_prompt():
    assert PAPER["eval"]["niah_plus"]["prompt"] == "official"

    class Backend:
        tokenizer = word_tokenizer(TEMPLATES["qwen25_7b"])

        def __init__(self):
            self.prompts = []

        def generate(self, prompts, cfg):
            self.prompts += prompts
            return [["Kelmin"] for _ in prompts]

    item = {"id": "x", "dataset": "needle_squad", "context": "w1 w2 .", "context_length": 10, "depth_percent": 0,
            "input": "Who lives in Zorvath ?", "answers": ["Kelmin"]}
    backend = Backend()
    result, _ = niah_plus.evaluate(backend, [item], {})
    assert niah_plus.TASK_DESCRIPTIONS["needle_squad"] in backend.prompts[0] and "step by step" not in backend.prompts[0]
    assert result["settings"]["prompt"] == "official" and result["settings"]["max_new_tokens"] == 32
    assert result["score"] == 100.0  # scored on the whole answer, no CoT extraction
