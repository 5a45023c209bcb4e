"""The layers contract: every module imports only from its own layer or below, and no package loops.

``LAYERS`` below is the one source of the layers; README's "Development" section draws them, and
``test_readme_draws_the_layers`` checks that drawing against ``LAYERS`` (``python tests/test_layers.py``
prints the drawing to paste).

Every ``import`` and ``from ... import`` is read from the source with ``ast``, function-level
ones included (a lazy import is still a dependency), and so are string imports: the literal
argument of ``importlib.import_module(...)`` or ``__import__(...)`` (an f-string by its constant
prefix, ``f"detectlab.commands.{name}"`` imports from ``detectlab.commands``), and any string
constant that is exactly a ``detectlab`` module's dotted name (a lazy-export table, a
``python -m`` argument). The package's own top level (``detectlab/__init__.py``: the version)
counts as the foundation.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import detectlab

#: The layers, lowest first: the packages (and top-level modules) of each, and what the layer is for.
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "config", "errors", "progress", "papers"),
    ("data", "models", "degrade", "eval", "generators"),
    ("spectral", "explain"),
    ("detect", "attacks", "train", "robustness", "localize", "demo", "heldout"),
    ("runs",),
    ("catalog",),
    ("experiments",),
    ("ui", "cli", "commands", "__main__"),
]
ROLES: list[str] = [
    "paths, errors, progress + cancel, the papers' numbers",
    "images; detectors (registry); degradations; metrics",
    "analyses over a model or a set of images",
    "capabilities, the demo set and the held-out photos",
    "run history (SQLite), queue, worker processes",
    "what a user can pick by name: detectors, data sets",
    "the papers' experiments over any labelled set, cards",
    "wiring: widgets and flags -> package calls",
]
LAYER = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}

#: (importing module, imported module) pairs allowed against the rule, each with why. Keep empty.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

ROOT = Path(detectlab.__file__).resolve().parent
README = Path(__file__).resolve().parent.parent / "README.md"


def layer_drawing(width: int = 42) -> str:
    """README's drawing of ``LAYERS``: the highest layer first, its names (wrapped at ``width``), then its role."""
    lines = []
    for names, role in reversed(list(zip(LAYERS, ROLES, strict=True))):
        rows: list[list[str]] = [[]]
        for name in names:
            if rows[-1] and len("  ".join(rows[-1] + [name])) > width:
                rows.append([])
            rows[-1].append(name)
        lines.append("  ".join(rows[0]).ljust(width + 2) + role)
        lines += ["  ".join(row) for row in rows[1:]]
    return "\n".join(lines)


def _readme_drawing() -> str:
    """The fenced block that follows the mention of ``tests/test_layers.py`` in README's "Development"
    section, dedented."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Development\n", 1)[1].split("\n## ", 1)[0]
    after = section.split("`tests/test_layers.py`", 1)[1]
    block = after.split("```", 2)[1].split("\n", 1)[1]  # drop the fence line's language tag
    return textwrap.dedent(block).strip("\n")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


_IMPORT_CALLS = {"import_module", "__import__"}


def _string_import(node: ast.Call) -> str | None:
    """The module a call ``importlib.import_module("detectlab…")`` or ``__import__("detectlab…")`` names,
    if its argument is a literal."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in _IMPORT_CALLS or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        text = arg.value
    elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        text = str(arg.values[0].value).rpartition(".")[0]  # f"detectlab.commands.{name}" -> detectlab.commands
    else:
        return None
    return text if text.split(".")[0] == "detectlab" else None


