"""An evaluation's finished generations survive an interrupted job (SIGTERM, Ctrl-C, SIGKILL).

`ResumableBackend` wraps a generation backend for one evaluation job. Every finished piece of a
`generate` call is appended to `<out>.partial` (one JSON line: the piece's key and its outputs)
and a rerun of the job returns it from there instead of generating it again. The first line
holds the job's key (model, backend settings, benchmark settings, seed): a file written under
another key is discarded, never reused. The job deletes the file once its outputs are written
(`finish`), so nothing finished-looking is ever left by an interrupted job.

Pieces: HF `generate` decodes a call in batches of `cfg.batch_size` prompts, each padded on its
own; with greedy decoding a batch's outputs depend only on its prompts, so a call is cut at those
batch boundaries and each batch is one piece (the rerun's outputs are the same bytes). Sampled
decoding seeds each batch by its position in the call, and vLLM schedules a whole call at once:
there the piece is the whole call. A piece's key hashes its prompts, the full decoding parameters
and the batch size, so a changed prompt or setting is generated afresh.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from solopo.artifacts import hash_obj
from solopo.generate import GenerationConfig, decoding_params

log = logging.getLogger(__name__)


def _pieces(backend, prompts: list[str], cfg: GenerationConfig) -> list[list[str]]:
    """The prompts cut where a rerun can reuse a piece without changing a byte (module docstring)."""
    from solopo.generate.hf import HFBackend

    if isinstance(backend, HFBackend) and cfg.temperature <= 0 and cfg.batch_size > 0:
        return [prompts[i : i + cfg.batch_size] for i in range(0, len(prompts), cfg.batch_size)]
    return [prompts]


class ResumableBackend:
    """`backend` with its finished generations kept in `path` (see the module docstring)."""

    def __init__(self, backend, path: str | Path, key: str) -> None:
        self.backend, self.path, self.key = backend, Path(path), key
        self.done: dict[str, list[list[str]]] = self._load()
        self.reused = 0
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"job": key}) + "\n")

    def _load(self) -> dict[str, list[list[str]]]:
        if not self.path.exists():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            head = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            head = {}
        if head.get("job") != self.key:
            log.warning("discarding %s: generated for other inputs or settings", self.path)
            self.path.unlink()
            return {}
        done = {}
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line from a killed job: that piece is generated again
            done[entry["key"]] = entry["outputs"]
        log.info("resuming from %s: %d finished generation piece(s)", self.path, len(done))
        return done

    def __getattr__(self, name: str):
        return getattr(self.backend, name)  # tokenizer, max_model_len, ...: the wrapped backend's

    def generate(self, prompts: list[str], cfg: GenerationConfig, progress=None) -> list[list[str]]:
        from solopo.runtime import check_stop

        outputs: list[list[str]] = []
        for piece in _pieces(self.backend, prompts, cfg):
            check_stop()  # SIGTERM / Ctrl-C: stop between pieces too (vLLM's generate does not look)
            key = hash_obj({"prompts": piece, "decoding": decoding_params(cfg), "batch_size": cfg.batch_size})
            if key in self.done:
                self.reused += 1
                outputs.extend(self.done[key])
                if progress is not None:
                    progress.update(len(piece))
                continue
            out = self.backend.generate(piece, cfg, progress) if progress is not None else self.backend.generate(piece, cfg)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "outputs": out}, ensure_ascii=False) + "\n")
            self.done[key] = out
            outputs.extend(out)
        return outputs

    def finish(self) -> None:
        """The job's outputs are written: the partial file has served its purpose."""
        if self.reused:
            log.info("reused %d finished generation piece(s) from %s", self.reused, self.path)
        self.path.unlink(missing_ok=True)
