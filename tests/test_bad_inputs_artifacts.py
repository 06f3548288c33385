"""Damaged folder artifacts: a changed byte in the weights is detected and named.

A model folder built by the pipeline carries the sha256 of each of its files in its manifest
(written once, when the folder is written). `solopo check --inputs` re-hashes and reports the
folder DAMAGED naming the file; the model loaders refuse it with the path; a structurally broken
.safetensors file in a folder given by the user (no manifest) is named too.
"""
import json
import shutil
from pathlib import Path

import pytest

from solopo import artifacts, slices
from solopo.artifacts import DataError
from solopo.cli import main
from solopo.config import run_table, validate_config
from solopo.report.provenance import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "config" / "tiny.yaml")


def _zero_middle(path: Path, n: int = 4096) -> None:
    """Zero n bytes in the middle of the tensor data (the header stays valid: only a hash notices)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(n)
    path.write_bytes(bytes(data))


@pytest.fixture()
def model_tree(tmp_path, monkeypatch, tiny_lm_dir):
    """results/train/solo_orpo/model: a real (tiny) model folder with the manifest rule train writes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").symlink_to(ROOT / "config")  # a workflow directory: `solopo check` reads config/config.yaml
    cfg = load_config([TINY], ROOT / "config" / "config.yaml")
    validate_config(cfg)
    model = Path("results/train/solo_orpo/model")
    tmp = model.with_name(".model.tmp")
    shutil.copytree(tiny_lm_dir, tmp)
    artifacts.write_folder_manifest(tmp, model, slices.train(cfg, run_table(cfg)["solo_orpo"]), [], 0.0)
    tmp.rename(model)
    return model


def test_folder_manifest_records_every_file_content(model_tree):
    m = json.loads((model_tree / "manifest.json").read_text())
    assert "model.safetensors" in m["content"]["files"] and "config.json" in m["content"]["files"]
    assert artifacts.hash_path(model_tree) == "c:" + m["content"]["digest"]
    assert artifacts.verify_folder(model_tree) == []


def test_check_inputs_detects_a_changed_byte_in_the_weights(model_tree, capsys):
    assert main(["check", "--configfile", TINY, "--inputs"]) == 0
    capsys.readouterr()
    _zero_middle(model_tree / "model.safetensors")
    assert main(["check", "--configfile", TINY]) == 0  # without --inputs: config slices only
    capsys.readouterr()
    rc = main(["check", "--configfile", TINY, "--inputs"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "DAMAGED        results/train/solo_orpo/model  [train]: results/train/solo_orpo/model/model.safetensors: " \
           "content changed since it was written" in out, out


def test_loader_names_the_damaged_weights_file(model_tree):
    from solopo.generate.hf import load_model_and_tokenizer

    load_model_and_tokenizer(str(model_tree), "cpu", "float32")  # intact: loads
    _zero_middle(model_tree / "model.safetensors")
    with pytest.raises(DataError, match=r"results/train/solo_orpo/model/model\.safetensors: content changed since it was written"):
        load_model_and_tokenizer(str(model_tree), "cpu", "float32")


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "tensors end at byte"),          # truncated copy
    (lambda b: b"\xff" * 8 + b[8:], "header of"),                  # header length overwritten
    (lambda b: b[:8] + b"{" * 20 + b[28:], "header is not JSON"),  # header bytes overwritten
])
def test_loader_names_a_structurally_damaged_safetensors_of_a_given_folder(tmp_path, tiny_lm_dir, damage, message):
    """A folder given by the user (no manifest): the structure of each .safetensors file is checked."""
    from solopo.generate.hf import load_model_and_tokenizer

    given = tmp_path / "given"
    shutil.copytree(tiny_lm_dir, given)
    w = given / "model.safetensors"
    w.write_bytes(damage(w.read_bytes()))
    with pytest.raises(DataError, match=f"{w}: damaged safetensors file .*{message}"):
        load_model_and_tokenizer(str(given), "cpu", "float32")


def test_stage_outputs_record_their_own_bytes(tmp_path, tiny_lm_dir):
    """Each file a stage writes has its sha256 in its manifest: toy_world (atomic writes) and sample (its
    resumable shards renamed into place), so `solopo check --inputs` can see a changed byte in either."""
    from solopo import pipeline

    cfg = load_config([TINY], ROOT / "config" / "config.yaml")
    validate_config(cfg)
    cfg["data"]["toy"].update(train_questions=6, dev_questions=2)
    train, dev = tmp_path / "musique_train.jsonl", tmp_path / "musique_dev.jsonl"
    pipeline.toy_world(str(train), str(dev), cfg, 1, str(tmp_path / "toy.log"))
    ctx = tmp_path / "ctx.jsonl"
    artifacts.write_manifest(ctx, {}, [], None, {"rows": 2})
    artifacts.write_jsonl(ctx, [{"id": f"q{i}", "ctx": "short", "prompt": f"question {i}?", "answers": ["a"]} for i in range(2)])
    cfg["sampling"].update(n=2, max_new_tokens=4, shard_size=2, batch_size=2)
    out = tmp_path / "samples.jsonl"
    pipeline.sample(str(ctx), tiny_lm_dir, str(out), cfg, 1, str(tmp_path / "s.log"), {})
    for f in (train, dev, ctx, out):
        m = artifacts.read_manifest(f)
        assert m["content"]["bytes"] == f.stat().st_size and artifacts.verify_file(f, m, f"{f}.manifest.json") == [], f
    out.write_text(out.read_text().replace('"q1"', '"q7"'))
    assert "content changed since it was written" in artifacts.verify_file(out, artifacts.read_manifest(out), "m")[0]
