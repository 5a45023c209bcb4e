"""CLI sub-commands of the capabilities added after the core (one module each, wired by ``detectlab.cli``).

Each module has ``register(sub)`` that adds its parsers to the top-level sub-parsers and sets
``func`` on them; ``func(args) -> int`` is the exit code. Same layer as ``detectlab.cli``.
"""

from __future__ import annotations

import argparse

MODULES = ("robustness", "attack", "localize", "trust", "heldout", "storage")


def register_all(sub: argparse._SubParsersAction) -> None:
    import importlib

    for name in MODULES:
        importlib.import_module(f"detectlab.commands.{name}").register(sub)
