"""The package's structure: no module reaches into another module's private (`_name`) names, and the
`solopo` modules import each other without a cycle (imports inside functions count: a lazy import
only hides a cycle until both modules are loaded)."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "solopo"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in sorted((src / PACKAGE).rglob("*.py"))}


def _absolute(node: ast.ImportFrom, here: str, is_package: bool) -> str:
    """The module an ImportFrom reads from, relative imports resolved against `here`."""
    if not node.level:
        return node.module or ""
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def scan(path: Path, here: str, modules: set[str]) -> tuple[set[str], list[str]]:
    """(the package modules `here` imports anywhere in its body, its uses of other modules' private names)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    imported: set[str] = set()
    aliases: dict[str, str] = {}  # local name -> package module it is bound to
    bad: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PACKAGE:
                    imported.add(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, here, is_package)
            if source.split(".")[0] != PACKAGE:
                continue
            for a in node.names:
                sub = f"{source}.{a.name}"
                if sub in modules:  # `from solopo.bench import efficiency`: the submodule itself
                    imported.add(sub)
                    aliases[a.asname or a.name] = sub
                    continue
                imported.add(source)
                if private(a.name) and source != here:
                    bad.append(f"{here}:{node.lineno} imports {source}.{a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and private(node.attr)
                and aliases.get(node.value.id, here) != here):
            bad.append(f"{here}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return {m for m in imported if m in modules and m != here}, bad


def import_graph(src: Path = SRC) -> tuple[dict[str, set[str]], list[str]]:
    mods = package_modules(src)
    graph, bad = {}, []
    for name, path in mods.items():
        graph[name], found = scan(path, name, set(mods))
        bad += found
    return graph, bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring the nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_no_module_uses_another_modules_private_names():
    _, bad = import_graph()
    assert not bad, "private names used across modules (make them public where they belong):\n" + "\n".join(bad)


def test_no_import_cycle():
    graph, _ = import_graph()
    assert len(graph) > 50 and any(graph.values())  # the scan saw the package and its imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_the_checks_catch_planted_violations(tmp_path):
    """The scanner sees every form: from-imports (relative too), module aliases, lazy imports."""
    root = _write(tmp_path, {
        "__init__.py": "", "a.py": "def _hidden():\n    pass\n\ndef shown():\n    from solopo import b\n",
        "b.py": "from solopo.a import _hidden, shown\n", "sub/__init__.py": "",
        "sub/c.py": "from ..a import _hidden\nimport solopo.a as alias\nalias._hidden()\n",
        "sub/d.py": "from solopo.sub import c\nc._x\nfrom solopo.a import __doc__\n",
    })
    graph, bad = import_graph(root)
    assert sorted(b.split(" ", 1)[1] for b in bad) == [
        "imports solopo.a._hidden", "imports solopo.a._hidden", "uses solopo.a._hidden", "uses solopo.sub.c._x"]
    assert graph["solopo.sub.d"] == {"solopo.sub.c", "solopo.a"}
    assert find_cycle(graph) == ["solopo.a", "solopo.b", "solopo.a"]
    graph["solopo.a"] = set()
    assert find_cycle(graph) is None
