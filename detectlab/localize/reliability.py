"""How much a localizer marks on photos that were never manipulated, and the warning the app shows.

A localizer trained on the demo's manipulated set ([Petrželková 2024] §4.5 setting: every
training image holds one pasted region) has never seen an image without one: on an
unmanipulated photo it still marks something, and on a photo unlike its 128-px training
crops it can mark a large part of the image. ``measure_unmanipulated_area`` measures that
false-positive area on two sets of real photos that hold no manipulation:

* ``demo-real-test``: the demo's real crops of the test split (the unmanipulated originals of
  the manipulated test images; in distribution);
* ``heldout-crops`` / ``heldout-full``: the held-out camera photos (``detectlab.heldout``:
  packages the demo never reads), as 128-px crops and at full size (long side <= 1024 px).

The shipped localizers' numbers live in ``unmanipulated_area.json`` beside this module
(regenerate with ``python -m detectlab.localize.reliability``); ``reliability_warning`` turns
one result into the plain warning shown beside it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detectlab import config
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

__all__ = ["LARGE_AREA", "MEASURED_FILE", "UNLIKE_TRAINING_SCALE", "Reliability", "measured_areas",
           "measured_areas_of_file", "measure_unmanipulated_area", "reliability_warning", "unmanipulated_sets"]

#: Above this predicted share of the image the result is flagged as unreliable: the demo's
#: manipulated regions cover at most 36 % of an image and a quarter of them less than 6 %.
LARGE_AREA = 0.25
#: An image whose longer side exceeds this many times the localizer's working size is unlike its
#: training crops (the shipped localizers: 128 px crops; a camera photo is squeezed 5-8x to fit).
UNLIKE_TRAINING_SCALE = 2.0
MEASURED_FILE = Path(__file__).with_name("unmanipulated_area.json")
CONF = 0.25  # the app's and the API's default confidence threshold


def unmanipulated_sets(max_per_set: int | None = None) -> dict[str, list[Path]]:
    """Image files of the real photos without any manipulation, by set (see the module docstring)."""
    from detectlab.localize.dataset import masked_splits

    sets: dict[str, list[Path]] = {}
    try:
        _, parts = masked_splits(config.DEMO_INPAINT_DIR, seed=0)
        sets["demo-real-test"] = [config.DEMO_DIR / "real" / img.name for img, _ in parts["test"]
                                  if (config.DEMO_DIR / "real" / img.name).is_file()]
    except Exception:  # noqa: BLE001 - no demo on disk: the held-out sets are still measured
        pass
    held = config.ASSETS / "heldout"
    for name, sub in (("heldout-crops", "crops"), ("heldout-full", "full")):
        files = sorted(p for p in (held / sub).glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if files:
            sets[name] = files
    if max_per_set:
        sets = {k: v[:: max(1, len(v) // max_per_set)][:max_per_set] for k, v in sets.items()}
    return sets


def _stats(areas: list[float]) -> dict:
    a = np.asarray(areas, dtype=np.float64)
    return {"images": int(a.size), "mean": round(float(a.mean()), 4), "median": round(float(np.median(a)), 4),
            "max": round(float(a.max()), 4), "share_over_large": round(float((a > LARGE_AREA).mean()), 4)}


def measure_unmanipulated_area(localizer, sets: dict[str, list[Path]] | None = None, conf: float = CONF,
                               progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Predicted manipulated area (share of the image at confidence ``conf``) on images that hold no
    manipulation: every pixel marked is a false positive. Per set: images, mean, median, max and the
    share of images marked over ``LARGE_AREA``."""
    from detectlab.localize.analyze import localize_image

    sets = unmanipulated_sets() if sets is None else sets
    total = sum(len(v) for v in sets.values())
    done = 0
    out = {}
    for name, files in sets.items():
        areas = []
        for f in files:
            cancel.check()
            areas.append(localize_image(localizer, f, conf=conf).predicted_area())
            done += 1
            progress(done, total, f"{localizer.name}: {name}")
        if areas:
            out[name] = _stats(areas)
    return out


def measured_areas(localizer_name: str) -> dict | None:
    """The recorded false-positive areas of a shipped localizer (None when it was not measured)."""
    try:
        data = json.loads(MEASURED_FILE.read_text())
    except (OSError, ValueError):
        return None
    return data.get("localizers", {}).get(localizer_name)


