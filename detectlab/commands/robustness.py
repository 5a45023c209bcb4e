"""`detectlab` sub-commands of the robustness capability."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this capability's parsers (none yet)."""
