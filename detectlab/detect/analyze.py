"""One image in, the verdict and why out: P(fake), the decision, and heatmaps."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import torch
from PIL import Image

from detectlab.data import load_tensor, resize_center_crop, to_tensor
from detectlab.explain import heatmaps, overlay
from detectlab.models import Detector


@dataclass
class Analysis:
    p_fake: float
    decision: str                       # "fake" | "real"
    threshold: float
    image: torch.Tensor                 # [3, S, S] what the detector saw
    maps: list[tuple[str, torch.Tensor]] = field(default_factory=list)  # (target layer, [S, S] in [0, 1])
    method: str = "gradcam"
    seconds: float = 0.0
    assessment: object = None           # detect.trust.Assessment: calibrated P(fake), out-of-distribution flag

    def overlays(self, opacity: float = 0.5) -> list[tuple[Image.Image, str]]:
        return [(overlay(self.image, m, opacity), name) for name, m in self.maps]


def analyze(detector: Detector, image: Image.Image | torch.Tensor, threshold: float = 0.5,
            method: str = "gradcam", with_heatmap: bool = True, trust=None) -> Analysis:
    """Score one RGB image (PIL, or tensor [3, H, W] in [0, 1]) and explain the decision.

    With ``trust`` (the checkpoint's ``detect.trust.Trust``) the analysis also carries the
    calibrated P(fake) and whether the image's features lie outside the training data's range.
    """
    start = time.perf_counter()
    x = to_tensor(image) if isinstance(image, Image.Image) else image
    x = resize_center_crop(x, detector.preprocess.input_size)
    if with_heatmap and detector.heatmap_targets():
        maps, logits = heatmaps(detector, x[None], method=method)
        named = [(t.name, m[0]) for t, m in zip(detector.heatmap_targets(), maps)]
    else:
        with torch.no_grad():
            logits = detector.eval()(x[None])
        named = []
    p = float(torch.sigmoid(logits[0]))
    assessment = None
    if trust is not None:
        from detectlab.detect.trust import features_and_logits

        with torch.no_grad():
            assessment = trust.assess(*features_and_logits(detector, x[None]))[0]
    return Analysis(p, "fake" if p > threshold else "real", threshold, x, named, method, time.perf_counter() - start,
                    assessment)


def analyze_file(detector: Detector, source, threshold: float = 0.5, method: str = "gradcam",
                 name: str | None = None, trust=None) -> Analysis:
    """Decode (safely, any format) and analyze; decoding errors raise ``ImageDecodeError``.

    Decoded as ``predict_files`` decodes (``load_tensor`` at the detector's input size: crop,
    integer box reduction, antialiased resize), so the tab, the API and the CLI score the
    same pixels, and a 50-MP photo never becomes a full-size float tensor. ``name`` is how
    errors name the file (an upload's own name rather than its cache path).
    """
    return analyze(detector, load_tensor(source, detector.preprocess.input_size, name=name), threshold, method,
                   trust=trust)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
