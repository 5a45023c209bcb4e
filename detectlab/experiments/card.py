"""Reproducibility cards: one JSON and one self-contained HTML page per experiment result.

The JSON holds what someone else needs to get the same numbers: the experiment and every setting
(seeds included), library versions, the git commit, the data set's fingerprint (a hash of its file
list, sizes, labels and splits), the tables, timings and how many models were fitted or reused.
``rerun_card`` runs the experiment again from the JSON and compares every number with the card's.
The HTML page shows the same with the figures inline (plotly.js embedded once), readable offline.
"""

from __future__ import annotations

import html
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from detectlab import config
from detectlab.experiments.core import ExperimentResult, ProbeCache
from detectlab.experiments.registry import ExperimentError, experiment, run_experiment
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

FORMAT = "detectlab-experiment-card/1"
#: How far a re-run's number may be from the card's and still count as reproduced (probes are
#: deterministic given the seed; this absorbs BLAS summation order across machines).
TOLERANCE = 1e-4


def versions() -> dict:
    """The versions of the libraries an experiment's numbers depend on."""
    import numpy
    import scipy
    import sklearn
    import timm
    import torch

    from detectlab import __version__

    return {"detectlab": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "timm": timm.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__}


def git_commit() -> str | None:
    """The repository's commit (with "+changes" when the working tree differs), or None outside a checkout."""
    try:
        head = subprocess.run(["git", "-C", str(config.REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(config.REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _shown_path(text: str) -> str:
    """A data path as a card shows it: relative to the data root it lies in (``demo``, ``datasets/x``)."""
    path = Path(text)
    for root in config.data_roots():
        try:
            return str(path.resolve().relative_to(root.resolve().parent))
        except (ValueError, OSError):
            continue
    return str(path)


def make_card(result: ExperimentResult) -> dict:
    """The card's JSON content for ``result``."""
    exp = experiment(result.name)
    return {
        "format": FORMAT,
        "experiment": result.name,
        "title": exp.title,
        "reproduces": exp.reproduces,
        "params": result.params,
        "data": {"path": _shown_path(str(result.params.get("data", ""))), "fingerprint": result.data_fingerprint},
        "seeds": {k: v for k, v in result.params.items() if "seed" in k or k == "runs"},
        "versions": versions(),
        "git_commit": git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tables": result.tables,
        "summary": result.summary,
        "notes": result.notes,
        "timings": result.timings,
        "models": result.models,
    }


def _table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p><em>empty</em></p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(k)))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def card_html(card: dict, figures: dict | None = None) -> str:
    """One self-contained HTML page: summary, figures (plotly.js inline once), tables, settings, versions."""
    parts = [f"<h1>{html.escape(card['title'])}</h1>",
             f"<p>{html.escape(card['reproduces'])} &middot; data <code>{html.escape(card['data']['path'])}</code> "
             f"(fingerprint {html.escape(str(card['data']['fingerprint']))}) &middot; {html.escape(card['created'])}</p>",
             f"<p>{html.escape(card['summary'])}</p>"]
    parts += [f"<p><em>{html.escape(n)}</em></p>" for n in card.get("notes", [])]
    first = True
    for name, fig in (figures or {}).items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if first else False))
        first = False
    for name, rows in card["tables"].items():
        parts.append(f"<h2>{html.escape(name)}</h2>{_table_html(rows)}")
    meta = {k: card[k] for k in ("params", "seeds", "versions", "git_commit", "timings", "models")}
    parts.append(f"<h2>Reproduce</h2><p><code>detectlab experiment rerun card.json</code></p>"
                 f"<pre>{html.escape(json.dumps(meta, indent=1, default=str))}</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f4f4f4}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(card['title'])}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_card(result: ExperimentResult, folder: str | Path, stem: str | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` (default stem: the experiment's name) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or result.name
    card = make_card(result)
    json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"
    json_path.write_text(json.dumps(card, indent=1, default=str))
    html_path.write_text(card_html(card, result.figures))
    return json_path, html_path


def read_card(path: str | Path) -> dict:
    """A card's JSON, checked: a file that is not a card, or a card of another format, is refused in one line."""
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExperimentError(f"{path.name}: not a readable experiment card ({type(exc).__name__})") from None
    if not isinstance(card, dict) or "format" not in card:
        raise ExperimentError(f"{path.name}: not an experiment card (no 'format' field)")
    if card["format"] != FORMAT:
        raise ExperimentError(f"{path.name}: card format {card['format']!r}, this DetectLab reads {FORMAT!r}; "
                              "re-run the experiment with this version")
    missing = [k for k in ("experiment", "params", "tables") if k not in card]
    if missing:
        raise ExperimentError(f"{path.name}: the card has no {', '.join(missing)}")
    experiment(card["experiment"])  # a known experiment, or a one-line refusal
    return card


@dataclass
class Rerun:
    """A card's experiment run again: the new result and every number that moved more than the tolerance."""

    result: ExperimentResult
    differences: list[str]
    compared: int
    same_data: bool

    @property
    def reproduced(self) -> bool:
        return not self.differences


def compare_tables(old: dict, new: dict, tolerance: float = TOLERANCE) -> tuple[int, list[str]]:
    """How many numbers were compared, and a line for each that differs by more than ``tolerance``."""
    diffs, n = [], 0
    for name, rows in old.items():
        if name not in new:
            diffs.append(f"table {name}: missing in the re-run")
            continue
        if len(rows) != len(new[name]):
            diffs.append(f"table {name}: {len(rows)} rows on the card, {len(new[name])} now")
            continue
        for i, (a, b) in enumerate(zip(rows, new[name])):
            for key, va in a.items():
                vb = b.get(key)
                if isinstance(va, (int, float)) and not isinstance(va, bool) and isinstance(vb, (int, float)):
                    n += 1
                    if abs(float(va) - float(vb)) > tolerance:
                        diffs.append(f"{name}[{i}].{key}: card {va}, now {vb}")
                elif va != vb:
                    diffs.append(f"{name}[{i}].{key}: card {va!r}, now {vb!r}")
    return n, diffs


def rerun_card(path: str | Path, data: str | None = None, progress: Progress = null_progress,
               cancel: CancelToken = NEVER_CANCEL, cache: ProbeCache | None = None) -> Rerun:
    """Run a card's experiment again with its settings (``data``: the data set's folder on this machine,
    when it lies elsewhere) and compare every number with the card's."""
    card = read_card(path)
    params = dict(card["params"])
    if data:
        params["data"] = str(data)
    result = run_experiment(card["experiment"], params, progress=progress, cancel=cancel, cache=cache)
    n, diffs = compare_tables(card["tables"], result.tables)
    same = card.get("data", {}).get("fingerprint") in (None, "", result.data_fingerprint)
    return Rerun(result, diffs, n, same)
