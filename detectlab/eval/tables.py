"""Rows of results out as CSV: the one writer every table of DetectLab goes through."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path


def _cell(value, float_format: str | None) -> object:
    if value is None:
        return ""
    if float_format and isinstance(value, float):
        return format(value, float_format)
    if isinstance(value, bool):
        return str(value).lower()
    return value


def write_rows_csv(rows: Iterable[Mapping] | Iterable[Sequence], path: str | Path,
                   header: Sequence[str] | None = None, float_format: str | None = None,
                   exact: Sequence[str] = (), append: bool = False) -> Path:
    """Write ``rows`` (dicts, or sequences with ``header``) as a CSV with a header line.

    Dict rows: the columns are ``header`` or, without it, every key in order of first appearance.
    Missing values and None are empty cells; booleans are ``true``/``false``; with ``float_format``
    (e.g. ``".6f"``) floats are formatted, except in the ``exact`` columns. The parent folder is made.
    ``append``: add the rows to an existing file (the header only when it is empty), flushed to disk on return.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    dicts = bool(rows) and isinstance(rows[0], Mapping)
    if header is None:
        header = list(dict.fromkeys(k for r in rows for k in r)) if dicts else []
    keep = set(exact)
    with path.open("a" if append else "w", newline="") as fh:
        w = csv.writer(fh)
        if not append or fh.tell() == 0:
            w.writerow(header)
        for r in rows:
            values = [r.get(k) for k in header] if dicts else list(r)
            w.writerow([_cell(v, None if k in keep else float_format) for k, v in zip(header, values)])
        fh.flush()
        os.fsync(fh.fileno())
    return path
