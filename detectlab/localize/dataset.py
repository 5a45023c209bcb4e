"""Write an ultralytics segmentation data set from an ``images/`` + ``masks/`` folder.

Images are decoded by ``detectlab.data`` (every mode to RGB, EXIF applied) and re-written
as PNG, so ultralytics' own cv2 decoder never sees a file DetectLab would decode
differently. The split is the data layer's (``detectlab.data.split``, by source group,
80/10/10 from a seed), the same one the U-Net and the metrics use.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from detectlab.data import MaskedDataset, discover, load_image, split
from detectlab.errors import DatasetError, DetectLabError
from detectlab.localize.masks import mask_area_fraction, read_mask, yolo_label_lines
from detectlab.localize.metrics import QUARTILES, area_quartile
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

__all__ = ["YoloDataset", "masked_splits", "quartile_counts", "split_examples", "write_yolo_dataset"]

CLASS_NAME = "manipulated"


@dataclass
class YoloDataset:
    """An ultralytics data set on disk and what DetectLab knows about it.

    Attributes:
        root: the folder (``images/<split>``, ``labels/<split>``, ``data.yaml``).
        data_yaml: the file ultralytics ``train``/``val`` take.
        splits: split name -> stems.
        areas: stem -> manipulated area fraction.
        sources: stem -> (original image, original mask) paths.
        skipped: (file, reason) for pairs left out.
    """

    root: Path
    data_yaml: Path
    splits: dict[str, list[str]]
    areas: dict[str, float]
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def image(self, stem: str, split_name: str) -> Path:
        return self.root / "images" / split_name / f"{stem}.png"

    def subset_yaml(self, split_name: str, stems: list[str], tag: str) -> Path:
        """A data.yaml whose ``val`` lists only ``stems`` of ``split_name`` (e.g. one area quartile)."""
        listing = self.root / f"{split_name}_{tag}.txt"
        listing.write_text("".join(f"{self.image(s, split_name)}\n" for s in stems))
        path = self.root / f"data_{split_name}_{tag}.yaml"
        path.write_text(_yaml(self.root, val=str(listing), test=str(listing)))
        return path

    def quartile_stems(self, split_name: str) -> dict[str, list[str]]:
        """Stems of ``split_name`` per area quartile ([Petrželková 2024] Table 4.8); empty masks in none."""
        out: dict[str, list[str]] = {q: [] for q in QUARTILES}
        for stem in self.splits[split_name]:
            q = area_quartile(self.areas[stem])
            if q is not None:
                out[q].append(stem)
        return out

    @classmethod
    def load(cls, root: str | Path) -> "YoloDataset":
        root = Path(root)
        meta = json.loads((root / "detectlab.json").read_text())
        return cls(root, root / "data.yaml", meta["splits"], meta["areas"],
                   {k: tuple(v) for k, v in meta["sources"].items()}, [tuple(s) for s in meta["skipped"]])


def _yaml(root: Path, *, val: str = "images/val", test: str = "images/test") -> str:
    # json strings are valid YAML scalars and quote any odd path safely
    return (f"path: {json.dumps(str(root))}\ntrain: images/train\nval: {json.dumps(val)}\n"
            f"test: {json.dumps(test)}\nnames:\n  0: {CLASS_NAME}\n")


def masked_splits(root: str | Path, *, seed: int = 0, fractions=(0.8, 0.1, 0.1),
                  progress: Progress = null_progress) -> tuple[MaskedDataset, dict[str, list[tuple[Path, Path]]]]:
    """Discover an images+masks folder and split its pairs by source group (the data layer's split)."""
    ds = discover(root, progress=progress)
    if not isinstance(ds, MaskedDataset):
        raise DatasetError(f"{root}: is a {ds.layout} data set; localization needs ROOT/images/* with "
                           "ROOT/masks/* (same stem, binary masks)")
    return ds, split(ds.pairs, seed=seed, fractions=fractions, group=ds.group_of, stratify=None)


def write_yolo_dataset(
    root: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    fractions=(0.8, 0.1, 0.1),
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
) -> YoloDataset:
    """Convert ``root`` (images/ + masks/) into an ultralytics segmentation set at ``out``.

    Each mask becomes one polygon per connected region (``yolo_label_lines``); an empty
    mask an empty label file (an unmanipulated image: a negative example). Masks that are
    not binary or not the image's size are skipped and listed, as unreadable files are.
    The set is written in a temporary sibling folder and moved into place at the end, so
    a failure or a cancel leaves nothing half-written.

    Raises:
        DatasetError: ``root`` is not an images+masks set, or no pair is usable.
    """
    out = Path(out)
    ds, parts = masked_splits(root, seed=seed, fractions=fractions, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        skipped = [(str(p), r) for p, r in ds.skipped]
        splits: dict[str, list[str]] = {}
        areas: dict[str, float] = {}
        sources: dict[str, tuple[str, str]] = {}
        total, done = len(ds.pairs), 0
        for split_name, pairs in parts.items():
            (tmp / "images" / split_name).mkdir(parents=True)
            (tmp / "labels" / split_name).mkdir(parents=True)
            stems = []
            for image_path, mask_path in pairs:
                cancel.check()
                done += 1
                progress(done, total, "Writing YOLO labels")
                stem = _unique_stem(image_path, areas)
                try:
                    image = load_image(image_path)
                    mask = read_mask(mask_path, size=(image.height, image.width), allow_empty=True)
                except DetectLabError as exc:
                    skipped.append((str(image_path), str(exc)))
                    continue
                image.save(tmp / "images" / split_name / f"{stem}.png")
                (tmp / "labels" / split_name / f"{stem}.txt").write_text(
                    "".join(line + "\n" for line in yolo_label_lines(mask)))
                areas[stem] = mask_area_fraction(mask)
                sources[stem] = (str(image_path), str(mask_path))
                stems.append(stem)
            splits[split_name] = stems
        if not splits.get("train"):
            raise DatasetError(f"{root}: no usable image/mask pair in the training split "
                               f"({len(skipped)} skipped, e.g. {skipped[:1]})")
        # val must not be empty for ultralytics; a tiny set borrows train for it (said in the yaml)
        (tmp / "data.yaml").write_text(_yaml(out) if splits.get("val") else _yaml(out, val="images/train"))
        (tmp / "detectlab.json").write_text(json.dumps(
            {"source": str(Path(root).resolve()), "seed": seed, "fractions": list(fractions),
             "splits": splits, "areas": areas, "sources": sources, "skipped": skipped}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return YoloDataset.load(out)


def _unique_stem(path: Path, taken: dict) -> str:
    stem = path.stem
    k = 1
    while stem in taken:
        stem, k = f"{path.stem}_{k}", k + 1
    return stem


def quartile_counts(areas: list[float]) -> dict[str, int]:
    """How many masks fall in each area quartile of [Petrželková 2024] Table 4.8."""
    counts = {q: 0 for q in QUARTILES}
    for a in areas:
        q = area_quartile(a)
        if q is not None:
            counts[q] += 1
    return counts



def split_examples(root: str | Path, split_name: str = "test", *, seed: int = 0,
                   limit: int = 40) -> list[tuple[str, Path, Path]]:
    """(label, image, mask) of up to ``limit`` pairs of one split, labelled with area and quartile.

    The Localize tab offers these as ready-made examples (with their ground truth); pairs
    whose mask is unusable are left out.
    """
    _, parts = masked_splits(root, seed=seed)
    out = []
    for image, mask in parts[split_name]:
        try:
            area = mask_area_fraction(read_mask(mask, allow_empty=True))
        except DetectLabError:
            continue
        out.append((f"{image.stem} ({area_quartile(area) or 'no region'}, area {area:.2f})", image, mask))
    # spread over the quartiles rather than the first files alphabetically
    out.sort(key=lambda item: (item[0].split("(")[1], item[0]))
    step = max(1, len(out) // limit)
    return out[::step][:limit]
