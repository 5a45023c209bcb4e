"""Decode image files into RGB, safely.

Every image that enters DetectLab (data set files, uploads, masks) goes through
``load_image``: it refuses what it cannot decode completely and correctly instead of
handing a half-decoded or wrongly converted image to a detector, because a detector
happily scores grey padding or black-composited alpha as "evidence". Errors are
``ImageDecodeError`` with a message that names the file, never a raw PIL error.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, UnidentifiedImageError

from detectlab import config
from detectlab.errors import ImageDecodeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageInfo",
    "ImageSource",
    "is_image_file",
    "load_image",
    "load_mask",
    "load_tensor",
    "probe_image",
    "resize_center_crop",
    "to_pil",
    "to_rgb",
    "to_tensor",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

# PIL plugins we let parse untrusted bytes. Restricting them keeps exotic decoders
# (EPS runs Ghostscript, PSD, FITS, ...) away from uploads. The JPEG opener also returns
# MPO (many camera JPEGs); GIF is decoded (first frame) although data sets only list IMAGE_EXTENSIONS.
DECODE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")

ImageSource = Union[str, Path, bytes, bytearray, io.BytesIO]

# PIL's opener as this module found it (see ``_pil_open``).
_PIL_IMAGE_OPEN = Image.open

# Thin images (1×65535) are refused from the header: their content is a sliver, and a
# short-side resize of one would allocate (side × ratio)² floats.
MAX_ASPECT_RATIO = float(os.environ.get("DETECTLAB_MAX_ASPECT", 20))

# EXIF orientation tag value -> the transpose that undoes it (as ImageOps.exif_transpose).
_EXIF_ORIENTATION = 0x0112
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class ImageInfo:
    """What a cheap header check learned about an image file."""

    width: int
    height: int
    mode: str
    format: str


def is_image_file(path: str | Path) -> bool:
    """True if ``path`` has one of the data-set image extensions (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _label(source: ImageSource, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    return "uploaded image"


def _open_stream(source: ImageSource, label: str) -> io.BufferedIOBase | io.BytesIO:
    """Return a binary stream for ``source`` after the checks PIL reports badly."""
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageDecodeError(f"{label}: file is empty (0 bytes)")
        return io.BytesIO(source)
    if isinstance(source, io.BytesIO):
        if source.getbuffer().nbytes == 0:
            raise ImageDecodeError(f"{label}: file is empty (0 bytes)")
        source.seek(0)
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            if not path.exists():
                raise ImageDecodeError(f"{label}: file does not exist")
            if path.is_dir():
                raise ImageDecodeError(f"{label}: is a folder, not an image file")
            if path.stat().st_size == 0:
                raise ImageDecodeError(f"{label}: file is empty (0 bytes)")
            return path.open("rb")
        except OSError as exc:
            raise ImageDecodeError(f"{label}: cannot read file ({exc.strerror or exc})") from exc
    raise TypeError(f"cannot load an image from {type(source).__name__}")


def _describe_failure(exc: BaseException) -> str:
    """Turn a PIL/OS error into words a user can act on."""
    text = str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "not an image, or not a supported format (PNG, JPEG, WebP, BMP, TIFF, GIF)"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return f"image is too large to decode safely ({text})"
    if isinstance(exc, ValueError) and "conversion" in text:
        return f"unsupported colour mode ({text})"
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"file is truncated ({text})" if text else "file is truncated"
    return f"corrupt or unreadable image data ({type(exc).__name__}: {text})"


def _check_pixels(im: Image.Image, max_pixels: int, label: str) -> None:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{label}: image has no pixels ({width}×{height})")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageDecodeError(
            f"{label}: {width}×{height} has an aspect ratio of {ratio:,.0f}:1, over the limit of "
            f"{MAX_ASPECT_RATIO:g}:1 (a detector would see a sliver of it; crop the image first, or raise "
            "DETECTLAB_MAX_ASPECT)"
        )
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{label}: {width}×{height} = {width * height:,} pixels is over the limit of "
            f"{max_pixels:,} (decompression-bomb guard; raise DETECTLAB_MAX_PIXELS to allow)"
        )


def _pil_open():
    """PIL's own ``Image.open``, even after another library replaced it process-wide.

    ultralytics swaps ``PIL.Image.open`` for a wrapper (HEIC support through pi-heif) when it
    is imported; for a file PIL cannot identify that wrapper fails with "No module named
    'pi_heif'" instead of "not an image". DetectLab decodes with PIL's opener and its own
    format allow-list whatever else is loaded.
    """
    fn = Image.open
    if getattr(fn, "__module__", "") == "PIL.Image":
        return fn
    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    return original if getattr(original, "__module__", "") == "PIL.Image" else _PIL_IMAGE_OPEN


