"""Live degradation sliders: one image, a chain of degradations, P(fake) of several detectors.

The instrument of [Petrželková 2024] §4.3 for one image: degrade, look at it, its PSNR to the input,
and every selected detector's P(fake) against its decision threshold, optionally with the
Grad-CAM of the degraded image. The image is decoded once (through ``detectlab.data``),
brought once to the working size — the largest input size among the detectors, by the same
resize + centre-crop the detectors use — and cached, so a slider move only degrades and
scores a small tensor, whatever the size of the photo. Degradation strengths (blur σ, patch
side) are therefore in pixels of that working image, as [Petrželková 2024]'s are in pixels of its
224 px detector input.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detectlab.data.decode import load_fitted, to_pil
from detectlab.data import DetectionDataset, discover, split
from detectlab.degrade import Chain, DegradationError, psnr
from detectlab.detect.analyze import analyze
from detectlab.errors import DetectLabError
from detectlab.robustness.sweep import ScoredDetector

#: Slider ranges of the live tab and the ``/degrade_score`` API: name -> (API parameter, low, high, identity).
#: Narrower than the degradations' own ranges where a wider one only shows a grey square.
SLIDERS: dict[str, tuple[str, float, float, Any]] = {
    "blur": ("blur_sigma", 0.0, 20.0, 0.0),
    "jpeg": ("jpeg_quality", 5, 100, 100),
    "patch": ("patch_size", 1, 1024, 1024),
    "downsize": ("downsize_scale", 0.05, 1.0, 1.0),
    "noise": ("noise_sigma", 0.0, 1.0, 0.0),
    "resize": ("resize_scale", 0.05, 1.0, 1.0),
}
#: The default order of the live chain: resampling first, then blur and sensor noise, JPEG as a
#: publisher would apply it last, and the visible patch last so compression never sees its edges.
DEFAULT_ORDER = ("downsize", "blur", "noise", "jpeg", "patch")
#: Photos are first reduced (box filter) to at most this many times the working size, so a
#: 50-megapixel upload never becomes a 600 MB float tensor; the final resize is the detectors' own.
REDUCE_HEADROOM = 4


def parse_order(order: str | Sequence[str] | None) -> tuple[str, ...]:
    """Chain order from a list or ``"downsize → jpeg"`` text; every name known, none twice."""
    if order is None:
        return DEFAULT_ORDER
    if isinstance(order, str):
        from detectlab.degrade.chain import STEP_SEPARATOR

        names = [n.strip().lower() for n in STEP_SEPARATOR.split(order) if n.strip()]
    else:
        names = [str(n).strip().lower() for n in order]
    for n in names:
        if n not in SLIDERS:
            raise DegradationError(f"order: unknown degradation {n!r}; choose from {', '.join(SLIDERS)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DegradationError(f"order: {', '.join(dup)} appears twice")
    return tuple(names)


def live_chain(order: str | Sequence[str] | None, values: Mapping[str, Any]) -> Chain:
    """The chain the sliders describe: the degradations of ``order`` at the slider ``values``.

    Args:
        order: which degradations, in which order (see ``parse_order``).
        values: degradation name or API parameter name (``jpeg_quality``) -> slider value;
            missing ones take their identity value.

    Raises:
        DegradationError: a value outside its slider range, naming the parameter and the value.
    """
    names = parse_order(order)
    steps = []
    for name in names:
        param, lo, hi, identity = SLIDERS[name]
        v = values.get(param, values.get(name, identity))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or not lo <= v <= hi:
            raise DegradationError(f"{param} must be a number in [{lo:g}, {hi:g}], got {v!r}")
        if name in ("jpeg", "patch"):
            if not float(v).is_integer():
                raise DegradationError(f"{param} must be a whole number, got {v!r}")
            v = int(v)
        if name != "jpeg" and v == identity:
            continue  # a slider at rest is no step (JPEG 100 still re-encodes, so it stays)
        steps.append((name, v))
    return Chain(steps)


@dataclass
class WorkingImage:
    """An image brought once to the working size; what every slider move starts from."""

    image: torch.Tensor          # [3, S, S] in [0, 1]
    source_size: tuple[int, int]  # (width, height) of the decoded file
    name: str

    @property
    def size(self) -> int:
        return int(self.image.shape[-1])

    def describe(self) -> str:
        w, h = self.source_size
        same = (w, h) == (self.size, self.size)
        return (f"scored at {self.size}×{self.size} px" + ("" if same else f", the centre crop of the {w}×{h} px "
                f"image resized once") + " — blur σ and patch sizes are in these pixels")


@functools.lru_cache(maxsize=16)
def _working(path: str, mtime: float, size: int) -> WorkingImage:
    # decoded straight to the working size: cropped, box-reduced band by band while it stays
    # REDUCE_HEADROOM x the working size (so the final antialiased resize still decides the pixels),
    # with the data layer's memory budget; a multi-megapixel photo never exists as a full-size copy
    image, source = load_fitted(path, size, headroom=REDUCE_HEADROOM, name=Path(path).name)
    return WorkingImage(image, source, Path(path).name)


def working_image(path: str | Path, size: int) -> WorkingImage:
    """Decode ``path`` (any format the data layer reads) and bring it to ``size``; cached per file version."""
    p = Path(path)
    if not p.is_file():
        raise DetectLabError(f"{p.name or path}: no such image file")
    return _working(str(p), p.stat().st_mtime, int(size))


def working_size(detectors: Sequence[ScoredDetector]) -> int:
    """The largest input size among the detectors (each smaller one resizes from it)."""
    return max(int(d.detector.preprocess.input_size) for d in detectors)


@dataclass
class LiveScore:
    name: str
    p_fake: float
    threshold: float
    decision: str
    maps: list[tuple[str, torch.Tensor]] = field(default_factory=list)   # (layer, [S, S] in [0, 1])
    seen: torch.Tensor | None = None                                       # [3, S, S] the detector's input


@dataclass
class LiveResult:
    """One slider state: the degraded image, its PSNR to the input, and every detector's verdict."""

    original: torch.Tensor
    degraded: torch.Tensor
    psnr_db: float               # inf when the chain left the image unchanged
    chain: Chain
    scores: list[LiveScore]
    seconds: float = 0.0

    def write_png(self, path: str | Path) -> Path:
        """The degraded image as a lossless 8-bit PNG at ``path``."""
        to_pil(self.degraded).save(path, format="PNG")
        return Path(path)

    def to_dict(self) -> dict:
        return {"chain": str(self.chain), "psnr_db": None if math.isinf(self.psnr_db) else round(self.psnr_db, 3),
                "degraded_size": list(self.degraded.shape[-2:]), "seconds": round(self.seconds, 4),
                "detectors": [{"name": s.name, "p_fake": round(s.p_fake, 6), "threshold": s.threshold,
                               "decision": s.decision} for s in self.scores]}


