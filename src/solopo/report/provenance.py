"""Provenance of artifacts: manifest chains and a config-staleness check.

`chain(artifact)` follows an artifact's manifest (`<file>.manifest.json`, or `manifest.json`
inside a folder) to its inputs' manifests, recursively: config slice hash, git commit,
package versions, wall time, and whether each input still has the hash recorded.

`check(config, root)` answers "which artifacts would the current config rebuild?" without
Snakemake. For every manifest under `results/` it recomputes the config slice the pipeline
records for that kind of artifact (the same expressions as `solopo.pipeline` and the report
rules, from the merged config and the run table) and compares its hash with the manifest's
`config_hash`:

    ok       the slice is unchanged
    stale    the slice changed; the differing keys are listed (Snakemake reruns these through
             its params trigger, and everything downstream through the input trigger)
    orphan   the run/backbone/benchmark is no longer in the config (e.g. a removed lambda
             value); the pipeline never deletes it, the file stays
    unknown  a path the pipeline does not write; its manifest's top-level config keys are
             compared with the same keys of the merged config (top level, then `train`,
             `eval`, `data`), `ok`/`stale` when any key is found, `unknown` otherwise

Whatever the config, an artifact that is gone while its manifest remains (a deleted file, a folder
missing a recorded file) is `missing`, and a manifest that is not valid JSON is `damaged`.

With `inputs=True` it also re-verifies every artifact's bytes against the content its manifest
recorded (`damaged`, naming the file; `unverified` for an older manifest that records none), and
recomputes each recorded input hash (`input changed` means an upstream artifact was rebuilt after
this one: Snakemake's mtime/input trigger reruns it).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from solopo import paths
from solopo.artifacts import (
    DataError,
    artifact_gone,
    content_problem,
    files_hash,
    hash_obj,
    hash_path,
    load_manifest,
    manifest_path,
    recorded_content,
)
from solopo.config import read_config_file
from solopo.mappings import deep_merge

# The workflow's own config (the Snakefile's `configfile:`), relative to the workflow directory: the
# package may be installed anywhere (a wheel in site-packages), the workflow is where it runs.
BASE_CONFIG = Path("config") / "config.yaml"


def base_config(directory: str | Path = ".") -> Path:
    """The workflow's config/config.yaml under `directory`; a one-line error when it is not there."""
    p = Path(directory) / BASE_CONFIG
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no workflow config here; run in the workflow directory (or pass -d DIR), "
                                "or name the base config with --base-config / skip it with --no-base-config")
    return p


# --------------------------------------------------------------------------- config
def load_config(configfiles: list[str] = (), base: str | Path | None = BASE_CONFIG) -> dict:
    """The merged config as the workflow sees it: config/config.yaml (the Snakefile's `configfile:`,
    relative to the current directory unless `base` names it), then every `--configfile` in order."""
    cfg: dict = {}
    for f in ([base] if base else []) + list(configfiles):
        cfg = deep_merge(cfg, read_config_file(Path(f)))
    return cfg


# --------------------------------------------------------------------------- manifests
def find_manifest(artifact: str | Path) -> Path | None:
    p = Path(artifact)
    if p.name.endswith("manifest.json") and p.is_file():
        return p
    for m in (manifest_path(p), Path(str(p) + ".manifest.json"), p / "manifest.json"):
        if m.is_file():
            return m
    return None


def artifact_of(manifest: Path) -> Path:
    return manifest.parent if manifest.name == "manifest.json" else manifest.with_name(manifest.name[: -len(".manifest.json")])


def read(manifest: Path) -> dict:
    """A manifest's JSON object; a truncated or edited manifest raises DataError naming it (one line)."""
    return load_manifest(manifest)


