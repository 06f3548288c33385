"""CoT sampling: N outputs per prompt at temperature T (SoLoPO §3: N=32, T=0.85).

Work is split in shards of `shard_size` prompts; each finished shard is appended to
`<out>.partial` so an interrupted job resumes where it stopped. Each shard's seed is
derived from (seed, shard index), so a resumed run gives the same samples as an
uninterrupted one. The final file is written atomically. `<out>.partial.key` holds the hash of
everything the samples depend on (inputs, settings, `key` = the model's identity); shards of
other settings or inputs are discarded instead of resumed.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from solopo.artifacts import hash_obj, write_jsonl
from solopo.generate import GenerationConfig
from solopo.generate.chat import format_chat

log = logging.getLogger(__name__)


def sample_responses(backend, rows: list[dict], out_path: str | Path, n: int, temperature: float, top_p: float,
                     max_new_tokens: int, seed: int, shard_size: int = 16, batch_size: int = 8,
                     progress=None, key: str = "") -> list[dict]:
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    key_path = partial.with_name(partial.name + ".key")
    key = hash_obj({"rows": [[r["id"], r["ctx"], r["prompt"], r["answers"]] for r in rows], "n": n,
                    "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "seed": seed,
                    "shard_size": shard_size, "batch_size": batch_size, "key": key})
    done: list[dict] = []
    if partial.exists() and (not key_path.exists() or key_path.read_text().strip() != key):
        log.warning("discarding %s: sampled with other inputs or settings", partial)
        partial.unlink()
    if not partial.exists():
        key_path.write_text(key + "\n")
    if partial.exists():
        with open(partial, encoding="utf-8") as fh:
            for line in fh:
                try:
                    done.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a torn last line from a killed job: redo that shard
        done = done[: len(done) // shard_size * shard_size] if len(done) < len(rows) else done
        log.info("resuming sampling from %s: %d of %d prompts already sampled", partial, len(done), len(rows))
        with open(partial, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in done)
    if progress is not None:
        progress.update(len(done))
    for shard_start in range(len(done), len(rows), shard_size):
        shard = rows[shard_start : shard_start + shard_size]
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, n=n,
                               seed=seed * 100_003 + shard_start // shard_size, batch_size=batch_size)
        prompts = [format_chat(backend.tokenizer, r["prompt"]) for r in shard]
        outs = backend.generate(prompts, cfg)
        new = [{"id": r["id"], "ctx": r["ctx"], "answers": r["answers"], "responses": o} for r, o in zip(shard, outs)]
        with open(partial, "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in new)
        done.extend(new)
        if progress is not None:
            progress.update(len(shard))
    write_jsonl(out_path, done)
    partial.unlink(missing_ok=True)
    key_path.unlink(missing_ok=True)
    return done