def _open_checked(stream, max_pixels: int, label: str) -> Image.Image:
    """``Image.open`` with our pixel limit checked from the header, before any decode.

    PIL's own guard (warning above ``Image.MAX_IMAGE_PIXELS``, error above twice that)
    fires inside ``open``; callers turn both into ``ImageDecodeError``. The warnings
    filters are left alone: ``catch_warnings`` is not thread-safe and discovery decodes
    in threads.
    """
    im = _pil_open()(stream, formats=DECODE_FORMATS)
    _check_pixels(im, max_pixels, label)
    return im


def probe_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    name: str | None = None,
    deep_jpeg: bool = True,
) -> ImageInfo:
    """Cheaply check that ``source`` is a complete, decodable image and return its header.

    Opens the header, checks the pixel limit and runs PIL's ``verify()`` (chunk CRCs and
    structure; no pixel decode), which is fast enough for thousands of files. ``verify``
    does not notice a truncated JPEG, so with ``deep_jpeg`` JPEGs are decoded at 1/8 scale
    (``draft``): the entropy-coded data is still read to the end, at a fraction of the cost.

    Raises:
        ImageDecodeError: naming the file and what is wrong.
    """
    label = _label(source, name)
    limit = config.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    stream = _open_stream(source, label)
    try:
        im = _open_checked(stream, limit, label)
        info = ImageInfo(im.width, im.height, im.mode, im.format or "")
        if deep_jpeg and im.format in ("JPEG", "MPO"):
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        else:
            im.verify()
        return info
    except ImageDecodeError:
        raise
    except Exception as exc:  # PIL raises many types; none may escape raw
        raise ImageDecodeError(f"{label}: {_describe_failure(exc)}") from exc
    finally:
        if stream is not source:
            stream.close()


def _sixteen_bit_to_l(im: Image.Image) -> Image.Image:
    """16-bit grey (I;16*, and I taken as 16-bit) to 8 bit over the full 0..65535 range.

    PIL's own ``convert("L")`` clips at 255, which turns a 16-bit photo almost white.
    """
    values = np.asarray(im).astype(np.float64)
    values = np.clip(values, 0, 65535) / 257.0  # 65535 / 257 == 255 exactly
    return Image.fromarray(np.round(values).astype(np.uint8), mode="L")


def _float_to_l(im: Image.Image) -> Image.Image:
    """Float grey to 8 bit: values within [0, 1] are scaled by 255, others read as 0..255."""
    values = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.round(np.clip(values, 0, 255)).astype(np.uint8), mode="L")


def _flatten_on_white(rgba: Image.Image) -> Image.Image:
    """Composite RGBA onto white: transparent pixels carry arbitrary (often black) colour."""
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert a decoded image of any PIL mode to 8-bit RGB with the right values.

    Transparency (alpha channels, palette/grey ``transparency``) is composited onto white;
    16-bit grey is scaled by its full range; CMYK uses PIL's (255-C)(255-K)/255 conversion.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        return _sixteen_bit_to_l(im).convert("RGB")
    if mode == "F":
        return _float_to_l(im).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    if has_alpha:
        return _flatten_on_white(im.convert("RGBA"))
    if mode == "RGB":
        return im
    return im.convert("RGB")


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF must not make a good image unreadable
        return 1


def load_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    name: str | None = None,
) -> Image.Image:
    """Fully decode ``source`` (path, bytes or BytesIO) into an RGB PIL image.

    The first frame of animated files is used; EXIF orientation is applied (as
    ``ImageOps.exif_transpose``); every mode is converted by ``to_rgb``. The pixel
    limit (default ``config.MAX_IMAGE_PIXELS``) is checked from the header before any
    pixel is decoded. Truncated files are refused, not padded: PIL's
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False and ``load()`` forces the decode.

    Args:
        source: file path, raw bytes or an in-memory buffer.
        max_pixels: refuse images with more pixels than this.
        name: how to name the image in errors (default: the path, or "uploaded image").

    Raises:
        ImageDecodeError: zero-byte, missing, not an image, truncated, corrupt or too big;
            the message names the file.
    """
    label = _label(source, name)
    limit = config.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone switched PIL to padding truncated files with grey; we would silently
        # feed that padding to detectors, so refuse rather than decode.
        raise ImageDecodeError(
            f"{label}: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; "
            "DetectLab refuses to decode with it (truncated files would be padded silently)"
        )
    stream = _open_stream(source, label)
    try:
        with _open_checked(stream, limit, label) as im:
            im.seek(0)  # first frame of animated GIF/WebP/TIFF/MPO
            im.load()
            orientation = _orientation(im)
            rgb = to_rgb(im)
            if rgb is im:
                rgb = im.copy()  # detach from the file before the ``with`` closes it
        transpose = _ORIENTATION_TRANSPOSE.get(orientation)
        if transpose is not None:
            rgb = rgb.transpose(transpose)
        rgb.info.pop("exif", None)  # orientation already applied; do not apply it twice
        return rgb
    except ImageDecodeError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
        raise ImageDecodeError(f"{label}: {_describe_failure(exc)}") from exc
    finally:
        if stream is not source:
            stream.close()


