"""The config slice of every artifact: one definition for Snakemake, the job, the manifest and `solopo check`.

Each rule's `params: cfg=` is the slice below, so Snakemake's params trigger reruns a job exactly
when a value in its slice changes. The job receives the slice wrapped in `Scoped` instead of the
whole config: reading a config key that is not in the slice raises `SliceError` (instead of
silently using a value Snakemake does not watch). The manifest records the same slice, and
`solopo check` (solopo.report.provenance) recomputes it from the current config. So "what the job
read", "what Snakemake watches", "what the manifest says" and "what check compares" are one thing.

A slice is a projection of the config onto dotted key paths, plus a few derived keys that are
not config paths (`backbone`: the backbone's model id/folder and loading flags; `method` and
`lambda` of a training run).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path

from solopo.artifacts import hash_obj
from solopo.mappings import deep_merge

_MISSING = object()


class SliceError(KeyError):
    """A job read a config key that its rule does not declare (Snakemake would not rerun it on a change)."""

    def __str__(self) -> str:  # KeyError quotes its message; print it as a sentence
        return str(self.args[0])


def project(config: dict, paths: Iterable[str]) -> dict:
    """The sub-config holding exactly `paths` (dotted); a path absent from the config is absent here too."""
    out: dict = {}
    for path in paths:
        keys = path.split(".")
        src = config
        for k in keys:
            src = src.get(k, _MISSING) if isinstance(src, dict) else _MISSING
            if src is _MISSING:
                break
        if src is _MISSING:
            continue
        dst = out
        for k in keys[:-1]:
            dst = dst.setdefault(k, {})
        dst[keys[-1]] = copy.deepcopy(src)
    return out


# Settings a job reads that cannot change an artifact (where training metrics are logged, how long a
# stuck rank waits): readable by every job, never in params or manifests, so changing them reruns nothing.
RUNTIME_ONLY = ("train.report_to", "train.collective_timeout_s")


def without_runtime(view: dict) -> dict:
    """A job's view without the RUNTIME_ONLY settings (and the sections they alone filled): its slice."""
    out = copy.deepcopy(view)
    for path in RUNTIME_ONLY:
        keys = path.split(".")
        nodes = [out]
        for k in keys[:-1]:
            nxt = nodes[-1].get(k) if isinstance(nodes[-1], dict) else None
            if not isinstance(nxt, dict):
                break
            nodes.append(nxt)
        else:
            nodes[-1].pop(keys[-1], None)
            for parent, k, node in reversed(list(zip(nodes[:-1], keys[:-1], nodes[1:]))):
                if node == {} and not _had(view, keys[: keys.index(k) + 1]):
                    parent.pop(k)
    return out


def _had(view: dict, keys: list) -> bool:
    """Whether `keys` leads to a non-runtime value in `view` (a section the slice itself holds)."""
    node = view
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    return isinstance(node, dict) and any(".".join(keys + [k]) not in RUNTIME_ONLY for k in node)


class Scoped(dict):
    """A slice as the job sees it: a dict, but a key the full config has and the slice lacks raises
    SliceError naming the key (a `.get(key, default)` would otherwise silently return the default)."""

    def __init__(self, slice_: dict, full: dict | None, prefix: str = "", rule: str = "?", recorded: dict | None = None):
        super().__init__(slice_)
        self._full, self._prefix, self._rule = full, prefix, rule
        self._recorded = recorded  # the slice itself (the view adds RUNTIME_ONLY settings)

    def _check(self, key):
        if not dict.__contains__(self, key) and isinstance(self._full, dict) and key in self._full:
            raise SliceError(f"config key {self._prefix}{key} is read by rule {self._rule} but is not in its "
                             f"params (solopo.slices.{self._rule}): Snakemake would not rerun it when the key changes")

    def _wrap(self, key, value):
        full = self._full.get(key) if isinstance(self._full, dict) else None
        if isinstance(value, dict) and not isinstance(value, Scoped) and isinstance(full, dict) and full != value:
            return Scoped(value, full, f"{self._prefix}{key}.", self._rule)
        return value

    def __getitem__(self, key):
        self._check(key)
        return self._wrap(key, dict.__getitem__(self, key))

    def get(self, key, default=None):
        self._check(key)
        return self._wrap(key, dict.get(self, key, default)) if dict.__contains__(self, key) else default

    def __contains__(self, key) -> bool:
        self._check(key)
        return dict.__contains__(self, key)

    @property
    def plain(self) -> dict:
        """The slice as plain data (for the manifest), without the RUNTIME_ONLY settings."""
        return copy.deepcopy(self._recorded) if self._recorded is not None else without_runtime(dict(self))


def scoped(slice_: dict, config: dict, rule: str) -> Scoped:
    """The job's view: its slice plus the RUNTIME_ONLY settings; any other key of `config` raises."""
    return Scoped(deep_merge(slice_, project(config, RUNTIME_ONLY)), config, "", rule, copy.deepcopy(slice_))


