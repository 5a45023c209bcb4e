"""One image, one attack: the image the detector scores before and after, the residual, P(fake) before and after,
and whether the attack survives being saved, compressed or blurred, each beside the same step applied to the
clean image ([Petrželková 2024] §4.4, Fig. 4.11-4.13).

The attack works on what the detector actually scores, through the same path as the Detect tab:

* ``resize``: the image decoded at the detector's input size (the centre square of the upload, resized;
  ``detect.analyze.analyze_file``'s decode). The adversarial image is that input-size image: enlarging it
  again, or attacking the full-size upload, would not give what the resize path scores.
* ``tiles``: the image at its own resolution, scored as ``detect.tiling.score_tiled`` scores it (the
  mean logit of input-size tiles). The attack differentiates through every scored tile at once
  (``TiledLogit``), so overlapping tiles share one perturbation and the adversarial image has the
  upload's size.

A moved eps slider re-attacks the same upload, so what does not depend on eps is kept: the decoded
file (``data.filecache``, per file version), the clean image's control scores, and FGSM's direction
sign(grad); the attacked image and its survival steps are scored in one batch.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from detectlab.attacks.base import AttackError, check_eps, require_gradients
from detectlab.attacks.fgsm import FGSM
from detectlab.attacks.registry import make_attack
from detectlab.data import load_tensor, resize_center_crop, to_pil
from detectlab.data.decode import load_fitted, open_image
from detectlab.data.filecache import load_fitted_cached
from detectlab.degrade.ops import gaussian_blur
from detectlab.detect.tiling import MAX_TILES, score_tiled, tile_grid

#: How the playground scores (and so attacks) an image: the Detect tab's two paths.
SCORINGS = {"resize": "resize to the detector's input (Detect's default)",
            "tiles": "native-resolution tiles (full-size download)"}

#: The tiles attack holds the full image (and its gradient) as float: larger uploads are refused with a message.
MAX_TILED_PIXELS = 12_000_000

#: what an image is saved as before it is scored again: name -> PIL save options
SAVED_FORMATS = {"png": dict(format="PNG"), "jpeg90": dict(format="JPEG", quality=90)}

#: The survival checks, in the order shown: name -> label. Each is applied to the clean image (the control)
#: and to the adversarial image alike.
SURVIVAL_CHECKS = {"png": "saved as 8-bit PNG", "jpeg90": "JPEG 90", "blur1": "Gaussian blur σ 1 px"}

#: Tiles whose activations a gradient may keep at once (about 20 MB each for ResNet-18 at 128 px); more are
#: recomputed batch by batch in the backward pass (``TiledLogit``).
CHECKPOINT_OVER = 32

#: Gaussian blur of the "blur1" check, in px
SURVIVAL_BLUR_SIGMA = 1.0


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
class SurvivalCheck:
    """One step the adversarial image may meet after the attack, and the same step on the clean image (the control)."""

    name: str            # a key of SURVIVAL_CHECKS
    label: str
    p_clean: float       # P(fake) of the clean image after the step
    p_attacked: float    # P(fake) of the adversarial image after the step

    def conclusion(self, p_before: float, threshold: float) -> str:
        """What the pair says, honestly: is it the attack, or the step itself, that makes the image "real"?"""
        fake = lambda p: p > threshold  # noqa: E731
        if not fake(p_before):
            return "the clean image is called real already: there is no fake verdict to flip"
        if not fake(self.p_clean):
            return (f"{self.label} alone already makes the clean image real: the attack is not what makes "
                    "it real")
        if not fake(self.p_attacked):
            return f"the attack survives {self.label}: the clean image stays fake, the attacked one is called real"
        return f"the attack does not survive {self.label}: the attacked image is called fake"


@dataclass
class PlaygroundResult:
    """What one attack did to one image; images are ``[3, H, W]`` in [0, 1] at the size the detector scores.

    For ``scoring == "resize"`` that is the detector's input size; for ``"tiles"`` the upload's own size.
    """

    method: str
    eps: float
    threshold: float
    image: torch.Tensor = field(repr=False)
    adversarial: torch.Tensor = field(repr=False)
    p_before: float
    p_after: float
    size: PerturbationSize
    checks: list[SurvivalCheck]      # each survival step on the clean and on the adversarial image
    seconds: float
    scoring: str = "resize"          # the path that scored and was attacked: "resize" | "tiles"
    source_size: tuple[int, int] = (0, 0)   # (width, height) of the image as uploaded
    tiles: int = 1                   # tiles scored (and attacked) on the tiles path
    input_size: int = 0              # the detector's input size
    scored_whole: bool = False       # tiles asked for, but the image is no larger than the input: scored whole

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

    @property
    def p_saved(self) -> dict[str, float]:
        """P(fake) of the adversarial image saved in each of ``SAVED_FORMATS`` and read back."""
        return {c.name: c.p_attacked for c in self.checks if c.name in SAVED_FORMATS}

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the adversarial image (the download)."""
        return int(self.adversarial.shape[-1]), int(self.adversarial.shape[-2])

    def describe(self) -> str:
        """Which pixels were scored and attacked, in words."""
        w, h = self.source_size
        ow, oh = self.output_size
        if self.scoring == "tiles":
            return (f"tiles: {self.tiles} tiles of {self.input_size} px over the full {w}×{h} image, P(fake) from the "
                    f"mean tile logit (as Detect's tiles scoring); the attack perturbs every scored tile and the "
                    f"adversarial image keeps the upload's size, {ow}×{oh}")
        side = min(w, h)
        whole = ("the tiles path scores an image no larger than the detector's input whole, as resize does — "
                 if self.scored_whole else "")
        region = f"the centre {side}×{side} of the {w}×{h} upload" if w != h else f"the {w}×{h} upload"
        return (f"{whole}resize: {region} resized to the detector's {ow}×{oh} input (as Detect's resize scoring); the "
                f"attack perturbs that input, so the adversarial image is {ow}×{oh} — choose tiles for an "
                "adversarial image at the upload's size")

    def residual_image(self) -> tuple[torch.Tensor, float]:
        """``|adversarial - image|`` amplified so its largest value is white, and the gain (0: no change).

        ``|r| * gain`` with ``gain = 1 / max|r|``: a residual of 0.004 is as visible as one of 0.1; the gain
        (and max|r| = 1 / gain) says which it was.
        """
        scale = self.size.linf
        if scale == 0:
            return torch.zeros_like(self.residual), 0.0
        gain = 1.0 / scale
        return (self.residual.abs() * gain).clamp(0, 1), gain

    def file_name(self, source: str | Path) -> str:
        """``<stem>_<method>_eps<eps>[_tiles].png`` for the adversarial image of ``source`` (a user's file name,
        made safe)."""
        stem = re.sub(r"[^\w.-]", "_", Path(source).stem)[:80] or "image"
        return f"{stem}_{self.method}_eps{self.eps:.3f}{'_tiles' if self.scoring == 'tiles' else ''}.png"

    def write_png(self, path: str | Path) -> Path:
        """The adversarial image as a lossless 8-bit PNG at ``path``."""
        to_pil(self.adversarial).save(path, format="PNG")
        return Path(path)

    def views(self, max_side: int = 1024) -> tuple:
        """(before, after, |residual| amplified) as PIL images for display, none larger than ``max_side``;
        the residual is shrunk by nearest neighbour so its pattern is not averaged away."""
        from PIL import Image

        amp, _ = self.residual_image()
        out = []
        for t, resample in ((self.image, Image.Resampling.LANCZOS), (self.adversarial, Image.Resampling.LANCZOS),
                            (amp, Image.Resampling.NEAREST)):
            img = to_pil(t)
            if max(img.size) > max_side:
                img.thumbnail((max_side, max_side), resample)
            out.append(img)
        return tuple(out)


