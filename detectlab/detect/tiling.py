"""Native-resolution scoring: a large image is scored tile by tile, never shrunk first.

A detector looks for high-frequency traces (up-sampling peaks, missing detail); shrinking a
2000-px photo 15x to the detector's 128-px input discards exactly those. Instead the image
is cut into a grid of input-size tiles at its own resolution — all of them up to a cap,
then a seeded sample — each tile is scored, and the image's P(fake) is the sigmoid of the
mean tile logit (the max tile P(fake) is reported beside it, and the per-tile scores form
a coarse map). Images with a side under the input size use the resize path.

Tiles are read lazily: from a file (``score_file_tiled``, the Detect tab and ``/detect``) each
tile is cut from the decoded image and converted to RGB on its own (``detectlab.data.decode.open_image``),
so no full-size RGB, 8-bit or float copy is made; from a tensor each tile is sliced and converted to
float one batch at a time. Memory stays at the decoded image plus one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from detectlab.data import resize_center_crop
from detectlab.data.decode import DecodedImage, open_image
from detectlab.data.decode import load_uint8 as _load_uint8
from detectlab.models import Detector

#: Most tiles scored per image; beyond it a seeded sample (deterministic per image size).
MAX_TILES = 64


def tile_starts(length: int, size: int) -> list[int]:
    """Start offsets of tiles of ``size`` covering ``[0, length)`` edge to edge (last one flush with the end)."""
    if length <= size:
        return [0]
    n = math.ceil(length / size)
    return [round(i * (length - size) / (n - 1)) for i in range(n)]


def tile_grid(height: int, width: int, size: int, max_tiles: int = MAX_TILES, seed: int = 0
              ) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Row starts, column starts and the (row, col) grid cells to score.

    Every cell while there are at most ``max_tiles``; otherwise ``max_tiles`` cells drawn
    without replacement by a generator seeded from ``seed`` (same image size, same cells).
    """
    rows, cols = tile_starts(height, size), tile_starts(width, size)
    cells = [(r, c) for r in range(len(rows)) for c in range(len(cols))]
    if len(cells) > max_tiles:
        pick = np.random.default_rng(seed).choice(len(cells), size=max_tiles, replace=False)
        cells = [cells[i] for i in sorted(pick)]
    return rows, cols, cells


@dataclass
class TiledScore:
    p_fake: float                 # sigmoid(mean tile logit)
    p_fake_max: float             # the most suspicious tile
    logit: float                  # mean tile logit
    tile_map: np.ndarray          # [rows, cols] P(fake) per tile, NaN where not sampled
    tiles_scored: int
    tiles_total: int
    tile_size: int
    image_size: tuple[int, int]   # (height, width) scored
    mode: str                     # "tiles" or "resize" (image not larger than the input)

    def decision(self, threshold: float = 0.5) -> str:
        return "fake" if self.p_fake > threshold else "real"

    def describe(self) -> str:
        h, w = self.image_size
        if self.mode == "resize":
            return f"scored the whole {w}×{h} image resized to the detector's input"
        sampled = "" if self.tiles_scored == self.tiles_total else f" (a seeded sample of {self.tiles_total})"
        return (f"scored at native resolution: {self.tiles_scored} tiles of {self.tile_size} px{sampled} "
                f"over {w}×{h}; P(fake) from the mean tile logit, max tile {self.p_fake_max:.3f}")


def _tile(image: torch.Tensor | DecodedImage, top: int, left: int, size: int) -> torch.Tensor:
    if isinstance(image, DecodedImage):
        return image.region(top, left, size, size)
    return image[:, top:top + size, left:left + size]


@torch.no_grad()
def score_tiled(detector: Detector, image: torch.Tensor | DecodedImage, max_tiles: int = MAX_TILES,
                batch_size: int = 32, seed: int = 0) -> TiledScore:
    """Score ``image`` (uint8 or float ``[3, H, W]``, or an ``open_image`` image read tile by tile)
    tile by tile at its own resolution.

    Images with a side shorter than the input, or exactly the input's size, are scored
    whole (resize path: center crop to the input, as every other entry point does).
    """
    size = detector.preprocess.input_size
    _, h, w = image.shape
    detector.eval()

    def as_float(t: torch.Tensor) -> torch.Tensor:
        return t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()

    if min(h, w) < size or (h, w) == (size, size):
        whole = image.to_uint8() if isinstance(image, DecodedImage) else image  # small: a side under the input
        logit = float(detector(resize_center_crop(as_float(whole), size)[None])[0])
        p = 1 / (1 + math.exp(-logit))
        return TiledScore(p, p, logit, np.array([[p]]), 1, 1, size, (h, w), "resize")
    rows, cols, cells = tile_grid(h, w, size, max_tiles, seed)
    logits = []
    for k in range(0, len(cells), batch_size):
        batch = torch.stack([as_float(_tile(image, rows[r], cols[c], size)) for r, c in cells[k:k + batch_size]])
        logits.append(detector(batch).float())
    z = torch.cat(logits)
    tile_p = torch.sigmoid(z).numpy()
    grid = np.full((len(rows), len(cols)), np.nan)
    for (r, c), p in zip(cells, tile_p):
        grid[r, c] = p
    mean = float(z.mean())
    return TiledScore(float(torch.sigmoid(z.mean())), float(tile_p.max()), mean, grid, len(cells),
                      len(rows) * len(cols), size, (h, w), "tiles")


def load_uint8(source, name: str | None = None) -> torch.Tensor:
    """Decode through the data layer into a uint8 tensor ``[3, H, W]`` (a quarter of float's memory),
    converted band by band; ``name`` is how errors name the file."""
    return _load_uint8(source, name=name)


def score_file_tiled(detector: Detector, source, max_tiles: int = MAX_TILES, seed: int = 0,
                     name: str | None = None) -> TiledScore:
    """Decode ``source`` (any format the data layer reads) and ``score_tiled`` it, reading tiles lazily."""
    with open_image(source, name=name) as image:
        return score_tiled(detector, image, max_tiles=max_tiles, seed=seed)
