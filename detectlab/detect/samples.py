"""Sample images to try a detector on: demo reals and fakes no shipped detector trained on, and real
photos large enough to be scored both ways (``detect.verdict``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from detectlab import config

__all__ = ["sample_images"]


def _demo_stamp() -> float | None:
    """Changes when the demo is materialized (or rebuilt): the cache key of the demo's samples."""
    from detectlab.demo.build import is_materialized

    if not is_materialized():
        return None
    return (config.DEMO_DIR / "real").stat().st_mtime


@lru_cache(maxsize=4)
def _demo_samples(stamp: float | None, per_class: int) -> tuple[tuple[str, str], ...]:
    if stamp is None:
        return ()
    from detectlab.data import DetectionDataset, discover, split

    ds = discover(config.DEMO_DIR)
    if not isinstance(ds, DetectionDataset):
        return ()
    test = split(ds.samples, seed=0)["test"]  # the shipped detectors trained on train and val only
    out, seen = [], {}
    for s in test:
        if seen.get(s.generator, 0) < per_class * (2 if s.generator == "real" else 1):
            seen[s.generator] = seen.get(s.generator, 0) + 1
            kind = "real" if s.label == 0 else f"fake ({s.generator})"
            out.append((f"demo {kind}: {s.path.name}", str(s.path)))
    return tuple(sorted(out, key=lambda lp: (not lp[0].startswith("demo real"), lp[0])))


def _heldout_photos(n: int) -> list[tuple[str, str]]:
    from detectlab.data.decode import probe_image

    out = []
    for f in sorted((config.HELDOUT_DIR / "full").glob("*.jpg"))[:n]:
        info = probe_image(f, deep_jpeg=False)
        out.append((f"real photo, {info.width}×{info.height} (held out): {f.name}", str(f)))
    return out


def sample_images(per_class: int = 1, photos: int = 2) -> list[tuple[str, str]]:
    """(label, path) of a few images to try: from the demo's test split ``2 * per_class`` reals and
    ``per_class`` fakes of each generator (none once the demo is not materialized yet), then ``photos``
    held-out real camera photos (large: both scoring paths run). Cheap after the first call per demo
    build, so a picker can re-read it whenever it is opened."""
    return [*_demo_samples(_demo_stamp(), per_class), *_heldout_photos(photos)]