def encode(image: torch.Tensor, fmt: str) -> bytes:
    """``[3, H, W]`` in [0, 1] written as 8-bit ``fmt`` (a key of ``SAVED_FORMATS``)."""
    buf = io.BytesIO()
    to_pil(image).save(buf, **SAVED_FORMATS[fmt])
    return buf.getvalue()


def survival_step(name: str, image: torch.Tensor) -> torch.Tensor:
    """``image`` ``[3, H, W]`` after the survival check ``name``: saved as a file and decoded through
    ``detectlab.data`` (PNG, JPEG), or blurred in memory."""
    if name in SAVED_FORMATS:
        return load_tensor(encode(image, name), name=f"checked.{name}")
    if name == "blur1":
        return gaussian_blur(image[None], SURVIVAL_BLUR_SIGMA)[0]
    raise AttackError(f"unknown survival check '{name}' (known: {', '.join(SURVIVAL_CHECKS)})")


@torch.no_grad()
def p_fake(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """P(fake) = sigmoid(logit) of ``[B, 3, H, W]`` in [0, 1]."""
    return torch.sigmoid(model.eval()(images).reshape(-1))


class TiledLogit(nn.Module):
    """A detector as the tiles scoring sees one full-size image: the mean logit over its tiles.

    The tiles are ``detect.tiling.tile_grid``'s for this image size (all of them up to ``MAX_TILES``,
    then the same seeded sample as ``score_tiled``), so the logit equals ``score_tiled``'s. Each
    batch of tiles runs under activation checkpointing: a backward pass recomputes one batch at a
    time instead of keeping every tile's activations, so the memory of a gradient stays at one
    batch whatever the image size. The gradient reaches every pixel of every scored tile, summed
    where tiles overlap.

    Shape: ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits (positive = fake).
    """

    def __init__(self, detector: nn.Module, height: int, width: int, max_tiles: int = MAX_TILES, seed: int = 0,
                 batch_size: int = 16, checkpoint_over: int = CHECKPOINT_OVER) -> None:
        super().__init__()
        self.detector = detector
        self.kind = getattr(detector, "kind", "detector")
        self.tile = int(detector.preprocess.input_size)
        self.image_size = (int(height), int(width))
        rows, cols, cells = tile_grid(height, width, self.tile, max_tiles, seed)
        self.starts = [(rows[r], cols[c]) for r, c in cells]
        self.batch_size = batch_size
        self.checkpointed = len(self.starts) > checkpoint_over

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.image_size:
            raise AttackError(f"the tiles were laid out for {self.image_size[1]}×{self.image_size[0]} images, "
                              f"got {x.shape[-1]}×{x.shape[-2]}")
        s, out = self.tile, []
        for img in x:
            logits = []
            for k in range(0, len(self.starts), self.batch_size):
                batch = torch.stack([img[:, t:t + s, u:u + s] for t, u in self.starts[k:k + self.batch_size]])
                if self.checkpointed and torch.is_grad_enabled() and batch.requires_grad:
                    z = checkpoint(self.detector, batch, use_reentrant=False)
                else:
                    z = self.detector(batch)
                logits.append(z.reshape(-1))
            out.append(torch.cat(logits).mean())
        return torch.stack(out)


#: clean images whose control scores and FGSM direction are kept (a moved eps slider re-attacks the same image)
CONTROLS_KEPT = 8


class _Kept:
    """A small LRU of per-(detector, clean image, scoring path) values; a detector that is gone (its weak
    reference dead, its id reused) never matches."""

    def __init__(self, kept: int = CONTROLS_KEPT) -> None:
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.kept = kept

    def get(self, key: tuple, model: nn.Module):
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0]() is model:
                self._items.move_to_end(key)
                return hit[1]
        return None

    def put(self, key: tuple, model: nn.Module, value) -> None:
        with self._lock:
            self._items[key] = (weakref.ref(model), value)
            while len(self._items) > self.kept:
                self._items.popitem(last=False)