def _largest_training_region() -> float | None:
    try:
        return float(json.loads(MEASURED_FILE.read_text())["largest_training_region"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def largest_demo_region() -> float:
    """The largest manipulated area (share of the image) in the demo's manipulated set."""
    images = json.loads((config.DEMO_INPAINT_DIR / "manifest.json").read_text())["images"]
    return max(float(v["area"]) for v in images.values())


def measured_areas_of_file(path: str | Path) -> dict:
    """The recorded false-positive areas of the shipped localizer stored at ``path``; {} for any other file
    (one trained or uploaded by a user was not measured)."""
    from detectlab.localize.localizer import shipped_localizers

    target = Path(path).resolve()
    for name, shipped in shipped_localizers().items():
        if shipped.resolve() == target:
            return measured_areas(name) or {}
    return {}


@dataclass
class Reliability:
    """Whether one localization should be trusted, and why not (``warning`` is plain text, empty when fine)."""

    area: float
    large: bool
    unlike_training: bool
    warning: str


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def _measured_text(measured: dict | None) -> str:
    if not measured:
        return "its false-positive area on photos with no manipulation was not measured"
    parts = []
    for key, what in (("heldout-full", "held-out camera photos"), ("heldout-crops", "crops of them (128 px)"),
                      ("demo-real-test", "real test crops of the demo")):
        m = measured.get(key)
        if m:
            parts.append(f"{_pct(m['mean'])} on average (max {_pct(m['max'])}) of {m['images']} {what}")
    return "on photos with no manipulation it marked " + ", ".join(parts)


def reliability_warning(result, localizer_name: str, imgsz: int = 128, measured: dict | None = None) -> Reliability:
    """The warning for one ``Localization``: a large predicted area (> ``LARGE_AREA``) or an image much larger
    than the localizer's training crops (> ``UNLIKE_TRAINING_SCALE`` x ``imgsz``); it quotes the measured
    false-positive areas of ``localizer_name`` (``measured_areas``; pass ``measured={}`` for a localizer
    that was not measured)."""
    measured = measured_areas(localizer_name) if measured is None else measured
    area = result.predicted_area()
    h, w = (int(s) for s in result.image.shape[-2:])
    large = area > LARGE_AREA
    unlike = max(h, w) > UNLIKE_TRAINING_SCALE * imgsz
    text = ""
    if large or unlike:
        parts = [f"{localizer_name} marks {_pct(area)} of the image as manipulated"]
        largest = _largest_training_region()
        if large and largest is not None and area > largest:
            parts.append(f"more than any manipulated region of the demo it was trained on (at most {_pct(largest)})")
        if unlike:
            parts.append(f"this {w}×{h} image is unlike its training images ({imgsz} px crops of the demo)")
        parts.append("localizers trained on the demo's pasted regions mark regions in photos that hold none, "
                     "with high confidence: " + _measured_text(measured))
        text = "; ".join(parts) + " — treat the regions as unreliable."
    return Reliability(area, large, unlike, text)


def measure_shipped(max_per_set: int | None = None, progress: Progress = null_progress) -> dict:
    """Measure every shipped localizer on ``unmanipulated_sets`` and write ``MEASURED_FILE``."""
    from detectlab.localize.localizer import load_localizer, shipped_localizers

    sets = unmanipulated_sets(max_per_set)
    data = {"about": "Share of the image each shipped localizer marks as manipulated (confidence "
                     f"{CONF}) on real photos that hold no manipulation: every marked pixel is a false positive. "
                     "Written by `python -m detectlab.localize.reliability`.",
            "conf": CONF, "large_area": LARGE_AREA, "largest_training_region": largest_demo_region(),
            "localizers": {}}
    for name, path in shipped_localizers().items():
        start = time.perf_counter()
        data["localizers"][name] = {**measure_unmanipulated_area(load_localizer(path), sets, progress=progress),
                                    "seconds": round(time.perf_counter() - start, 1)}
    MEASURED_FILE.write_text(json.dumps(data, indent=1) + "\n")
    return data


if __name__ == "__main__":
    from detectlab.progress import TqdmProgress

    print(json.dumps(measure_shipped(progress=TqdmProgress()), indent=1))
