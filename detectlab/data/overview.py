"""What a data set holds, for the Data tab and ``detectlab data info``; and data-root confinement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detectlab.data.discover import DetectionDataset, MaskedDataset, discover
from detectlab.data.splits import split
from detectlab.errors import DatasetError
from detectlab.progress import Progress, null_progress


def resolve_in_roots(path: str | Path, roots: list[Path]) -> Path:
    """Resolve a user-typed path and refuse it unless it lies inside one of ``roots``.

    Relative paths are taken relative to each root in turn. Symlinks are resolved first,
    so a link inside a root that points outside is refused too.
    """
    text = str(path).strip()
    if not text:
        raise DatasetError("no folder given")
    candidates = [Path(text).expanduser()] if Path(text).expanduser().is_absolute() else [r / text for r in roots]
    for cand in candidates:
        resolved = cand.resolve()
        for root in roots:
            if resolved == root or root in resolved.parents:
                if not resolved.exists():
                    continue
                return resolved
    allowed = ", ".join(str(r) for r in roots)
    raise DatasetError(f"'{text}' is not an existing folder inside the configured data roots ({allowed}); "
                       "set DETECTLAB_DATA_ROOTS to allow more")


@dataclass
class DatasetOverview:
    """Counts and examples of one data set."""

    root: Path
    layout: str
    rows: list[list]                          # [class, generator/kind, total, train, val, test]
    examples: dict[str, list[Path]]           # class or generator -> a few files
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    summary: str = ""

    @property
    def total(self) -> int:
        return sum(r[2] for r in self.rows)


def overview(path: Path, *, examples: int = 6, seed: int = 0, progress: Progress = null_progress) -> DatasetOverview:
    """Discover ``path`` and count it per class/generator and per split (seed 001's 80/10/10)."""
    ds = discover(path, progress=progress)
    if isinstance(ds, DetectionDataset):
        parts = split(ds.samples, seed=seed)
        rows = []
        for gen in ["real", *ds.generators]:
            members = [s for s in ds.samples if s.generator == gen]
            per_split = [sum(1 for s in parts[k] if s.generator == gen) for k in ("train", "val", "test")]
            rows.append(["real" if gen == "real" else "fake", gen, len(members), *per_split])
        ex = {gen: [s.path for s in ds.samples if s.generator == gen][:examples] for gen in ["real", *ds.generators]}
    elif isinstance(ds, MaskedDataset):
        parts = split(ds.pairs, seed=seed, group=ds.group_of, stratify=None)
        rows = [["manipulated", "images+masks", len(ds.pairs), *(len(parts[k]) for k in ("train", "val", "test"))]]
        ex = {"images": [p[0] for p in ds.pairs[:examples]], "masks": [p[1] for p in ds.pairs[:examples]]}
    else:  # pragma: no cover - discover returns one of the two
        raise DatasetError(f"{path}: unknown data set type")
    return DatasetOverview(ds.root, ds.layout, rows, ex, list(ds.skipped), ds.summary())


def new_dataset_dir(name: str) -> Path:
    """A fresh folder under DetectLab's data sets for ``name`` (sanitised; ``-2``, ``-3``... if taken)."""
    import re

    from detectlab import config

    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "dataset"
    target = config.datasets_dir() / base
    k = 1
    while target.exists():
        k += 1
        target = config.datasets_dir() / f"{base}-{k}"
    return target


def import_dataset_zip(zip_path: Path, name: str | None = None) -> Path:
    """Extract an uploaded .zip into DetectLab's data sets folder and check it is a data set.

    The archive is extracted safely (``extract_zip``); if the result is in no accepted layout
    the extracted copy is removed again and the layout error is raised, so nothing half-made
    is left among the user's data sets.
    """
    import shutil

    from detectlab.data.archive import extract_zip

    target = new_dataset_dir(name or Path(zip_path).stem)
    root = extract_zip(zip_path, target)
    try:
        discover(root, validate=False)
    except DatasetError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return root
