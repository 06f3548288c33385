"""LongBench v1 QA: templates, middle truncation, scoring maths, fixtures, loaders, evaluate."""
import json

import pytest

from solopo.artifacts import DataError
from solopo.data.prompts import qa_prompt
from solopo.eval import longbench_v1 as lb1
from solopo.eval.truncation import middle_truncate
from tests.eval.helpers import FakeBackend, river_records, scripted, tiny_lm, tiny_tokenizer

WORDS = "a b c d e f g h i j".split()


# ----------------------------------------------------------------------------- helpers


def _word_tokenizer(bos: bool = False, eos: bool = False, model_max_length: int | None = None):
    """Whitespace word-level tokenizer: one token per word, so truncation points are obvious."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "<s>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}, "</s>": len(WORDS) + 2}
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if eos:  # BOS and EOS around every text, as some tokenizers add by default
        t.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", vocab["</s>"])])
        return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", bos_token="<s>", eos_token="</s>",
                                       model_max_length=model_max_length or 10**9)
    if bos:
        t.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
        return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]", bos_token="<s>")
    return PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]")


# ----------------------------------------------------------------------------- templates


def test_official_templates_exact():
    item = {"context": "CTX", "input": "Q?"}
    assert lb1.DATASET2PROMPT["narrativeqa"].format(**item) == (
        "You are given a story, which can be either a novel or a movie script, and a question. Answer the question "
        "asconcisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: CTX\n\n"
        "Now, answer the question based on the story asconcisely as you can, using a single phrase if possible. "
        "Do not provide any explanation.\n\nQuestion: Q?\n\nAnswer:")
    assert lb1.DATASET2PROMPT["qasper"].format(**item) == (
        'You are given a scientific article and a question. Answer the question as concisely as you can, using a '
        'single phrase or sentence if possible. If the question cannot be answered based on the information in the '
        'article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". '
        'Do not provide any explanation.\n\nArticle: CTX\n\n Answer the question based on the above article as '
        'concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered '
        'based on the information in the article, write "unanswerable". If the question is a yes/no question, answer '
        '"yes", "no", or "unanswerable". Do not provide any explanation.\n\nQuestion: Q?\n\nAnswer:')
    assert lb1.DATASET2PROMPT["multifieldqa_en"].format(**item) == (
        "Read the following text and answer briefly.\n\nCTX\n\nNow, answer the following question based on the "
        "above text, only give me the answer and do not output any other words.\n\nQuestion: Q?\nAnswer:")
    multi = ("Answer the question based on the given passages. Only give me the answer and do not output any other "
             "words.\n\nThe following are given passages.\nCTX\n\nAnswer the question based on the given passages. "
             "Only give me the answer and do not output any other words.\n\nQuestion: Q?\nAnswer:")
    for name in lb1.M_DOC:
        assert lb1.DATASET2PROMPT[name].format(**item) == multi
    assert lb1.DATASET2PROMPT["narrativeqa"].count("asconcisely") == 2
    assert lb1.DATASET2MAXLEN == {"narrativeqa": 128, "qasper": 128, "multifieldqa_en": 64,
                                  "hotpotqa": 32, "2wikimqa": 32, "musique": 32}


def test_build_prompt_kinds():
    item = {"dataset": "musique", "context": "ctx {braces} kept", "input": "Who?"}
    assert lb1.build_prompt(item, "solopo_cot") == qa_prompt("ctx {braces} kept", "Who?")
    assert "ctx {braces} kept" in lb1.build_prompt(item, "official")
    with pytest.raises(ValueError, match="allowed values"):
        lb1.build_prompt(item, "fewshot")
    with pytest.raises(ValueError, match="allowed values"):
        lb1.prompt_kind({"prompt": "nope"})
    assert lb1.max_new_tokens_for("qasper", {"prompt": "official", "max_new_tokens": 7}) == 128
    assert lb1.max_new_tokens_for("qasper", {"max_new_tokens": 7}) == 7


# ----------------------------------------------------------------------------- truncation


def test_middle_truncation_hand_computed():
    tok = _word_tokenizer()
    prompt = " ".join(WORDS)                                   # 10 tokens
    assert middle_truncate(prompt, tok, 10) == prompt            # fits: unchanged
    assert middle_truncate(prompt, tok, 6) == "a b ch i j"       # v1: halves decoded separately, joined as is
    assert middle_truncate(prompt, tok, 7) == "a b ch i j"       # int(7/2) = 3 on each side
    assert middle_truncate(prompt, tok, 6, style="v2") == "a b c h i j"    # v2: one decode of the joined ids
    assert middle_truncate(prompt, tok, 7, style="v2") == "a b c g h i j"  # v2: ids[:3] + ids[-4:]
    assert middle_truncate(prompt, tok, 2) == "aj" and middle_truncate(prompt, tok, 2, style="v2") == "a j"
    assert middle_truncate(prompt, tok, 9) == "a b c dg h i j"  # one token over: the cut still applies
    with pytest.raises(ValueError, match=r"^middle_truncate style 'v3': allowed values are v1, v2$"):
        middle_truncate(prompt, tok, 6, style="v3")
    with pytest.raises(ValueError, match=r"^middle_truncate: max_length must be >= 2, got 1$"):
        middle_truncate(prompt, tok, 1)


def test_middle_truncation_drops_special_tokens_at_both_ends_and_never_truncates_on_encode():
    tok = _word_tokenizer(eos=True, model_max_length=4)  # a model limit below the prompt: not applied
    prompt = " ".join(WORDS)                                   # <s> + 10 tokens + </s> = 12
    from solopo.eval.truncation import prompt_token_ids

    assert len(prompt_token_ids(prompt, tok)) == 12
    assert middle_truncate(prompt, tok, 12) == prompt
    assert middle_truncate(prompt, tok, 6) == "a bi j"            # [<s> a b] + [i j </s>], both skipped
    assert middle_truncate(prompt, tok, 6, style="v2") == "a b i j"


def test_middle_truncation_reuses_the_callers_ids():
    from solopo.eval.truncation import prompt_token_ids

    tok = _word_tokenizer(bos=True)
    prompt = " ".join(WORDS)
    ids = prompt_token_ids(prompt, tok)
    assert ids == [1, *range(2, 12)]                            # default special tokens, no truncation
    assert middle_truncate(prompt, tok, 6, ids=ids) == middle_truncate(prompt, tok, 6)
    assert middle_truncate(prompt, tok, 6, ids=ids[:6]) == prompt  # given ids that fit: nothing is cut


def test_middle_truncation_counts_default_special_tokens():
    tok = _word_tokenizer(bos=True)
    prompt = " ".join(WORDS)                                   # <s> + 10 tokens = 11
    assert middle_truncate(prompt, tok, 11) == prompt
    assert middle_truncate(prompt, tok, 6) == "a bh i j"         # first half is [<s>, a, b]; <s> skipped on decode


# ----------------------------------------------------------------------------- scoring maths


def test_score_item_extraction_and_max_over_gold():
    out = "Eiffel built it in Paris.\nThe answer is: Eiffel Tower."
    assert lb1.score_item(out, ["Eiffel Tower"], "solopo_cot") == ("Eiffel Tower", 1.0)
    pred, f1 = lb1.score_item(out, ["Eiffel Tower"], "official")        # whole output, as LongBench does
    # normalised: "eiffel built it in paris answer is eiffel tower" (9 tokens), 2 in common: P=2/9, R=1
    assert pred == out and f1 == pytest.approx(4 / 11)
    assert lb1.score_item("The answer is: tower", ["Eiffel Tower", "tower"], "solopo_cot")[1] == 1.0
    assert lb1.score_item("The answer is: x", [], "solopo_cot")[1] == 0.0


def test_dataset_score_and_aggregate():
    assert lb1.dataset_score([1.0, 0.5, 0.0]) == 50.0
    assert lb1.dataset_score([1 / 3]) == 33.33
    assert lb1.dataset_score([2 / 3]) == 66.67
    per = {"narrativeqa": 10.0, "qasper": 20.0, "multifieldqa_en": 30.0,
           "hotpotqa": 40.0, "2wikimqa": 50.0, "musique": 61.0}
    assert lb1.aggregate(per) == {"s_doc": 20.0, "m_doc": 50.33, "avg": 35.17}
    assert lb1.aggregate({"musique": 12.5}) == {"s_doc": None, "m_doc": 12.5, "avg": 12.5}


# ----------------------------------------------------------------------------- fixtures and loaders


def test_fixture_round_trip_and_determinism(tmp_path):
    recs = river_records()
    cfg = {"fixture_items": 3}
    paths = lb1.build_fixture(recs, tmp_path / "a", cfg, seed=1)
    assert [p.name for p in paths] == [f"{n}.jsonl" for n in lb1.DATASETS]
    items = lb1.load_items(tmp_path / "a", cfg)
    assert len(items) == 18
    for it in items:
        assert set(it) == set(lb1.FIELDS) and it["all_classes"] is None and it["language"] == "en"
        assert it["length"] == len(it["context"].split())
        rec = next(r for r in recs if r["question"] == it["input"])
        assert it["answers"] == [rec["answer"], *rec["answer_aliases"]]
        if it["dataset"] in lb1.M_DOC:
            assert it["context"].startswith(f"Passage 1:\n{rec['paragraphs'][0]['title']}\n")
            assert "\nPassage 3:\n" in it["context"]
        else:
            assert "Passage" not in it["context"] and rec["paragraphs"][1]["paragraph_text"] in it["context"]
    lb1.build_fixture(recs, tmp_path / "b", cfg, seed=1)
    lb1.build_fixture(recs, tmp_path / "c", cfg, seed=2)
    same = [(tmp_path / "a" / p.name).read_bytes() == (tmp_path / "b" / p.name).read_bytes() for p in paths]
    diff = [(tmp_path / "a" / p.name).read_bytes() == (tmp_path / "c" / p.name).read_bytes() for p in paths]
    assert all(same) and not all(diff)
    assert len(lb1.load_items(tmp_path / "a", {"limit": 1, "datasets": ["qasper", "musique"]})) == 2


def _write_rows(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


_GOOD = {"input": "q", "context": "c", "answers": ["a"], "length": 1, "dataset": "musique", "language": "en",
         "all_classes": None, "_id": "x"}


@pytest.mark.parametrize("bad, match", [
    ({k: v for k, v in _GOOD.items() if k != "answers"}, "missing field 'answers'"),
    ({**_GOOD, "answers": "a"}, "field 'answers' should be list"),
    ({**_GOOD, "answers": [1]}, "list of strings"),
    ({**_GOOD, "length": "12"}, "field 'length' should be int"),
    ({**_GOOD, "dataset": "hotpotqa"}, "field 'dataset'"),
])
def test_load_items_schema_errors_name_file_and_line(tmp_path, bad, match):
    _write_rows(tmp_path, "musique", [_GOOD, bad])
    with pytest.raises(DataError, match=match) as e:
        lb1.load_items(tmp_path, {"datasets": ["musique"]})
    assert f"{tmp_path / 'musique.jsonl'}:2:" in str(e.value)


def test_load_items_missing_file_and_bad_json(tmp_path):
    with pytest.raises(DataError, match="qasper.jsonl: missing"):
        lb1.load_items(tmp_path, {"datasets": ["qasper"]})
    (tmp_path / "qasper.jsonl").write_text('{"input": \n')
    with pytest.raises(DataError, match=r"qasper.jsonl:1: invalid JSON"):
        lb1.load_items(tmp_path, {"datasets": ["qasper"]})


def test_download_offline_fails_with_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError) as e:
        lb1.download(tmp_path / "out", {})
    msg = str(e.value)
    assert "LongBench v1" in msg and "HF_HUB_OFFLINE=1" in msg and "\n" not in msg


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_scores_exactly_with_scripted_backend(tmp_path):
    recs = river_records()
    lb1.build_fixture(recs, tmp_path, {"fixture_items": 2}, seed=0)
    items = lb1.load_items(tmp_path, {})
    tok = tiny_tokenizer([r["question"] + " " + r["answer"] for r in recs])
    script = {}
    for r in recs:  # even records: right final answer; odd: gold only in the reasoning
        script[r["question"]] = (f"The answer is: {r['answer']}." if int(r["id"].split("__")[1].split("_")[0]) % 2 == 0
                                 else f"{r['answer']} is tempting, but the answer is: Mossgate.")
    backend = FakeBackend(tok, scripted(script))
    cfg = {"max_length": 10_000, "max_new_tokens": 9, "batch_size": 3}
    result, preds = lb1.evaluate(backend, items, cfg)
    assert len(backend.calls) == 6 and all(c.max_new_tokens == 9 and c.temperature == 0.0 for _, c in backend.calls)
    assert all(p.startswith("<|im_start|>user\n") and p.endswith("<|im_start|>assistant\n")
               for ps, _ in backend.calls for p in ps)
    expected = {}
    for name in lb1.DATASETS:
        rows = [p for p in preds if p["dataset"] == name]
        assert len(rows) == 2
        for p in rows:
            assert p["score"] == (1.0 if p["prediction"] != "Mossgate" else 0.0)
        expected[name] = round(100 * sum(p["score"] for p in rows) / 2, 2)
    assert result["subsets"] == expected
    assert result["benchmark"] == "longbench_v1" and result["n"] == 12
    assert result["s_doc"] == round(sum(expected[d] for d in lb1.S_DOC) / 3, 2)
    assert result["avg"] == result["score"] == round(sum(expected.values()) / 6, 2)
    assert result["settings"] == {"prompt": "solopo_cot", "max_length": 10_000, "max_new_tokens": 9,
                                  "temperature": 0.0, "answer_extraction": True}
    official, opreds = lb1.evaluate(FakeBackend(tok, scripted(script)), items, {**cfg, "prompt": "official"})
    assert official["settings"]["max_new_tokens"]["musique"] == 32 and not official["settings"]["answer_extraction"]
    assert all(p["prediction"] == p["output"] for p in opreds)  # no extraction: the whole output is scored
    assert all(0.0 < p["score"] < 1.0 for p in opreds)           # gold plus extra words: partial F1


def test_evaluate_end_to_end_tiny_model(tmp_path):
    from solopo.generate.hf import HFBackend

    recs = river_records()
    lb1.build_fixture(recs, tmp_path, {"fixture_items": 2}, seed=3)
    items = lb1.load_items(tmp_path, {})
    corpus = [p["paragraph_text"] for r in recs for p in r["paragraphs"]] + [qa_prompt("x", r["question"]) for r in recs]
    model, tok = tiny_lm(corpus)
    cfg = {"max_length": 64, "max_new_tokens": 4, "batch_size": 4}
    result, preds = lb1.evaluate(HFBackend(None, model=model, tokenizer=tok), items, cfg)
    assert result["n"] == 12 and set(result["subsets"]) == set(lb1.DATASETS)
    assert all(0.0 <= v <= 100.0 for v in result["subsets"].values())
    assert all(p["truncated"] and p["raw_prompt_tokens"] > 64 for p in preds)
    assert all(p["prompt_tokens"] <= 64 + 16 for p in preds)  # truncated prompt plus the chat wrapper
    again, preds2 = lb1.evaluate(HFBackend(None, model=model, tokenizer=tok), items, cfg)
    assert [p["output"] for p in preds] == [p["output"] for p in preds2] and again == result  # greedy
