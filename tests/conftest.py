import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

SIZES = {"person": 30, "city": 12, "country": 6, "leader": 6, "spouse": 6}


@pytest.fixture(scope="session")
def toy_records():
    from solopo.data.toy_world import generate_records

    return generate_records(12, 3, {2: 0.7, 3: 0.3}, SIZES)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, toy_records):
    """A random tiny Qwen2 + BPE tokenizer (ChatML) saved as an HF folder."""
    from solopo.data.prompts import QA_COT_TEMPLATE
    from solopo.tiny_model import build_model, build_tokenizer

    corpus = [QA_COT_TEMPLATE] * 5 + [r["cot"] for r in toy_records] + [p["paragraph_text"] for r in toy_records for p in r["paragraphs"]]
    tok = build_tokenizer(corpus, 400)
    model = build_model(tok, 32, 2, 2, 1, 64, 1024, seed=0)
    out = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def reduced_tree(tmp_path_factory):
    """The reduced tiny pipeline (tests/reduced_pipeline.py) run to the end once per session: a folder
    with results/, logs/ and .snakemake/. Shared and read-only: copy what you change."""
    from tests.reduced_pipeline import run_reduced

    tree = tmp_path_factory.mktemp("reduced_tree")
    out = run_reduced(tree, "all")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return tree
