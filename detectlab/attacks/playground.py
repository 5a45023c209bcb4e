"""One image, one attack: the adversarial image, its residual, P(fake) before and after, and whether the
attack survives being written to disk ([Petrželková 2024] §4.4, Fig. 4.11-4.13)."""

from __future__ import annotations

import io
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from detectlab.attacks.base import check_eps, require_gradients
from detectlab.attacks.registry import make_attack
from detectlab.data import load_tensor, resize_center_crop, to_pil

#: what the adversarial image is saved as before it is scored again: name -> PIL save options
SAVED_FORMATS = {"png": dict(format="PNG"), "jpeg90": dict(format="JPEG", quality=90)}


@dataclass
class PerturbationSize:
    """How big a change is, in [0, 1] pixel units over all 3 x H x W values."""

    linf: float      # max |r|
    l2: float        # ||r||_2
    psnr: float      # 10 log10(1 / mean r^2) dB; inf for no change

    @classmethod
    def of(cls, residual: torch.Tensor) -> "PerturbationSize":
        r = residual.detach().double().flatten()
        mse = float(r.pow(2).mean())
        return cls(float(r.abs().max()), float(r.norm()), math.inf if mse == 0 else 10 * math.log10(1.0 / mse))


@dataclass
class PlaygroundResult:
    """What one attack did to one image; images are ``[3, S, S]`` in [0, 1] at the detector's input size."""

    method: str
    eps: float
    threshold: float
    image: torch.Tensor = field(repr=False)
    adversarial: torch.Tensor = field(repr=False)
    p_before: float
    p_after: float
    size: PerturbationSize
    p_saved: dict[str, float]        # P(fake) of the adversarial image saved as 8-bit PNG / JPEG 90, read back
    seconds: float

    @property
    def residual(self) -> torch.Tensor:
        return self.adversarial - self.image

    @property
    def decision_before(self) -> str:
        return "fake" if self.p_before > self.threshold else "real"

    @property
    def decision_after(self) -> str:
        return "fake" if self.p_after > self.threshold else "real"

    @property
    def flipped(self) -> bool:
        return self.decision_before != self.decision_after

    def residual_image(self) -> tuple[torch.Tensor, float]:
        """The residual amplified to the full range (0.5 = no change) and its true scale max |r|.

        ``0.5 + r / (2 max|r|)``: the largest change maps to 0 or 1, so a residual of 0.004
        is as visible as one of 0.1; the scale says which it was.
        """
        scale = self.size.linf
        if scale == 0:
            return torch.full_like(self.residual, 0.5), 0.0
        return (0.5 + self.residual / (2 * scale)).clamp(0, 1), scale

    def file_name(self, source: str | Path) -> str:
        """``<stem>_<method>_eps<eps>.png`` for the adversarial image of ``source`` (a user's file name, made safe)."""
        stem = re.sub(r"[^\w.-]", "_", Path(source).stem)[:80] or "image"
        return f"{stem}_{self.method}_eps{self.eps:.3f}.png"

    def write_png(self, path: str | Path) -> Path:
        """The adversarial image as a lossless 8-bit PNG at ``path``."""
        to_pil(self.adversarial).save(path, format="PNG")
        return Path(path)


def encode(image: torch.Tensor, fmt: str) -> bytes:
    """``[3, H, W]`` in [0, 1] written as 8-bit ``fmt`` (a key of ``SAVED_FORMATS``)."""
    buf = io.BytesIO()
    to_pil(image).save(buf, **SAVED_FORMATS[fmt])
    return buf.getvalue()


@torch.no_grad()
def p_fake(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """P(fake) = sigmoid(logit) of ``[B, 3, H, W]`` in [0, 1]."""
    return torch.sigmoid(model.eval()(images).reshape(-1))


def attack_image(model: nn.Module, image: torch.Tensor, method: str = "fgsm", eps: float = 0.01,
                 threshold: float = 0.5, name: str = "", **options) -> PlaygroundResult:
    """Attack one image towards "real" (P(fake) down) and measure what happened.

    The image is resized and centre-cropped to the detector's input size first (as every
    entry point does), attacked with ``method`` at ``eps`` against the label "fake", so the
    step lowers P(fake) whatever the verdict; then scored clean, adversarial, and after the
    adversarial image was saved as an 8-bit PNG and as a JPEG of quality 90 and decoded again
    through ``detectlab.data`` (does the attack survive being written to disk?).

    Args:
        model: a differentiable detector (``require_gradients``).
        image: ``[3, H, W]`` in [0, 1].
        method: ``fgsm`` | ``pgd`` | ``lbfgs`` (for L-BFGS, eps bounds its residual in L-infinity).
        eps: strength in [0, 1].
        threshold: decision threshold on P(fake).
        name: the detector's name, for messages.
        options: passed to the attack (e.g. ``steps`` for PGD).
    """
    require_gradients(model, name)
    eps = check_eps(eps)
    start = time.perf_counter()
    size = model.preprocess.input_size if hasattr(model, "preprocess") else image.shape[-1]
    x = resize_center_crop(image, size)[None]
    adv = make_attack(method, model, eps, **options)(x, torch.ones(1))
    p0, p1 = p_fake(model, torch.cat([x, adv])).tolist()
    saved = torch.stack([load_tensor(encode(adv[0], fmt), name=f"adversarial.{fmt}") for fmt in SAVED_FORMATS])
    p_saved = dict(zip(SAVED_FORMATS, p_fake(model, saved).tolist()))
    return PlaygroundResult(method, eps, float(threshold), x[0], adv[0], p0, p1, PerturbationSize.of(adv - x),
                            p_saved, time.perf_counter() - start)
