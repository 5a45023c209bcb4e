"""`detectlab` sub-commands of the attack capability."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this capability's parsers (none yet)."""