def _imports(path: Path) -> list[tuple[str, int]]:
    """``detectlab`` modules imported anywhere in ``path`` (dotted names), with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    called = set()  # string constants already counted as an import call's argument
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "detectlab"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] != "detectlab":
                continue
            for alias in node.names:  # `from detectlab import config` imports the module detectlab.config
                sub = f"{base}.{alias.name}"
                found.append((sub if _is_module(sub) else base, node.lineno))
        elif isinstance(node, ast.Call) and (target := _string_import(node)):
            found.append((target, node.lineno))
            called.add(id(node.args[0]))
    for node in ast.walk(tree):  # a string that names a module exactly: a lazy-export table, `python -m` argument
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in called
                and node.value.startswith("detectlab.") and _is_module(node.value)):
            found.append((node.value, node.lineno))
    return found


def _package(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _all_imports() -> list[tuple[str, str, int]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == ROOT:
            name = "detectlab.__init__"
        else:
            name = _module_name(path)
        out += [(name, target, line) for target, line in _imports(path)]
    return out


IMPORTS = _all_imports()


def test_every_package_has_a_layer():
    packages = {_package(m) for m, _, _ in IMPORTS} | {_package(t) for _, t, _ in IMPORTS}
    packages |= {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
                 if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert sorted(packages - set(LAYER)) == [], "give every new package a layer in LAYERS (and in README)"


def test_every_name_has_one_layer():
    names = [n for names in LAYERS for n in names]
    assert len(names) == len(set(names)), "a name in two layers"
    assert len(ROLES) == len(LAYERS)


def test_readme_draws_the_layers():
    drawn = _readme_drawing()
    assert drawn == layer_drawing(), (
        "README.md's layer drawing (Development section) differs from LAYERS in tests/test_layers.py; "
        "replace the block with the output of `python tests/test_layers.py`:\n" + layer_drawing())


def test_imports_point_down_the_layers():
    bad = []
    for module, target, line in IMPORTS:
        src, dst = _package(module), _package(target)
        if LAYER.get(dst, -1) > LAYER.get(src, 99) and (module, target) not in KNOWN_EXCEPTIONS:
            bad.append(f"{module}:{line} imports {target} ({src} is layer {LAYER[src]}, {dst} is layer {LAYER[dst]})")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, target, _ in IMPORTS:
        src, dst = _package(module), _package(target)
        if src != dst and (module, target) not in KNOWN_EXCEPTIONS:
            graph.setdefault(src, set()).add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_package_loops():
    cycle = _cycle(_package_graph())
    assert cycle is None, "package import loop: " + " -> ".join(cycle)


def test_capabilities_never_import_gradio():
    ui_layer = LAYER["ui"]
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        if LAYER.get(_package(name), ui_layer) >= ui_layer:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{name}:{node.lineno}" for m in mods if m.split(".")[0] == "gradio"]
    assert not bad, "capabilities import gradio: " + ", ".join(bad)


# -- the checker itself --------------------------------------------------------------------

@pytest.mark.parametrize("graph, loop", [
    ({"a": {"b"}, "b": {"c"}}, None),
    ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_cycle_finder(graph, loop):
    assert _cycle(graph) == loop


def _fake_package(tmp_path, empty_files: tuple[str, ...], module: str) -> Path:
    """A ``detectlab`` tree of empty modules plus ``models/m.py`` holding ``module``; returns the package."""
    pkg = tmp_path / "detectlab"
    for f in empty_files:
        (pkg / f).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f).write_text("")
    (pkg / "models").mkdir(parents=True, exist_ok=True)
    (pkg / "models" / "m.py").write_text(module)
    return pkg


def test_function_level_relative_and_from_imports_are_seen(tmp_path, monkeypatch):
    pkg = _fake_package(tmp_path, ("__init__.py", "config.py", "models/__init__.py", "models/base.py"),
        "from detectlab import config\n"
        "from . import base\n"
        "def f():\n"
        "    from detectlab.catalog import load_detector\n"
        "    import detectlab.ui.app\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg)
    assert sorted(_imports(pkg / "models" / "m.py"), key=lambda t: t[1]) == [
        ("detectlab.config", 1), ("detectlab.models.base", 2), ("detectlab.catalog", 4), ("detectlab.ui.app", 5)]
    monkeypatch.setattr(__import__(__name__), "IMPORTS", [("detectlab.models.m", "detectlab.catalog", 4)])
    with pytest.raises(AssertionError, match="detectlab.models.m:4 imports detectlab.catalog"):
        test_imports_point_down_the_layers()



def test_string_imports_are_seen(tmp_path, monkeypatch):
    pkg = _fake_package(tmp_path, ("__init__.py", "models/__init__.py", "runs/__init__.py", "runs/worker.py"),
        "import importlib\n"
        "from importlib import import_module\n"
        "def f(name):\n"
        "    importlib.import_module('detectlab.catalog')\n"
        "    import_module(f'detectlab.ui.{name}')\n"
        "    __import__('detectlab.commands.train', fromlist=['x'])\n"
        "    importlib.import_module(name)\n"  # not a literal: nothing to read
        "    importlib.import_module('numpy')\n"
        "LAZY = {'train': 'detectlab.runs.worker', 'file': 'detectlab.json'}\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg)
    assert sorted(_imports(pkg / "models" / "m.py"), key=lambda t: t[1]) == [
        ("detectlab.catalog", 4), ("detectlab.ui", 5), ("detectlab.commands.train", 6), ("detectlab.runs.worker", 9)]


def test_readme_drawing_wraps_and_lists_every_name(monkeypatch):
    monkeypatch.setattr(__import__(__name__), "LAYERS", [("a", "b"), ("ccc", "dddd", "ee")])
    monkeypatch.setattr(__import__(__name__), "ROLES", ["low", "high"])
    assert layer_drawing(width=9) == "ccc  dddd  high\nee\na  b       low"


if __name__ == "__main__":
    print(layer_drawing())