def degrade_and_score(image: torch.Tensor, chain: Chain, detectors: Sequence[ScoredDetector], *,
                      heatmap: bool = False, method: str = "gradcam", seed: int = 0) -> LiveResult:
    """Degrade one working image ``[3, S, S]`` by ``chain`` (seeded) and score it with every detector.

    Each detector sees the degraded image through its own resize + centre-crop (``analyze``);
    with ``heatmap``, its Grad-CAM of the degraded image comes along (detectors without a
    spatial layer, the spectrum baseline, give none).
    """
    if not detectors:
        raise DetectLabError("select at least one detector")
    start = time.perf_counter()
    degraded = chain(image[None], seed=seed)[0]
    db = float(psnr(image[None], degraded[None])[0])
    scores = []
    for d in detectors:
        a = analyze(d.detector, degraded, d.threshold, method, with_heatmap=heatmap)
        scores.append(LiveScore(d.name, a.p_fake, a.threshold, a.decision, a.maps, a.image))
    return LiveResult(image, degraded, db, chain, scores, time.perf_counter() - start)


def example_images(root: str | Path, per_generator: int = 2, split_seed: int = 0) -> dict[str, Path]:
    """A few test-split images of a labelled set, per generator ("real" included): label -> file.

    Test split, so the shipped detectors (trained on the train split) have not seen them.
    """
    ds = discover(root, validate=False)
    if not isinstance(ds, DetectionDataset):
        return {}
    out: dict[str, Path] = {}
    taken: dict[str, int] = {}
    for s in split(ds.samples, seed=split_seed)["test"]:
        if taken.get(s.generator, 0) < per_generator:
            taken[s.generator] = taken.get(s.generator, 0) + 1
            out[f"{s.generator}: {s.path.name}"] = s.path
    return out


__all__ = ["DEFAULT_ORDER", "LiveResult", "LiveScore", "SLIDERS", "WorkingImage",
           "degrade_and_score", "example_images", "live_chain", "parse_order", "working_image", "working_size"]
