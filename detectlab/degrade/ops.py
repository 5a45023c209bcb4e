"""Image degradations of [Petrželková 2024] §4.3, as small named units over one mechanism.

Every degradation is a ``Degradation``: it has a ``name``, one strength parameter with a
documented valid range and an identity value, and maps images ``[B, 3, H, W]`` in [0, 1] to
images of the same shape in [0, 1] (``resize`` alone returns smaller images). The base class
validates images and strength, short-cuts the identity strength (returning an unchanged copy)
and clamps the result; a subclass implements ``_apply``. Randomness (noise, random patch
placement) comes only from the ``generator`` passed in, so a seeded generator reproduces a
result exactly; ``detectlab.degrade.chain.Chain`` composes them in a chosen order.

=========  ==========================  ==============  =========================================
name       strength                    identity        [Petrželková 2024]
=========  ==========================  ==============  =========================================
blur       sigma in px, >= 0           0               §4.3.1 Gaussian blur (Fig. 4.3, 4.4)
jpeg       quality, integer 1..100     None (off)      §4.3.2 JPEG compression (Fig. 4.5, 4.6)
downsize   scale factor in (0, 1]      1               §4.3.4 downsizing (Fig. 4.9, 4.10)
patch      visible side in px, >= 1    >= image side   §4.3.3 visible patch size (Fig. 4.7, 4.8)
noise      sigma in [0, 1] (pixel      0               the thesis brief's "noise" (§1): additive
           units of the [0, 1] range)                  white Gaussian noise
resize     scale factor in (0, 1]      1               §4.3.4 without the way back up: the small
                                                       image itself (the detector's own
                                                       preprocessing then enlarges it)
=========  ==========================  ==============  =========================================

``RandomDegrade`` turns them into a training augmentation ([Petrželková 2024] re-trains with the
degradations in the training set, which makes the detector markedly more robust).
"""

from __future__ import annotations

import functools
import io
import math
import numbers
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from detectlab.errors import DetectLabError

#: The constant that ``patch`` fills the hidden area with (mid-gray: no real/fake evidence, no edge).
MASK_VALUE = 0.5


class DegradationError(DetectLabError, ValueError):
    """A bad degradation name, strength or image; the message names the value (a ValueError too)."""


def check_images(images: Any, what: str = "images") -> torch.Tensor:
    """Raise DegradationError (a ValueError) unless ``images`` is a float tensor ``[B, 3, H, W]`` with values in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise DegradationError(f"{what} must be a torch tensor [B, 3, H, W] in [0, 1], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise DegradationError(f"{what} must have shape [B, 3, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise DegradationError(f"{what} must be a float tensor in [0, 1] (divide uint8 by 255), got {images.dtype}")
    if images.numel():
        lo, hi = torch.aminmax(images.detach())  # one pass; NaN fails both comparisons
        if not (bool(lo >= 0) and bool(hi <= 1)):
            raise DegradationError(f"{what} must have values in [0, 1]")
    return images


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


class Degradation(ABC):
    """One degradation with one strength parameter ([Petrželková 2024] §4.3).

    Subclasses set the class attributes below and implement ``_apply`` (called only for a
    valid, non-identity strength).
    """

    name: ClassVar[str]
    strength_name: ClassVar[str]   # what the strength is, in the paper's words ("sigma", "quality")
    valid_range: ClassVar[str]     # the valid strengths, in words used by error messages
    identity: ClassVar[Any]        # the strength that leaves the image unchanged

    def __call__(self, images: torch.Tensor, strength: Any, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Degrade ``images`` ``[B, 3, H, W]`` in [0, 1] by ``strength``.

        Args:
            images: float ``[B, 3, H, W]`` in [0, 1] (any device).
            strength: see ``valid_range``; the identity strength returns an unchanged copy.
            generator: randomness for degradations that have any (random patch placement).

        Returns:
            degraded images, same shape, dtype and device, values in [0, 1].

        Raises:
            DegradationError (a ValueError): images not ``[B, 3, H, W]`` in [0, 1], or a strength outside ``valid_range``.
        """
        check_images(images)
        strength = self.check_strength(strength)
        if self.is_identity(strength, images):
            return images.clone()
        return self._apply(images, strength, generator).clamp_(0.0, 1.0)

    def check_strength(self, strength: Any) -> Any:
        """The validated strength (normalized type); DegradationError naming the valid range otherwise."""
        if not self._valid(strength):
            raise DegradationError(f"{self.name}: {self.strength_name} must be {self.valid_range}, got {strength!r}")
        return self._normalize(strength)

    def is_identity(self, strength: Any, images: torch.Tensor) -> bool:
        return strength == self.identity

    def out_size(self, size: tuple[int, int], strength: Any) -> tuple[int, int]:
        """The ``(H, W)`` this degradation returns for ``(H, W)`` input (only ``resize`` changes it)."""
        return size

    @abstractmethod
    def _valid(self, strength: Any) -> bool: ...

    def _normalize(self, strength: Any) -> Any:
        return float(strength)

    @abstractmethod
    def _apply(self, images: torch.Tensor, strength: Any, generator: torch.Generator | None) -> torch.Tensor: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, {self.strength_name}: {self.valid_range})"


