"""Write docs/config.md, the configuration reference, from the config files themselves.

One row per key of config/config.yaml (the paper preset) and config/tiny.yaml (keys only the tiny
preset has): the paper value, the tiny value, what the schema allows, and the meaning and source,
which is the key's comment in the preset file (on its line, or the comment lines right above it).
The files stay the one place a value and its reason are written; `tests/test_repository.py`
fails when docs/config.md is not what this script writes, or when a key has no comment. A mapping
written on one line (`model: {hidden_size: 896, ...}`) is one row, documented by that line's comment;
a list of mappings (`backbones`) shows each item's value in one cell, in list order.

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
COMMENTED_OUT_KEY = re.compile(r"^[a-z_][a-z0-9_]*: \S")  # `# seeds: [42, 1]`: an example, not prose


def key_comments(path: Path) -> dict[str, str]:
    """Dotted key path -> its comment: the inline one, else the comment lines directly above it.

    List items of mappings (`backbones:`) are addressed as `backbones[].name`; the first item that
    comments a key gives its meaning. A comment that runs on in comment-only lines below a key
    (aligned continuation) is joined to it."""
    return _scan(path)[0]


def inline_mappings(path: Path) -> set[str]:
    """Dotted paths of the mappings written on one line (`key: {a: 1, b: 2}`): each is one row."""
    return _scan(path)[1]


def _scan(path: Path) -> tuple[dict[str, str], set[str]]:
    comments: dict[str, str] = {}
    inline_maps: set[str] = set()
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
            elif COMMENTED_OUT_KEY.match(text):  # the comment above it describes that key, not the next one
                pending, inline_at = [], None
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
        indent = len(m["indent"])
        if m["dash"]:  # a new list item: close the previous item, open this one one column in
            while stack and stack[-1][0] > indent:
                stack.pop()
            stack.append((indent + 1, f"{stack[-1][1] if stack else ''}[]"))
            indent += 2
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        dotted = f"{parent}.{m['key']}" if parent else m["key"]
        stack.append((indent, dotted))
        value, has_comment, inline = _split_comment(m["rest"])
        if value.startswith("{"):
            inline_maps.add(dotted)
        text = " ".join(pending + ([inline] if inline else []))
        pending = []
        if text and dotted not in comments:
            comments[dotted] = text
            inline_at = (dotted, raw.rindex("#", 0, len(raw) - len(inline))) if has_comment and inline else None
        else:
            inline_at = None
    return comments, inline_maps


def _split_comment(rest: str) -> tuple[str, bool, str]:
    """`value  # comment` -> (value, has comment, comment); a `#` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), True, rest[i + 1:].strip()
    return rest.strip(), False, ""


def leaves(value, prefix: str = "", inline: frozenset[str] | set[str] = frozenset()) -> dict[str, object]:
    """Dotted path -> value for every key; a list of mappings contributes `key[].field` rows whose
    value is `PerItem` (one value per item, `_MISSING` where an item lacks the key). A mapping whose
    path is in `inline` (written on one line) is one value, not a section."""
    out: dict[str, object] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v and all(isinstance(x, str) for x in v) and path not in inline:
                out[path] = _SECTION
                out.update(leaves(v, path, inline))
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                out[path] = _SECTION
                items = [leaves(item, f"{path}[]", inline) for item in v]
                for sub in dict.fromkeys(s for item in items for s in item):
                    got = [item.get(sub, _MISSING) for item in items]
                    out[sub] = _SECTION if all(g is _SECTION or g is _MISSING for g in got) else PerItem(got)
            else:
                out[path] = v
    return out


class PerItem(tuple):
    """The values of one key across the items of a list of mappings, in list order."""


_SECTION = object()
_MISSING = object()


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
    if value is _SECTION:
        return "(section)"
    if isinstance(value, PerItem):
        return " · ".join("—" if v is _MISSING else show(v) for v in value) if len(value) > 1 else show(value[0])
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return f"`{text}`".replace("|", "\\|") if text else ""


def render() -> str:
    paper = yaml.safe_load(PRESETS["paper"].read_text())
    tiny = yaml.safe_load(PRESETS["tiny"].read_text())
    schema = yaml.safe_load(SCHEMA.read_text())
    comments = {**key_comments(PRESETS["tiny"]), **key_comments(PRESETS["paper"])}
    inline = inline_mappings(PRESETS["paper"]) | inline_mappings(PRESETS["tiny"])
    pv, tv = leaves(paper, inline=inline), leaves(tiny, inline=inline)
    keys = merged_order(list(pv), list(tv))
    lines = ["# Configuration reference", "",
             "Generated by `scripts/config_reference.py` from `config/config.yaml` (the paper preset),",
             "`config/tiny.yaml` (the tiny preset, which `--configfile config/tiny.yaml` lays over the paper one)",
             "and the schema `src/solopo/schemas/config.schema.yaml`; edit those files, not this page. The meaning",
             "and source of a key is its comment in the preset file. *tiny* is blank where the tiny preset keeps",
             "the paper value; `[INF]` marks a value the paper does not state (a reconstruction). A key of",
             "a list item (`backbones[].name`) shows each item's value in list order, separated by `·`;",
             "`—` marks an item without the key.", ""]
    section = None
    for key in keys:
        top = key.split(".")[0].split("[")[0]
        if top != section:
            section = top
            lines += ["", f"## `{top}`", "", "| key | paper | tiny | allowed | meaning and source |", "|---|---|---|---|---|"]
        p, t = pv.get(key, _MISSING), tv.get(key, _MISSING)
        paper_cell = "" if p is _MISSING else show(p)
        if t is _MISSING:  # a list item replaces the paper's items whole: a key it lacks is absent, not kept
            tiny_cell = "—" if "[]" in key and p is not _MISSING else ""
        else:
            tiny_cell = "" if t is p or (p is not _MISSING and t == p) else show(t)
        meaning = comments.get(key, "").replace("|", "\\|")
        lines.append(f"| `{key}` | {paper_cell} | {tiny_cell} | {allowed(schema, key)} | {meaning} |")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def merged_order(paper: list[str], tiny: list[str]) -> list[str]:
    """The paper preset's key order; a tiny-only key follows the key before it in tiny and that key's
    subtree (at the new key's depth), so it lands in its own section, not in a second copy of it."""
    out = list(paper)
    for i, key in enumerate(tiny):
        if key in out:
            continue
        if not i:
            out.insert(0, key)
            continue
        depth, prev = len(key.split(".")), tiny[i - 1].split(".")
        anchor = ".".join(prev[:depth]).removesuffix("[]")
        inside = [j for j, k in enumerate(out) if k == anchor or k.startswith((anchor + ".", anchor + "[]"))]
        out.insert(inside[-1] + 1, key)
    return out


def undocumented() -> list[str]:
    """Keys that have no comment in either preset file (the test requires none)."""
    comments = {**key_comments(PRESETS["tiny"]), **key_comments(PRESETS["paper"])}
    inline = inline_mappings(PRESETS["paper"]) | inline_mappings(PRESETS["tiny"])
    keys = {**leaves(yaml.safe_load(PRESETS["tiny"].read_text()), inline=inline),
            **leaves(yaml.safe_load(PRESETS["paper"].read_text()), inline=inline)}
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
