"""LongBench v2: official templates, extract_choice, breakdown maths, YaRN, fixtures, loaders, evaluate."""
import json

import pytest

from solopo.artifacts import DataError
from solopo.eval import longbench_v2 as lb2
from tests.eval.helpers import FakeBackend, river_records, tiny_lm, tiny_tokenizer

# ----------------------------------------------------------------------------- helpers


def _item(**kw):
    base = {"_id": "id0", "domain": "Single-Document QA", "sub_domain": "Academic", "difficulty": "easy",
            "length": "short", "question": " What? ", "choice_A": " one ", "choice_B": "two", "choice_C": "three",
            "choice_D": "four\n", "answer": "A", "context": "\n The document. \n"}
    return {**base, **kw}


# ----------------------------------------------------------------------------- templates

# prompts/0shot.txt, 0shot_cot.txt, 0shot_cot_ans.txt of THUDM/LongBench, verbatim.
OFFICIAL_0SHOT = ('Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\n'
                  'What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n'
                  '(D) $C_D$\n\nFormat your response as follows: "The correct answer is (insert answer here)".')
OFFICIAL_0SHOT_COT = ('Please read the following text and answer the questions below.\n\n<text>\n$DOC$\n</text>\n\n'
                      'What is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n'
                      '(D) $C_D$\n\nLet\u2019s think step by step:')
OFFICIAL_0SHOT_COT_ANS = ('Please read the following text and answer the questions below.\n\nThe text is too long and '
                          'omitted here.\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n'
                          '(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nLet\u2019s think step by step: $COT$\n\nBased on the '
                          'above, what is the single, most likely answer choice? Format your response as follows: '
                          '"The correct answer is (insert answer here)".')


def test_official_templates_exact():
    assert lb2.TEMPLATE_0SHOT == OFFICIAL_0SHOT
    assert lb2.TEMPLATE_0SHOT_COT == OFFICIAL_0SHOT_COT
    assert lb2.TEMPLATE_0SHOT_COT_ANS == OFFICIAL_0SHOT_COT_ANS
    assert "Let\u2019s" in lb2.TEMPLATE_0SHOT_COT and "Let's" not in lb2.TEMPLATE_0SHOT_COT
    assert "question below" in lb2.TEMPLATE_0SHOT and "questions below" in lb2.TEMPLATE_0SHOT_COT


def test_fill_strips_values():
    filled = lb2.fill(lb2.TEMPLATE_0SHOT, _item())
    assert filled == (
        "Please read the following text and answer the question below.\n\n<text>\nThe document.\n</text>\n\n"
        "What is the correct answer to this question: What?\nChoices:\n(A) one\n(B) two\n(C) three\n(D) four\n\n"
        'Format your response as follows: "The correct answer is (insert answer here)".')
    ans = lb2.fill(lb2.TEMPLATE_0SHOT_COT_ANS, _item(), cot="Because.")
    assert "The document." not in ans and "Let\u2019s think step by step: Because.\n\nBased on" in ans


def test_single_stage_prompt_is_cot_plus_format_request():
    p = lb2.fill(lb2.TEMPLATE_SOLOPO_COT, _item())
    prefix = lb2.fill(OFFICIAL_0SHOT_COT, _item()).rsplit("\n\nLet", 1)[0]
    assert p.startswith(prefix + "\n\nLet\u2019s think step by step")
    assert p.endswith('"The correct answer is (insert answer here)".')
    assert lb2.prompt_kind({}) == "solopo_cot"
    with pytest.raises(ValueError, match="allowed values"):
        lb2.prompt_kind({"prompt": "rag"})


# ----------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("text, expected", [
    ("The correct answer is (B)", "B"),
    ("The correct answer is B", "B"),
    ("**The correct answer is (C)**", "C"),
    ("Reasoning...\nThe correct answer is **(D)**.", "D"),
    ("The correct answer is A. Wait: The correct answer is (B)", "B"),  # the parenthesised regex is tried first
    ("the correct answer is (A)", None),                               # case-sensitive, as the official regex
    ("The correct answer is (E)", None),
    ("I pick (B).", None),
    ("", None),
])
def test_extract_choice(text, expected):
    assert lb2.extract_choice(text) == expected


# ----------------------------------------------------------------------------- breakdown


def _p(difficulty, length, judge, pred="B", skipped=False):
    return {"difficulty": difficulty, "length": length, "judge": judge, "pred": pred, "skipped": skipped}


PREDS = [
    _p("easy", "short", True),
    _p("easy", "medium", False),
    _p("hard", "long", True),
    _p("hard", "short", False, pred=None),
    _p("hard", "medium", True),
    _p("easy", "long", False, skipped=True),  # empty output: not in any denominator
    _p("easy", "short", False),
]


def test_breakdown_maths():
    assert lb2.breakdown(PREDS) == {"overall": 50.0, "easy": 33.3, "hard": 66.7,
                                    "short": 33.3, "medium": 50.0, "long": 100.0}