@dataclass
class Node:
    path: str
    manifest: dict | None
    recorded_hash: str | None = None
    current_hash: str | None = None
    inputs: list["Node"] = field(default_factory=list)
    seen: bool = False  # already printed above (shared input)

    def to_dict(self) -> dict:
        m = self.manifest or {}
        return {"path": self.path, "has_manifest": self.manifest is not None, "recorded_hash": self.recorded_hash,
                "current_hash": self.current_hash, "config_hash": m.get("config_hash"), "git_commit": m.get("git_commit"),
                "versions": m.get("versions"), "wall_time_s": m.get("wall_time_s"), "finished_at": m.get("finished_at"),
                "config_keys": sorted((m.get("config") or {}).keys()) if isinstance(m.get("config"), dict) else None,
                "seen_above": self.seen, "inputs": [i.to_dict() for i in self.inputs]}


def chain(artifact: str, root: str | Path = ".", hashes: bool = True, max_depth: int = 50,
          _seen: set | None = None, _depth: int = 0, _recorded: str | None = None) -> Node:
    """The manifest tree of `artifact` (paths in manifests are relative to `root`, the workflow directory)."""
    seen = set() if _seen is None else _seen
    root = Path(root)
    p = Path(artifact)
    full = p if p.is_absolute() else root / p
    m_path = find_manifest(full)
    if m_path is not None and full.name.endswith("manifest.json"):
        full = artifact_of(m_path)
        artifact = str(full.relative_to(root)) if full.is_relative_to(root) else str(full)
    node = Node(str(artifact), read(m_path) if m_path else None, _recorded)
    if _recorded is not None and hashes:
        node.current_hash = current_hash(full, _recorded)
    key = str(full.resolve())
    if key in seen:
        node.seen = True
        return node
    seen.add(key)
    recorded = (node.manifest or {}).get("inputs")
    if node.manifest and _depth < max_depth and isinstance(recorded, dict):
        for inp, h in recorded.items():
            node.inputs.append(chain(inp, root, hashes, max_depth, seen, _depth + 1, h))
    return node


def current_hash(path: Path, recorded: str | None) -> str:
    """hash_path(path), but a folder recorded by content (manifests before folder hashes became
    `m:<manifest hash>`) is re-hashed by content, so an old manifest is not reported as changed."""
    if not path.exists():
        return "missing"
    now = hash_path(path)
    if now.startswith("c:"):
        # a folder artifact: its recorded digest, re-verified against the bytes (a changed byte shows)
        from solopo.artifacts import content_digest, content_files

        return "c:" + content_digest(content_files(path))
    if path.is_dir() and now.startswith("m:") and recorded and not recorded.startswith("m:"):
        now = files_hash(path)
    return now


def _short_versions(v: dict | None) -> str:
    if not v:
        return "-"
    return ", ".join(f"{k} {val}" for k, val in v.items())


def format_chain(node: Node, indent: int = 0, parent_versions: dict | None = None) -> str:
    pad = "  " * indent
    lines = []
    status = ""
    if node.recorded_hash is not None:
        if node.current_hash is None:
            status = f"  [hash {node.recorded_hash}]"
        elif node.current_hash == node.recorded_hash:
            status = f"  [hash {node.recorded_hash}, unchanged]"
        elif node.current_hash == "missing":
            status = f"  [hash {node.recorded_hash}, MISSING now]"
        else:
            status = f"  [hash {node.recorded_hash}, CHANGED since: now {node.current_hash}]"
    lines.append(f"{pad}{node.path}{status}")
    m = node.manifest
    if node.seen:
        lines.append(f"{pad}  (see above)")
        return "\n".join(lines)
    if m is None:
        lines.append(f"{pad}  no manifest (a source file, not written by the pipeline)")
        return "\n".join(lines)
    cfg = m.get("config")
    keys = ", ".join(sorted(cfg)) if isinstance(cfg, dict) else "-"
    wall = m.get("wall_time_s")
    lines.append(f"{pad}  config_hash {m.get('config_hash')} (slice: {keys})")
    lines.append(f"{pad}  git_commit {m.get('git_commit')}  wall_time {'-' if wall is None else f'{wall:.1f} s'}"
                 f"  finished {m.get('finished_at', '-')}")
    v = m.get("versions")
    lines.append(f"{pad}  versions: " + ("same as above" if parent_versions is not None and v == parent_versions
                                          else _short_versions(v)))
    if not isinstance(m.get("inputs"), dict):
        lines.append(f"{pad}  inputs: not recorded as paths (manifest field 'inputs' is {m.get('inputs')!r})")
    if node.inputs:
        lines.append(f"{pad}  inputs:")
        for child in node.inputs:
            lines.append(format_chain(child, indent + 2, v))
    return "\n".join(lines)