_controls = _Kept()
#: FGSM directions, as int8 signs (a 12 MP tiles image's is 36 MB): fewer kept than the control scores
_directions = _Kept(4)


def _image_key(model: nn.Module, clean: torch.Tensor, scoring: str) -> tuple:
    """What identifies one clean image on one detector's scoring path (its pixels, not its file)."""
    digest = hashlib.sha1(clean.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()
    return id(model), scoring, tuple(clean.shape), digest


def _clean_scores(model: nn.Module, clean: torch.Tensor, key: tuple, score_many) -> dict[str, float]:
    """P(fake) of the clean image ("") and after each survival check: they do not depend on the attack, so
    they are computed once per (detector, image, scoring path) and kept for the next eps."""
    hit = _controls.get(key, model)
    if hit is not None:
        return hit
    # the clean image is 8-bit already: its PNG round trip is the same image and needs no second score
    checked = {c: survival_step(c, clean) for c in SURVIVAL_CHECKS}
    distinct = {c: t for c, t in checked.items() if not torch.equal(t, clean)}
    scores = score_many([clean, *distinct.values()])
    out = {"": scores[0], **dict(zip(distinct, scores[1:]))}
    out.update({c: scores[0] for c in checked if c not in distinct})
    _controls.put(key, model, out)
    return out


def _adversarial(method: str, target: nn.Module, model: nn.Module, x: torch.Tensor, eps: float, key: tuple,
                 options: dict) -> torch.Tensor:
    """The attack's adversarial ``x`` (labelled fake). FGSM ([Petrželková 2024] eq. 3.10) steps along
    ``sign(grad)``, which does not depend on eps: it is computed once per image and kept, so a moved eps
    slider costs no backward pass; the step is FGSM's own expression, so the result is bit-identical."""
    fake = torch.ones(1)
    if method != "fgsm" or options or eps == 0.0:
        return make_attack(method, target, eps, **options)(x, fake)
    sign = _directions.get(key, model)
    if sign is None:
        sign = FGSM(target, eps).input_gradient(x.detach(), fake.to(x.device)).sign().to(torch.int8)
        _directions.put(key, model, sign)
    return (x.detach() + eps * sign.to(x.dtype)).clamp_(0.0, 1.0)


def _tiled(image: torch.Tensor, size: int) -> bool:
    """Whether the tiles path scores ``image`` tile by tile (``score_tiled``: smaller ones are scored whole)."""
    _, h, w = image.shape
    return not (min(h, w) < size or (h, w) == (size, size))


def attack_image(model: nn.Module, image: torch.Tensor, method: str = "fgsm", eps: float = 0.01,
                 threshold: float = 0.5, name: str = "", scoring: str = "resize",
                 source_size: tuple[int, int] | None = None, **options) -> PlaygroundResult:
    """Attack one image towards "real" (P(fake) down) on the path the detector scores it, and measure what happened.

    ``scoring="resize"``: the image is resized and centre-cropped to the detector's input size (as
    Detect's resize path), attacked there. ``scoring="tiles"``: the image is attacked at its own
    size through ``TiledLogit`` and scored with ``detect.tiling.score_tiled`` (an image with a side
    under the input size, or exactly the input's size, is scored whole by the tiles path too: it is
    attacked on the resize path and the result says so). The attack is crafted against the label
    "fake", so the step lowers P(fake) whatever the verdict. Then each of ``SURVIVAL_CHECKS`` (saved as
    8-bit PNG, JPEG 90 and 75 and decoded through ``detectlab.data``; a Gaussian blur) is applied to
    the clean image and to the adversarial image alike, and both are scored: the clean score is the
    control that tells whether the step alone changes the verdict.

    Args:
        model: a differentiable detector (``require_gradients``) with ``preprocess.input_size``.
        image: ``[3, H, W]`` in [0, 1].
        method: ``fgsm`` | ``pgd`` | ``lbfgs`` (for L-BFGS, eps bounds its residual in L-infinity).
        eps: strength in [0, 1].
        threshold: decision threshold on P(fake).
        name: the detector's name, for messages.
        scoring: ``resize`` | ``tiles`` (see ``SCORINGS``).
        source_size: (width, height) of the image as uploaded, when ``image`` was decoded smaller.
        options: passed to the attack (e.g. ``steps`` for PGD).
    """
    require_gradients(model, name)
    eps = check_eps(eps)
    if scoring not in SCORINGS:
        raise AttackError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    start = time.perf_counter()
    size = model.preprocess.input_size if hasattr(model, "preprocess") else image.shape[-1]
    source_size = source_size or (int(image.shape[-1]), int(image.shape[-2]))
    model.eval()
    scored_whole = False
    if scoring == "tiles" and _tiled(image, size):
        x = image.float()[None]
        target = TiledLogit(model, *image.shape[-2:])

        def score_many(images: list[torch.Tensor]) -> list[float]:
            return [score_tiled(model, t).p_fake for t in images]
        tiles = len(target.starts)
    else:
        scored_whole, scoring = scoring == "tiles", "resize"
        x = resize_center_crop(image.float(), size)[None]
        target, tiles = model, 1

        def score_many(images: list[torch.Tensor]) -> list[float]:
            # one forward for the attacked image and its survival steps (the same numbers as one at a time,
            # within float rounding, 1e-6: tests/test_attacks_playground.py)
            return p_fake(model, torch.stack(images)).tolist()
    key = _image_key(model, x[0], scoring)
    adv = _adversarial(method, target, model, x, eps, key, options)
    clean, attacked = x[0], adv[0]
    controls = _clean_scores(model, clean, key, score_many)
    p1, *after = score_many([attacked, *(survival_step(c, attacked) for c in SURVIVAL_CHECKS)])
    checks = [SurvivalCheck(c, label, controls[c], p) for (c, label), p in zip(SURVIVAL_CHECKS.items(), after)]
    p0 = controls[""]
    return PlaygroundResult(method, eps, float(threshold), clean, attacked, p0, p1, PerturbationSize.of(adv - x),
                            checks, time.perf_counter() - start, scoring, tuple(source_size), tiles, int(size),
                            scored_whole)


def attack_file(model: nn.Module, source, method: str = "fgsm", eps: float = 0.01, threshold: float = 0.5,
                name: str = "", scoring: str = "resize", file_name: str | None = None,
                max_pixels: int = MAX_TILED_PIXELS, **options) -> PlaygroundResult:
    """Decode ``source`` as the Detect tab does for ``scoring`` and ``attack_image`` it.

    ``resize``: decoded at the detector's input size (``load_tensor``: crop, integer box reduction,
    antialiased resize — ``analyze_file``'s decode), so a 49 MP upload never becomes a full-size float
    tensor. ``tiles``: decoded at full size (as ``score_file_tiled`` reads its tiles); an image over
    ``max_pixels`` is refused with a message, since the attack needs the full image and its gradient
    as float. ``file_name`` is how errors name the file.
    """
    if scoring not in SCORINGS:
        raise AttackError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    require_gradients(model, name)
    size = model.preprocess.input_size
    if scoring == "tiles":
        with open_image(source, name=file_name) as decoded:
            w, h = decoded.width, decoded.height
            if w * h > max_pixels:
                raise AttackError(f"{file_name or 'the image'} is {w}×{h} ({w * h / 1e6:.1f} MP): the tiles attack "
                                  f"holds the full image and its gradient in memory and takes at most "
                                  f"{max_pixels / 1e6:.0f} MP; choose resize scoring or a smaller image")
            image = decoded.to_float()
    else:
        # a path is decoded once per file version (a moved eps slider re-attacks the same upload); the
        # copy keeps the shared cached tensor safe from an attack that works in place
        fitted = (load_fitted_cached(source, size, name=file_name) if isinstance(source, (str, Path))
                  else load_fitted(source, size, name=file_name))
        image, (w, h) = fitted[0].clone(), fitted[1]
    return attack_image(model, image, method, eps, threshold, name, scoring, source_size=(w, h), **options)


#: The playground's (what the UI and API run) per-attack settings: L-BFGS is the slow one; fewer c values
#: and iterations keep it to seconds.
PLAYGROUND_OPTIONS: dict[str, dict] = {"fgsm": {}, "pgd": {"steps": 10}, "lbfgs": {"search_steps": 4, "max_iter": 10}}