def test_breakdown_compensated_and_empty_buckets():
    comp = lb2.breakdown(PREDS, compensated=True)  # the unparsable hard/short item counts 0.25
    assert comp["overall"] == 54.2 and comp["hard"] == 75.0 and comp["short"] == 41.7 and comp["easy"] == 33.3
    only_easy = lb2.breakdown([_p("easy", "short", True)])
    assert only_easy == {"overall": 100.0, "easy": 100.0, "hard": None, "short": 100.0, "medium": None, "long": None}
    assert lb2.breakdown([_p("Hard?", "long", True)])["hard"] == 100.0  # anything not "easy" is hard


def test_rope_scaling_for():
    qwen = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert lb2.rope_scaling_for({}) is None
    assert lb2.rope_scaling_for({"yarn": False}, "Qwen/Qwen2.5-7B-Instruct") is None
    assert lb2.rope_scaling_for({"yarn": True}) == qwen
    cfg = {"yarn": True, "yarn_models": ["qwen"]}
    assert lb2.rope_scaling_for(cfg, "Qwen/Qwen2.5-7B-Instruct") == qwen
    assert lb2.rope_scaling_for(cfg, "meta-llama/Llama-3.1-8B-Instruct") is None
    assert lb2.rope_scaling_for({"yarn": {"factor": 2.0}})["factor"] == 2.0


# ----------------------------------------------------------------------------- fixtures and loaders


def test_fixture_round_trip_and_determinism(tmp_path):
    recs = river_records()
    cfg = {"fixture_items": 6}
    [path] = lb2.build_fixture(recs, tmp_path / "a", cfg, seed=5)
    assert path.name == "data.json"
    items = lb2.load_items(path, cfg)
    assert len(items) == 6
    assert {(it["difficulty"], it["length"]) for it in items} == {(d, n) for d in lb2.DIFFICULTIES for n in lb2.LENGTHS}
    answers = {r["answer"] for r in recs}
    for it in items:
        assert list(it) == list(lb2.FIELDS)
        rec = next(r for r in recs if r["question"] == it["question"])
        choices = [it[f"choice_{L}"] for L in lb2.LETTERS]
        assert it[f"choice_{it['answer']}"] == rec["answer"] and len(set(choices)) == 4
        assert set(choices) <= answers
        assert rec["paragraphs"][0]["paragraph_text"] in it["context"]
    assert len({it["answer"] for it in items}) > 1
    lb2.build_fixture(recs, tmp_path / "b", cfg, seed=5)
    lb2.build_fixture(recs, tmp_path / "c", cfg, seed=6)
    assert (tmp_path / "a/data.json").read_bytes() == (tmp_path / "b/data.json").read_bytes()
    assert (tmp_path / "a/data.json").read_bytes() != (tmp_path / "c/data.json").read_bytes()
    [small] = lb2.build_fixture(recs, tmp_path / "d", {}, seed=0)  # default 4 still fills every length bucket
    assert {it["length"] for it in lb2.load_items(small, {})} == set(lb2.LENGTHS)
    assert len(lb2.load_items(path, {"limit": 2})) == 2
    with pytest.raises(ValueError, match="at least 3"):
        lb2.build_fixture(recs, tmp_path / "e", {"fixture_items": 2}, seed=0)


@pytest.mark.parametrize("bad, match", [
    ({k: v for k, v in _item().items() if k != "choice_C"}, "missing field 'choice_C'"),
    (_item(question=3), "field 'question' should be str"),
    (_item(answer="E"), "field 'answer'"),
    (_item(length="tiny"), "field 'length'"),
    (_item(difficulty="medium"), "field 'difficulty'"),
    ("not an object", "expected a JSON object"),
])
def test_load_items_schema_errors_name_file_and_item(tmp_path, bad, match):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([_item(), bad]))
    with pytest.raises(DataError, match=match) as e:
        lb2.load_items(path, {})
    assert f"{path}: item 1:" in str(e.value)


def test_load_items_file_errors(tmp_path):
    with pytest.raises(DataError, match="missing"):
        lb2.load_items(tmp_path / "data.json", {})
    (tmp_path / "data.json").write_text('{"_id": "x"}')
    with pytest.raises(DataError, match="expected a JSON list"):
        lb2.load_items(tmp_path / "data.json", {})
    (tmp_path / "data.json").write_text('[{"_id": ')
    with pytest.raises(DataError, match="invalid JSON"):
        lb2.load_items(tmp_path / "data.json", {})


def test_download_offline_fails_with_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError) as e:
        lb2.download(tmp_path / "out", {})
    msg = str(e.value)
    assert "LongBench v2" in msg and "HF_HUB_OFFLINE=1" in msg and "\n" not in msg


# ----------------------------------------------------------------------------- evaluate


def _fixture_items(tmp_path, n=6, seed=0):
    [path] = lb2.build_fixture(river_records(), tmp_path, {"fixture_items": n}, seed=seed)
    return lb2.load_items(path, {})


def _item_of(prompt, items):
    return next(it for it in items if it["question"] in prompt)