def load_mask(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    name: str | None = None,
) -> torch.Tensor:
    """Decode a manipulation mask into a bool tensor [H, W] (True = manipulated).

    Palette masks count every non-zero index as foreground (VOC-style label maps); other
    modes are converted to grey (16-bit and alpha handled as in ``to_rgb``) and
    thresholded at 128. EXIF orientation is applied, as for the image.
    """
    label = _label(source, name)
    limit = config.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    stream = _open_stream(source, label)
    try:
        with _open_checked(stream, limit, label) as im:
            im.seek(0)
            im.load()
            orientation = _orientation(im)
            if im.mode == "P":
                mask_img = Image.fromarray((np.asarray(im) != 0).astype(np.uint8) * 255, "L")
            else:
                mask_img = to_rgb(im).convert("L")
        transpose = _ORIENTATION_TRANSPOSE.get(orientation)
        if transpose is not None:
            mask_img = mask_img.transpose(transpose)
        return torch.from_numpy(np.array(mask_img) >= 128)
    except ImageDecodeError:
        raise
    except Exception as exc:
        raise ImageDecodeError(f"{label}: {_describe_failure(exc)}") from exc
    finally:
        if stream is not source:
            stream.close()


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor [3, H, W] in [0, 1] (the convention of every public API)."""
    if img.mode != "RGB":
        img = to_rgb(img)
    array = np.array(img, dtype=np.uint8)  # a writable copy; torch warns on read-only arrays
    return torch.from_numpy(array).permute(2, 0, 1).contiguous().float().div_(255.0)


def to_pil(t: torch.Tensor) -> Image.Image:
    """Float tensor [3, H, W] (or [1, H, W] / [H, W] grey) in [0, 1] -> RGB PIL image.

    Values are clamped to [0, 1] and rounded, so adversarial or filtered tensors that
    overshoot slightly still convert.
    """
    t = t.detach().to("cpu", torch.float32)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected a [3, H, W] or [1, H, W] tensor, got shape {tuple(t.shape)}")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    array = t.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


def _target_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def _crop_box(in_h: int, in_w: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centred region of the input with the output's aspect ratio."""
    if in_w * out_h > in_h * out_w:     # input wider than the target: crop the width
        h, w = in_h, max(1, int(round(in_h * out_w / out_h)))
    else:
        h, w = max(1, int(round(in_w * out_h / out_w))), in_w
    return (in_h - h) // 2, (in_w - w) // 2, h, w


def resize_center_crop(
    t: torch.Tensor,
    size: int | tuple[int, int],
    *,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Center-crop to the aspect ratio of ``size``, then resize to ``size``.

    With an int, the square center is kept and scaled to ``size`` × ``size``: the
    torchvision ``Resize(size) + CenterCrop(size)`` recipe of the papers' detectors, in the
    order that never allocates more than the input or the output (resizing first would make
    a thin image huge). Bilinear with antialias (so downsizing does not alias and add
    spectral artefacts of its own) keeps values inside [0, 1]. ``mode="nearest"`` is for masks.

    Args:
        t: tensor [C, H, W] (or [N, C, H, W]).
        size: int, or (height, width).
    """
    out_h, out_w = _target_hw(size)
    batched = t.ndim == 4
    x = t if batched else t.unsqueeze(0)
    top, left, h, w = _crop_box(*x.shape[-2:], out_h, out_w)
    x = x[..., top:top + h, left:left + w]
    if (h, w) != (out_h, out_w):
        if mode == "nearest":
            x = F.interpolate(x.float(), size=(out_h, out_w), mode="nearest").to(x.dtype)
        else:
            x = F.interpolate(x, size=(out_h, out_w), mode=mode, antialias=True,
                              align_corners=False).clamp_(0, 1)
    return x if batched else x.squeeze(0)


def _shrink_for(img: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Crop a PIL image to the target's aspect ratio and box-reduce it by an integer factor
    while it stays >= 2x the target, so a 50-MP photo never becomes a 600-MB float tensor.

    The final antialiased resize (``resize_center_crop``) still does the last <= 4x step.
    """
    out_h, out_w = _target_hw(size)
    top, left, h, w = _crop_box(img.height, img.width, out_h, out_w)
    if (h, w) != (img.height, img.width):
        img = img.crop((left, top, left + w, top + h))
    factor = min(h // (2 * out_h), w // (2 * out_w))
    if factor >= 2:
        img = img.reduce(factor)
    return img


def load_tensor(
    source: ImageSource,
    size: int | tuple[int, int] | None = None,
    **kw,
) -> torch.Tensor:
    """Decode ``source`` into a float tensor [3, H, W] in [0, 1].

    With ``size``, the shorter side is resized to ``size`` (bilinear, antialiased) and the
    center ``size`` × ``size`` (or (height, width)) is cropped; see ``resize_center_crop``.
    Keyword arguments go to ``load_image`` (``max_pixels``, ``name``).
    """
    img = load_image(source, **kw)
    if size is None:
        return to_tensor(img)
    return resize_center_crop(to_tensor(_shrink_for(img, size)), size)