# --------------------------------------------------------------------------- per rule
def fingerprint(path: str | os.PathLike) -> str | None:
    """Names, sizes and mtimes of an external file or folder's files: a change of any file (an edited
    MuSiQue file, a model folder swapped under the same name, even with older mtimes) changes it.
    Cheap (stat calls only) so that Snakemake can evaluate it in `params:` on every run; the content
    hash of folder artifacts (artifacts.hash_path) is what `solopo check --inputs` verifies."""
    p = Path(path)
    if not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.name != ".snakemake_timestamp")
    return hash_obj([(str(f.relative_to(p)) if f != p else p.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def external_model(b: dict) -> bool:
    """A backbone given as a local folder (not built here, not a hub id)."""
    return not b.get("build") and Path(b["model"]).exists()


def _backbone(config: dict, name: str, *extra: str) -> dict:
    """What a job knows of its backbone: the model (hub id or folder; a folder is also an input) and loading flags."""
    b = next(b for b in config["backbones"] if b["name"] == name)
    out = {"name": name, "model": b["model"], "trust_remote_code": b.get("trust_remote_code", False),
           **{k: b[k] for k in extra}}
    if external_model(b):
        out["files"] = fingerprint(b["model"])
    return {"backbone": out}


TOY_WORLD = ("seed", "data.toy", "tiny_model.entities", "tiny_model.hop_weights")


def toy_world(config: dict) -> dict:
    return project(config, TOY_WORLD)


def musique_files(config: dict) -> dict[str, str]:
    """The local MuSiQue files of `data.source: local` (inputs of rule fetch_musique)."""
    d = config["data"]
    if d["source"] != "local":
        return {}
    m = d.get("musique") or {}
    return {split: m[f"{split}_file"] for split in ("train", "dev") if m.get(f"{split}_file")}


def fetch_musique(config: dict) -> dict:
    out = project(config, ("data.source", "data.musique", "data.num_questions", "data.skip_malformed"))
    files = {split: fingerprint(f) for split, f in musique_files(config).items()}
    return out | ({"files": files} if files else {})


def tiny_model(config: dict) -> dict:
    # its own seed when set: the backbone stays fixed when the experiment's `seed` changes
    tm = config.get("tiny_model") or {}
    return project(config, ("tiny_model",) if "seed" in tm else ("tiny_model", "seed"))


def contexts(config: dict, backbone: str) -> dict:
    return project(config, ("seed", "data.num_questions", "data.short_tokens", "data.long_tokens", "data.use_aliases",
                            "data.skip_unfittable")) | _backbone(config, backbone)


def sample(config: dict, backbone: str) -> dict:
    return project(config, ("seed", "sampling")) | _backbone(config, backbone)


def pairs(config: dict, backbone: str, seed: int | None = None) -> dict:
    """`seed`: a further seed of train.seeds (None: the first); pair selection draws with it. With the
    default train.seeds ([seed]) the slice is the one it was before seeds existed."""
    from solopo.config import train_seeds

    toy = config["data"]["source"] == "toy"  # the chance accuracy in the statistics comes from the toy world
    out = project(config, ("seed", "pairs", "data.source") + (("tiny_model.entities", "tiny_model.hop_weights") if toy else ()))
    return out | {"seed": train_seeds(config)[0] if seed is None else seed}


def datasets(config: dict, backbone: str) -> dict:
    return {}  # a pure function of the pairs file


def ref_logps(config: dict, backbone: str) -> dict:
    return project(config, ("train.optim",)) | _backbone(config, backbone)


def has_ra_term(method: str) -> bool:
    """Whether a training method's loss has the SoLo-RA term (solo_{dpo,simpo,orpo}[_both]; not SoLo-KL):
    the runs that read train.loss.ra_stop_grad_short (the loss registry's `config_keys` agree, a test)."""
    return method.startswith("solo_") and not method.startswith("solo_kl_")


def train(config: dict, run) -> dict:
    """`run`: a solopo.config.Run. Checkpoint selection on LongBench v1 evaluates with eval.longbench_v1.
    train.loss.ra_stop_grad_short is in the SoLo-RA runs' slices only: toggling it reruns just them."""
    select = config["train"].get("select_checkpoint", "final") == "longbench_v1"
    paths = ("seed", "train.loss", "train.optim", "train.deepspeed", "train.select_checkpoint") + \
        (("eval.longbench_v1",) if select else ()) + (("train.longpo",) if run.method == "longpo" else ())
    out = project(config, paths)
    if not has_ra_term(run.method):
        out.get("train", {}).get("loss", {}).pop("ra_stop_grad_short", None)
    from solopo.config import run_seed

    out["seed"] = run_seed(config, run)  # the run's seed of train.seeds (data order; its pairs' seed)
    return out | {"method": run.method, "lambda": run.lam} | _backbone(config, run.backbone)


def bench_data(config: dict, bench: str, backbone: str | None = None) -> dict:
    return project(config, ("seed", f"eval.{bench}")) | (_backbone(config, backbone) if backbone else {})


# backbone keys that only name runs (not an artifact's content) or are in every backbone slice
_RUN_TABLE_KEYS = ("name", "model", "trust_remote_code", "build", "methods", "lambdas")


def evaluate(config: dict, run, bench: str) -> dict:
    """Also every loading setting of the backbone (context window, long-context setting: solopo.eval.budget)."""
    b = next(b for b in config["backbones"] if b["name"] == run.backbone)
    extra = tuple(k for k in b if k not in _RUN_TABLE_KEYS)
    return project(config, ("seed", f"eval.{bench}", "eval.backend")) | _backbone(config, run.backbone, *extra)
