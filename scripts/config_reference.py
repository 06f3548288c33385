"""Write docs/config.md, the configuration reference, from the config files themselves.

One row per key of config/config.yaml (the paper preset) and config/tiny.yaml (keys only the tiny
preset has): the paper value, the tiny value, what the schema allows, and the meaning and source,
which is the key's comment in the preset file (on its line, or the comment lines right above it).
The files stay the one place a value and its reason are written; `tests/test_config_reference.py`
fails when docs/config.md is not what this script writes, or when a key has no comment.

    .venv/bin/python scripts/config_reference.py          # rewrite docs/config.md
    .venv/bin/python scripts/config_reference.py --check  # exit 1 if it is out of date
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"paper": ROOT / "config/config.yaml", "tiny": ROOT / "config/tiny.yaml"}
SCHEMA = ROOT / "src/solopo/schemas/config.schema.yaml"
OUT = ROOT / "docs/config.md"
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<dash>- )?(?P<key>[A-Za-z_][\w]*):(?P<rest>.*)$")


def key_comments(path: Path) -> dict[str, str]:
    """Dotted key path -> its comment: the inline one, else the comment lines directly above it.

    List items of mappings (`backbones:`) are addressed as `backbones[].name`. A comment that runs on
    in comment-only lines below a key (aligned continuation) is joined to it."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, dotted path)
    pending: list[str] = []
    inline_at: tuple[str, int] | None = None  # (key, column of its inline `#`): continuation lines align there
    seen_key = False
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            col, text = raw.index("#"), stripped.lstrip("#").strip()
            if inline_at and col == inline_at[1]:
                comments[inline_at[0]] = f"{comments[inline_at[0]]} {text}"
            else:
                pending.append(text)
                inline_at = None
            continue
        m = KEY_LINE.match(raw)
        if not m:
            pending, inline_at = [], None
            continue
        if not stack and not comments and raw == raw.lstrip() and not seen_key:
            pending = []  # the file's header comment describes the preset, not its first key
        seen_key = True
        indent = len(m["indent"]) + (2 if m["dash"] else 0)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if m["dash"]:
            parent = f"{parent}[]"
        dotted = f"{parent}.{m['key']}" if parent else m["key"]
        stack.append((indent, dotted))
        _, has_comment, inline = _split_comment(m["rest"])
        text = " ".join(pending + ([inline] if inline else []))
        if text:
            comments[dotted] = text
        pending = []
        inline_at = (dotted, raw.rindex("#", 0, len(raw) - len(inline))) if has_comment and inline else None
    return comments


def _split_comment(rest: str) -> tuple[str, bool, str]:
    """`value  # comment` -> (value, has comment, comment); a `#` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), True, rest[i + 1:].strip()
    return rest.strip(), False, ""


def leaves(value, prefix: str = "") -> dict[str, object]:
    """Dotted path -> value for every key; a list of mappings contributes `key[].field` rows."""
    out: dict[str, object] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v and all(isinstance(x, str) for x in v):
                out[path] = _SECTION
                out.update(leaves(v, path))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                out[path] = _SECTION
                for item in v:
                    for sub, subv in leaves(item, f"{path}[]").items():
                        out.setdefault(sub, subv)
            else:
                out[path] = v
    return out


_SECTION = object()


def allowed(schema: dict, path: str) -> str:
    node = _schema_node(schema, schema, path.split("."))
    if node is None:
        return ""
    parts = []
    if "enum" in node:
        parts.append(" \\| ".join(str(v) for v in node["enum"]))
    t = node.get("type")
    if t and "enum" not in node:
        parts.append(t if isinstance(t, str) else " or ".join(t))
    for key, sym in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{sym} {node[key]}")
    return ", ".join(parts)


def _schema_node(root: dict, node: dict | None, parts: list[str]) -> dict | None:
    for part in parts:
        if node is None:
            return None
        many = part.endswith("[]")
        node = (_deref(root, node).get("properties") or {}).get(part.removesuffix("[]"))
        if many and node is not None:
            node = _deref(root, node).get("items")
    return _deref(root, node) if node is not None else None


def _deref(root: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if isinstance(node, dict) and "anyOf" in node:  # e.g. an object or null: describe the object
        objs = [_deref(root, n) for n in node["anyOf"] if isinstance(n, dict) and n.get("type") != "null"]
        if len(objs) == 1:
            return objs[0]
    return node


def show(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|") if text else ""


def render() -> str:
    paper = yaml.safe_load(PRESETS["paper"].read_text())
    tiny = yaml.safe_load(PRESETS["tiny"].read_text())
    schema = yaml.safe_load(SCHEMA.read_text())
    comments = {**key_comments(PRESETS["tiny"]), **key_comments(PRESETS["paper"])}
    pv, tv = leaves(paper), leaves(tiny)
    keys = list(pv) + [k for k in tv if k not in pv]
    lines = ["# Configuration reference", "",
             "Generated by `scripts/config_reference.py` from `config/config.yaml` (the paper preset),",
             "`config/tiny.yaml` (the tiny preset, which `--configfile config/tiny.yaml` lays over the paper one)",
             "and the schema `src/solopo/schemas/config.schema.yaml`; edit those files, not this page. The meaning",
             "and source of a key is its comment in the preset file. *tiny* is blank where the tiny preset keeps",
             "the paper value; `[INF]` marks a value the paper does not state (a reconstruction).", ""]
    section = None
    for key in keys:
        top = key.split(".")[0].split("[")[0]
        if top != section:
            section = top
            lines += ["", f"## `{top}`", "", "| key | paper | tiny | allowed | meaning and source |", "|---|---|---|---|---|"]
        p, t = pv.get(key, _MISSING), tv.get(key, _MISSING)
        if p is _SECTION or t is _SECTION:
            paper_cell, tiny_cell = "(section)", ""
        else:
            paper_cell = "" if p is _MISSING else show(p)
            tiny_cell = "" if t is _MISSING or (p is not _MISSING and t == p) else show(t)
        meaning = comments.get(key, "").replace("|", "\\|")
        lines.append(f"| `{key}` | {paper_cell} | {tiny_cell} | {allowed(schema, key)} | {meaning} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


_MISSING = object()


def undocumented() -> list[str]:
    """Keys that have no comment in either preset file (the test requires none)."""
    comments = {**key_comments(PRESETS["tiny"]), **key_comments(PRESETS["paper"])}
    keys = {**leaves(yaml.safe_load(PRESETS["tiny"].read_text())),
            **leaves(yaml.safe_load(PRESETS["paper"].read_text()))}
    return [k for k, v in keys.items() if k not in comments and v is not _SECTION]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/config.md is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run .venv/bin/python scripts/config_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
