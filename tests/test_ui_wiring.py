"""The UI only wires: every module under ``detectlab/ui/`` holds widgets and event wiring, no science.

Read from the source with ``ast`` (function-level code included), each module must:

1. import none of ``BANNED_IMPORTS``: figures (plotly, matplotlib), tables (csv, pandas), array
   maths and models (numpy, torch, scipy, sklearn, cv2, timm, ultralytics), image encoding (PIL),
   digests and pickles (hashlib, pickle). A figure is built in its capability's ``plots`` module,
   a CSV written by ``eval.tables.write_rows_csv`` through a package function, a metric computed
   in its package.
2. call no file writer: the builtin ``open``; a method named in ``WRITER_METHODS`` (``.save``,
   ``.write_text``, ``.write_bytes``, ``.open``, ``json.dump`` ...) unless its receiver is a
   ``detectlab`` module or name the file imported (``plots.write_html(fig, path)`` is a package
   function); ``shutil``'s copy and move functions; ``os.replace`` / ``os.rename``. Files the
   app hands out are written by package functions into ``widgets.output_path``'s folder.
3. import no loader or manifest reader around the catalogue (``BANNED_DETECTLAB``): a name
   resolves to a file, and a file to a model, only in ``detectlab.catalog``.

Allowed against the rule: ``EXCEPTIONS``, (module, what) -> why. Keep it minimal.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import detectlab

UI = Path(detectlab.__file__).resolve().parent / "ui"

BANNED_IMPORTS = {"plotly", "matplotlib", "csv", "pandas", "numpy", "torch", "torchvision", "scipy", "sklearn",
                  "cv2", "timm", "ultralytics", "PIL", "hashlib", "pickle"}
WRITER_METHODS = {"save", "savefig", "write_text", "write_bytes", "write_image", "write_html", "to_csv", "open",
                  "dump"}
WRITER_FUNCTIONS = {("shutil", "copy"), ("shutil", "copy2"), ("shutil", "copyfile"), ("shutil", "copytree"),
                    ("shutil", "move"), ("os", "replace"), ("os", "rename")}
BANNED_DETECTLAB = {"detectlab.models.manifest", "detectlab.models.checkpoint", "detectlab.localize.localizer",
                    "detectlab.localize.yolo", "detectlab.localize.unet"}

#: (module file name, what it does) allowed against the rule, each with why. Gradio's own components
#: and their methods (``gr.File``, ``.click``) never match the rule, so they need no entry.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _modules() -> list[Path]:
    return sorted(UI.glob("*.py"))


def _detectlab_names(tree: ast.AST) -> set[str]:
    """Names bound to a ``detectlab`` module or object by an import: a call through them is a package's."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] == "detectlab"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "detectlab":
            names |= {a.asname or a.name for a in node.names}
    return names


def violations(path: Path) -> list[str]:
    """Every break of the module docstring's rules in ``path``, as ``file:line what``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package_names = _detectlab_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in BANNED_IMPORTS:
                    found.append((node.lineno, f"import {a.name}"))
                if any(a.name == m or a.name.startswith(m + ".") for m in BANNED_DETECTLAB):
                    found.append((node.lineno, f"import {a.name}"))
        elif isinstance(node, ast.ImportFrom) and not node.level:
            module = node.module or ""
            if module.split(".")[0] in BANNED_IMPORTS:
                found.append((node.lineno, f"import {module}"))
            for a in node.names:
                full = f"{module}.{a.name}"
                if any(x == m or x.startswith(m + ".") for m in BANNED_DETECTLAB for x in (module, full)):
                    found.append((node.lineno, f"import {full}"))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                found.append((node.lineno, "open()"))
            elif isinstance(func, ast.Attribute):
                receiver = func.value.id if isinstance(func.value, ast.Name) else None
                if (receiver, func.attr) in WRITER_FUNCTIONS:
                    found.append((node.lineno, f"{receiver}.{func.attr}()"))
                elif func.attr in WRITER_METHODS and receiver not in package_names:
                    found.append((node.lineno, f".{func.attr}()"))
    return [f"{path.name}:{line} {what}" for line, what in sorted(found)
            if (path.name, what) not in EXCEPTIONS]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_ui_module_only_wires(path):
    bad = violations(path)
    assert not bad, ("the UI computes, draws or writes files itself; move it into the capability package:\n"
                     + "\n".join(bad))


def test_the_rule_catches_what_it_names(tmp_path):
    """The checker itself: each kind of break is reported, a package's writer and gradio's calls are not."""
    src = tmp_path / "tab.py"
    src.write_text(
        "import csv\nimport plotly.graph_objects as go\nfrom PIL import Image\nimport shutil\n"
        "from detectlab.models.manifest import read_manifest\n"
        "from detectlab.robustness import plots\nimport gradio as gr\n"
        "def f(img, path, fig):\n"
        "    open(path, 'w')\n    img.save(path)\n    path.write_text('x')\n    shutil.copyfile(path, path)\n"
        "    plots.write_html(fig, path)\n    gr.File(value=str(path))\n    shutil.rmtree(path)\n")
    assert [v.split(" ", 1)[1] for v in violations(src)] == [
        "import csv", "import plotly.graph_objects", "import PIL", "import detectlab.models.manifest.read_manifest",
        "open()", ".save()", ".write_text()", "shutil.copyfile()"]