def gaussian_kernel1d(sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Normalized 1-D Gaussian of odd size ``2 * ceil(3 sigma) + 1`` (covers ±3 sigma)."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """``[n, n]`` matrix ``M`` with ``M @ v`` = ``v`` (length n) convolved with the Gaussian, borders
    reflected (replicated when the kernel is wider than ``n``, where reflection is undefined)."""
    k = gaussian_kernel1d(sigma, torch.float64)
    r = (k.numel() - 1) // 2
    idx = torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]
    if r < n:
        idx = idx.abs()
        idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    else:
        idx = idx.clamp(0, n - 1)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((torch.arange(n)[:, None].expand_as(idx), idx), k.expand(n, -1).clone(), accumulate=True)
    return m.float()


#: Up to this side the separable blur runs as two dense matrix products (BLAS; 10-20x faster on a
#: CPU than a single-channel ``conv2d`` at detector input sizes); above it, as convolutions.
BLUR_MATMUL_MAX_SIDE = 512


class GaussianBlur(Degradation):
    """Gaussian blur of standard deviation ``sigma`` px ([Petrželková 2024] §4.3.1, Fig. 4.3-4.4).

    Separable: a kernel of size ``2 * ceil(3 sigma) + 1`` along rows, then columns; borders are
    reflected (replicated when the kernel is wider than the image, where reflection is
    undefined). The whole batch is blurred at once: for sides up to ``BLUR_MATMUL_MAX_SIDE`` as
    ``M_h @ x @ M_w^T`` with the border rule folded into the matrices, else as two batched
    convolutions; both give the same result to float precision. [Petrželková 2024] went up to
    sigma = 21 px on 224 px faces.

    Example:
        >>> blurred = DEGRADATIONS["blur"](images, 2.0)   # sigma = 2 px
    """

    name = "blur"
    strength_name = "sigma"
    valid_range = "a number >= 0 (px; 0 = no blur)"
    identity = 0.0

    def _valid(self, strength: Any) -> bool:
        return _is_real(strength) and float(strength) >= 0

    def _apply(self, images: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
        b, c, h, w = images.shape
        if max(h, w) <= BLUR_MATMUL_MAX_SIDE:
            mh = _blur_matrix(h, sigma).to(images.device, images.dtype)
            mw = _blur_matrix(w, sigma).to(images.device, images.dtype)
            return mh @ images @ mw.T
        k = gaussian_kernel1d(sigma, images.dtype, images.device)
        r = (k.numel() - 1) // 2
        x = images.reshape(b * c, 1, h, w)
        mode = "reflect" if r < min(h, w) else "replicate"
        x = F.pad(x, (r, r, r, r), mode=mode)
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.conv2d(x, k.view(1, 1, -1, 1))
        return x.reshape(b, c, h, w)


@functools.lru_cache(maxsize=1)
def _codec_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="detectlab-jpeg")


class JPEG(Degradation):
    """Real JPEG compression at ``quality`` 1..100 ([Petrželková 2024] §4.3.2, Fig. 4.5-4.6).

    Each image is quantized to uint8, encoded by Pillow (libjpeg, default 4:2:0 chroma
    subsampling) and decoded again. Quality 100 still compresses (and quantizes to 8 bits);
    the identity is ``None`` ("no compression"). [Petrželková 2024] went down to quality 10.

    Example:
        >>> compressed = DEGRADATIONS["jpeg"](images, 30)
    """

    name = "jpeg"
    strength_name = "quality"
    valid_range = "an integer in [1, 100], or None for no compression"
    identity = None

    def _valid(self, strength: Any) -> bool:
        if strength is None:
            return True
        return _is_real(strength) and float(strength).is_integer() and 1 <= float(strength) <= 100

    def _normalize(self, strength: Any) -> int | None:
        return None if strength is None else int(strength)

    def _apply(self, images: torch.Tensor, quality: int, generator: torch.Generator | None) -> torch.Tensor:
        # one batched conversion each way; only the codec itself runs per image (on a small thread
        # pool: Pillow releases the GIL while it encodes and decodes)
        arrays = images.detach().to("cpu", torch.float32).mul(255).round_().to(torch.uint8)
        arrays = arrays.permute(0, 2, 3, 1).contiguous().numpy()
        out = np.empty_like(arrays)

        def one(i: int) -> None:
            buf = io.BytesIO()
            Image.fromarray(arrays[i]).save(buf, format="JPEG", quality=quality)
            buf.seek(0)
            with Image.open(buf) as im:
                out[i] = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))

        if len(arrays) >= 8:
            list(_codec_pool().map(one, range(len(arrays))))
        else:
            for i in range(len(arrays)):
                one(i)
        back = torch.from_numpy(out).permute(0, 3, 1, 2).to(images.dtype).div_(255.0)
        return back.to(images.device)


class Downsize(Degradation):
    """Downsize by ``scale`` in (0, 1] ([Petrželková 2024] §4.3.4, Fig. 4.9-4.10).

    The image is shrunk to ``round(scale * H) x round(scale * W)`` (at least 1 px) with
    antialiased bilinear resampling, then, unless ``resize_only``, enlarged back to
    ``H x W`` with bilinear interpolation, so the detector still gets its input size but the
    detail of a small image ([Petrželková 2024] simulates "a smaller resolution than what the model was
    trained for"). ``resize_only=True`` returns the small image itself.

    Example:
        >>> low_res = DEGRADATIONS["downsize"](images, 0.25)
    """

    name = "downsize"
    strength_name = "scale"
    valid_range = "a number in (0, 1] (1 = original size)"
    identity = 1.0

    def __init__(self, resize_only: bool = False) -> None:
        self.resize_only = resize_only

    def _valid(self, strength: Any) -> bool:
        return _is_real(strength) and 0 < float(strength) <= 1

    def _apply(self, images: torch.Tensor, scale: float, generator: torch.Generator | None) -> torch.Tensor:
        h, w = images.shape[-2:]
        small_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
        small = F.interpolate(images, size=small_hw, mode="bilinear", align_corners=False, antialias=True)
        if self.resize_only:
            return small
        return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


class Resize(Downsize):
    """Resize-only: shrink by ``scale`` in (0, 1] and stop there ([Petrželková 2024] §4.3.4 without the way back).

    Returns ``round(scale * H) x round(scale * W)`` images (antialiased bilinear, as
    ``Downsize``). A detector then meets a smaller image than it was trained for, and its own
    preprocessing (``detectlab.data.resize_center_crop``) enlarges it again.

    Example:
        >>> small = DEGRADATIONS["resize"](images, 0.5)   # [B, 3, H/2, W/2]
    """

    name = "resize"

    def __init__(self) -> None:
        super().__init__(resize_only=True)

    def out_size(self, size: tuple[int, int], scale: Any) -> tuple[int, int]:
        if scale == self.identity:
            return size
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


class GaussianNoise(Degradation):
    """Additive white Gaussian noise of standard deviation ``sigma`` in [0, 1] (pixel units).

    ``x + sigma * N(0, 1)`` per pixel and channel, clipped to [0, 1]; sigma is in units of the
    [0, 1] intensity range (sigma = 0.02 is about 5 grey levels of 255). [Petrželková 2024]'s brief names
    noise among the degradations to test (§1); the noise comes from ``generator``, drawn on the
    CPU for the whole batch at once, so a seeded generator gives the same noise on any device.

    Example:
        >>> noisy = DEGRADATIONS["noise"](images, 0.05, generator=torch.Generator().manual_seed(0))
    """

    name = "noise"
    strength_name = "sigma"
    valid_range = "a number in [0, 1] (pixel units of the [0, 1] range; 0 = no noise)"
    identity = 0.0

    def _valid(self, strength: Any) -> bool:
        return _is_real(strength) and 0 <= float(strength) <= 1

    def _apply(self, images: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
        return images + sigma * noise.to(images.device, images.dtype)


class PatchMask(Degradation):
    """Keep only a visible ``size x size`` px square; set the rest to gray 0.5 ([Petrželková 2024] §4.3.3).

    [Petrželková 2024] (Fig. 4.7-4.8) shows the detector only a visible patch of the face and masks the
    rest; with re-training it reaches 70 % accuracy from a 25 x 25 px patch. The patch is
    centred by default; ``placement="random"`` places it uniformly at random per image (as in
    Fig. 4.7), from ``generator``. A side >= the image side keeps that whole dimension;
    ``size >= H`` and ``size >= W`` is the identity. The hidden area is ``MASK_VALUE`` = 0.5.

    Example:
        >>> only_centre = DEGRADATIONS["patch"](images, 32)
    """

    name = "patch"
    strength_name = "size"
    valid_range = "an integer >= 1 (px side of the visible square; >= image side = whole image)"
    identity = None  # depends on the image size: see is_identity

    def __init__(self, placement: str = "center") -> None:
        if placement not in ("center", "random"):
            raise DegradationError(f'patch placement must be "center" or "random", got {placement!r}')
        self.placement = placement

    def _valid(self, strength: Any) -> bool:
        return _is_real(strength) and float(strength).is_integer() and float(strength) >= 1

    def _normalize(self, strength: Any) -> int:
        return int(strength)

    def is_identity(self, strength: int, images: torch.Tensor) -> bool:
        h, w = images.shape[-2:]
        return strength >= h and strength >= w

    def _apply(self, images: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
        b, _, h, w = images.shape
        ph, pw = min(size, h), min(size, w)
        if self.placement == "random":
            top = torch.randint(0, h - ph + 1, (b,), generator=generator).tolist()
            left = torch.randint(0, w - pw + 1, (b,), generator=generator).tolist()
        else:
            top, left = [(h - ph) // 2] * b, [(w - pw) // 2] * b
        out = torch.full_like(images, MASK_VALUE)
        for i in range(b):
            t, l = top[i], left[i]
            out[i, :, t : t + ph, l : l + pw] = images[i, :, t : t + ph, l : l + pw]
        return out


#: The named degradations, each a ready-to-call instance (the patch is centred).
DEGRADATIONS: dict[str, Degradation] = {
    "blur": GaussianBlur(),
    "jpeg": JPEG(),
    "downsize": Downsize(),
    "patch": PatchMask(),
    "noise": GaussianNoise(),
    "resize": Resize(),
}


def degrade(images: torch.Tensor, name: str, strength: Any, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the degradation called ``name`` (a key of ``DEGRADATIONS``) at ``strength``."""
    return get_degradation(name)(images, strength, generator=generator)


def get_degradation(name: str) -> Degradation:
    """The degradation called ``name``; DegradationError naming it and the choices otherwise."""
    if name not in DEGRADATIONS:
        raise DegradationError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def psnr(reference: torch.Tensor, degraded: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image of ``[B, 3, H, W]`` in [0, 1] (peak 1).

    ``10 log10(1 / MSE)``; identical images give ``inf``. A ``degraded`` batch of another size
    (``resize``) is enlarged back to the reference size (bilinear) first, so the PSNR says how
    much of the input survived.
    """
    if degraded.shape[-2:] != reference.shape[-2:]:
        degraded = F.interpolate(degraded, size=reference.shape[-2:], mode="bilinear", align_corners=False)
    mse = (reference.double() - degraded.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse)).float()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``sigma`` px (0 = unchanged); see ``GaussianBlur``."""
    return DEGRADATIONS["blur"](images, sigma)


def jpeg(images: torch.Tensor, quality: int | None = None) -> torch.Tensor:
    """JPEG encode/decode at ``quality`` 1..100; ``None`` returns the images unchanged; see ``JPEG``."""
    return DEGRADATIONS["jpeg"](images, quality)


def downsize(images: torch.Tensor, scale: float, *, resize_only: bool = False) -> torch.Tensor:
    """Downsize by ``scale`` in (0, 1] and (unless ``resize_only``) upsample back; see ``Downsize``."""
    return Downsize(resize_only)(images, scale)


def patch_mask(images: torch.Tensor, size: int, *, placement: str = "center",
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep a visible ``size`` px square, gray 0.5 elsewhere; see ``PatchMask``."""
    return PatchMask(placement)(images, size, generator=generator)


@dataclass
class DegradeAugConfig:
    """Degradation augmentation for training ([Petrželková 2024] §4.3: re-training with degradations).

    Each degradation hits a training image with its probability ``*_p`` and a strength drawn
    uniformly from its range (integers inclusive for JPEG quality and patch size). A patch
    range upper bound of ``None`` means the image side (the whole image stays visible). All
    probabilities 0 (the default) = no augmentation.
    """

    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)
    downsize_p: float = 0.0
    downsize_scale: tuple[float, float] = (0.25, 1.0)
    patch_p: float = 0.0
    patch_size: tuple[int, int | None] = (32, None)

    @property
    def enabled(self) -> bool:
        return any(p > 0 for p in (self.blur_p, self.jpeg_p, self.downsize_p, self.patch_p))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RandomDegrade:
    """Random per-image degradations, an augmentation callable for training.

    Applied in the order blur -> downsize -> JPEG -> patch (JPEG last among the image
    processing steps, as in a real publishing chain; the patch mask last so compression never
    sees its edges). The random draws for a batch come from the ``generator`` passed in (the
    global generator when ``None``), in a fixed order, so a seeded generator reproduces a run.

    Args:
        config: a ``DegradeAugConfig`` or any object with the same fields (e.g. the training
            configuration's ``AugmentConfig``).

    Raises:
        ValueError: a probability outside [0, 1] or a strength range outside a degradation's
            valid range (or with low > high).

    Example:
        >>> aug = RandomDegrade(DegradeAugConfig(blur_p=0.5, jpeg_p=0.5))
        >>> x = aug(images, generator=torch.Generator().manual_seed(0))
    """

    _ORDER = ("blur", "downsize", "jpeg", "patch")
    _FIELDS = {"blur": ("blur_p", "blur_sigma"), "downsize": ("downsize_p", "downsize_scale"),
               "jpeg": ("jpeg_p", "jpeg_quality"), "patch": ("patch_p", "patch_size")}

    def __init__(self, config: Any = None) -> None:
        config = DegradeAugConfig() if config is None else config
        self.config = config
        self._ops: dict[str, Degradation] = {
            "blur": GaussianBlur(), "downsize": Downsize(), "jpeg": JPEG(), "patch": PatchMask("random")}
        self._plan: list[tuple[str, float, tuple[Any, Any]]] = []
        for name in self._ORDER:
            p_field, range_field = self._FIELDS[name]
            p = getattr(config, p_field)
            if not (_is_real(p) and 0 <= float(p) <= 1):
                raise DegradationError(f"{p_field} must be a probability in [0, 1], got {p!r}")
            lo, hi = getattr(config, range_field)
            op = self._ops[name]
            if name == "jpeg" and (lo is None or hi is None):
                raise DegradationError(f"{range_field} must be two qualities in [1, 100], got {(lo, hi)!r}")
            op.check_strength(lo)
            if not (name == "patch" and hi is None):
                op.check_strength(hi)
                if hi < lo:
                    raise DegradationError(f"{range_field}: low {lo!r} is above high {hi!r}")
            if float(p) > 0:
                self._plan.append((name, float(p), (lo, hi)))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Degrade each image of ``[B, 3, H, W]`` in [0, 1] independently; same shape out."""
        check_images(images)
        b, _, h, w = images.shape
        draws = []
        for name, p, (lo, hi) in self._plan:
            hit = torch.rand(b, generator=generator) < p
            if name in ("jpeg", "patch"):
                top = min(h, w) if hi is None else hi
                top = max(top, lo)
                strength = torch.randint(int(lo), int(top) + 1, (b,), generator=generator).tolist()
            else:
                strength = (lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)).tolist()
            draws.append((name, hit.tolist(), strength))
        if not any(any(hit) for _, hit, _ in draws):
            return images.clone()
        out = []
        for i in range(b):
            x = images[i : i + 1]
            for name, hit, strength in draws:
                if hit[i]:
                    x = self._ops[name](x, strength[i], generator=generator)
            out.append(x)
        return torch.cat(out)

    def __repr__(self) -> str:
        return f"RandomDegrade({self.config!r})"


__all__ = [
    "DEGRADATIONS", "MASK_VALUE", "JPEG", "DegradationError", "DegradeAugConfig", "Degradation", "Downsize",
    "GaussianBlur", "GaussianNoise", "PatchMask", "RandomDegrade", "Resize", "check_images", "degrade", "downsize",
    "gaussian_blur", "gaussian_kernel1d", "get_degradation", "jpeg", "patch_mask", "psnr",
]