# --------------------------------------------------------------------------- expected config slices
def _diff(a, b, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(key)
            else:
                out += _diff(a[k], b[k], key)
        return out
    return [] if json.loads(json.dumps(a, default=str)) == json.loads(json.dumps(b, default=str)) else [prefix or "<value>"]


class Orphan(Exception):
    pass


class Expected:
    """Recomputes, per artifact path, the config slice the pipeline writes into its manifest."""

    def __init__(self, config: dict):
        from solopo.config import seeded_runs

        self.cfg = config
        self.seed = config.get("seed")
        self.runs = seeded_runs(config)  # every (run, seed): `<run>@s<seed>` beyond the first seed
        self.backbones = {b["name"]: b for b in config["backbones"]}
        self.benches = list(config["eval"]["benchmarks"])
        self._meta = None
        # every template `solopo check` knows, with what a wildcard may match: any backbone, run or
        # benchmark folder (a name no longer configured is an orphan, below), but an eval file splits
        # at a configured benchmark's name
        evals = {"bench": paths.alternation(k for k, v in self.cfg["eval"].items() if isinstance(v, dict)) or "(?!)"}
        anything = {"bench": paths.ANY}
        self.patterns = [
            (paths.MUSIQUE, self.data, {}),
            (paths.BUILT_MODEL, self.tiny_model, {}),
            (paths.CONTEXTS, self.contexts, {}),
            (paths.SAMPLES, self.samples, {}),
            (paths.PAIRS, self.pairs, {}),
            (paths.PAIR_STATS, self.pairs, {}),
            (paths.DATASET, self.datasets, {}),
            (paths.REF_LOGPS, self.ref_logps, {}),
            (paths.TRAIN_MODEL, self.train, {}),
            (paths.BENCH_DATA, self.bench_data, anything),
            (paths.BENCH_DATA_TOKENIZED, self.bench_data, anything),
            (paths.EVAL_JSON, self.evaluate, evals),
            (paths.EVAL_PREDICTIONS, self.evaluate, evals),
            (paths.EFFICIENCY_JSON, self.efficiency, {}),
            (paths.EFFICIENCY_PNG, self.efficiency, {}),
            (paths.LAMBDA_PLOT, self.lambda_plot, {}),
            (paths.RULER_PLOT, self.ruler_plot, {}),
            (paths.TABLE, self.report, {}),
            (paths.SUMMARY, self.report, {}),
        ]

    # each returns the expected slice or raises Orphan
    def _backbone(self, b):
        if b not in self.backbones:
            raise Orphan(f"backbone {b!r} is not in the config")
        return self.backbones[b]

    # the slices come from solopo.slices, the same functions the rules use as `params:`
    def data(self, m):
        from solopo import slices

        return slices.toy_world(self.cfg) if self.cfg["data"]["source"] == "toy" else slices.fetch_musique(self.cfg)

    def tiny_model(self, m):
        from solopo import slices

        b = self._backbone(m["backbone"])
        if not b.get("build"):
            raise Orphan(f"backbone {m['backbone']!r} is not built by the pipeline")
        return slices.tiny_model(self.cfg)

    def _per_backbone(self, name, m):
        from solopo import slices

        self._backbone(m["backbone"])
        return getattr(slices, name)(self.cfg, m["backbone"])

    def _per_seed(self, name, m):
        """Pairs, training sets, reference log-probs: under `<backbone>@s<seed>` for a further seed."""
        from solopo import slices
        from solopo.config import split_seed_tag, train_seeds

        b, seed = m["backbone"], split_seed_tag(m["seedtag"])[1]
        self._backbone(b)
        if seed is not None and seed not in train_seeds(self.cfg)[1:]:
            raise Orphan(f"seed {seed} is not a further seed of train.seeds")
        return slices.pairs(self.cfg, b, seed) if name == "pairs" else getattr(slices, name)(self.cfg, b)

    def contexts(self, m):
        return self._per_backbone("contexts", m)

    def samples(self, m):
        return self._per_backbone("sample", m)

    def pairs(self, m):
        return self._per_seed("pairs", m)

    def datasets(self, m):
        return self._per_seed("datasets", m)

    def ref_logps(self, m):
        return self._per_seed("ref_logps", m)

    def train(self, m):
        from solopo import slices

        r = self.runs.get(m["run"])
        if r is None:
            raise Orphan(f"run {m['run']!r} is not in the run table (method or lambda value removed)")
        return slices.train(self.cfg, r)

    def bench_data(self, m):
        from solopo import slices

        bench = m["bench"]
        if bench not in self.cfg["eval"] or not isinstance(self.cfg["eval"][bench], dict):
            raise Orphan(f"benchmark {bench!r} is not configured")
        b = m.get("backbone")
        if b:
            self._backbone(b)
        return slices.bench_data(self.cfg, bench, b)

    def evaluate(self, m):
        from solopo import slices

        run, bench = m["run"], m["bench"]
        if run not in self.runs:
            raise Orphan(f"run {run!r} is not in the run table (method or lambda value removed)")
        if bench not in self.benches:
            raise Orphan(f"benchmark {bench!r} is not in eval.benchmarks")
        return slices.evaluate(self.cfg, self.runs[run], bench)

    def efficiency(self, m):
        from solopo.bench.efficiency import settings

        if not isinstance((self.cfg.get("bench") or {}).get("efficiency"), dict):
            raise Orphan("bench.efficiency is not configured")
        return settings(self.cfg["bench"]["efficiency"])

    def meta(self):
        if self._meta is None:
            from solopo.report.tables import run_meta

            self._meta = run_meta(self.cfg)
        return self._meta

    def report(self, m):
        from solopo.report.tables import report_slice

        return report_slice(self.meta(), {})

    def lambda_plot(self, m):
        from solopo.report.tables import filter_meta, report_slice, sweeps

        sw = sweeps(self.meta())
        if m["sweep"] not in sw:
            raise Orphan(f"no SoLo method {m['sweep']!r} in the config")
        b, method = sw[m["sweep"]]
        return {"backbone": b, "method": method, **report_slice(filter_meta(self.meta(), b, method), {})}

    def ruler_plot(self, m):
        from solopo.report.tables import filter_meta, report_slice

        self._backbone(m["backbone"])
        return {"backbone": m["backbone"], **report_slice(filter_meta(self.meta(), m["backbone"]), {})}

    def by_keys(self, manifest_cfg: dict):
        """Fallback: the same top-level keys looked up in the merged config (top level, train, eval, data)."""
        found = {}
        for k in manifest_cfg:
            for scope in (self.cfg, self.cfg.get("train", {}), self.cfg.get("eval", {}), self.cfg.get("data", {})):
                if isinstance(scope, dict) and k in scope:
                    found[k] = scope[k]
                    break
        return found

    def expected(self, rel: str):
        """(kind, slice) for a path relative to the workflow directory, (None, None) if unknown."""
        for template, fn, regexes in self.patterns:
            wildcards = paths.parse(template, rel, **regexes)
            if wildcards is not None:
                return fn.__name__, fn(wildcards)
        for template in (paths.EVAL_JSON, paths.EVAL_PREDICTIONS):
            wildcards = paths.parse(template, rel, bench=paths.ANY)
            if wildcards is not None:  # an eval file of a benchmark that is no longer configured
                raise Orphan(f"{wildcards['run']}_{wildcards['bench']}: no configured benchmark matches")
        return None, None


@dataclass
class Finding:
    path: str
    status: str  # ok | stale | orphan | unknown | input changed | damaged | missing | unverified
    kind: str | None = None
    detail: str = ""


def iter_manifests(root: Path, results: str = "results"):
    base = root / results
    for m in sorted(base.rglob("*manifest.json")):
        rel = m.relative_to(root)
        if "checkpoints" in rel.parts or m.name.startswith("."):
            continue
        if m.name != "manifest.json" and not m.name.endswith(".manifest.json"):
            continue
        yield m


def check(config: dict, root: str | Path = ".", inputs: bool = False, results: str = "results") -> list[Finding]:
    # relative paths in the config (local data files, model folders) are relative to the workflow directory
    root = Path(root).resolve()
    with contextlib.chdir(root):
        return _check(config, root, inputs, results)


# statuses that make `solopo check` exit 1
FAILING = ("stale", "input changed", "damaged", "missing")


def _check(config: dict, root: Path, inputs: bool, results: str) -> list[Finding]:
    exp = Expected(config)
    out = []
    for m_path in iter_manifests(root, results):
        art = artifact_of(m_path)
        rel = str(art.relative_to(root))
        m_rel = str(m_path.relative_to(root))
        try:
            man = read(Path(m_rel))  # relative: the message names the manifest as the user knows it
        except DataError as e:
            out.append(Finding(rel, "damaged", None, str(e)))
            continue
        gone = artifact_gone(Path(rel), man, m_rel)
        if gone:
            out.append(Finding(rel, "missing", None, gone))
            continue
        try:
            out.append(_check_one(exp, rel, m_rel, man, root, inputs))
        except DataError as e:  # an input folder's manifest that is not valid JSON, met while re-hashing
            out.append(Finding(rel, "input changed", None, str(e)))
    return out


def _check_one(exp: Expected, rel: str, m_rel: str, man: dict, root: Path, inputs: bool) -> Finding:
    f = _config_finding(exp, rel, man)
    if not inputs:
        return f
    problem = content_problem(Path(rel), man, m_rel)  # relative: named as the user knows it
    if problem:
        also = "" if f.status == "ok" else f" (also {f.status.upper()}{': ' + f.detail if f.detail else ''})"
        return Finding(rel, "damaged", f.kind, problem + also)
    if f.status != "ok":
        return f
    changed = []
    recorded = man.get("inputs") if isinstance(man.get("inputs"), dict) else {}
    for inp, h in recorded.items():
        p = Path(inp) if Path(inp).is_absolute() else root / inp
        now = current_hash(p, h)
        if now != h:
            changed.append(f"{inp} ({'missing' if now == 'missing' else 'changed'})")
    if changed:
        return Finding(rel, "input changed", f.kind, ", ".join(changed))
    if recorded_content(man) is None:
        return Finding(rel, "unverified", f.kind, f"{m_rel} records no content hash of the artifact (an older "
                       "manifest), so its bytes cannot be checked; rebuilding it records one")
    return f


def _config_finding(exp: Expected, rel: str, man: dict) -> Finding:
    """ok / stale / orphan / unknown: the manifest's config slice against the current config."""
    try:
        kind, slice_ = exp.expected(rel)
    except Orphan as e:
        return Finding(rel, "orphan", None, str(e) + "; the file is kept")
    if kind is None:
        cfg = man.get("config") if isinstance(man.get("config"), dict) else {}
        found = exp.by_keys(cfg)
        if not found:
            return Finding(rel, "unknown", None, "not written by a known rule; no manifest key found in the config")
        diff = _diff({k: cfg[k] for k in found}, found)
        return Finding(rel, "stale" if diff else "ok", "by keys", ", ".join(diff))
    if hash_obj(slice_) == man.get("config_hash"):
        return Finding(rel, "ok", kind)
    diff = _diff(man.get("config"), json.loads(json.dumps(slice_, default=str)))
    return Finding(rel, "stale", kind, "config changed: " + (", ".join(diff) or "(hash only)"))


def format_findings(findings: list[Finding], verbose: bool = False) -> str:
    lines = []
    for f in findings:
        if f.status == "ok" and not verbose:
            continue
        lines.append(f"{f.status.upper():14s} {f.path}" + (f"  [{f.kind}]" if f.kind else "") + (f": {f.detail}" if f.detail else ""))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    lines.append(f"{len(findings)} artifacts: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)
