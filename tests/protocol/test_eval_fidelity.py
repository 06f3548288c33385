"""Evaluation fidelity to the paper and the benchmarks' protocols: each test fails on the code before the fix (checked once)."""
from __future__ import annotations

from solopo.eval import longbench_v2 as lb2
from solopo.eval.metrics import extract_answer
from tests.eval.helpers import FakeBackend, river_records, tiny_tokenizer


# ----------------------------------------------------------------------------- item 7
def test_answer_on_the_line_after_the_marker_is_extracted():
    assert extract_answer("Step 1 ... Step 2 ...\nThe answer is:\nHouston Baptist University.") == \
        "Houston Baptist University"
    assert extract_answer("so.\n**The answer is:**\n\n  1960\n") == "1960"
    assert extract_answer("The answer is: 1960\nDone") == "1960"  # same-line answers unchanged


def test_longbench_v2_re_asks_empty_outputs_and_keeps_them_in_the_denominator(tmp_path):
    [path] = lb2.build_fixture(river_records(), tmp_path, {"fixture_items": 3}, seed=0)
    items = lb2.load_items(path, {})
    tok = tiny_tokenizer([it["question"] for it in items])

    def respond(prompt, k):
        it = next(i for i in items if i["question"] in prompt)
        if it is items[0]:
            return ""  # never answers
        if it is items[1] and k < 2:
            return "  "  # answers on the third ask
        return f"The correct answer is ({it['answer']})"

    backend = FakeBackend(tok, respond)
    result, preds = lb2.evaluate(backend, items, {"max_length": 10_000})  # default retries
    assert len(backend.calls) == 1 + lb2.EMPTY_RETRIES == 6
    assert preds[1]["judge"] and not preds[0]["judge"]
    assert result["n"] == 3 and result["n_empty"] == 1 and result["overall"] == 66.7  # not 100 over 2


# ----------------------------------------------------------------------------- items 4, 5
LLAMA_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n'"
                  " + m['content'] + '<|eot_id|>' }}{% endfor %}"
                  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def llama_like_tokenizer(corpus):
    """A BPE tokenizer that, like Llama-3.1's, adds BOS by default AND has `bos_token` in its chat template."""
    from tokenizers import processors

    tok = tiny_tokenizer(list(corpus) + ["<|start_header_id|>user<|end_header_id|>"])
    tok.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    bos = tok.convert_tokens_to_ids(tok.bos_token)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", pair=f"{tok.bos_token} $A $B", special_tokens=[(tok.bos_token, bos)])
    tok.chat_template = LLAMA_TEMPLATE
    return tok


def _fake_vllm(monkeypatch, tokenizer, calls):
    import sys
    import types

    class FakeLLM:
        def __init__(self, **kw):
            calls["init"] = kw

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, params, use_tqdm):
            calls["prompts"], calls["params"] = prompts, params
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="ok")]) for _ in prompts]

    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = FakeLLM, lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)


def test_backends_receive_the_training_token_ids_with_one_bos(monkeypatch):
    from solopo.generate import GenerationConfig
    from solopo.generate.chat import format_chat
    from solopo.generate.hf import HFBackend
    from solopo.generate.vllm import VLLMBackend
    from solopo.train.forward import tokenize_pair
    from tests.eval.helpers import tiny_qwen2

    user = "Answer the question. Which river flows through Tarnby?"
    tok = llama_like_tokenizer([user])
    bos = tok.bos_token_id
    ids, n_resp = tokenize_pair(tok, user, "The answer is: Aven", 10**6)
    training_prompt = ids[:-n_resp]
    assert training_prompt.count(bos) == 1
    calls = {}
    _fake_vllm(monkeypatch, tok, calls)
    VLLMBackend("m").generate([format_chat(tok, user)], GenerationConfig(max_new_tokens=4))
    assert calls["prompts"] == [{"prompt_token_ids": training_prompt}]  # text would get a second BOS

    hf = HFBackend(None, model=tiny_qwen2(tok), tokenizer=tok)
    seen = []
    real = hf.model.generate
    monkeypatch.setattr(hf.model, "generate", lambda **kw: seen.append(kw["input_ids"][0].tolist()) or real(**kw))
    hf.generate([format_chat(tok, user)], GenerationConfig(max_new_tokens=2))
    assert seen == [training_prompt]


def test_hf_decoding_ignores_the_checkpoints_generation_config():
    import copy

    from solopo.generate import GenerationConfig
    from solopo.generate.chat import format_chat
    from solopo.generate.hf import HFBackend
    from tests.eval.helpers import tiny_qwen2

    tok = tiny_tokenizer(["Which river flows through Tarnby? The answer is: River Aven."] * 3)
    clean = HFBackend(None, model=tiny_qwen2(tok), tokenizer=tok)
    prompts = [format_chat(tok, "Which river flows through Tarnby?")]
    greedy, sampled = GenerationConfig(max_new_tokens=6), GenerationConfig(max_new_tokens=6, temperature=1.0, seed=3)
    want_g, want_s = clean.generate(prompts, greedy), clean.generate(prompts, sampled)
    first = tok(want_g[0][0], add_special_tokens=False)["input_ids"][0]
    # a checkpoint whose generation_config.json changes decoding (as Qwen2.5's does)
    model = copy.deepcopy(clean.model)
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.suppress_tokens = [first]
    model.generation_config.top_k = 1
    shipped = HFBackend(None, model=model, tokenizer=tok)
    assert shipped.generate(prompts, greedy) == want_g and shipped.generate(prompts, sampled) == want_s


def test_hf_and_vllm_are_handed_the_same_decoding_parameters():
    from solopo.generate import GenerationConfig
    from solopo.generate.hf import hf_generation_config
    from solopo.generate.vllm import sampling_kwargs

    tok = tiny_tokenizer(["a b c"])
    for cfg in (GenerationConfig(max_new_tokens=6), GenerationConfig(max_new_tokens=6, temperature=1.0, seed=3),
                GenerationConfig(max_new_tokens=9, temperature=0.85, top_p=0.9, n=4, seed=1)):
        hf = hf_generation_config(cfg, tok)
        v = sampling_kwargs(cfg)
        assert v["repetition_penalty"] == hf.repetition_penalty == 1.0 and v["max_tokens"] == hf.max_new_tokens
        assert v["n"] == hf.num_return_sequences and (v["temperature"] > 0) == hf.do_sample
        if hf.do_sample:
            assert (v["temperature"], v["top_p"], v["top_k"]) == (hf.temperature, hf.top_p, hf.top_k)


# ----------------------------------------------------------------------------- item 3
def test_ruler_fits_context_plus_template_plus_decoding_budget(tmp_path):
    from solopo.eval import ruler
    from tests.eval.helpers import records_tokenizer, valley_records

    recs = valley_records()
    tok = records_tokenizer(recs, [ruler.RULER_QA_TEMPLATE, "Document 1:\nThe answer is: yes. Think step by step."])
    sources = ruler.build_fixture(recs, tmp_path, {"fixture_more_paragraphs": 2}, seed=1)
    cfg = {"sets": ["hotpotqa"], "lengths": [512], "num_samples": 3, "tokens_to_generate": 32, "max_new_tokens": 200,
           "context_mode": "supporting"}
    items = ruler.build_items(sources, tok, cfg, seed=7)
    for it in items:
        measured = ruler.count_tokens(tok, it["input"] + it["answer_prefix"])  # chat template included
        assert measured + 200 <= 512 and measured > 512 - 200 - 80  # reserved, and still filled
    stats = ruler.token_stats(items)["hotpotqa_512"]
    assert stats["reserve"] == 200 and stats["max_prompt_plus_reserve"] <= 512 and stats["n"] == 3


# ----------------------------------------------------------------------------- item 6
def test_leaderboard_reports_both_math_scorers_and_both_ifeval_figures():
    from solopo.eval import leaderboard as lb

    out = {
        "results": {
            "leaderboard_ifeval": {"prompt_level_strict_acc,none": 0.70, "inst_level_strict_acc,none": 0.80,
                                   "prompt_level_loose_acc,none": 0.75, "inst_level_loose_acc,none": 0.85},
            # as lm-eval writes it: the group row aggregates exact_match only
            "leaderboard_math_hard": {"exact_match,none": 0.20},
            "leaderboard_math_algebra_hard": {"exact_match,none": 0.10, "exact_match_original,none": 0.30},
            "leaderboard_math_geometry_hard": {"exact_match,none": 0.40, "exact_match_original,none": 0.00},
        },
        "group_subtasks": {"leaderboard_math_hard": ["leaderboard_math_algebra_hard", "leaderboard_math_geometry_hard"]},
        "n-samples": {"leaderboard_ifeval": {"effective": 5}, "leaderboard_math_algebra_hard": {"effective": 3},
                      "leaderboard_math_geometry_hard": {"effective": 1}},
    }
    names = {"ifeval": "leaderboard_ifeval", "math": "leaderboard_math_hard"}
    res = lb.aggregate(out, names)
    assert res["math_metrics"]["exact_match"] == 20.0
    assert abs(res["math_metrics"]["exact_match_original"] - 22.5) < 1e-9  # (3 x 0.3 + 1 x 0) / 4
    assert abs(res["ifeval_metrics"]["leaderboard_strict_mean"] - 75.0) < 1e-9
    # the headlines SoLoPO could have computed: instruction-level strict IFEval, pre-math-verify MATH
    assert res["subsets"]["ifeval"] == 80.0 and abs(res["subsets"]["math"] - 22.5) < 1e-9
    assert res["metric_names"] == {"ifeval": "inst_level_strict_acc", "math": "exact_match_original",
                                   "ifeval_variant": "inst_level_loose_acc", "math_variant": "exact_match"}
    alt = lb.aggregate(out, names, ifeval_metric="leaderboard_strict_mean", math_metric="exact_match")
    assert abs(alt["subsets"]["math"] - 20.0) < 1e-9 and abs(alt["subsets"]["ifeval"] - 75.0) < 1e-9
    assert alt["metric_names"]["math_variant"] == "exact_match_original"
