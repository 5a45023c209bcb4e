"""Cut the real photographs of the demo into small, trace-free crops.

The demo's real class must differ from its synthetic classes by *how the pixels were
made*, not by file format: the sources are JPEG, WebP and PNG, and a detector happily
learns 8x8 JPEG/WebP block edges or chroma subsampling instead of generator traces.
So every photo is first downscaled with an antialiasing filter by a factor of at least
2 (which averages the block grid away), then cut into non-overlapping ``size`` x
``size`` crops at seeded random positions, saved losslessly as PNG.

The downscale also sets what a crop shows: large photos are brought to a short side
of about ``3 * size`` so a crop holds a recognisable part of the scene (an animal's
head, a window) rather than a texture patch of a 20-megapixel wallpaper.

Train/test splits must be made by source photo (``record["photo"]``), never by crop:
crops of one photo share lighting, camera and content.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from detectlab.demo.sources import SourcePhoto, load_rgb
from detectlab.progress import Progress, null_progress

__all__ = ["make_real_crops", "crop_scale", "crop_count", "is_informative", "write_manifest"]

CROP_NAME = re.compile(r"^p\d{4}_c\d+\.png$")
"""Files :func:`make_real_crops` owns in its output folder (stale ones are removed)."""


def crop_scale(short_side: int, size: int) -> float:
    """Downscale factor for a photo: at most 0.5, and down to a short side of ``3*size``.

    <= 0.5 guarantees the antialiased resampling removes compression block traces;
    for big photos the short side lands at 3x the crop size (crops show scene
    content); small photos (short side < 6x size) are just halved.
    """
    return min(0.5, 3 * size / short_side)


def crop_count(width: int, height: int, size: int, max_crops: int) -> int:
    """How many crops a downscaled ``width`` x ``height`` image gets.

    About one crop per three crop-areas of image, at least 1, at most ``max_crops``
    and never more than fit side by side; bigger photos give more crops.
    """
    fit = (width // size) * (height // size)
    wanted = round(width * height / (3 * size * size))
    return max(0, min(max_crops, fit, max(1, wanted)))


def is_informative(crop: np.ndarray) -> bool:
    """False for crops that are mostly flat or featureless (clear sky, blank wall).

    * more than 40 % of 4x4 blocks within 2 levels (the photo filter's flatness
      measure): little is left of the camera's signal;
    * mean absolute neighbour difference of the grey image below 1 level: smooth
      gradients, where what little structure there is is the source's compression
      block grid, which the downscale attenuates but cannot remove from a gradient.
    """
    a = crop.astype(np.int16)
    h, w = (a.shape[0] // 4) * 4, (a.shape[1] // 4) * 4
    blocks = a[:h, :w].reshape(h // 4, 4, w // 4, 4, -1)
    spread = (blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).max(axis=-1)
    if float((spread <= 2).mean()) > 0.4:
        return False
    grey = a.mean(axis=-1) if a.ndim == 3 else a.astype(np.float64)
    detail = (np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()) / 2
    return float(detail) >= 1.0


def _place_boxes(
    rng: np.random.Generator, width: int, height: int, size: int, n: int, ok, attempts: int = 400
) -> list[tuple[int, int]]:
    """Up to ``n`` non-overlapping top-left corners, drawn at random, each passing ``ok``."""
    boxes: list[tuple[int, int]] = []
    for _ in range(attempts):
        if len(boxes) == n:
            break
        x = int(rng.integers(0, width - size + 1))
        y = int(rng.integers(0, height - size + 1))
        if any(abs(x - bx) < size and abs(y - by) < size for bx, by in boxes):
            continue
        if ok(x, y):
            boxes.append((x, y))
    return boxes


def _informative(arr: np.ndarray, size: int):
    return lambda x, y: is_informative(arr[y : y + size, x : x + size])


def make_real_crops(
    photos: Sequence[SourcePhoto],
    out_dir: Path,
    *,
    size: int = 128,
    seed: int = 0,
    max_crops_per_photo: int = 6,
    extra_scales: Sequence[float] = (),
    progress: Progress = null_progress,
) -> list[dict]:
    """Downscale each photo and save up to ``max_crops_per_photo`` random crops as PNG.

    ``photos`` should be the sorted list from
    :func:`detectlab.demo.sources.collect_sources`; photo ``i`` becomes ``p{i:04d}``
    and its crops ``p{i:04d}_c{k}.png`` in ``out_dir``. Positions come from a
    generator seeded with ``(seed, i)``, so the output is deterministic and one photo's
    crops do not change when another photo is added or dropped. Crop files of an
    earlier run that this run does not write again are deleted.

    ``extra_scales`` (e.g. ``(0.5, 0.25, 0.125)``: 2x, 4x, 8x) adds one crop per listed
    downscale factor that differs from the main crops' by more than 1.2x either way and still
    holds a crop, so the real class spans several scales, from close-up texture to whole
    scenes, not one. Each factor is <= 0.5, so block traces still go.

    Returns one record per crop: ``file`` (name in ``out_dir``), ``photo`` (``p0007``),
    ``package``, ``registry``, ``licence``, ``source_name``, ``scale`` (downscale
    factor applied) and ``box`` (``[left, top, right, bottom]`` of the crop in the
    original photo's pixels, EXIF orientation applied, rounded to whole pixels).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    written: set[str] = set()
    for index, photo in enumerate(photos):
        progress(index, len(photos), "cut real crops")
        img = load_rgb(photo.path)
        w, h = img.size
        scale = crop_scale(min(w, h), size)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        # LANCZOS in PIL widens its kernel by the reduction factor, i.e. antialiases;
        # reducing_gap first box-reduces by an integer factor to keep huge PNGs fast.
        small = img.resize((sw, sh), Image.LANCZOS, reducing_gap=3.0)
        arr = np.asarray(small)
        n = crop_count(sw, sh, size, max_crops_per_photo)
        if n == 0:
            continue
        rng = np.random.default_rng([seed, index])
        views = [(scale, arr, _place_boxes(rng, sw, sh, size, n, _informative(arr, size)))]
        for si, extra in enumerate(extra_scales):
            if not (0 < extra <= 0.5) or scale / 1.2 <= extra <= scale * 1.2 or min(w, h) * extra < size:
                continue
            ew, eh = max(1, round(w * extra)), max(1, round(h * extra))
            big = np.asarray(img.resize((ew, eh), Image.LANCZOS, reducing_gap=3.0))
            erng = np.random.default_rng([seed, index, 1 + si])
            views.append((extra, big, _place_boxes(erng, ew, eh, size, 1, _informative(big, size))))
        k = 0
        for view_scale, view, boxes in views:
            for x, y in boxes:
                name = f"p{index:04d}_c{k}.png"
                k += 1
                Image.fromarray(view[y : y + size, x : x + size]).save(out_dir / name, optimize=True)
                written.add(name)
                records.append(
                    {
                        "file": name,
                        "photo": f"p{index:04d}",
                        "package": photo.package,
                        "registry": photo.registry,
                        "licence": photo.licence,
                        "source_name": photo.source_name,
                        "scale": round(view_scale, 6),
                        "box": [round(x / view_scale), round(y / view_scale),
                                round((x + size) / view_scale), round((y + size) / view_scale)],
                    }
                )
    for stale in out_dir.iterdir():
        if CROP_NAME.match(stale.name) and stale.name not in written:
            stale.unlink()
    progress(len(photos), len(photos), "cut real crops")
    return records


def write_manifest(photos: Sequence[SourcePhoto], records: Sequence[dict], path: Path) -> dict:
    """Write ``{"photos": [...], "crops": [...]}`` for the photos that produced crops.

    Each photo entry carries what attribution needs: id, package, registry, licence,
    name inside the package and original size.
    """
    used = {r["photo"] for r in records}
    entries = [
        {
            "id": f"p{i:04d}",
            "package": p.package,
            "registry": p.registry,
            "licence": p.licence,
            "source_name": p.source_name,
            "width": p.width,
            "height": p.height,
        }
        for i, p in enumerate(photos)
        if f"p{i:04d}" in used
    ]
    manifest = {"photos": entries, "crops": list(records)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest
