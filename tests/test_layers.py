"""The layers contract: every module imports only from its own layer or below, and no package loops.

Layers, lowest first (README "Development" draws them):

    config, errors, progress, papers              the foundation
    data, models, degrade, eval, generators        decode and model images
    spectral, explain, attacks                     analyses over a model or a set of images
    detect, train, robustness, localize,           capabilities (demo builds its set with spectral;
    demo, heldout                                  heldout scores the held-out photo set)
    runs                                           the run history and worker processes
    catalog                                        what a user can pick, by name
    ui, cli, commands                              wiring

Every ``import`` and ``from ... import`` is read from the source with ``ast``, function-level
ones included (a lazy import is still a dependency). The package's own top level
(``detectlab/__init__.py``: the version) counts as the foundation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import detectlab

LAYERS: list[tuple[str, ...]] = [
    ("__init__", "config", "errors", "progress", "papers"),
    ("data", "models", "degrade", "eval", "generators"),
    ("spectral", "explain", "attacks"),
    ("detect", "train", "robustness", "localize", "demo", "heldout"),
    ("runs",),
    ("catalog",),
    ("ui", "cli", "commands", "__main__"),
]
LAYER = {pkg: i for i, names in enumerate(LAYERS) for pkg in names}

#: (importing module, imported module) pairs allowed against the rule, each with why. Keep empty.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

ROOT = Path(detectlab.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (ROOT / rel).with_suffix(".py").is_file() or (ROOT / rel / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, int]]:
    """``detectlab`` modules imported anywhere in ``path`` (dotted names), with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
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


def test_function_level_relative_and_from_imports_are_seen(tmp_path, monkeypatch):
    pkg = tmp_path / "detectlab"
    (pkg / "models").mkdir(parents=True)
    for f in ("__init__.py", "config.py", "models/__init__.py", "models/base.py"):
        (pkg / f).write_text("")
    (pkg / "models" / "m.py").write_text(
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
