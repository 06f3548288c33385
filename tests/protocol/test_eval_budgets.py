"""Decoding budgets of the evaluation suites against the CoT they decode (both presets)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from solopo.data.prompts import qa_prompt
from solopo.eval import ruler

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", ["config/config.yaml", "config/tiny.yaml"])
def test_ruler_cot_budget_is_at_least_samplings(preset):
    """RULER with the Fig. 6 CoT prompt decodes at least as many tokens as sampling gives the same prompt:
    a shorter budget cuts off answers the sampled (training) outputs were allowed to reach, scoring them wrong."""
    cfg = yaml.safe_load((ROOT / preset).read_text())
    rc, sampling = cfg["eval"]["ruler"], cfg["sampling"]
    assert rc["prompt"] == "solopo_cot"  # both presets evaluate RULER with the CoT prompt
    # the very prompt sampling decodes (contexts are built with qa_prompt)
    assert ruler.task_prompt("solopo_cot", "Document 1:\nX", "Who?") == (qa_prompt("Document 1:\nX", "Who?"), "")
    budget = int(rc.get("max_new_tokens", rc.get("tokens_to_generate", 32)))  # evaluate()'s decoding budget
    assert budget >= int(sampling["max_new_tokens"]), (preset, budget, sampling["max_new_tokens"])
    # the length budget reserves it, and every length still has room for a prompt
    assert ruler.generation_reserve(rc) == budget < min(int(x) for x in rc["lengths"])
