"""Live degradation sliders: one image, a chain of degradations, P(fake) of several detectors.

The instrument of [Petrželková 2024] §4.3 for one image: degrade, look at it, its PSNR to the input,
and every selected detector's P(fake) against its decision threshold, optionally with the
Grad-CAM of the degraded image. The image is decoded once (through ``detectlab.data``),
brought once to the working size — the largest input size among the detectors, by the same
resize + centre-crop the detectors use — and cached, so a slider move only degrades and
scores a small tensor, whatever the size of the photo. Degradation strengths (blur σ, patch
side) are therefore in pixels of that working image, as [Petrželková 2024]'s are in pixels of its
224 px detector input.

At rest (every slider at its identity value) the chain is empty and the working image of a
single detector is the very tensor Detect's resize path scores (``load_tensor`` at the
detector's input size), so the live P(fake) is Detect's P(fake). A slider moved off its
identity always applies: steps missing from the chosen order run after the listed ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detectlab.data.decode import to_pil
from detectlab.data.filecache import load_fitted_cached
from detectlab.data import DetectionDataset, discover, split
from detectlab.degrade import Chain, DegradationError, psnr
from detectlab.detect.analyze import analyze
from detectlab.errors import DetectLabError
from detectlab.robustness.sweep import ScoredDetector

#: Slider ranges of the live tab and the ``/degrade_score`` API: name -> (API parameter, low, high, identity).
#: Narrower than the degradations' own ranges where a wider one only shows a grey square. JPEG
#: quality 100 is the slider's rest: no re-encode at all (a quality-100 JPEG still changes the
#: pixels, 4:2:0 chroma included, and moves P(fake) of a detector that reads those traces).
SLIDERS: dict[str, tuple[str, float, float, Any]] = {
    "blur": ("blur_sigma", 0.0, 20.0, 0.0),
    "jpeg": ("jpeg_quality", 5, 100, 100),
    "patch": ("patch_size", 1, 1024, 1024),
    "downsize": ("downsize_scale", 0.05, 1.0, 1.0),
    "noise": ("noise_sigma", 0.0, 1.0, 0.0),
    "resize": ("resize_scale", 0.05, 1.0, 1.0),
}
#: The default order of the live chain: resampling first, then blur and sensor noise, JPEG as a
#: publisher would apply it last, the visible patch so compression never sees its edges, and the
#: resize-only step at the very end, so every other strength stays in working-image pixels.
DEFAULT_ORDER = ("downsize", "blur", "noise", "jpeg", "patch", "resize")
#: Decoded as Detect decodes (``load_tensor``'s default headroom): at rest the working image of a
#: detector is the tensor Detect scores, bit for bit.
REDUCE_HEADROOM = 2


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


def full_order(order: str | Sequence[str] | None) -> tuple[str, ...]:
    """``order`` (see ``parse_order``), then every slider it leaves out, in ``DEFAULT_ORDER``.

    A slider left out of the order still applies when moved; it runs after the listed steps.
    """
    names = parse_order(order)
    return names + tuple(n for n in DEFAULT_ORDER if n not in names)


def live_chain(order: str | Sequence[str] | None, values: Mapping[str, Any]) -> Chain:
    """The chain the sliders describe: every slider off its identity value, in ``full_order(order)``.

    A slider at its identity value is no step, so with every slider at rest the chain is empty
    and the image is scored exactly as Detect scores it (JPEG quality 100 included: no re-encode).

    Args:
        order: the order of the steps (see ``parse_order``); sliders it leaves out run after it.
        values: degradation name or API parameter name (``jpeg_quality``) -> slider value;
            missing ones take their identity value.

    Raises:
        DegradationError: a value outside its slider range, naming the parameter and the value.
    """
    steps = []
    for name in full_order(order):
        param, lo, hi, identity = SLIDERS[name]
        v = values.get(param, values.get(name, identity))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or not lo <= v <= hi:
            raise DegradationError(f"{param} must be a number in [{lo:g}, {hi:g}], got {v!r}")
        if name in ("jpeg", "patch"):
            if not float(v).is_integer():
                raise DegradationError(f"{param} must be a whole number, got {v!r}")
            v = int(v)
        if v == identity:
            continue  # a slider at rest is no step
        steps.append((name, v))
    return Chain(steps)


def unlisted_steps(order: str | Sequence[str] | None, chain: Chain) -> list[str]:
    """The steps of ``chain`` that ``order`` does not list (they ran after the listed ones)."""
    listed = set(parse_order(order))
    return [s.name for s in chain.steps if s.name not in listed]


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


def working_image(path: str | Path, size: int) -> WorkingImage:
    """Decode ``path`` (any format the data layer reads) and bring it to ``size``; decoded once per file version
    (path, mtime, size in bytes: ``data.filecache``), so a slider move never decodes the file again."""
    p = Path(path)
    if not p.is_file():
        raise DetectLabError(f"{p.name or path}: no such image file")
    # decoded straight to the working size exactly as Detect decodes (cropped, box-reduced band by band
    # while it stays REDUCE_HEADROOM x the working size, then one antialiased resize), with the data
    # layer's memory budget; a multi-megapixel photo never exists as a full-size copy
    image, source = load_fitted_cached(p, int(size), headroom=REDUCE_HEADROOM, name=p.name)
    return WorkingImage(image, source, p.name)


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
                      heatmap: bool = False, method: str = "gradcam", seed: int = 0,
                      at_size: Callable[[int], torch.Tensor] | None = None) -> LiveResult:
    """Degrade one working image ``[3, S, S]`` by ``chain`` (seeded) and score it with every detector.

    Each detector sees the degraded image through its own resize + centre-crop (``analyze``);
    with ``heatmap``, its Grad-CAM of the degraded image comes along (detectors without a
    spatial layer, the spectrum baseline, give none). With an empty chain and ``at_size``
    (input size -> the file decoded at that size, e.g. ``working_image(path, s).image``), a
    detector whose input size is not ``S`` scores the file decoded at its own size, as Detect
    does, rather than a resample of the working image: at rest every detector agrees with Detect.
    """
    if not detectors:
        raise DetectLabError("select at least one detector")
    start = time.perf_counter()
    degraded = chain(image[None], seed=seed)[0]
    db = float(psnr(image[None], degraded[None])[0])
    scores = []
    for d in detectors:
        seen = degraded
        size = int(d.detector.preprocess.input_size)
        if not len(chain) and at_size is not None and size != degraded.shape[-1]:
            seen = at_size(size)
        a = analyze(d.detector, seen, d.threshold, method, with_heatmap=heatmap)
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


__all__ = ["DEFAULT_ORDER", "LiveResult", "LiveScore", "SLIDERS", "WorkingImage", "degrade_and_score",
           "example_images", "full_order", "live_chain", "parse_order", "unlisted_steps", "working_image",
           "working_size"]
