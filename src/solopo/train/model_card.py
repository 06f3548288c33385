"""The model card (`README.md`) of every trained model folder, `results/train/<run>/model/`.

It says what the weights are (base model, method, λ, data, config hash, seed, optimiser, DeepSpeed)
and the scores known when training ends (checkpoint selection on LongBench v1, final training
loss); benchmark scores come later, from the evaluation rules, in `results/eval/<run>_<bench>.json`.
The card holds no time or host, so two runs of the same config write the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path


def _fmt(v) -> str:
    return f"`{json.dumps(v)}`" if not isinstance(v, str) else f"`{v}`"


def render_model_card(*, run: str, base_model: str, method: str, lam: float | None, loss: dict, optim: dict,
                      seed: int, deepspeed: str, data: str, n_rows: int, ref: str | None, config_hash: str,
                      input_hashes: dict, stats: dict) -> str:
    from solopo.train.losses import get_method

    spec = get_method(method)
    sel = stats.get("checkpoint_selection") or {}
    rows = [("base model", _fmt(base_model)), ("method", f"`{method}` (loss `{spec.loss}`, dataset `{spec.dataset}`)"),
            ("λ (SoLo-RA / SoLo-KL weight)", "-" if lam is None else _fmt(lam)),
            ("training data", f"`{data}` ({n_rows} rows, sha256 `{input_hashes.get(data, '?')}`)")]
    if ref:
        rows.append(("reference log-probs", f"`{ref}` (sha256 `{input_hashes.get(ref, '?')}`)"))
    rows += [("config hash", f"`{config_hash}` (`config_hash` in manifest.json, which holds the full config slice)"),
             ("seed", str(seed)),
             ("optimiser", f"AdamW, lr {optim.get('learning_rate')}, batch {optim.get('batch_size')} "
                           f"(micro-batch {optim.get('micro_batch_size')}), epochs {optim.get('epochs')}, "
                           f"warm-up {optim.get('warmup_ratio')} + cosine, max length {optim.get('max_length')}, "
                           f"dtype {optim.get('dtype')}"),
             ("loss hyper-parameters", ", ".join(f"{k} {v}" for k, v in loss.items())),
             ("DeepSpeed", "none (one process)" if deepspeed == "none"
              else f"`{deepspeed}`, {stats.get('world_size', '?')} process(es)"),
             ("optimizer steps", str(stats.get("steps"))),
             ("final training loss", "-" if stats.get("final_loss") is None else f"{stats['final_loss']:.4f}")]
    if sel:
        scores = ", ".join(f"{k}: {v:.2f}" for k, v in sel.get("scores", {}).items()) or "none"
        rows.append(("checkpoint selection (LongBench v1 QA avg)", f"selected `{sel.get('selected')}`; {scores}"))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"""---
base_model: {json.dumps(base_model)}
library_name: transformers
pipeline_tag: text-generation
tags: [solopo, {method}]
---

# {run}

`{method}` trained from `{base_model}` by the SoLoPO reproduction (`solopo.pipeline.train`).

| | |
|---|---|
{table}

Benchmark scores: `results/eval/{run}_<benchmark>.json` (written by the evaluation rules after this
card); per-step training metrics: `train_log.jsonl` and TensorBoard files in `tensorboard/` here.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("results/train/{run}/model")
tokenizer = AutoTokenizer.from_pretrained("results/train/{run}/model")
```
"""


def write_model_card(out_dir: str | Path, **kw) -> Path:
    path = Path(out_dir) / "README.md"
    path.write_text(render_model_card(**kw), encoding="utf-8")
    return path
