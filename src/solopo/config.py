"""Configuration: schema validation with one-line errors, and the run table.

`validate_config` checks the JSON schema in `solopo/schemas/config.schema.yaml` (package data) and the
rules a schema cannot express (short < long, lambdas only for trained SoLo methods, a
local model folder that exists, ...). Any problem raises `ConfigError` with one line:
`config error: <key>: <what is wrong>; allowed: <what is allowed>`.
"""
from __future__ import annotations

import copy
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Package data (pyproject.toml), so it ships in the wheel: the schema belongs to the code that checks it.
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def read_config_file(path: Path) -> dict:
    """One config file's mapping; not YAML, or not a mapping at the top level: ConfigError naming the file."""
    try:
        obj = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config error: {path}: not valid YAML{where} ({getattr(e, 'problem', None) or str(e).splitlines()[0]}); "
                          "allowed: a YAML mapping of config keys") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config error: {path}: not UTF-8 text ({e.reason}); allowed: a YAML mapping of config keys") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise ConfigError(f"config error: {path}: the top level is a YAML {type(obj).__name__}; allowed: a mapping of "
                          "config keys (key: value), as in config/config.yaml")
    return obj


def _get(config, path):
    for p in path:
        config = config[p]
    return config


def _schema() -> dict:
    """The schema, parsed once per file version (the workflow validates on every parse of the Snakefile)."""
    st = SCHEMA_PATH.stat()
    return copy.deepcopy(_parse_schema(str(SCHEMA_PATH), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=4)
def _parse_schema(path: str, mtime_ns: int, size: int) -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)


def _key(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _allowed(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    parts = []
    t = schema.get("type")
    if isinstance(t, list):  # an integer is a number: [integer, number] reads "number"
        t = [x for x in t if not (x == "integer" and "number" in t)]
    if t:
        parts.append(" or ".join(t) if isinstance(t, list) else t)
    bounds = [f"{sym} {schema[k]}" for k, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                                   ("exclusiveMaximum", "<")) if k in schema]
    if bounds:
        parts.append(" and ".join(bounds))
    if "minItems" in schema:
        parts.append(f"at least {schema['minItems']} item(s)")
    if "pattern" in schema:
        parts.append(f"matching {schema['pattern']}")
    if "propertyNames" in schema and "enum" in schema["propertyNames"]:
        parts.append("keys among " + ", ".join(schema["propertyNames"]["enum"]))
    return " ".join(parts) or "see src/solopo/schemas/config.schema.yaml"


# Keys that moved to another section: the message names the new place, not a near spelling.
MOVED_KEYS = {
    "train.loss.longpo_beta": "train.longpo.beta",
    "train.loss.longpo_lambda": "train.longpo.lambda",
    "backbones[].yarn_for_longbench_v2": "backbones[].long_context (applied to every suite that needs it)",
}


def _generic_key(path) -> str:
    """`backbones[0].model` -> `backbones[].model`: the form MOVED_KEYS is keyed by."""
    return ".".join("[]" if isinstance(p, int) else str(p) for p in path).replace(".[]", "[]")


def _unknown_key(e) -> str:
    """One line for a key the schema does not know: the key, and the closest valid one (difflib)."""
    import difflib

    allowed = list(e.schema.get("properties", {}))
    key = str(min((k for k in e.instance if k not in allowed), key=str))  # YAML keys may be ints
    where = _key(list(e.path) + [key])
    moved = MOVED_KEYS.get(_generic_key(list(e.path) + [key]))
    if moved:
        return f"{where}: unknown key {key!r}; it moved to {moved}"
    close = difflib.get_close_matches(key, allowed)  # best first
    hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
    return f"{where}: unknown key {key!r}; {hint}"


def _strict_pattern(validator, pattern: str, instance, schema):
    """The schema's `pattern` with `$` meaning the end of the string: in Python's `re` it also matches
    before a final newline, and a backbone name `"tiny\\n"` would name folders with a newline in them."""
    import re

    from jsonschema.exceptions import ValidationError

    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if validator.is_type(instance, "string") and not re.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _schema_error(config: dict) -> str | None:
    import jsonschema

    schema = _schema()
    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _strict_pattern})
    validator = strict(schema)
    # An unknown key sorts before the "required" error its misspelling causes at the same level.
    errors = sorted(validator.iter_errors(config),
                    key=lambda e: (len(e.path), e.validator != "additionalProperties", str(e.path)))
    if not errors:
        return None
    e = errors[0]
    if e.validator == "required":
        missing = e.message.split("'")[1]
        return f"{_key(list(e.path) + [missing])}: missing; required key"
    if e.validator == "additionalProperties":
        return _unknown_key(e)
    return f"{_key(e.path)}: {e.instance!r} is not valid; allowed: {_allowed(e.schema)}"


