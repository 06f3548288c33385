"""scripts/config_reference.py reads the preset files' comments and structure as a reader would."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cr():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import config_reference
    finally:
        sys.path.pop(0)
    return config_reference


PRESET = """\
# header: describes the preset, not its first key
seed: 1
backbones:
  - name: a                 # id of the backbone
    model: m/a              # hub id
    long_context:           # long setting
      window: 8
  - name: b
    model: m/b
    methods: [x]            # only for b
train:
  # what the commented-out example does
  # seeds: [1, 2]
  lambdas:
    solo: [1.0]             # alpha
  model: {hidden: 8, layers: 2}   # a shape
"""


def test_keys_of_every_list_item_are_addressed_as_items(cr, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(PRESET)
    c = cr.key_comments(f)
    assert c["backbones[].name"] == "id of the backbone" and c["backbones[].model"] == "hub id"
    assert c["backbones[].methods"] == "only for b"  # a key only the second item has
    assert not any(k.startswith("backbones.") for k in c), c
    assert c["backbones[].long_context"] == "long setting"
    assert "seed" not in c  # the file's header comment


def test_a_commented_out_example_key_keeps_its_comment(cr, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(PRESET)
    assert "train.lambdas" not in cr.key_comments(f)


def test_one_line_mapping_is_one_row_and_list_items_show_each_value(cr, tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(PRESET)
    inline = cr.inline_mappings(f)
    assert inline == {"train.model"}
    rows = cr.leaves(yaml.safe_load(PRESET), inline=inline)
    assert rows["train.model"] == {"hidden": 8, "layers": 2} and "train.model.hidden" not in rows
    assert cr.show(rows["backbones[].name"]) == "`a` · `b`"
    assert cr.show(rows["backbones[].methods"]) == "— · `[x]`"


def test_tiny_only_keys_land_in_their_own_section(cr):
    paper = ["backbones", "backbones[].name", "backbones[].long_context", "backbones[].long_context.window",
             "data", "data.source", "data.musique"]
    tiny = ["backbones", "backbones[].name", "backbones[].build", "backbones[].long_context",
            "tiny_model", "tiny_model.seed", "data", "data.source", "data.toy", "data.toy.n"]
    assert cr.merged_order(paper, tiny) == [
        "backbones", "backbones[].name", "backbones[].build", "backbones[].long_context",
        "backbones[].long_context.window", "tiny_model", "tiny_model.seed",
        "data", "data.source", "data.toy", "data.toy.n", "data.musique"]
