"""Shared bits of the bench scripts."""

import json
from pathlib import Path


def write_results(path: str | None, results: dict) -> None:
    """Save a bench's numbers as JSON when ``--out`` was given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(results, indent=1))