def _resolve(schema, root: dict):
    """A `{"$ref": "#/$defs/x"}` schema replaced by the definition it names."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    return root["$defs"][ref.removeprefix("#/$defs/")] if ref else schema


def _coerce_numbers(node, schema: dict, root: dict | None = None) -> None:
    """YAML `2` where the schema says `number` becomes 2.0 (in place): downstream code and libraries
    (transformers' GenerationConfig) expect floats, and `temperature: 2` must mean what `2.0` means."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if isinstance(node, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        subs = {k: _resolve(props[k], root) if k in props else extra for k in node}
    elif isinstance(node, list):
        subs = dict.fromkeys(range(len(node)), _resolve(schema.get("items"), root))
    else:
        return
    for k, sub in subs.items():
        if not isinstance(sub, dict):
            continue  # no schema for it (additionalProperties true/false): left as written
        if _is_number(sub) and type(node[k]) is int:  # bool is an int subclass: never coerced
            node[k] = float(node[k])
        else:
            _coerce_numbers(node[k], sub, root)


def _is_number(schema: dict) -> bool:
    t = schema.get("type")
    return t == "number" or (isinstance(t, list) and "number" in t and "integer" not in t)


def _non_finite(node, path=()):
    """The first float that is inf or nan (YAML `.inf`, `.nan`), as a key path."""
    if isinstance(node, float) and not math.isfinite(node):
        return path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        found = _non_finite(v, path + (k,))
        if found is not None:
            return found
    return None


def _semantic_errors(config: dict) -> str | None:
    """Settings that pass the schema but make results meaningless."""
    d, s, o = config["data"], config["sampling"], config["train"]["optim"]
    need = d["long_tokens"] + s["max_new_tokens"]
    if any(b.get("build") == "tiny_model" for b in config["backbones"]):
        limit = (config.get("tiny_model") or {}).get("max_positions", 1024)
        # (evaluation lengths against the backbone's window: solopo.eval.budget, checked with the schema)
        lengths = {"data.long_tokens + sampling.max_new_tokens": need, "train.optim.max_length": o.get("max_length", 0)}
        for key, v in lengths.items():
            if v > limit:
                return (f"{key}: {v} is beyond the tiny backbone's position range (tiny_model.max_positions {limit}); "
                        f"allowed: <= {limit}")
    if "max_length" in o and o["max_length"] < need:
        return (f"train.optim.max_length: {o['max_length']} cannot hold a long prompt and its response "
                f"(data.long_tokens {d['long_tokens']} + sampling.max_new_tokens {s['max_new_tokens']} = {need}); "
                f"allowed: >= {need}")
    ev = config["eval"]
    for bench in ev.get("benchmarks", []):
        b = ev.get(bench) or {}
        for key in ("num_samples", "fixture_items", "samples_per_cell", "limit"):
            if key in b and b[key] is not None and (not isinstance(b[key], int) or b[key] < 1):
                return f"eval.{bench}.{key}: {b[key]!r} gives no evaluation items; allowed: an integer >= 1"
        for key in ("lengths", "sets", "datasets", "tasks", "single_depths"):
            if key in b and not b[key]:
                return f"eval.{bench}.{key}: {b[key]!r} gives no evaluation items; allowed: a non-empty list"
    return None


def validate_config(config: dict, root: str | os.PathLike = ".") -> None:
    """Raise ConfigError (one line) on the first problem. Numbers given as YAML integers where the
    schema expects a float are converted in place."""
    bad = _non_finite(config)
    if bad is not None:
        raise ConfigError(f"config error: {_key(bad)}: {_get(config, bad)!r} is not a finite number; allowed: a finite number")
    problem = _schema_error(config)
    if problem:
        raise ConfigError(f"config error: {problem}")
    _coerce_numbers(config, _schema())
    d = config["data"]
    if d["short_tokens"] >= d["long_tokens"]:
        raise ConfigError(f"config error: data.short_tokens: {d['short_tokens']} must be smaller than "
                          f"data.long_tokens ({d['long_tokens']}); allowed: short_tokens < long_tokens")
    names = [b["name"] for b in config["backbones"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"config error: backbones: duplicate names {names}; allowed: unique names")
    for i, b in enumerate(config["backbones"]):
        local = b["model"].startswith((".", "/", "results/"))  # else a hub id
        if local and not b.get("build") and not (Path(root) / b["model"]).exists():
            raise ConfigError(f"config error: backbones[{i}].model: local path {b['model']!r} does not exist; "
                              "allowed: an existing model folder or a hub id like Qwen/Qwen2.5-7B-Instruct")
        if b.get("build") == "tiny_model" and "tiny_model" not in config:
            raise ConfigError(f"config error: tiny_model: missing; required when backbones[{i}].build is tiny_model")
        if b.get("build") == "rehearsal" and b["model"] != f"results/models/{b['name']}":
            raise ConfigError(f"config error: backbones[{i}].model: {b['model']!r}; allowed with build: rehearsal: "
                              f"'results/models/{b['name']}' (where rule rehearsal_model writes it)")
    if d["source"] == "toy" and "toy" not in d:
        raise ConfigError("config error: data.toy: missing; required when data.source is toy")
    if d["source"] == "local":
        for split in ("train_file",):
            f = (d.get("musique") or {}).get(split)
            if not f or not Path(f).exists():
                raise ConfigError(f"config error: data.musique.{split}: {f!r} is not an existing file; "
                                  "allowed: a MuSiQue-Ans JSONL path when data.source is local")
    from solopo.eval.budget import long_context_plan

    for b in config["backbones"]:  # every suite fits a window the backbone has
        for bench in config["eval"]["benchmarks"]:
            try:
                long_context_plan(b, bench, config["eval"].get(bench) or {})
            except ValueError as e:
                raise ConfigError(f"config error: {e}") from None
    o = config["train"]["optim"]
    if o["batch_size"] % o["micro_batch_size"]:
        raise ConfigError(f"config error: train.optim.batch_size: {o['batch_size']} is not a multiple of "
                          f"micro_batch_size {o['micro_batch_size']}; allowed: a multiple of micro_batch_size")
    problem = _semantic_errors(config)
    if problem:
        raise ConfigError(f"config error: {problem}")
    runs = run_table(config)  # two lambda values with one run name
    rep = config.get("report") or {}
    for key, names in (("report.primary", [rep["primary"]] if "primary" in rep else []),
                       ("report.baselines", rep.get("baselines") or []),
                       ("report.headroom_runs", rep.get("headroom_runs") or [])):
        for name in names:  # a misspelt run would silently drop out of the comparisons
            if name not in runs:
                raise ConfigError(f"config error: {key}: {name!r} is not a run of this config; allowed: "
                                  f"{', '.join(runs)}")


@dataclass(frozen=True)
class Run:
    name: str
    backbone: str
    method: str
    lam: float | None = None
    extra: dict = field(default_factory=dict)
    # the training seed of a run of another seed than the first of `train.seeds` (None: the first seed)
    seed: int | None = None


def _fmt_lam(v: float) -> str:
    return f"{float(v):g}" if float(v) != int(v) else f"{float(v):.1f}"


def run_table(config: dict) -> dict[str, Run]:
    """Every training run of the config, keyed by run name.

    Primary backbone: `{method}` (SoLo methods at their default lambda, the first of
    `train.lambdas[method]`) and `{method}_lam{v}` for the other lambdas; other backbones
    prefix `{backbone}__`. `base` (and `{backbone}__base`) is the untrained backbone.
    """
    runs: dict[str, Run] = {}
    for i, b in enumerate(config["backbones"]):
        prefix = "" if i == 0 else f"{b['name']}__"
        methods = b.get("methods") or config["train"]["methods"]
        lambdas = {**config["train"].get("lambdas", {}), **(b.get("lambdas") or {})}
        if config["eval"].get("runs_include_base", True):
            runs[f"{prefix}base"] = Run(f"{prefix}base", b["name"], "base")
        for m in methods:
            if m.startswith("solo_"):
                values = lambdas.get(m) or [1.0]
                runs[f"{prefix}{m}"] = Run(f"{prefix}{m}", b["name"], m, float(values[0]))
                for v in values[1:]:
                    name = f"{prefix}{m}_lam{_fmt_lam(v)}"
                    if name in runs or float(v) == float(values[0]):
                        other = runs.get(name, runs[f"{prefix}{m}"]).lam
                        key = f"backbones[{i}].lambdas.{m}" if m in (b.get("lambdas") or {}) else f"train.lambdas.{m}"
                        raise ConfigError(f"config error: {key}: {v!r} and {other!r} both give run "
                                          f"{runs.get(name, runs[f'{prefix}{m}']).name} (backbone {b['name']}); "
                                          "allowed: distinct values (at 6 significant digits)")
                    runs[name] = Run(name, b["name"], m, float(v))
            else:
                runs[f"{prefix}{m}"] = Run(f"{prefix}{m}", b["name"], m)
    return runs


# A run of the n-th seed (n > 1) of `train.seeds` is `<run>@s<seed>`; its pairs, training sets and
# reference log-probs are under `<backbone>@s<seed>`. The first seed keeps the plain names, so a
# config with one seed (the default) has exactly the paths it had before seeds existed.
SEED_TAG = "@s"


def train_seeds(config: dict) -> list[int]:
    """`train.seeds`, default `[seed]`: the seeds of pair selection and training data order."""
    return [int(s) for s in (config["train"].get("seeds") or [config["seed"]])]


def seed_tag(seed: int | None) -> str:
    """The path suffix of a seed: "" for the first seed (None), `@s<seed>` for the others."""
    return "" if seed is None else f"{SEED_TAG}{seed}"


def split_seed_tag(name: str) -> tuple[str, int | None]:
    """`tiny@s1` -> ("tiny", 1); a name without a seed tag -> (name, None)."""
    head, sep, seed = name.rpartition(SEED_TAG)
    return (head, int(seed)) if sep and seed.isdigit() else (name, None)


def seeded_runs(config: dict) -> dict[str, Run]:
    """The run table with one run per further seed of `train.seeds` for every trained run
    (`<run>@s<seed>`): the untrained backbone (`base`) is evaluated once."""
    runs = run_table(config)
    out = dict(runs)
    for seed in train_seeds(config)[1:]:
        for name, r in runs.items():
            if r.method != "base":
                tagged = name + seed_tag(seed)
                out[tagged] = Run(tagged, r.backbone, r.method, r.lam, r.extra, seed)
    return out


def run_seed(config: dict, run: Run) -> int:
    """The seed a run trains with: its own, else the first of `train.seeds`."""
    return train_seeds(config)[0] if run.seed is None else run.seed


def seed_runs(config: dict, run: str) -> list[str]:
    """A run's name at every seed of `train.seeds` (first seed first); `base` has one."""
    r = run_table(config)[run]
    return [run] if r.method == "base" else [run] + [run + seed_tag(s) for s in train_seeds(config)[1:]]
