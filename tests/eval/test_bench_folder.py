"""An evaluation verifies the benchmark folder it loads (solopo.validate.check_benchmark_folder): the
manifest's hashes, and every item's required fields, named by file and line."""
import copy
import json
from pathlib import Path

import pytest

from solopo import pipeline
from solopo.artifacts import DataError, write_folder_manifest, write_jsonl
from solopo.report.provenance import load_config
from solopo.validate import check_benchmark_folder

ROOT = Path(__file__).resolve().parents[2]
TINY = load_config([ROOT / "config/tiny.yaml"], ROOT / "config/config.yaml")

RULER_ITEM = {"index": 0, "input": "Answer the question. Q?", "outputs": ["Paris"], "answer_prefix": "", "set": "squad",
              "target_length": 256, "length": 40, "id": "q0"}
LB1_ITEM = {"input": "Q?", "context": "Paris is a city.", "answers": ["Paris"], "length": 4, "dataset": "hotpotqa",
            "language": "en", "all_classes": None, "_id": "a"}
LB2_ITEM = {"_id": "a", "domain": "d", "sub_domain": "s", "difficulty": "easy", "length": "short", "question": "Q?",
            "choice_A": "a", "choice_B": "b", "choice_C": "c", "choice_D": "d", "answer": "A", "context": "text"}
NIAH_ITEM = {"id": "n0", "context": "Paris is a city.", "context_length": 256, "input": "Q?", "answers": ["Paris"],
             "dataset": "single_needle", "depth_percent": 0}


def _folder(tmp_path, name: str, files: dict) -> Path:
    """A benchmark folder as rule bench_data writes it: the files, then a manifest with their hashes."""
    folder = tmp_path / name
    folder.mkdir()
    for fname, rows in files.items():
        if fname.endswith(".jsonl"):
            write_jsonl(folder / fname, rows)
        else:
            (folder / fname).write_text(json.dumps(rows))
    write_folder_manifest(folder, folder, {}, [])
    return folder


def _evaluate(bench, folder, tiny_lm_dir, tmp_path):
    cfg = copy.deepcopy(TINY)  # the configured sets are the items' own: without the check, they would be scored
    cfg["eval"]["ruler"].update(sets=["squad"], lengths=[256])
    cfg["eval"]["longbench_v1"].update(datasets=["hotpotqa"])
    pipeline.evaluate(bench, tiny_lm_dir, str(folder), str(tmp_path / f"base_{bench}.json"), "base", cfg, 1,
                      str(tmp_path / "e.log"), {})


def test_a_ruler_item_with_an_empty_input_is_not_scored(tiny_lm_dir, tmp_path):
    """Was: scored like any other item."""
    folder = _folder(tmp_path, "ruler", {"items.jsonl": [RULER_ITEM, dict(RULER_ITEM, index=1, input=" ")]})
    with pytest.raises(DataError, match=f"^{folder / 'items.jsonl'}:2: empty field\\(s\\) input; a ruler item needs"):
        _evaluate("ruler", folder, tiny_lm_dir, tmp_path)
    assert not (tmp_path / "base_ruler.json").exists()


def test_a_ruler_item_without_outputs_is_named(tiny_lm_dir, tmp_path):
    """Was: KeyError: 'outputs' from inside the scorer."""
    bad = {k: v for k, v in RULER_ITEM.items() if k != "outputs"}
    folder = _folder(tmp_path, "ruler", {"items.jsonl": [RULER_ITEM, RULER_ITEM, bad]})
    with pytest.raises(DataError, match=f"^{folder / 'items.jsonl'}:3: missing field\\(s\\) outputs; every ruler item needs"):
        _evaluate("ruler", folder, tiny_lm_dir, tmp_path)


def test_a_benchmark_file_changed_after_it_was_written_is_refused(tiny_lm_dir, tmp_path):
    folder = _folder(tmp_path, "longbench_v1", {"hotpotqa.jsonl": [LB1_ITEM]})
    write_jsonl(folder / "hotpotqa.jsonl", [dict(LB1_ITEM, answers=["Rome"])])
    with pytest.raises(DataError, match=f"^{folder / 'hotpotqa.jsonl'}: content changed since it was written .*"
                                        "the benchmark data changed after it was written"):
        _evaluate("longbench_v1", folder, tiny_lm_dir, tmp_path)
    (folder / "manifest.json").unlink()  # a folder given by hand: nothing to compare with, its items are still checked
    check_benchmark_folder("longbench_v1", folder)
    write_jsonl(folder / "hotpotqa.jsonl", [dict(LB1_ITEM, answers=[])])
    with pytest.raises(DataError, match=f"^{folder / 'hotpotqa.jsonl'}:1: empty field\\(s\\) answers"):
        check_benchmark_folder("longbench_v1", folder)


@pytest.mark.parametrize("bench,fname,good,bad,where", [
    ("longbench_v1", "hotpotqa.jsonl", LB1_ITEM, dict(LB1_ITEM, context=""), "hotpotqa.jsonl:2"),
    ("longbench_v2", "data.json", LB2_ITEM, dict(LB2_ITEM, question=""), "data.json: item 1"),
    ("niah_plus", "single.jsonl", NIAH_ITEM, dict(NIAH_ITEM, input=""), "single.jsonl:2"),
])
def test_every_benchmark_checks_its_items(tmp_path, bench, fname, good, bad, where):
    check_benchmark_folder(bench, _folder(tmp_path, "ok", {fname: [good, good]}))
    folder = _folder(tmp_path, "bad", {fname: [good, bad]})
    with pytest.raises(DataError, match=f"^{folder}/{where}: empty field"):
        check_benchmark_folder(bench, folder)