def test_evaluate_scores_exactly_with_scripted_backend(tmp_path):
    items = _fixture_items(tmp_path)
    tok = tiny_tokenizer([it["question"] for it in items])
    wrong = {"A": "B", "B": "C", "C": "D", "D": "A"}

    def respond(prompt, k):
        i = items.index(_item_of(prompt, items))
        if i == 0:
            return "   "                                          # empty after strip: wrong
        if i == 1:
            return "I cannot tell."                               # unparsable: wrong
        letter = items[i]["answer"] if i % 2 == 0 else wrong[items[i]["answer"]]
        return f"Step by step...\n**The correct answer is ({letter})**"

    backend = FakeBackend(tok, respond)
    cfg = {"max_length": 100_000, "max_new_tokens": 11, "temperature": 0.1, "batch_size": 2, "empty_retries": 0}
    result, preds = lb2.evaluate(backend, items, cfg)
    [(prompts, gen)] = backend.calls
    assert gen.max_new_tokens == 11 and gen.temperature == 0.1 and len(prompts) == 6
    assert all("Let\u2019s think step by step, then answer" in p and p.endswith("<|im_start|>assistant\n")
               for p in prompts)
    assert [p["empty"] for p in preds] == [True] + [False] * 5
    assert [p["judge"] for p in preds] == [False, False, True, False, True, False]
    assert preds[1]["pred"] is None
    assert result["n"] == 6 and result["n_empty"] == 1 and result["n_unparsed"] == 2
    expected = lb2.breakdown(preds)
    assert result["overall"] == result["score"] == expected["overall"] == 33.3
    assert result["subsets"] == {k: expected[k] for k in ("easy", "hard", "short", "medium", "long")}
    assert result["settings"]["prompt"] == "solopo_cot" and result["settings"]["temperature"] == 0.1


def test_evaluate_retries_empty_outputs(tmp_path):
    items = _fixture_items(tmp_path, n=3)
    tok = tiny_tokenizer([it["question"] for it in items])

    def respond(prompt, k):
        it = _item_of(prompt, items)
        return "" if (it is items[0] and k == 0) else f"The correct answer is ({it['answer']})"

    backend = FakeBackend(tok, respond)
    result, preds = lb2.evaluate(backend, items, {"empty_retries": 2, "max_length": 10_000})
    assert len(backend.calls) == 2 and len(backend.calls[1][0]) == 1
    assert backend.calls[0][1].seed != backend.calls[1][1].seed
    assert result["n"] == 3 and result["n_skipped"] == 0 and result["overall"] == 100.0


def test_evaluate_official_two_stage_and_0shot(tmp_path):
    items = _fixture_items(tmp_path, n=3)
    tok = tiny_tokenizer([it["question"] for it in items])

    def respond(prompt, k):
        it = _item_of(prompt, items)
        return f"thinking about {it['_id']}" if k == 0 else f"The correct answer is ({it['answer']})"

    backend = FakeBackend(tok, respond)
    cfg = {"prompt": "0shot_cot", "max_new_tokens": 13, "answer_max_new_tokens": 5, "max_length": 10_000}
    result, preds = lb2.evaluate(backend, items, cfg)
    (p1, g1), (p2, g2) = backend.calls
    assert g1.max_new_tokens == 13 and g2.max_new_tokens == 5
    assert all(p.rstrip().endswith("Let\u2019s think step by step:<|im_end|>\n<|im_start|>assistant") for p in p1)
    for p, it in zip(p2, items):
        assert "The text is too long and omitted here." in p and it["context"] not in p
        assert f"Let\u2019s think step by step: thinking about {it['_id']}\n\nBased on the above" in p
    assert result["overall"] == 100.0 and preds[0]["response_cot"] == f"thinking about {items[0]['_id']}"

    backend = FakeBackend(tok, respond)
    result, _ = lb2.evaluate(backend, items, {**cfg, "prompt": "0shot"})
    [(p0, g0)] = backend.calls
    assert g0.max_new_tokens == 5 and all("Format your response as follows" in p for p in p0)
    assert result["overall"] == 0.0  # call 0 answers with the "thinking" text: unparsable


def test_evaluate_end_to_end_tiny_model(tmp_path):
    from solopo.generate.hf import HFBackend

    items = _fixture_items(tmp_path, n=4, seed=1)
    corpus = [lb2.fill(lb2.TEMPLATE_SOLOPO_COT, it) for it in items]
    model, tok = tiny_lm(corpus)
    cfg = {"max_length": 48, "max_new_tokens": 4, "batch_size": 4}
    result, preds = lb2.evaluate(HFBackend(None, model=model, tokenizer=tok), items, cfg)
    assert result["benchmark"] == "longbench_v2" and result["n"] + result["n_skipped"] == 4
    assert all(p["truncated"] and p["raw_prompt_tokens"] > 48 and p["prompt_tokens"] <= 48 + 16 for p in preds)
    assert result["overall"] is None or 0.0 <= result["overall"] <= 100.0
    assert set(result["subsets"]) == {"easy", "hard", "short", "medium", "long"}
