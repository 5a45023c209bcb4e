"""Decode image files into RGB, safely, in bounded memory.

Every image that enters DetectLab (data set files, uploads, masks) goes through this module:
it refuses what it cannot decode completely and correctly instead of handing a half-decoded or
wrongly converted image to a detector, because a detector happily scores grey padding or
black-composited alpha as "evidence". Errors are ``ImageDecodeError`` with a message that names
the file, never a raw PIL error.

Memory is budgeted, because a file small on disk can be huge decoded (a 400-KB PNG can hold
50 megapixels of 16-bit RGBA):

* by pixels, from the header, before any decode (``DETECTLAB_MAX_PIXELS``; PIL's own
  decompression-bomb guard follows it, so the variable is the limit that applies);
* by bytes: the decoded image plus what the step builds from it (an 8-bit array, a float
  tensor) is estimated from the header and refused over ``DETECTLAB_MAX_DECODE_MB``;
* across threads: decodes reserve their estimate from one process-wide byte budget
  (``DETECTLAB_DECODE_BUDGET_MB``), so N concurrent uploads wait instead of multiplying the peak.

Conversions (alpha onto white, 16-bit and float grey to 8 bit, EXIF orientation) run in
horizontal bands of the decoded image, never as full-size temporaries; steps that need a small
image get it straight from the bands (a large JPEG is decoded at 1/2 to 1/8 scale by libjpeg,
``draft``; other files are box-reduced band by band); native-resolution tiling reads tiles from
the decoded image (``open_image``). After a large decode the freed memory is handed back to the
system (glibc otherwise keeps freed arenas).
"""

from __future__ import annotations

import ctypes
import gc
import io
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, UnidentifiedImageError

from detectlab import config
from detectlab.errors import ImageDecodeError

