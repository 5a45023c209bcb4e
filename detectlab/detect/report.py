"""What a verdict hands out besides its numbers: the tiled view of a large photo, the image a ``/detect``
answer carries, and a scored set's metrics as a JSON file (the Detect tab's and API's outputs)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from detectlab.data.decode import open_image, to_pil
from detectlab.detect.analyze import Analysis
from detectlab.detect.tiling import TiledScore, score_tiled
from detectlab.explain import grid_image, overlay

__all__ = ["TiledView", "tiled_view", "verdict_image", "write_metrics_json", "write_png"]

#: Longest side of the input preview and of the tile map (their colouring costs ~90 bytes a pixel: a
#: 56 × 56 grid of 32-px cells took 300 MB).
VIEW_SIDE = 512


@dataclass
class TiledView:
    """Native-resolution scoring of one file and what shows it."""

    score: TiledScore
    decision: str                      # "fake" | "real" at the detector's threshold
    preview: Image.Image               # the input, at most VIEW_SIDE px
    tile_map: Image.Image | None       # P(fake) per tile (tiles left out of the sample: black); None: scored whole


def tiled_view(detector, source, threshold: float = 0.5, *, name: str | None = None) -> TiledView:
    """Score ``source`` tile by tile at its own resolution (``tiling.score_tiled``, tiles read from the
    decoded file, no full-size copy), with a preview and the per-tile P(fake) as an image whose cells
    shrink for a large grid so it stays within ``VIEW_SIDE``."""
    with open_image(source, name=name) as image:
        t = score_tiled(detector, image)
        preview = image.thumbnail(VIEW_SIDE)
    cell = max(4, min(32, VIEW_SIDE // max(t.tile_map.shape)))
    tile_map = grid_image(t.tile_map, cell) if t.mode == "tiles" else None
    return TiledView(t, t.decision(threshold), preview, tile_map)


def verdict_image(a: Analysis, opacity: float = 0.5) -> Image.Image:
    """The heatmap overlay of the first heatmap target, or what the detector saw when it has no spatial layer."""
    return overlay(a.image, a.maps[0][1], opacity) if a.maps else to_pil(a.image)


def write_png(image: Image.Image, path: str | Path) -> Path:
    """Save an image as PNG (lossless: a heatmap's colours are its scale)."""
    image.save(path, format="PNG")
    return Path(path)


def write_metrics_json(path: str | Path, *, detector: str, folder: str, selection, metrics: dict) -> Path:
    """A scored set's metrics as JSON: the detector, the folder's name, the split selection (``Selection``)
    and ``BinaryMetrics.to_dict()``."""
    path = Path(path)
    path.write_text(json.dumps({"detector": detector, "folder": folder, "selection": asdict(selection),
                                "metrics": metrics}, indent=1))
    return path
