"""RULER QA: readers, length-fitted synthesis, scoring, and one tiny-model evaluate."""
from __future__ import annotations

import json
import os
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from solopo.artifacts import DataError  # noqa: E402
from solopo.eval import ruler  # noqa: E402
from tests.eval.helpers import records_tokenizer, tiny_backend, valley_records  # noqa: E402


def _tiny_tokenizer(records):
    return records_tokenizer(records, [ruler.RULER_QA_TEMPLATE,
                                       "Document 1:\nThe answer is: yes. Think step by step."])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    recs = valley_records()
    tok = _tiny_tokenizer(recs)
    out = tmp_path_factory.mktemp("ruler_src")
    sources = ruler.build_fixture(recs, out, {"fixture_more_paragraphs": 4}, seed=1)
    return recs, tok, sources


CFG = {"sets": ["squad", "hotpotqa", "musique"], "lengths": [512, 768], "num_samples": 3, "prompt": "solopo_cot",
       "tokens_to_generate": 32, "max_new_tokens": 4, "context_mode": "all", "batch_size": 8}


@pytest.fixture(scope="module")
def items(world):
    _, tok, sources = world
    return ruler.build_items(sources, tok, CFG, seed=7)


def test_fixture_sources_follow_released_schemas(world):
    recs, _, sources = world
    squad = json.loads(sources["squad"].read_text())
    assert squad["version"] == "v2.0"
    n_answerable = 0
    for art in squad["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                for a in qa["answers"]:
                    assert para["context"][a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
                n_answerable += not qa["is_impossible"]
    qas, docs = ruler.read_squad(sources["squad"])
    assert len(qas) == n_answerable == 3  # the unanswerable question is dropped
    assert docs == sorted(set(docs)) and all(q["more_context"] and q["context"][0] not in q["more_context"] for q in qas)
    hot = json.loads(sources["hotpotqa"].read_text())
    assert all(h["type"] == "bridge" and h["level"] == "hard" and len(h["supporting_facts"]) == 2 for h in hot)
    hq, hdocs = ruler.read_hotpotqa(sources["hotpotqa"])
    assert all(len(q["context"]) == 6 for q in hq)
    title, sents = hot[0]["context"][0]
    assert f"{title}\n{''.join(sents)}" in hdocs
    mq, _ = ruler.read_musique(sources["musique"])
    ids = {q["id"] for q in mq} | {h["_id"][7:] for h in hot} | {q["id"][6:] for q in qas}
    assert len(ids) == len(recs)  # three disjoint thirds
    hs, _ = ruler.read_hotpotqa(sources["hotpotqa"], context_mode="supporting")
    assert all(len(q["context"]) == 2 and len(q["more_context"]) == 4 for q in hs)


def test_synthesis_fits_contains_gold_and_numbers_documents(world, items):
    _, tok, sources = world
    assert len(items) == 3 * 2 * 3
    docs = {s: ruler.read_source(s, p)[1] for s, p in sources.items()}
    qas = {s: ruler.read_source(s, p)[0] for s, p in sources.items()}
    for it in items:
        full = ruler.count_tokens(tok, it["input"] + it["answer_prefix"]) + 32
        assert full == it["length_w_model_temp"] <= it["target_length"]
        assert it["length"] < it["length_w_model_temp"]
        nums = [int(x) for x in re.findall(r"^Document (\d+):$", it["input"], flags=re.M)]
        assert nums == list(range(1, it["num_docs"] + 1))
        qa = qas[it["set"]][it["index"]]
        for g in qa["context"]:
            assert docs[it["set"]][g] in it["input"]
        assert it["outputs"] == qa["outputs"] and qa["query"] in it["input"]
        assert it["input"].startswith("<|im_start|>user\n") and it["input"].endswith("<|im_start|>assistant\n")
        # the search is tight: one more (longest) document would not have fitted
        if it["num_docs"] < len(docs[it["set"]]):
            longest = max(ruler.count_tokens(tok, d) for d in docs[it["set"]])
            assert it["length_w_model_temp"] > it["target_length"] - longest - 12
    by = {(it["set"], it["index"]): [] for it in items}
    for it in items:
        by[(it["set"], it["index"])].append(it["num_docs"])
    assert all(a <= b for a, b in by.values())  # longer target, at least as many docs


def test_deterministic_and_per_sample_gold_positions(world, items):
    _, tok, sources = world
    again = ruler.build_items(sources, tok, CFG, seed=7)
    assert again == items
    other = ruler.build_items(sources, tok, CFG, seed=8)
    assert [i["input"] for i in other] != [i["input"] for i in items]
    squad = [tuple(it["gold_doc_positions"]) for it in items if it["set"] == "squad"]
    assert len(set(squad)) > 1  # RULER's fixed-seed shuffle would put every gold doc at one index


def test_search_raises_when_gold_does_not_fit(world):
    _, tok, sources = world
    with pytest.raises(ValueError, match=r"ruler musique sample 0 .*do not fit max_seq_length 200"):
        ruler.build_items({"musique": sources["musique"]}, tok, dict(CFG, sets=["musique"], lengths=[200]), seed=0)
    # supporting-only gold makes the short target feasible
    its = ruler.build_items({"musique": sources["musique"]}, tok,
                            dict(CFG, sets=["musique"], lengths=[300], context_mode="supporting"), seed=0)
    assert all(i["length_w_model_temp"] <= 300 and len(i["gold_doc_positions"]) == 2 for i in its)


def test_an_item_the_source_cannot_fill_stops_with_one_line(world):
    """A source whose every document together stays under 95 % of a length (a small fixture at a paper
    length) would give items scored as that length while shorter: it stops, naming set, length and size."""
    from solopo.artifacts import DataError

    _, tok, sources = world
    with pytest.raises(DataError, match=r"ruler squad at 20000 tokens: all \d+ documents of the source fill only \d+ "
                                        r"tokens .*data\.toy\.dev_questions"):
        ruler.build_items({"squad": sources["squad"]}, tok, dict(CFG, sets=["squad"], lengths=[20000]), seed=0)


def test_ruler_native_prompt(world):
    _, tok, sources = world
    its = ruler.build_items({"squad": sources["squad"]}, tok, dict(CFG, sets=["squad"], lengths=[400], prompt="ruler"),
                            seed=0)
    it = its[0]
    assert it["answer_prefix"] == " Answer:"
    assert "Only give me the answer and do not output any other words." in it["input"]
    assert it["input"].endswith("<|im_start|>assistant\n")
    assert it["length_w_model_temp"] == ruler.count_tokens(tok, it["input"] + " Answer:") + 32 <= 400
    with pytest.raises(ValueError, match="allowed values"):
        ruler.build_items({"squad": sources["squad"]}, tok, dict(CFG, sets=["squad"], prompt="nope"), seed=0)


def test_generate_input_output(world):
    _, tok, sources = world
    qas, docs = ruler.read_squad(sources["squad"])
    synth = ruler._Synth("squad", qas, docs, tok, "solopo_cot", 32, 0)
    ctx = ruler.generate_input_output(synth, 0, 4)
    assert ctx.count("Document ") == 4 and docs[qas[0]["context"][0]] in ctx


def test_readers_raise_data_error_with_location(tmp_path, world):
    recs = world[0]
    p = tmp_path / "m.jsonl"
    bad = dict(recs[0])
    del bad["answer"]
    p.write_text(json.dumps(recs[1]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(p))}:2: field 'answer'"):
        ruler.read_musique(p)
    p.write_text(json.dumps(recs[1]) + "\n{broken\n")
    with pytest.raises(DataError, match=rf"{re.escape(str(p))}:2: invalid JSON"):
        ruler.read_musique(p)
    s = tmp_path / "squad.json"
    s.write_text(json.dumps({"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}))
    with pytest.raises(DataError, match=r"squad.json: data\[0\].paragraphs\[0\]: paragraph needs a 'context'"):
        ruler.read_squad(s)
    s.write_text('{"data": [\n  {"title": \n')
    with pytest.raises(DataError, match=r"squad.json:3: invalid JSON"):
        ruler.read_squad(s)
    h = tmp_path / "hot.json"
    h.write_text(json.dumps([{"_id": "a1", "question": "q", "answer": "x", "context": [["T", "not a list"]]}]))
    with pytest.raises(DataError, match=r"hot.json: item 0 \(_id='a1'\) context\[0\]"):
        ruler.read_hotpotqa(h)


class _FixedBackend:
    def __init__(self, outputs):
        self.outputs, self.tokenizer = outputs, None

    def generate(self, prompts, cfg):
        assert cfg.temperature == 0.0
        return [[self.outputs[i % len(self.outputs)]] for i in range(len(prompts))]


def test_scoring_extracted_vs_whole_output():
    items = [
        {"set": "squad", "target_length": 256, "index": 0, "outputs": ["Paris"]},
        {"set": "squad", "target_length": 256, "index": 1, "outputs": ["Rome", "Roma"]},
        {"set": "musique", "target_length": 256, "index": 0, "outputs": ["Oslo"]},
        {"set": "squad", "target_length": 512, "index": 0, "outputs": ["Paris"]},
    ]
    for it in items:
        it.update(input="q", answer_prefix="")
    outs = ["Paris is in France, but the capital asked for is Lyon.\nThe answer is: Lyon.",  # whole only
            "Step one.\nThe answer is: ROMA.",  # both (case-insensitive, alias)
            "Hmm\x07 no idea",  # neither
            "The answer is: paris"]  # both
    result, preds = ruler.evaluate(_FixedBackend(outs), items, {"max_new_tokens": 8})
    assert result["subsets"] == {"squad_256": 50.0, "musique_256": 0.0, "squad_512": 100.0}
    assert result["by_length"] == {"256": 25.0, "512": 100.0}
    assert result["score"] == 62.5 and result["by_set"] == {"squad": 75.0, "musique": 0.0}
    assert result["whole_output"]["subsets"]["squad_256"] == 100.0
    assert result["whole_output"]["score"] == 75.0
    assert preds[0]["extracted"] == "Lyon" and preds[0]["correct_whole_output"] and not preds[0]["correct_extracted"]
    assert preds[2]["pred"] == "Hmm\n no idea"  # RULER post-processing
    assert result["n"] == 4 and result["benchmark"] == "ruler"
    lenient, _ = ruler.evaluate(_FixedBackend(outs), items, {"primary": "whole_output"})
    assert lenient["score"] == 75.0 and lenient["extracted"]["score"] == 62.5


def test_download_refuses_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="offline"):
        ruler.download(tmp_path, {})
    assert not any(tmp_path.iterdir())


def test_evaluate_end_to_end_tiny_model(world, items):
    _, tok, _ = world
    backend = tiny_backend(tok)
    sub = [it for it in items if it["target_length"] == 512]
    result, preds = ruler.evaluate(backend, sub, CFG, seed=0)
    assert set(result["subsets"]) == {"squad_512", "hotpotqa_512", "musique_512"}
    assert result["n"] == len(preds) == 9 and set(result["by_length"]) == {"512"}
    assert 0.0 <= result["score"] <= 100.0 and result["settings"]["max_new_tokens"] == 4
    again, _ = ruler.evaluate(backend, sub, CFG, seed=0)
    assert again == result  # greedy


# ----------------------------------------------------------------------------- which MuSiQue questions
HOPS_IN_FILE = [("2hop", 18), ("3hop1", 12), ("4hop3", 6)]  # 2-hop first, as the released dev file


def _hop_ordered_musique(tmp_path, seed: int = 5):
    """A MuSiQue jsonl listing every 2-hop question first, then 3-hop, then 4-hop (ids carry the hop prefix)."""
    from tests.eval.helpers import valley_records

    recs = valley_records(n=sum(n for _, n in HOPS_IN_FILE), n_other=1, seed=seed)
    k = 0
    for prefix, n in HOPS_IN_FILE:
        for j in range(n):
            recs[k]["id"] = f"{prefix}__{k}_{j}"
            k += 1
    p = tmp_path / "musique_ans_v1.0_dev.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs, p


def _hop(qid: str) -> str:
    return qid.split("__")[0][:4]


def test_musique_questions_keep_the_files_hop_mix(tmp_path):
    """The first N questions of a 2-hop-first file are all 2-hop; the drawn set keeps the pool's hop mix
    (36 = 18/12/6 -> 12 drawn = 6/4/2), with the same draw for the same seed and the rule recorded."""
    recs, path = _hop_ordered_musique(tmp_path)
    tok = _tiny_tokenizer(recs)
    cfg = dict(CFG, sets=["musique"], lengths=[512], num_samples=12, context_mode="supporting")
    items = ruler.build_items({"musique": path}, tok, cfg, seed=3)
    mix = {h: sum(_hop(it["id"]) == h for it in items) for h in ("2hop", "3hop", "4hop")}
    assert mix == {"2hop": 6, "3hop": 4, "4hop": 2}
    again, selection = ruler.build_dataset({"musique": path}, tok, cfg, seed=3)
    assert again == items
    assert selection["musique"]["hop_mix"] == {"pool": {"2hop": 18, "3hop": 12, "4hop": 6}, "drawn": mix}
    assert selection["musique"]["rule"] == ruler.STRATIFIED and selection["musique"]["pool"] == 36
    other = ruler.select_questions("musique", ruler.read_musique(path)[0], 12, seed=4)[0]
    assert other != [it["index"] for it in items]  # another seed, another draw (same mix)


def test_squad_and_hotpotqa_keep_rulers_first_n(world):
    _, _, sources = world
    for set_name in ("squad", "hotpotqa"):
        qas = ruler.read_source(set_name, sources[set_name])[0]
        picked, how = ruler.select_questions(set_name, qas, 2, seed=9)
        assert picked == [0, 1] and how == {"rule": ruler.FIRST_N, "pool": len(qas), "drawn": 2}


def test_dataset_manifest_records_the_musique_hop_mix(tmp_path, tiny_lm_dir, toy_records, monkeypatch):
    """bench_data on released files whose MuSiQue part is 2-hop first: the folder manifest names each set's
    rule and MuSiQue's hop mix (pool and drawn), and the drawn questions are not only 2-hop."""
    import yaml

    from solopo import pipeline
    from solopo.data.toy_world import generate_records
    from tests.conftest import SIZES
    from tests.reduced_pipeline import ROOT

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    cfg["eval"]["ruler"].update(source="hub", lengths=[512], num_samples=6)
    sources = tmp_path / "ruler_sources"
    ruler.build_fixture(toy_records, sources, cfg["eval"]["ruler"], 42)
    rows = sorted(generate_records(24, 7, {2: 0.5, 3: 0.3, 4: 0.2}, SIZES), key=lambda r: int(r["id"][0]))
    assert {_hop(r["id"]) for r in rows[:6]} == {"2hop"} and len({_hop(r["id"]) for r in rows}) == 3
    (sources / "musique_ans_v1.0_dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bench"
    pipeline.bench_data("ruler", None, tiny_lm_dir, str(out), cfg, 42, str(tmp_path / "b.log"), str(sources))
    sel = json.loads((out / "manifest.json").read_text())["selection"]
    assert sel["squad"]["rule"] == sel["hotpotqa"]["rule"] == ruler.FIRST_N
    assert sel["musique"]["rule"] == ruler.STRATIFIED and sel["musique"]["pool"] == 24
    pool = {h: sum(_hop(r["id"]) == h for r in rows) for h in ("2hop", "3hop", "4hop")}
    assert sel["musique"]["hop_mix"]["pool"] == pool
    drawn: dict[str, int] = {}
    for it in (json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()):
        if it["set"] == "musique":
            drawn[_hop(it["id"])] = drawn.get(_hop(it["id"]), 0) + 1
    assert sel["musique"]["hop_mix"]["drawn"] == dict(sorted(drawn.items()))
    assert sum(drawn.values()) == 6 and len(drawn) >= 2  # not the file's first six (all 2-hop)
    assert all(abs(drawn.get(h, 0) - 6 * n / 24) < 1 for h, n in pool.items())  # the pool's proportions