__all__ = [
    "DECODE_BUDGET",
    "IMAGE_EXTENSIONS",
    "DecodeBudget",
    "DecodedImage",
    "ImageInfo",
    "ImageSource",
    "is_image_file",
    "load_fitted",
    "load_image",
    "load_mask",
    "load_tensor",
    "load_uint8",
    "open_image",
    "probe_image",
    "release_memory",
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

_MB = 1024 * 1024
#: Most memory one decode may need (the decoded image plus the full-size output of the step:
#: RGB image, 8-bit array, float tensor), estimated from the header; over it the file is refused.
#: The default lets every step decode an image at the default pixel limit.
MAX_DECODE_BYTES = int(float(os.environ.get("DETECTLAB_MAX_DECODE_MB", 1024)) * _MB)
#: Bytes that all decodes in this process may hold at once (``DecodeBudget``); a decode larger
#: than the whole budget runs alone.
DECODE_BUDGET_BYTES = int(float(os.environ.get("DETECTLAB_DECODE_BUDGET_MB", 512)) * _MB)
#: Decodes estimated under this never wait for the budget (thumbnails, data-set images).
SMALL_DECODE_BYTES = 16 * _MB
#: A decode of at least this many bytes is "large": JPEGs are decoded at reduced scale when the
#: step needs fewer pixels, and memory is handed back to the system afterwards. Smaller images
#: decode exactly as they always did (full decode, box reduction, antialiased resize).
LARGE_DECODE_BYTES = 64 * _MB
#: Working memory of one band of a conversion (alpha compositing, 16-bit scaling: ~32 bytes a pixel).
BAND_BYTES = 8 * _MB
_BAND_BYTES_PER_PIXEL = 32

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
_SWAPS_AXES = frozenset({5, 6, 7, 8})


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


def _too_many_pixels(label: str, what: str, max_pixels: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"{label}: image is too large: {what} pixels is over the limit of {max_pixels:,} "
        "(decompression-bomb guard; raise DETECTLAB_MAX_PIXELS to allow)"
    )


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
        raise _too_many_pixels(label, f"{width}×{height} = {width * height:,}", max_pixels)


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


def _follow_pixel_limit() -> None:
    """Raise PIL's own decompression-bomb guard to ``DETECTLAB_MAX_PIXELS`` when that is higher.

    PIL checks ``Image.MAX_IMAGE_PIXELS`` inside ``Image.open`` (a warning above it, an error
    above twice it, 179 MP by default), before DetectLab sees the header; without this a raised
    ``DETECTLAB_MAX_PIXELS`` would change nothing above 179 MP. It is only ever raised (other
    code in the process keeps at least PIL's default), and DetectLab's own check still runs on
    every header right after ``open``. A guard switched off (None) stays off.
    """
    ours = int(config.MAX_IMAGE_PIXELS)
    theirs = Image.MAX_IMAGE_PIXELS
    if theirs is not None and theirs < ours:
        Image.MAX_IMAGE_PIXELS = ours


_follow_pixel_limit()


def _bomb_error(label: str, exc: BaseException, max_pixels: int) -> ImageDecodeError:
    """PIL's decompression-bomb error or warning in DetectLab's words, naming the variable that works."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else None
    if pixels is None or pixels > max_pixels:
        return _too_many_pixels(label, f"{pixels:,}" if pixels is not None else "its", max_pixels)
    # a caller allowed more than the process-wide limit; PIL's guard follows only the latter
    return ImageDecodeError(
        f"{label}: image is too large: {pixels:,} pixels is over Pillow's decompression-bomb guard, "
        "which follows DETECTLAB_MAX_PIXELS (raise it to allow)"
    )


def _open_checked(stream, max_pixels: int, label: str) -> Image.Image:
    """``Image.open`` with our pixel limit checked from the header, before any decode.

    PIL's own guard (warning above ``Image.MAX_IMAGE_PIXELS``, error above twice that) fires
    inside ``open``; it is kept at or above ``DETECTLAB_MAX_PIXELS`` (``_follow_pixel_limit``)
    and what it raises is re-worded as DetectLab's limit. The warnings filters are left alone:
    ``catch_warnings`` is not thread-safe and discovery decodes in threads.
    """
    _follow_pixel_limit()
    try:
        im = _pil_open()(stream, formats=DECODE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(label, exc, max_pixels) from exc
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


def _float_values(im: Image.Image) -> np.ndarray:
    return np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _float_is_unit(im: Image.Image) -> bool:
    """Whether all values of a float image lie within [0, 1]; read band by band."""
    width, height = im.size
    if width * height == 0:
        return False
    rows = _band_rows(width)
    for top in range(0, height, rows):
        values = _float_values(im.crop((0, top, width, min(height, top + rows))))
        if values.min() < 0.0 or values.max() > 1.0:
            return False
    return True


def _float_to_l(im: Image.Image, unit: bool | None = None) -> Image.Image:
    """Float grey to 8 bit: values within [0, 1] are scaled by 255, others read as 0..255.

    ``unit`` says which, for a band of a larger image (the whole image decides); None: this image.
    """
    values = _float_values(im)
    if unit is None:
        unit = bool(values.size and values.min() >= 0.0 and values.max() <= 1.0)
    if unit:
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
    Every conversion is per pixel except float grey's (the whole image decides its scale), so
    the loaders apply it band by band (``_converter``).
    """
    return _converter(im)(im)


def _converter(im: Image.Image) -> Callable[[Image.Image], Image.Image]:
    """``to_rgb`` for bands of ``im``: a function of a crop of ``im`` that gives its RGB pixels."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        return lambda band: _sixteen_bit_to_l(band).convert("RGB")
    if mode == "F":
        unit = _float_is_unit(im) if im.width * im.height > 0 else False
        return lambda band: _float_to_l(band, unit).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    if has_alpha:
        return lambda band: _flatten_on_white(band.convert("RGBA"))
    if mode == "RGB":
        return lambda band: band
    return lambda band: band.convert("RGB")


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # malformed EXIF must not make a good image unreadable
        return 1


# --------------------------------------------------------------------------- memory budget
_MALLOC_TRIM = None


def release_memory() -> None:
    """Collect young garbage and hand freed heap memory back to the system.

    glibc keeps the arenas that freed decode buffers lived in (per thread, so a server's worker
    threads each keep theirs); ``malloc_trim(0)`` returns them. Called after every large decode;
    cheap (milliseconds) next to one. Decode buffers are freed by reference counting; only the
    young generations are collected (cycles a failed decode's traceback made): a full collection
    takes half a second in the app's process. A no-op where the C library has no ``malloc_trim``.
    """
    global _MALLOC_TRIM
    gc.collect(1)
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
            _MALLOC_TRIM.argtypes, _MALLOC_TRIM.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


class DecodeBudget:
    """A byte-counting semaphore: decodes reserve their estimated memory and wait while the rest
    of the process holds too much (``DETECTLAB_DECODE_BUDGET_MB``, 512 MB by default).

    So N clients sending large images at once take turns instead of multiplying the peak. A
    reservation larger than the whole budget waits until nothing else is held, then runs alone;
    small ones (under ``SMALL_DECODE_BYTES``) never wait, and neither does a decode nested in a
    reservation its own thread holds (no deadlock). ``peak`` and ``waits`` are for tests and logs.
    """

    def __init__(self, total_bytes: int) -> None:
        self.total = max(1, int(total_bytes))
        self.in_use = 0
        self.peak = 0
        self.waits = 0
        self._cond = threading.Condition()
        self._held = threading.local()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        n = min(max(0, int(nbytes)), self.total)
        if n < SMALL_DECODE_BYTES or getattr(self._held, "n", 0):
            yield
            return
        with self._cond:
            if self.in_use and self.in_use + n > self.total:
                self.waits += 1
            while self.in_use and self.in_use + n > self.total:
                self._cond.wait()
            self.in_use += n
            self.peak = max(self.peak, self.in_use)
        self._held.n = n
        try:
            yield
        finally:
            self._held.n = 0
            with self._cond:
                self.in_use -= n
                self._cond.notify_all()
            if nbytes >= LARGE_DECODE_BYTES:
                release_memory()


#: The process-wide budget every decode reserves from.
DECODE_BUDGET = DecodeBudget(DECODE_BUDGET_BYTES)


def _pixel_bytes(mode: str) -> int:
    """Bytes a pixel of this PIL mode takes once decoded (PIL stores 3-band modes in 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _band_rows(width: int, multiple: int = 1) -> int:
    rows = max(1, BAND_BYTES // max(1, width * _BAND_BYTES_PER_PIXEL))
    return max(multiple, rows // multiple * multiple)


# bytes a pixel of each output takes: RGB PIL image, 8-bit array, float tensor, bool mask; none: read lazily
_OUTPUT_BYTES = {"rgb": 4, "uint8": 3, "float": 12, "mask": 1, "none": 0}


def _file_box(orientation: int, box: tuple[int, int, int, int], width: int, height: int
              ) -> tuple[int, int, int, int]:
    """A box (left, top, right, bottom) of the displayed (EXIF-oriented) image in the stored file's pixels.

    ``width`` × ``height`` is the stored size. Exact (transposes map pixel edges to edges).
    """
    left, top, right, bottom = box
    return {
        1: (left, top, right, bottom),
        2: (width - right, top, width - left, bottom),
        3: (width - right, height - bottom, width - left, height - top),
        4: (left, height - bottom, right, height - top),
        5: (top, left, bottom, right),
        6: (top, height - right, bottom, height - left),
        7: (width - bottom, height - right, width - top, height - left),
        8: (width - bottom, left, width - top, right),
    }.get(orientation, (left, top, right, bottom))


def _place(orientation: int, first: int, last: int, rows: int) -> tuple[int, int]:
    """(left, top) in the displayed output of the stored rows [first, last) of a region ``rows`` high."""
    if orientation in (3, 4):
        return 0, rows - last
    if orientation in (5, 8):
        return first, 0
    if orientation in (6, 7):
        return rows - last, 0
    return 0, first


def _converting(method):
    """PIL errors while converting (an unsupported mode, say) become ``ImageDecodeError`` naming the file."""
    @wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except ImageDecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - PIL and numpy raise many types
            raise ImageDecodeError(f"{self.label}: {_describe_failure(exc)}") from exc
    return wrapper


class DecodedImage:
    """A decoded image (first frame, any mode, as stored) that converts to RGB band by band on demand.

    ``size`` and ``shape`` are those of the displayed image (EXIF orientation applied). Made by
    ``open_image``, valid inside its ``with`` block: read tiles (``region``), the whole image
    as 8-bit (``to_uint8``) or float (``to_float``), a box-reduced part (``reduced``) or a
    preview (``thumbnail``); none of them builds a full-size temporary of another mode.
    """

    def __init__(self, im: Image.Image, orientation: int, label: str, target: tuple[int, int] | None = None,
                 source_size: tuple[int, int] | None = None) -> None:
        self._im = im
        self.orientation = orientation if orientation in _ORIENTATION_TRANSPOSE else 1
        self.label = label
        self.target = target            # (height, width) the step asked for, from the full-size header
        width, height = im.size
        self.size = (height, width) if self.orientation in _SWAPS_AXES else (width, height)
        self.source_size = source_size or self.size   # displayed size in the file (a JPEG draft shrinks ``size``)
        self._convert = _converter(im)

    def close(self) -> None:
        """Free the decoded pixels (the ``with`` block of ``open_image`` does it on exit)."""
        im, self._im = self._im, None
        if im is not None:
            im.close()

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(3, height, width), as the tensor ``to_uint8`` would have."""
        return 3, self.height, self.width

    def _pieces(self, box: tuple[int, int, int, int] | None = None, factor: int = 1,
                convert: Callable[[Image.Image], Image.Image] | None = None
                ) -> tuple[tuple[int, int], Iterator[tuple[Image.Image, int, int]]]:
        """The output size (width, height) of ``box`` (displayed pixels) reduced by ``factor``, and its
        pieces: (converted band, left, top) in output pixels.

        Bands are cut from the stored image, converted, box-reduced and transposed to the displayed
        orientation. The reduction's blocks start at the displayed box's top-left corner, whichever
        corner of the stored image that is (a partial block, if any, at the far end), so the result
        equals reducing the displayed box of the whole converted image.
        """
        convert = convert or self._convert
        stored_w, stored_h = self._im.size
        left, top, right, bottom = _file_box(self.orientation, box or (0, 0, self.width, self.height),
                                             stored_w, stored_h)
        region_w, region_h = right - left, bottom - top
        out_w, out_h = -(-region_w // factor), -(-region_h // factor)
        transpose = _ORIENTATION_TRANSPOSE.get(self.orientation)
        # where the displayed origin is the stored far end, the partial block comes first in the file
        lead_x = region_w % factor if self.orientation in (2, 3, 7, 8) else 0
        lead_y = region_h % factor if self.orientation in (3, 4, 6, 7) else 0
        rows = _band_rows(region_w, factor)
        starts = ([0] if lead_y else []) + list(range(lead_y, region_h, rows))

        def reduced_row(y: int) -> int:     # output row (stored order) of stored row y of the region
            return y // factor if not lead_y else (0 if y < lead_y else (y - lead_y) // factor + 1)

        def pieces():
            for k, first in enumerate(starts):
                last = starts[k + 1] if k + 1 < len(starts) else region_h
                piece = convert(self._im.crop((left, top + first, right, top + last)))
                if factor > 1:
                    height = last - first
                    if lead_x:
                        head = piece.reduce(factor, (0, 0, lead_x, height))
                        body = piece.reduce(factor, (lead_x, 0, region_w, height))
                        piece = Image.new(head.mode, (head.width + body.width, head.height))
                        piece.paste(head, (0, 0))
                        piece.paste(body, (head.width, 0))
                    else:
                        piece = piece.reduce(factor)
                if transpose is not None:
                    piece = piece.transpose(transpose)
                yield (piece, *_place(self.orientation, reduced_row(first), reduced_row(last - 1) + 1, out_h))

        size = (out_h, out_w) if self.orientation in _SWAPS_AXES else (out_w, out_h)
        return size, pieces()

    @_converting
    def reduced(self, box: tuple[int, int, int, int] | None = None, factor: int = 1) -> Image.Image:
        """RGB PIL image of ``box`` (left, top, right, bottom; displayed pixels), box-reduced by ``factor``."""
        size, pieces = self._pieces(box, factor)
        out = Image.new("RGB", size)
        for piece, left, top in pieces:
            out.paste(piece, (left, top))
        return out

    def to_uint8(self) -> torch.Tensor:
        """The whole image as a uint8 tensor ``[3, H, W]`` (a view of an ``[H, W, 3]`` array)."""
        return self.region(0, 0, self.height, self.width)

    @_converting
    def to_float(self) -> torch.Tensor:
        """The whole image as a float tensor ``[3, H, W]`` in [0, 1] (``to_tensor`` of it, without an 8-bit copy)."""
        (width, height), pieces = self._pieces()
        out = torch.empty((3, height, width), dtype=torch.float32)
        for piece, left, top in pieces:
            out[:, top:top + piece.height, left:left + piece.width] = to_tensor(piece)
        return out

    @_converting
    def region(self, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """uint8 ``[3, height, width]`` tile at (top, left) of the displayed image (clipped to it)."""
        x0, y0 = min(max(0, left), self.width), min(max(0, top), self.height)
        box = (x0, y0, max(x0, min(self.width, left + width)), max(y0, min(self.height, top + height)))
        (w, h), pieces = self._pieces(box)
        out = np.empty((h, w, 3), np.uint8)
        for piece, x, y in pieces:
            out[y:y + piece.height, x:x + piece.width] = np.asarray(piece)
        return torch.from_numpy(out).permute(2, 0, 1)

    @_converting
    def mask(self) -> np.ndarray:
        """Bool ``[H, W]``: palette images are foreground where the index is non-zero, others where grey ≥ 128."""
        if self._im.mode == "P":
            def convert(band):
                return Image.fromarray((np.asarray(band) != 0).astype(np.uint8) * 255, "L")
        else:
            def convert(band):
                return self._convert(band).convert("L")
        (width, height), pieces = self._pieces(convert=convert)
        out = np.empty((height, width), bool)
        for piece, left, top in pieces:
            out[top:top + piece.height, left:left + piece.width] = np.asarray(piece) >= 128
        return out

    @_converting
    def thumbnail(self, max_side: int = 512) -> Image.Image:
        """A preview no larger than ``max_side`` on either side (box-reduced band by band, then antialiased)."""
        factor = max(1, max(self.size) // (2 * max_side))
        img = self.reduced(None, factor)
        img.thumbnail((max_side, max_side))
        return img


def _fit_hw(height: int, width: int, max_side: int) -> tuple[int, int] | None:
    """(height, width) with the longer side ``max_side`` and the aspect kept; None when it fits already."""
    if max(height, width) <= max_side:
        return None
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _reduction(height: int, width: int, target: tuple[int, int], headroom: int = 2
               ) -> tuple[tuple[int, int, int, int], int]:
    """Crop box (left, top, right, bottom) with the target's aspect ratio, and the integer box-reduction
    factor that keeps it at least ``headroom`` times the target (1: none)."""
    out_h, out_w = target
    top, left, h, w = _crop_box(height, width, out_h, out_w)
    factor = min(h // (headroom * out_h), w // (headroom * out_w))
    return (left, top, left + w, top + h), factor if factor >= 2 else 1


def _draft_scale(im: Image.Image, displayed: tuple[int, int], target: tuple[int, int] | None,
                 headroom: int) -> int:
    """1, 2, 4 or 8: the scale a large JPEG is decoded at by libjpeg (``draft``) when the step needs
    fewer pixels; the box reduction then finishes the job. Other formats and smaller images: 1."""
    if target is None or im.format not in ("JPEG", "MPO"):
        return 1
    if im.width * im.height * _pixel_bytes(im.mode) < LARGE_DECODE_BYTES:
        return 1
    width, height = displayed
    _, factor = _reduction(height, width, target, headroom)
    return next(s for s in (8, 4, 2, 1) if s <= factor)


def _estimate(im: Image.Image, scale: int, output: str, out_pixels: int) -> int:
    """Bytes a decode needs at its peak: the decoded image, the output, and conversion bands."""
    width, height = -(-im.width // scale), -(-im.height // scale)
    decoded = width * height * _pixel_bytes(im.mode)
    if im.format in ("WEBP", "TIFF"):
        decoded *= 2    # the codec's own full-frame buffer, copied into PIL's
    if im.format in ("JPEG", "MPO") and (im.info.get("progressive") or im.info.get("progression")):
        decoded += im.width * im.height * 2 * len(im.getbands())   # libjpeg's coefficient buffer
    return decoded + out_pixels * _OUTPUT_BYTES[output] + 2 * BAND_BYTES


@contextmanager
def _decoded(source: ImageSource, max_pixels: int | None, name: str | None, output: str,
             target_for: Callable[[int, int], tuple[int, int] | None] | None = None,
             headroom: int = 2) -> Iterator[DecodedImage]:
    """Open ``source``, check it, reserve its memory, decode it; yield a ``DecodedImage``.

    ``output`` is what the step will build at full size ("rgb", "uint8", "float", "mask") or
    "none" (a reduced image, tiles); ``target_for(height, width)`` the size the step brings the
    image to (None: full size), from which a large JPEG's decoding scale is chosen.
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
        with ExitStack() as stack:
            try:
                im = stack.enter_context(_open_checked(stream, limit, label))
                im.seek(0)  # first frame of animated GIF/WebP/TIFF/MPO
                # a JPEG's EXIF is in its header; other formats' may follow the pixels: read after the decode
                early = _orientation(im) if im.format in ("JPEG", "MPO") else 1
                displayed = (im.height, im.width) if early in _SWAPS_AXES else im.size
                target = target_for(displayed[1], displayed[0]) if target_for else None
                scale = _draft_scale(im, displayed, target, headroom)
                if target is None:
                    need = _estimate(im, scale, output, displayed[0] * displayed[1])
                else:   # the reduced crop, as an RGB image (4 bytes a pixel) and a float tensor (12)
                    width, height = -(-displayed[0] // scale), -(-displayed[1] // scale)
                    (left, top, right, bottom), factor = _reduction(height, width, target, headroom)
                    reduced = -(-(right - left) // factor) * -(-(bottom - top) // factor)
                    need = _estimate(im, scale, output, 0) + 16 * reduced
                if need > MAX_DECODE_BYTES:
                    raise ImageDecodeError(
                        f"{label}: image is too large to decode: {im.width}×{im.height} ({im.mode}) needs about "
                        f"{need / _MB:,.0f} MB of memory, over the limit of {MAX_DECODE_BYTES / _MB:,.0f} MB "
                        "(raise DETECTLAB_MAX_DECODE_MB to allow)"
                    )
                stack.enter_context(DECODE_BUDGET.reserve(need))
                if scale > 1:
                    im.draft(im.mode, (max(1, im.width // scale), max(1, im.height // scale)))
                im.load()
                orientation = _orientation(im)
                if orientation != early:   # not a JPEG (never drafted): the orientation is known only now
                    displayed = (im.height, im.width) if orientation in _SWAPS_AXES else im.size
                    target = target_for(displayed[1], displayed[0]) if target_for else None
                image = DecodedImage(im, orientation, label, target, displayed)
                # on the way out the decoded pixels are freed first, then the reservation ends (and trims)
                stack.callback(image.close)
            except ImageDecodeError:
                raise
            except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
                raise ImageDecodeError(f"{label}: {_describe_failure(exc)}") from exc
            yield image   # what the caller's block raises passes unchanged
    finally:
        if stream is not source:
            stream.close()


@contextmanager
def open_image(source: ImageSource, *, max_pixels: int | None = None, name: str | None = None
               ) -> Iterator[DecodedImage]:
    """Decode ``source`` and yield it as a ``DecodedImage`` that converts to RGB band by band on demand.

    For steps that read parts of a large image at its own resolution (native-resolution tiles,
    a preview): the decoded image (at most 4 bytes a pixel) is the only full-size buffer. Its
    memory is reserved from the decode budget for the whole ``with`` block, so keep the work
    inside it short and do not decode other large images in it.

    Raises:
        ImageDecodeError: as ``load_image``.
    """
    with _decoded(source, max_pixels, name, "none") as image:
        yield image


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
    pixel is decoded, and the memory budget as the module docstring says. Truncated files
    are refused, not padded: PIL's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False and
    ``load()`` forces the decode.

    Args:
        source: file path, raw bytes or an in-memory buffer.
        max_pixels: refuse images with more pixels than this.
        name: how to name the image in errors (default: the path, or "uploaded image").

    Raises:
        ImageDecodeError: zero-byte, missing, not an image, truncated, corrupt or too big;
            the message names the file.
    """
    with _decoded(source, max_pixels, name, "rgb") as image:
        return image.reduced()


def load_uint8(source: ImageSource, *, max_pixels: int | None = None, name: str | None = None) -> torch.Tensor:
    """Decode ``source`` into a uint8 tensor ``[3, H, W]`` (a quarter of float's memory), converted band by band."""
    with _decoded(source, max_pixels, name, "uint8") as image:
        return image.to_uint8()


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
    with _decoded(source, max_pixels, name, "mask") as image:
        return torch.from_numpy(image.mask())


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


def load_fitted(
    source: ImageSource,
    size: int | tuple[int, int] | None = None,
    *,
    max_side: int | None = None,
    headroom: int = 2,
    max_pixels: int | None = None,
    name: str | None = None,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``load_tensor``, and the (width, height) of the image in the file (EXIF orientation applied)."""
    if size is not None and max_side is not None:
        raise ValueError("give size or max_side, not both")
    if size is not None:
        fixed = _target_hw(size)

        def target_for(height, width):
            return fixed
    elif max_side is not None:
        def target_for(height, width):
            return _fit_hw(height, width, int(max_side))
    else:
        target_for = None
    output = "float" if target_for is None else "none"
    with _decoded(source, max_pixels, name, output, target_for, headroom) as image:
        if image.target is None:   # full size asked for, or it fits already
            return image.to_float(), image.source_size
        box, factor = _reduction(image.height, image.width, image.target, headroom)
        small = image.reduced(box, factor)
        image.close()   # the decoded pixels go before the float copy is made
        # inside the reservation: the float temporaries count against the budget and are trimmed with it
        return resize_center_crop(to_tensor(small), image.target), image.source_size


def load_tensor(
    source: ImageSource,
    size: int | tuple[int, int] | None = None,
    *,
    max_side: int | None = None,
    headroom: int = 2,
    **kw,
) -> torch.Tensor:
    """Decode ``source`` into a float tensor [3, H, W] in [0, 1].

    With ``size``, the shorter side is resized to ``size`` (bilinear, antialiased) and the
    center ``size`` × ``size`` (or (height, width)) is cropped; see ``resize_center_crop``.
    The image is brought there without a full-size float tensor: cropped to the target's
    aspect ratio and box-reduced by an integer factor while it stays ``headroom`` (2) times
    the target (band by band, from the decoded image; a large JPEG is decoded at reduced
    scale first); the final antialiased resize does the last step. With ``max_side``
    instead, an image whose longer side is over it is brought to that side, aspect kept, the
    same way (smaller ones are returned whole). Keyword arguments go to the decoder
    (``max_pixels``, ``name``).
    """
    return load_fitted(source, size, max_side=max_side, headroom=headroom, **kw)[0]
