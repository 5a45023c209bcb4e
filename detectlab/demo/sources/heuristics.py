"""Photo heuristics and a perceptual hash: what separates camera photographs from artwork, and copies.

Decoding goes through ``detectlab.data.decode`` like every other entry point; only the
transparency measure opens the file's alpha channel itself (decoding composites it away).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from detectlab.data.decode import load_image

#: Largest picture read from a package (the biggest wallpapers are about 6000 x 4000).
MAX_SOURCE_PIXELS = 200_000_000


def load_rgb(path: Path) -> Image.Image:
    """Decode a package's picture to RGB with EXIF orientation applied, as ``detectlab.data`` decodes.

    Package wallpapers can be larger than an upload may be, so the pixel limit is raised.
    """
    return load_image(path, max_pixels=MAX_SOURCE_PIXELS)


def _transparent_fraction(path: Path) -> float:
    """Fraction of pixels that are (partly) transparent; 0 for files without alpha."""
    with Image.open(path) as im:
        if not (im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info):
            return 0.0
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    return float((alpha < 250).mean())


def analysis_copy(path: Path) -> tuple[Image.Image, tuple[int, int]]:
    """The photo as RGB with its short side brought down to 256 px (box filter), and its full size
    (width, height) as displayed, i.e. after EXIF orientation."""
    rgb = load_rgb(path)
    w, h = rgb.size
    s = 256 / min(w, h)
    if s < 1:
        rgb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BOX)
    return rgb, (w, h)


def photo_statistics(path: Path, small: Image.Image | None = None) -> dict[str, float]:
    """Cheap statistics that separate camera photographs from artwork.

    Computed on a copy whose short side is 256 px (``small``, made here if not given)
    so thresholds do not depend on size:

    * ``transparent``: fraction of transparent pixels. Photos have none; stickers,
      cartoons and cut-out objects do.
    * ``flat``: fraction of 4x4 blocks whose pixels are all within 2 levels. Real
      scenes have sensor noise and shading almost everywhere; fills, masks, diagrams
      and nearly empty frames do not.
    * ``grey``: 1 if the image has no colour at all.
    * ``colours``: distinct colours after 5-bit quantisation per 1000 pixels (for
      grey images: distinct grey levels / 10), low for flat textures and graphics.
    * ``saturation``: mean HSV saturation (reported; vivid vector art is high).
    """
    rgb = small if small is not None else analysis_copy(path)[0]
    a = np.asarray(rgb, dtype=np.int16)
    grey = bool(np.abs(a[..., 0] - a[..., 1]).max() <= 3 and np.abs(a[..., 1] - a[..., 2]).max() <= 3)
    if grey:
        colours = len(np.unique(a[..., 1])) / 10
    else:
        q = (a >> 3).reshape(-1, 3)
        codes = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
        colours = len(np.unique(codes)) / (codes.size / 1000)
    hh, ww = (a.shape[0] // 4) * 4, (a.shape[1] // 4) * 4
    blocks = a[:hh, :ww].reshape(hh // 4, 4, ww // 4, 4, 3)
    spread = (blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).max(axis=-1)
    saturation = float(np.asarray(rgb.convert("HSV"))[..., 1].mean() / 255)
    return {
        "transparent": _transparent_fraction(path),
        "flat": float((spread <= 2).mean()),
        "grey": float(grey),
        "colours": float(colours),
        "saturation": saturation,
    }


def heuristic_rejection(stats: dict[str, float]) -> str | None:
    """Why the statistics say "not a photograph", or ``None``.

    Thresholds were set on the packages listed here so that no photograph seen on the
    contact sheets is lost (minimalist interiors have up to ~0.85 flat blocks; grey
    photos have few quantised colours), so they only remove the obvious cases and
    :data:`EXCLUDE` does the rest.
    """
    if stats["transparent"] > 0.01:
        return "transparent cut-out (cartoon, sticker or object on alpha)"
    if stats["flat"] >= 0.88:
        return "mostly flat fill (graphic, mask or empty frame)"
    if stats["grey"] and stats["colours"] < 6.4:
        return "fewer than 64 grey levels (binary or synthetic)"
    if not stats["grey"] and stats["colours"] < 0.4:
        return "very few distinct colours (flat texture or blank frame)"
    return None


def dhash(img: Image.Image, size: int = 8) -> int:
    """Difference hash: signs of horizontal gradients of a tiny grey thumbnail (64 bits).

    Robust to resizing, recompression and brightness changes, which is what copies of
    one photo in different packages or sizes differ by.
    """
    g = np.asarray(img.convert("L").resize((size + 1, size), Image.BOX), dtype=np.float32)
    bits = (g[:, 1:] > g[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def thumb(img: Image.Image) -> np.ndarray:
    """16x16 zero-mean, unit-norm grey thumbnail, to confirm a dHash match."""
    g = np.asarray(img.convert("L").resize((16, 16), Image.BOX), dtype=np.float64).ravel()
    g -= g.mean()
    return g / (np.linalg.norm(g) + 1e-9)


def is_near_duplicate(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]) -> bool:
    """dHash within 10 bits *and* thumbnails correlated > 0.9.

    dHash alone confuses smooth, low-detail images (two gradients look alike), so a
    match is confirmed by correlating the thumbnails themselves.
    """
    return bin(a[0] ^ b[0]).count("1") <= 10 and float(a[1] @ b[1]) > 0.9
