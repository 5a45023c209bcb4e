"""The bad-input battery: every hostile or unusual file through every entry point.

Each input goes through each CLI command that takes it (``main(argv)`` in-process, a real
subprocess where peak memory is measured), each API endpoint (``gradio_client`` against the
session's app server) and each upload widget's handler (called in-process). A bad input must
get DetectLab's own message (a phrase naming what is wrong), never a traceback, Gradio's
"Could not preprocess input" or a server path (the upload cache, the zip staging folder); a
good-but-unusual image (1×1, CMYK, 16-bit, palette + alpha, animated) must be scored. The
server must keep serving, and memory must stay bounded.

Also here, because it needs the same server: the one-decode-path test — ``/detect``, the
Detect tab's handler and ``detectlab predict`` give the same P(fake) for unusual files.

Round two adds, each in a section of its own below: hostile zips and files (a 100,000-level
``manifest.json``, plain messages, non-images never stored), one demo derivation at a time, a
server that stops promptly and leaves nothing, bounded outputs and ``predict``'s exit code;
bounded memory for images small on disk and huge decoded (every endpoint, three at once, the
CLI, PIL's bomb limit); bad training settings and a hostile ``.pt`` through every run entry
point, one queue for the app and the CLI, the watcher from start-up; every file route of the
running app, and server paths to every endpoint that names a detector or localizer.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
import psutil
import pytest
import torch
from child_output import ChildOutput

from detectlab.errors import DetectLabError

DETECTOR = "spectrum-durrall"      # the cheapest detector: every entry point that lets us choose uses it
CNN = "cnn-resnet18"                # gradient attacks need a differentiable detector
LOCALIZER = "shipped: unet-small"   # no ultralytics import, no pickle
LOCALIZER_NAME = "unet-small"
_LEAKS = ("Traceback", "Could not preprocess input", "/tmp/gradio", "/uploads/", ".extract-")
OUTCOMES: Counter = Counter()       # (kind) -> count, printed at the end for the closing note


# ---------------------------------------------------------------------------- the inputs
def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def photo(w: int = 96, h: int = 80, seed: int = 0) -> Image.Image:
    """A smooth colour ramp with noise: enough texture for spectra and detectors."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 5.0)], -1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def _bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A valid PNG header claiming 900 megapixels, with a body of a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def unusual_images() -> dict[str, bytes]:
    """Decodable files in modes Gradio used to re-encode: each must be scored like the CLI scores it."""
    out = {}
    c = io.BytesIO()
    photo(seed=1).convert("CMYK").save(c, "JPEG", quality=95)
    out["cmyk.jpg"] = c.getvalue()
    grey16 = np.asarray(photo(seed=2).convert("L"), np.uint16) * 257
    out["sixteen_bit.png"] = _png(Image.fromarray(grey16, "I;16"))
    rgba = photo(seed=3).convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (80, 1)), "L"))
    out["rgba.png"] = _png(rgba)
    out["palette_alpha.png"] = _png(photo(seed=4).convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
                                    transparency=0)
    j, exif = io.BytesIO(), Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    photo(120, 70, seed=5).save(j, "JPEG", quality=95, exif=exif.tobytes())
    out["exif_rotated.jpg"] = j.getvalue()
    return out


def image_inputs() -> dict[str, bytes]:
    good = _png(photo())
    j = io.BytesIO()
    photo().save(j, "JPEG", quality=90)
    frames = [photo(seed=k).convert("P") for k in range(3)]
    g = io.BytesIO()
    frames[0].save(g, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    unusual = unusual_images()
    return {
        "corrupt.png": good[:40] + bytes(range(256)) * 4 + good[-20:],
        "truncated.png": good[: len(good) // 2],
        "truncated.jpg": j.getvalue()[: len(j.getvalue()) // 2],
        "zero.png": b"",
        "one_pixel.png": _png(Image.new("RGB", (1, 1), (200, 30, 30))),
        "thin_65535x1.png": _png(Image.new("RGB", (65535, 1))),
        "tall_1x20000.png": _png(Image.new("RGB", (1, 20000))),
        "bomb.png": _bomb_png(),
        "cmyk.jpg": unusual["cmyk.jpg"],
        "sixteen_bit.png": unusual["sixteen_bit.png"],
        "palette_alpha.png": unusual["palette_alpha.png"],
        "animated.gif": g.getvalue(),
        "text.png": b"just some notes, not an image\n" * 10,
        "page.html": b"<html><script>alert(document.domain)</script></html>",
        "drawing.svg": b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><rect width='9' height='9'/></svg>",
    }


#: What each bad image's message must say (None: a valid image that must be scored).
IMAGE_PHRASES = {
    "corrupt.png": "not an image", "truncated.png": "truncated", "truncated.jpg": "truncated",
    "zero.png": "empty (0 bytes)", "one_pixel.png": None, "thin_65535x1.png": "aspect ratio",
    "tall_1x20000.png": "aspect ratio", "bomb.png": "too large", "cmyk.jpg": None, "sixteen_bit.png": None,
    "palette_alpha.png": None, "animated.gif": None, "text.png": "not an image", "page.html": "not an image",
    "drawing.svg": "not an image",
}


class _Pwn:
    """Unpickling this calls os.mkdir(marker): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def inputs(tmp_path_factory, demo_root) -> dict[str, Path]:
    """Every bad input written to disk; folders and zips inside the data roots where the app needs them."""
    from detectlab import config

    d = tmp_path_factory.mktemp("bad")
    out = {name: d / name for name in image_inputs()}
    (d / "real").mkdir()
    for k in range(4):
        photo(seed=20 + k).save(d / "real" / f"r{k}.png")
    for name, data in image_inputs().items():
        out[name].write_bytes(data)
    # checkpoints
    marker = d / "pickle-ran"
    out["marker"] = marker
    (d / "evil.pt").write_bytes(pickle.dumps({"state_dict": _Pwn(marker), "meta": _Pwn(marker)}))
    out["evil.pt"] = d / "evil.pt"
    for name in (DETECTOR, LOCALIZER_NAME):
        src = (config.CHECKPOINT_DIR / f"{name}.safetensors").read_bytes()
        (d / f"truncated-{name}.safetensors").write_bytes(src[: len(src) // 3])
        out[f"truncated-{name}.safetensors"] = d / f"truncated-{name}.safetensors"
    # masks
    photo(96, 80).save(d / "masked.png")
    out["masked.png"] = d / "masked.png"
    Image.new("L", (40, 30), 255).save(d / "mask_wrong_size.png")
    out["mask_wrong_size.png"] = d / "mask_wrong_size.png"
    (d / "mask_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    out["mask_corrupt.png"] = d / "mask_corrupt.png"
    # folders inside the data roots (the app only opens those)
    base = config.datasets_dir()
    (base / "bad-empty").mkdir(exist_ok=True)
    (base / "bad-one-class" / "real").mkdir(parents=True, exist_ok=True)
    for k in range(4):
        photo(seed=10 + k).save(base / "bad-one-class" / "real" / f"r{k}.png")
    out["empty"], out["one_class"] = base / "bad-empty", base / "bad-one-class"
    out["nul"], out["long_name"] = Path(str(base / "bad\0name")), base / ("x" * 5000)
    # zips
    img = _png(photo())
    zips = {
        "not_a_zip.zip": b"this is text, renamed .zip",
        "truncated.zip": _zip_bytes([("z/real/a.png", img), ("z/fake/b.png", img)])[:200],
        "traversal.zip": _zip_bytes([("../../evil.png", img), ("real/a.png", img)]),
        "html_only.zip": _zip_bytes([("real/x.html", b"<script>alert(1)</script>"), ("fake/y.svg", b"<svg/>")]),
        "one_class.zip": _zip_bytes([("real/a.png", img), ("real/b.png", img)]),
        "empty.zip": _zip_bytes([]),
        "symlink.zip": _symlink_zip(img),
        "duplicate.zip": _zip_bytes([("real/a.png", img), ("real/a.png", img), ("gan/b.png", img)]),
    }
    for name, data in zips.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    out["bomb.zip"] = _zip_bomb(d / "bomb.zip", config.MAX_UPLOAD_BYTES + (64 << 20))
    return out


def _zip_bytes(entries) -> bytes:
    import warnings

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": duplicate.zip is meant to have one
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def _symlink_zip(img: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("real/a.png", img)
        link = zipfile.ZipInfo("fake/passwd.png")
        link.create_system, link.external_attr = 3, (0o120777 << 16)
        z.writestr(link, "/etc/passwd")
    return buf.getvalue()


def _zip_bomb(path: Path, size: int) -> Path:
    """``size`` zero bytes as one image-named entry: a few hundred KB on disk."""
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("real/huge.png", "w", force_zip64=True) as f:
            for _ in range(size >> 20):
                f.write(zeros)
    return path


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def rss_start():
    """This process serves the app: its resident memory before the battery."""
    return psutil.Process().memory_info().rss


def _clean(text: str) -> None:
    for leak in _LEAKS:
        assert leak not in text, f"{leak!r} in the message: {text[:400]}"


def _check(text: str, ok: bool, expected: str | None, kind: str) -> None:
    """A valid input is scored; a bad one is refused with ``expected`` in DetectLab's message."""
    _clean(text)
    if expected is None:
        assert ok, f"a valid input was refused: {text[:400]}"
        OUTCOMES["scored"] += 1
    else:
        assert not ok, f"a bad input was accepted ({kind}): {text[:300]}"
        assert expected.lower() in text.lower(), f"expected {expected!r} in: {text[:400]}"
        OUTCOMES["clear"] += 1
    OUTCOMES[kind] += 1


# ---------------------------------------------------------------------------- entry points
def _cli(capsys, *argv: str) -> tuple[bool, str]:
    from detectlab.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code == 0, out.out + out.err


def _api(client, api_name: str, *args) -> tuple[bool, str]:
    from gradio_client.exceptions import AppError

    try:
        result = client.predict(*args, api_name=api_name)
        first = result[0] if isinstance(result, tuple) else result
        return True, repr(first)  # the message or numbers; later outputs are files and galleries
    except AppError as exc:
        return False, str(exc)


def _handle(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def as_upload(path: Path) -> Path:
    """A copy of ``path`` where Gradio keeps an upload (its cache, a random folder): what a tab handler gets."""
    import shutil
    import uuid

    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return Path(shutil.copy(path, folder / path.name))


def as_served(text: str) -> str:
    """What the browser receives for a handler's message: the app's response filter applied (serving.py)."""
    from detectlab.ui.serving import _path_needles, _scrub_value

    return _scrub_value(text, _path_needles())


def _md_ok(md) -> bool:
    return isinstance(md, str) and not md.startswith(("**Error", "**Unexpected"))


def image_entry(entry: str, path: Path, capsys, client, tmp_path) -> tuple[bool, str]:
    """Send one image file through one entry point; (scored?, every text the user sees)."""
    from detectlab.robustness import SLIDERS

    if entry == "cli predict":
        ok, text = _cli(capsys, "predict", DETECTOR, path)
        return ok and "\terror\t" not in text, text
    if entry == "cli localize predict":
        return _cli(capsys, "localize", "predict", LOCALIZER_NAME, path, "--out", tmp_path)
    if entry == "cli fingerprint":
        return _cli(capsys, "fingerprint", path.parent / "real", path, "--out", tmp_path, "--size", 64, "--n", 4)
    if entry == "api /detect":
        return _api(client, "/detect", _handle(path), DETECTOR, "gradcam", 0.5)
    if entry == "api /degrade_score":
        return _api(client, "/degrade_score", _handle(path), DETECTOR)
    if entry == "api /attack":
        return _api(client, "/attack", _handle(path), CNN, "fgsm", 0.01)
    if entry == "api /localize":
        return _api(client, "/localize", _handle(path), None, LOCALIZER, "", 0.25)
    if entry == "api /fingerprints":
        ok, text = _api(client, "/fingerprints", "demo (real + 3 generators)", "", ["pixel-shuffle"], 2, False, 0,
                        _handle(path), False)
        return ok and "**Error" not in text, text
    if entry == "tab Detect":
        from detectlab.ui.detect_tab import detect_one

        md, _, analysis = detect_one(str(path), f"shipped: {DETECTOR}", "gradcam", 0.5)
        return analysis is not None, md
    if entry == "tab Detect batch":
        from detectlab.ui.detect_tab import detect_batch

        status, rows, csv_path, *_ = detect_batch([str(path)], "", f"shipped: {DETECTOR}")
        csv_text = Path(csv_path).read_text() if csv_path else ""
        return bool(rows) and rows[0][1] is not None, f"{status}\n{rows}\n{csv_text}"
    if entry == "tab Robustness":
        from detectlab.ui.robustness_tab import live_upload

        values = [identity for (_, _, _, identity) in SLIDERS.values()]
        md, *_ = live_upload(str(path), [f"shipped: {DETECTOR}"], ["downsize", "blur"], *values, False)
        return _md_ok(md), md
    if entry == "tab Attack":
        from detectlab.ui.attack_tab import playground

        md, *_ = playground(str(path), f"shipped: {CNN}", "fgsm", 0.01)
        return _md_ok(md), md
    if entry == "tab Localize":
        from detectlab.ui.localize_tab import NO_DETECTOR, run_localize

        md, *_ = run_localize(str(path), None, LOCALIZER, NO_DETECTOR, 0.25, None, False)
        return _md_ok(md), md
    if entry == "tab Fingerprints":
        from detectlab.ui.fingerprints_tab import compute

        status, grid, *_ = compute("demo (real + 3 generators)", "", ["pixel-shuffle"], 2, False, 0, str(path))
        return grid is not None, status
    raise AssertionError(entry)


def served_image_entry(entry: str, path: Path, capsys, client, tmp_path) -> tuple[bool, str]:
    """Tab handlers get the upload where Gradio stores it, and the user sees their answer as served."""
    if not entry.startswith("tab"):
        return image_entry(entry, path, capsys, client, tmp_path)
    ok, text = image_entry(entry, as_upload(path), capsys, client, tmp_path)
    return ok, as_served(text)


IMAGE_ENTRIES = ("cli predict", "cli localize predict", "cli fingerprint", "api /detect", "api /degrade_score",
                 "api /attack", "api /localize", "api /fingerprints", "tab Detect", "tab Detect batch",
                 "tab Robustness", "tab Attack", "tab Localize", "tab Fingerprints")
#: Entry points that read a file as a *set* say which set had no readable image rather than why.
_SET_READERS = {"cli fingerprint": "no readable images"}


def _alive(client) -> None:
    """A good request right after a bad one is still answered."""
    ok, text = _api(client, "/detect", _handle(_alive.good), DETECTOR, "gradcam", 0.5)
    assert ok and "p_fake" in text, text


@pytest.mark.parametrize("name", list(IMAGE_PHRASES))
@pytest.mark.parametrize("entry", IMAGE_ENTRIES)
def test_image_through_every_entry_point(entry, name, inputs, capsys, client, tmp_path, rss_start):
    path = inputs[name]
    ok, text = served_image_entry(entry, path, capsys, client, tmp_path)
    expected = IMAGE_PHRASES[name]
    if expected is not None and entry in _SET_READERS and expected not in text:
        expected = _SET_READERS[entry]
    _check(text, ok, expected, "image")
    if entry.startswith("api"):
        _alive.good = inputs["cmyk.jpg"]
        _alive(client)


# ---------------------------------------------------------------------------- checkpoints and masks
CHECKPOINT_ENTRIES = ("cli predict", "cli eval", "cli sweep", "cli attack", "cli localize predict", "api /detect",
                      "api /degrade_score", "tab Localize .pt upload")


#: The CLI commands that score a labelled folder with a detector: name -> argv after the command.
_SET_COMMANDS = {
    "cli eval": lambda det, data: ["eval", det, data],
    "cli sweep": lambda det, data: ["sweep", det, "--data", data, "--degradation", "jpeg", "--levels", "90", "--quiet"],
    "cli attack": lambda det, data: ["attack", det, "--data", data, "--limit", 2, "--quiet"],
}


def checkpoint_entry(entry: str, ckpt: Path, inputs, capsys, client, tmp_path) -> tuple[bool, str]:
    if entry in _SET_COMMANDS:
        return _cli(capsys, *_SET_COMMANDS[entry](ckpt, inputs["one_class"]))
    if entry == "cli predict":
        return _cli(capsys, "predict", ckpt, inputs["cmyk.jpg"])
    if entry == "cli localize predict":
        return _cli(capsys, "localize", "predict", ckpt, inputs["masked.png"], "--out", tmp_path)
    if entry == "api /detect":
        return _api(client, "/detect", _handle(inputs["cmyk.jpg"]), str(ckpt), "gradcam", 0.5)
    if entry == "api /degrade_score":
        return _api(client, "/degrade_score", _handle(inputs["cmyk.jpg"]), str(ckpt))
    if entry == "tab Localize .pt upload":
        from detectlab.ui.localize_tab import NO_DETECTOR, run_localize

        md, *_ = run_localize(str(inputs["masked.png"]), None, LOCALIZER, NO_DETECTOR, 0.25, str(ckpt), False)
        return _md_ok(md), md
    raise AssertionError(entry)


#: (entry, checkpoint) -> phrase. A pickle is refused unread; a truncated file is named as unreadable.
_CKPT_PHRASES = {"evil.pt": r"pickle|trust|not a|cannot|refus|file path", "truncated": r"truncat|corrupt|cannot|invalid|file path|incomplete"}


@pytest.mark.parametrize("which", ["evil.pt", "truncated"])
@pytest.mark.parametrize("entry", CHECKPOINT_ENTRIES)
def test_checkpoint_through_every_entry_point(entry, which, inputs, capsys, client, tmp_path):
    if which == "truncated":
        which_file = f"truncated-{LOCALIZER_NAME if 'ocaliz' in entry else DETECTOR}.safetensors"
    else:
        which_file = which
    ok, text = checkpoint_entry(entry, inputs[which_file], inputs, capsys, client, tmp_path)
    _clean(text)
    assert not ok, text[:300]
    assert re.search(_CKPT_PHRASES[which], text, re.I), text[:400]
    assert not inputs["marker"].exists(), "the pickle's code ran"
    OUTCOMES["clear"] += 1
    OUTCOMES["checkpoint"] += 1


@pytest.mark.parametrize("mask,phrase", [("mask_wrong_size.png", "size"), ("mask_corrupt.png", "mask_corrupt.png")])
@pytest.mark.parametrize("entry", ["api /localize", "tab Localize"])
def test_bad_mask(entry, mask, phrase, inputs, client):
    if entry == "api /localize":
        ok, text = _api(client, "/localize", _handle(inputs["masked.png"]), _handle(inputs[mask]), LOCALIZER, "", 0.25)
    else:
        from detectlab.ui.localize_tab import NO_DETECTOR, run_localize

        md, *_ = run_localize(str(inputs["masked.png"]), str(inputs[mask]), LOCALIZER, NO_DETECTOR, 0.25, None, False)
        ok, text = _md_ok(md), md
    _check(text, ok, phrase, "mask")


# ---------------------------------------------------------------------------- folders
FOLDER_ENTRIES = ("cli eval", "cli sweep", "cli attack", "cli fingerprint", "cli data info", "tab Data open",
                  "api /open_folder", "tab Detect batch folder", "tab Fingerprints folder", "tab Robustness sweep")
FOLDER_PHRASES = {"empty": r"no (image|readable)|empty|not a data set|no data set|no .*layout|no labelled",
                  "one_class": r"only one class|generator folder|no images to sweep|split is empty",
                  "nul": "NUL byte", "long_name": "too long"}
#: Entry points for which a one-class folder is valid input (scores of real photos, say): they answer, with a note.
ONE_CLASS_ANSWERED = {"cli eval", "cli data info", "tab Data open", "api /open_folder", "tab Detect batch folder"}
FOLDER_CASES = [(e, w) for e in FOLDER_ENTRIES for w in FOLDER_PHRASES
                if not (e == "cli fingerprint" and w == "one_class")]  # a plain image folder is what it takes


def folder_entry(entry: str, folder: Path, capsys, client, tmp_path) -> tuple[bool, str]:
    text = str(folder)
    if entry in _SET_COMMANDS:
        return _cli(capsys, *_SET_COMMANDS[entry](CNN if entry == "cli attack" else DETECTOR, text))
    if entry == "cli fingerprint":
        return _cli(capsys, "fingerprint", text, text, "--out", tmp_path, "--size", 64)
    if entry == "cli data info":
        return _cli(capsys, "data", "info", text)
    if entry == "tab Data open":
        from detectlab.ui.data_tab import open_folder

        status, rows, *_ = open_folder(text)
        return bool(rows), status
    if entry == "api /open_folder":
        ok, out = _api(client, "/open_folder", text)
        return ok and "Error" not in out, out
    if entry == "tab Detect batch folder":
        from detectlab.ui.detect_tab import detect_batch

        status, rows, _, metrics_md, _ = detect_batch(None, text, f"shipped: {DETECTOR}")
        return bool(rows), f"{status}\n{metrics_md}"
    if entry == "tab Fingerprints folder":
        from detectlab.ui.fingerprints_tab import compute

        status, grid, *_ = compute("demo (real + 3 generators)", text, [], 2, False, 0, None)
        return grid is not None, status
    if entry == "tab Robustness sweep":
        from detectlab.ui.robustness_tab import sweep

        status, *_ = sweep([f"shipped: {DETECTOR}"], "demo (real + 3 generators)", text, "test", "jpeg", "90", "*",
                           False, 0)
        return _md_ok(status), status
    raise AssertionError(entry)


@pytest.mark.parametrize("entry,which", FOLDER_CASES)
def test_folder_through_every_entry_point(entry, which, inputs, capsys, client, tmp_path):
    ok, text = folder_entry(entry, inputs[which], capsys, client, tmp_path)
    _clean(text)
    assert ok == (which == "one_class" and entry in ONE_CLASS_ANSWERED), f"{entry}, {which} folder: {text[:300]}"
    assert re.search(FOLDER_PHRASES[which], text, re.I), text[:400]
    assert "ValueError" not in text and "OSError" not in text and "Unexpected" not in text, text[:400]
    OUTCOMES["clear"] += 1
    OUTCOMES["folder"] += 1


#: The other CLI commands that take a folder or a checkpoint: training, calibration, storage, held-out.
_FOLDER_REFUSED = r"not a data set|no .*layout|lacks a class|both classes|images/\* with|ROOT/images"
MORE_CLI_CASES = {
    ("train", "empty"): (lambda i: ["train", "--data", i["empty"], "--epochs", 1, "--input-size", 32], _FOLDER_REFUSED),
    ("train", "one_class"): (lambda i: ["train", "--data", i["one_class"], "--epochs", 1, "--input-size", 32],
                             _FOLDER_REFUSED),
    ("localize train", "empty"): (lambda i: ["localize", "train", "--arch", "unet", "--data", i["empty"],
                                             "--epochs", 1, "--imgsz", 32], _FOLDER_REFUSED),
    ("localize train", "one_class"): (lambda i: ["localize", "train", "--arch", "unet", "--data", i["one_class"],
                                                 "--epochs", 1, "--imgsz", 32], _FOLDER_REFUSED),
    ("localize eval", "empty"): (lambda i: ["localize", "eval", LOCALIZER_NAME, "--data", i["empty"]], _FOLDER_REFUSED),
    ("localize eval", "evil.pt"): (lambda i: ["localize", "eval", i["evil.pt"]], _CKPT_PHRASES["evil.pt"]),
    ("calibrate", "empty"): (lambda i: ["calibrate", DETECTOR, "--data", i["empty"]], _FOLDER_REFUSED),
    ("calibrate", "one_class"): (lambda i: ["calibrate", DETECTOR, "--data", i["one_class"]], _FOLDER_REFUSED),
    ("calibrate", "evil.pt"): (lambda i: ["calibrate", i["evil.pt"]], _CKPT_PHRASES["evil.pt"]),
    ("calibrate", "truncated"): (lambda i: ["calibrate", i[f"truncated-{DETECTOR}.safetensors"]],
                                 _CKPT_PHRASES["truncated"]),
    ("compact", "evil.pt"): (lambda i: ["compact", i["evil.pt"]], _CKPT_PHRASES["evil.pt"]),
    ("compact", "truncated"): (lambda i: ["compact", i[f"truncated-{DETECTOR}.safetensors"]],
                               _CKPT_PHRASES["truncated"]),
    ("heldout eval", "evil.pt"): (lambda i: ["heldout", "eval", i["evil.pt"], "--no-manifest", "--no-demo"],
                                  _CKPT_PHRASES["evil.pt"]),
    ("heldout eval", "truncated"): (lambda i: ["heldout", "eval", i[f"truncated-{DETECTOR}.safetensors"],
                                               "--no-manifest", "--no-demo"], _CKPT_PHRASES["truncated"]),
}


@pytest.mark.parametrize("command,which", list(MORE_CLI_CASES))
def test_training_calibration_and_storage_commands_refuse_bad_input(command, which, inputs, capsys):
    """Each refuses with a one-line message before it writes anything; a pickle never runs."""
    from detectlab import config

    shipped = {p.name: p.stat().st_mtime for p in config.CHECKPOINT_DIR.iterdir()}
    argv, phrase = MORE_CLI_CASES[(command, which)]
    ok, text = _cli(capsys, *argv(inputs))
    _clean(text)
    assert not ok, f"{command} accepted a bad {which}: {text[:300]}"
    assert re.search(phrase, text, re.I), text[:400]
    assert not inputs["marker"].exists(), "the pickle's code ran"
    assert {p.name: p.stat().st_mtime for p in config.CHECKPOINT_DIR.iterdir()} == shipped  # nothing shipped touched
    OUTCOMES["clear"] += 1
    OUTCOMES["cli more"] += 1


# ---------------------------------------------------------------------------- zips
ZIP_PHRASES = {"not_a_zip.zip": "not a zip", "truncated.zip": r"not a zip|corrupt", "traversal.zip": r"outside|\.\.",
               "html_only.zip": r"not a data set|no image|layout|skipped|no .*images", "one_class.zip": r"fake|generator|layout|not a data set",
               "empty.zip": r"not a data set|no image|layout|empty|no .*images", "symlink.zip": "symbolic link",
               "bomb.zip": r"over the limit|more than|quota",
               "duplicate.zip": r"real/a\.png appears twice"}  # named inside the archive, not in the staging folder


@pytest.mark.parametrize("name", list(ZIP_PHRASES))
@pytest.mark.parametrize("entry", ["tab Data import", "api /upload_zip"])
def test_zip_import(entry, name, inputs, client):
    from detectlab import config

    before = sorted(p.name for p in config.datasets_dir().iterdir())
    if entry == "tab Data import":
        from detectlab.ui.data_tab import upload_zip

        status, rows, *_ = upload_zip(str(inputs[name]))
        ok, text = bool(rows), status
    else:
        ok, text = _api(client, "/upload_zip", _handle(inputs[name]))
        ok = ok and "Error" not in text
    _check(text, ok, "", "zip")  # refused, clean
    assert re.search(ZIP_PHRASES[name], text, re.I), text[:400]
    assert sorted(p.name for p in config.datasets_dir().iterdir()) == before, "a refused zip left files behind"
    assert not (config.datasets_dir().parent / "evil.png").exists()


# ---------------------------------------------------------------------------- memory


def test_thin_tall_and_bomb_images_stay_under_2_gb_in_the_cli(inputs):
    """``detectlab predict`` (the CNN of the issue's reproduction) on each in a fresh process."""
    files = [inputs[n] for n in ("thin_65535x1.png", "tall_1x20000.png", "bomb.png")]
    out, peak = _run_polling_rss([sys.executable, "-m", "detectlab", "predict", CNN, *map(str, files)])
    assert out.returncode == 1, out.stderr[-2000:]  # every file refused, none scored
    assert out.stdout.count("aspect ratio") == 2 and "too large" in out.stdout, out.stdout
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert 50 * 2**20 < peak < 2 * 1024**3, f"peak RSS {peak / 2**20:.0f} MB"
    print(f"\nCLI predict on thin/tall/bomb: peak RSS {peak / 2**20:.0f} MB")


def test_server_memory_stayed_bounded_and_it_still_serves(client, inputs, rss_start):
    """Runs after the battery: the serving process grew by far less than 2 GB, and answers."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    now = psutil.Process().memory_info().rss
    _alive.good = inputs["cmyk.jpg"]
    _alive(client)
    print(f"\nserver (test process) RSS {rss_start / 2**20:.0f} MB before the battery, {now / 2**20:.0f} MB after, "
          f"peak {peak / 2**20:.0f} MB; outcomes {dict(OUTCOMES)}")
    assert now - rss_start < 2 * 1024**3
    assert peak - rss_start < 2 * 1024**3


# ---------------------------------------------------------------------------- one decode path
@pytest.mark.parametrize("name", list(unusual_images()))
def test_api_tab_and_cli_score_the_same_pixels(name, tmp_path, client, capsys):
    """``/detect``, the Detect tab's handler and ``detectlab predict`` agree for files Gradio used to re-encode."""
    from detectlab.ui.detect_tab import detect_one

    path = tmp_path / name
    path.write_bytes(unusual_images()[name])
    result, _ = client.predict(_handle(path), CNN, "gradcam", 0.5, api_name="/detect")
    api_p = float(result["p_fake"])
    _, _, analysis = detect_one(str(path), f"shipped: {CNN}", "gradcam", 0.5)
    ok, out = _cli(capsys, "predict", CNN, path)
    assert ok, out
    cli_p = float(out.strip().split("\t")[1])
    assert analysis is not None
    assert abs(api_p - analysis.p_fake) < 1e-4 and abs(api_p - cli_p) < 1e-4, (api_p, analysis.p_fake, cli_p)
    if name == "exif_rotated.jpg":  # the rotation is applied: the detector saw a portrait crop of a landscape file
        from detectlab.data import load_image

        assert load_image(path).size == (70, 120)


# ================================================================================================
# Hostile files, part two: zip contents and messages, one demo derivation, clean shutdown, bounded outputs, predict's exit code
#
# Hostile files, part two: what a zip may hold and say, one demo
# derivation at a time, a server that stops promptly and leaves nothing behind, bounded outputs and an
# honest exit code from ``detectlab predict``.
#
# - a ``manifest.json`` nesting 100,000 levels gets DetectLab's one-line message (not "Unexpected
#   error: RecursionError"), the zip is not left imported, and the server keeps serving;
# - zip messages name no server path and carry no HTML entities (``&#x27;``);
# - a file named ``.png`` that is no image is never stored, however big;
# - two ``detectlab demo materialize`` runs (and the app's first start) take one lock: a second
#   caller says it waits, and waits; nothing is written meanwhile, and the folders end complete;
# - a server stopped while it derives the demo exits within seconds, cleanly, and removes its
#   uploads and outputs; output folders are kept by count as well as by age;
# - ``detectlab predict`` exits non-zero when any input was refused and says how many.
#
# Self-contained: the helpers below repeat what ``test_bad_inputs`` has, so the lead can merge this
# file into it as it is.
# ================================================================================================
_ENTITY = re.compile(r"&(?:#x?[0-9a-fA-F]+|[a-zA-Z]+);")
_DEEP = 100_000


# ---------------------------------------------------------------------------- helpers
def _small_photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 5.0)], -1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")




def _zip(path: Path, entries) -> Path:
    import warnings

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are meant
        for name, data in entries:
            z.writestr(name, data)
    return path


def _deep_manifest() -> bytes:
    return b"[" * _DEEP + b"]" * _DEEP


def _deep_zip(path: Path) -> Path:
    return _zip(path, [(f"{path.stem}/real/a.png", _png(_small_photo(seed=1))),
                       (f"{path.stem}/gan/b.png", _png(_small_photo(seed=2))),
                       (f"{path.stem}/manifest.json", _deep_manifest())])


def _datasets() -> list[str]:
    from detectlab import config

    return sorted(p.name for p in config.datasets_dir().iterdir())


def _no_server_paths(text: str, *more: Path) -> None:
    """No absolute path of this machine, no zip staging folder, no HTML entity."""
    import tempfile

    from detectlab import config

    for needle in (str(config.home()), str(config.datasets_dir()), str(config.REPO_ROOT), tempfile.gettempdir() + "/",
                   ".extract-", "Traceback", *map(str, more)):
        assert needle not in text, f"{needle!r} in: {text[:400]}"
    assert not _ENTITY.search(text), f"an HTML entity in: {text[:400]}"




def _upload_zip(entry: str, path: Path, client) -> tuple[bool, str, list]:
    """Import ``path`` through the Data tab's handler or the API; (imported?, status, skipped rows)."""
    if entry == "tab":
        from detectlab.ui.data_tab import upload_zip

        status, rows, _, skipped, _ = upload_zip(str(path))
        return bool(rows), status, skipped
    from gradio_client import handle_file

    from gradio_client.exceptions import AppError

    try:
        status, counts, _, skipped, _ = client.predict(handle_file(str(path)), api_name="/upload_zip")
    except AppError as err:  # the API raises the sentence the tab shows as "**Error:** …"
        return False, f"**Error:** {err}", []
    return bool(counts and counts.get("data")), status, (skipped or {}).get("data", [])


# ---------------------------------------------------------------------------- item 6: a deep manifest
@pytest.mark.parametrize("entry", ["tab", "api"])
def test_deep_manifest_zip_gets_one_line_and_is_not_kept_and_the_server_serves(entry, tmp_path, client):
    before = _datasets()
    ok, status, _ = _upload_zip(entry, _deep_zip(tmp_path / f"deep{entry}.zip"), client)
    assert not ok
    assert status.startswith("**Error:**") and "\n" not in status, status[:400]
    assert "manifest.json" in status and "nests more than" in status, status[:400]
    assert "Unexpected" not in status and "RecursionError" not in status, status[:400]
    _no_server_paths(status, tmp_path)
    assert _datasets() == before, "the refused zip stayed imported"
    # the server still answers, right after
    status, counts, *_ = client.predict("demo", api_name="/open_folder")
    assert {row[1] for row in counts["data"]} >= {"real", "pixel-shuffle"}, status


def test_a_stored_set_with_a_deep_manifest_says_so_when_opened(tmp_path, client):
    """A folder that got its manifest some other way: opening it is DetectLab's one line, each time."""
    from detectlab import config
    from detectlab.data.discover import discover
    from detectlab.errors import DatasetError
    from detectlab.ui.data_tab import open_folder

    root = config.datasets_dir() / "issue23-deep-manifest"
    shutil.rmtree(root, ignore_errors=True)
    try:
        for cls, seed in (("real", 3), ("gan", 4)):
            (root / cls).mkdir(parents=True)
            _small_photo(seed=seed).save(root / cls / "x.png")
        (root / "manifest.json").write_bytes(_deep_manifest())
        with pytest.raises(DatasetError, match="nests more than"):
            discover(root)
        for _ in range(2):
            status, rows, *_ = open_folder(root.name)
            assert not rows and status.startswith("**Error:**") and "\n" not in status, status[:300]
            assert "issue23-deep-manifest/manifest.json" in status and "RecursionError" not in status
            _no_server_paths(status)
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError, match="nests more than"):
            client.predict(root.name, api_name="/open_folder")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("manifest,phrase", [
    (b'{"groups": ' + b'{"a": ' * 40 + b'"g"' + b"}" * 41, "nests more than"),
    (b'{"groups": {"x": [1, 2]}}', "not text or a number"),
    (b'{"groups": ' + b"9" * 5000 + b"}", "cannot read the manifest"),   # over Python's digit limit
    (b"\xff\xfe not utf-8", "cannot read the manifest"),
])
def test_bad_manifests_are_one_line_dataset_errors(tmp_path, manifest, phrase):
    from detectlab.data.discover import discover
    from detectlab.errors import DatasetError

    for cls in ("real", "gan"):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        _small_photo().save(tmp_path / "ds" / cls / "x.png")
    (tmp_path / "ds" / "manifest.json").write_bytes(manifest)
    with pytest.raises(DatasetError, match=phrase) as info:
        discover(tmp_path / "ds")
    assert "\n" not in str(info.value) and str(tmp_path) not in str(info.value), str(info.value)[:300]


# ---------------------------------------------------------------------------- item 11: zip messages
def _message_zips(d: Path) -> dict[str, Path]:
    img = _png(_small_photo())
    return {
        "flat": _zip(d / "flat.zip", [("flat/a.png", img), ("flat/it's.png", img)]),   # no layout; quotes
        "traversal": _zip(d / "traversal.zip", [("../<b>&'evil'.png", img), ("real/a.png", img)]),
        "duplicate": _zip(d / "duplicate.zip", [("real/a.png", img), ("real/a.png", img), ("gan/b.png", img)]),
        "not a zip": (d / "notazip.zip", (d / "notazip.zip").write_bytes(b"plain text"))[0],
        "deep manifest": _deep_zip(d / "deepmsg.zip"),
    }


@pytest.mark.parametrize("case", ["flat", "traversal", "duplicate", "not a zip", "deep manifest"])
@pytest.mark.parametrize("entry", ["tab", "api"])
def test_zip_messages_name_no_server_path_and_carry_no_html_entities(entry, case, tmp_path, client):
    before = _datasets()
    ok, status, _ = _upload_zip(entry, _message_zips(tmp_path)[case], client)
    assert not ok and status.startswith("**Error:**"), status[:300]
    _no_server_paths(status, tmp_path)
    if case == "flat":
        assert "flat is not a data set: no 'real' folder" in status, status[:300]
    if case == "traversal":
        assert "'..'" in status and "‹b›&'evil'" in status, status[:300]
    if case == "duplicate":
        assert "real/a.png appears twice" in status, status[:300]
    assert _datasets() == before


# ---------------------------------------------------------------------------- item 11: non-images are not stored
def test_a_large_non_image_png_in_a_zip_is_never_stored(tmp_path, monkeypatch):
    """64 MB of text named .png, and a file with a PNG signature and garbage after: neither is stored."""
    from detectlab.data.overview import import_dataset_zip, stored_bytes

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    size = 64 << 20
    archive = tmp_path / "withjunk.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("withjunk/real/a.png", _png(_small_photo(seed=5)))
        z.writestr("withjunk/gan/b.png", _png(_small_photo(seed=6)))
        with z.open("withjunk/gan/huge.png", "w", force_zip64=True) as f:
            line = b"not an image, just text\n" * 4096
            for _ in range(size // len(line)):
                f.write(line)
        z.writestr("withjunk/real/fake_signature.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2 << 20))
        z.writestr("withjunk/real/empty.jpg", b"")
    root = import_dataset_zip(archive)
    stored = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert stored == ["gan/b.png", "real/a.png"], stored
    assert stored_bytes() < 1 << 20, f"the data sets folder holds {stored_bytes():,} bytes"
    skipped: list[tuple[str, str]] = []  # what was not stored, and why: for the Data tab's table
    import_dataset_zip(archive, name="again", skipped=skipped)
    reasons = dict(skipped)
    assert set(reasons) == {"withjunk/gan/huge.png", "withjunk/real/fake_signature.png", "withjunk/real/empty.jpg"}
    assert "not an image" in reasons["withjunk/gan/huge.png"] and "not stored" in reasons["withjunk/gan/huge.png"]
    assert "empty" in reasons["withjunk/real/empty.jpg"]
    for reason in reasons.values():
        _no_server_paths(reason, tmp_path)


def test_the_data_tab_lists_what_a_zip_import_did_not_store(tmp_path, monkeypatch):
    from detectlab.ui.data_tab import upload_zip

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    archive = _zip(tmp_path / "listed.zip", [("listed/real/a.png", _png(_small_photo(seed=7))),
                                              ("listed/gan/b.png", _png(_small_photo(seed=8))),
                                              ("listed/gan/notes.png", b"just notes " * 1000),
                                              ("listed/real/page.html", b"<script>alert(1)</script>")])
    status, rows, _, skipped, _ = upload_zip(str(archive))
    assert rows and "2 images" in status and "2 files skipped" in status and "2 not images, not stored" in status
    shown = {row[0]: row[1] for row in skipped}
    assert "not stored" in shown["listed/gan/notes.png"] and "listed/real/page.html" in shown
    for text in (status, *map(str, skipped)):
        _no_server_paths(text, tmp_path)
    assert not (tmp_path / "home" / "datasets" / "listed" / "gan" / "notes.png").exists()


# ---------------------------------------------------------------------------- item 9: one demo lock
def _repo_copy(dest: Path, n_real: int) -> Path:
    """The package, app.py and the committed demo inputs (``n_real`` real crops, linked) in ``dest``:
    a demo of its own to derive, so the shared ``assets/demo`` is never touched."""
    from detectlab import config

    shutil.copytree(config.REPO_ROOT / "detectlab", dest / "detectlab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    shutil.copy(config.REPO_ROOT / "app.py", dest / "app.py")
    shutil.copytree(config.GENERATOR_DIR, dest / "assets" / "generators")
    shutil.copytree(config.ASSETS / "fingerprints", dest / "assets" / "fingerprints")
    os.symlink(config.CHECKPOINT_DIR, dest / "checkpoints")
    real = dest / "assets" / "demo" / "real"
    real.mkdir(parents=True)
    for f in sorted((config.DEMO_DIR / "real").glob("*.png"))[:n_real]:
        os.symlink(f, real / f.name)
    return dest


def _env(copy: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_TEMP_DIR", "DETECTLAB_HOME")}
    env.update(DETECTLAB_HOME=str(home), PYTHONPATH=str(copy))
    return env


def _hold_lock(lock: Path) -> subprocess.Popen:
    """Another process holding the demo lock, as a running `demo materialize` does (pid in the file)."""
    code = ("import fcntl, os, sys, time\n"
            "f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); f.truncate()\n"
            "f.write(str(os.getpid())); f.flush(); print('held', flush=True); sys.stdin.read()\n")
    lock.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_two_demo_derivations_at_once_take_turns_and_leave_complete_folders(tmp_path):
    """Two `detectlab demo materialize --force` while a third process holds the lock: both say they
    wait and write nothing; released, they take turns and every folder ends complete."""
    from detectlab.demo.build import GENERATORS

    n = 64
    copy = _repo_copy(tmp_path / "repo", n)
    demo = copy / "assets" / "demo"
    holder = _hold_lock(copy / "assets" / ".demo.lock")
    procs, errs = [], []
    try:
        for k in range(2):
            p = subprocess.Popen([sys.executable, "-m", "detectlab", "demo", "materialize", "--force"], cwd=copy,
                                 env=_env(copy, tmp_path / f"home{k}"), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            procs.append(p)
            errs.append(ChildOutput(p.stderr))
        for e in errs:
            m = e.wait_for(r"process (\d+) is deriving the demo images.*waiting for it to finish", timeout=180)
            assert m, e.text[-2000:]
            assert int(m.group(1)) == holder.pid
        # each child printed its waiting line from inside the lock wait, after anything it could write
        # before taking the lock: what is on disk now is all it wrote while another derivation held it
        written = sorted(p.name for p in demo.iterdir() if p.name != "real")
        assert written == [], f"written while another derivation held the lock: {written}"
        assert not (copy / "assets" / "demo-inpainted").exists()
    finally:
        holder.stdin.close()
        holder.wait(30)
    for p, e in zip(procs, errs):
        out = p.stdout.read()
        assert p.wait(300) == 0, e.text[-2000:]
        assert '"synthetic_per_generator": %d' % n in out, out[-1000:]
    for name in GENERATORS:
        assert len(list((demo / name).glob("*.png"))) == n, name
    for part in ("images", "masks"):
        assert len(list((copy / "assets" / "demo-inpainted" / part).glob("*.png"))) == n, part
    assert not list(demo.glob(".*.tmp")) and not list((copy / "assets").glob(".*.tmp"))
    check = subprocess.run([sys.executable, "-c", "from detectlab.demo.build import is_materialized as m; "
                            "print(m())"], cwd=copy, env=_env(copy, tmp_path / "home0"), capture_output=True,
                           text=True, timeout=120)
    assert check.stdout.strip() == "True", check.stderr[-1000:]


def test_the_first_start_waits_for_the_lock_says_so_and_can_be_stopped(tmp_path, monkeypatch):
    from detectlab.demo.build import demo_lock
    from detectlab.ui import first_run

    demo = tmp_path / "assets" / "demo"
    entered, waiting = threading.Event(), threading.Event()

    def work(progress, cancel, on_wait):
        def said(message):
            on_wait(message)  # the banner's stage first, then the test may read it
            waiting.set()

        with demo_lock(demo, on_wait=said, cancel=cancel):
            entered.set()

    holder = _hold_lock(tmp_path / "assets" / ".demo.lock")
    try:
        monkeypatch.setattr(first_run, "_current", None)
        prep = first_run.start_in_background(work)
        waiting.wait(10)  # the lock said it waits; the banner below must say who holds it
        banner, *_ = first_run.tick()
        assert f"process {holder.pid} is deriving the demo images" in banner["value"], banner["value"]
        start = time.monotonic()
        assert first_run.stop(timeout=10)
        assert time.monotonic() - start < 3, "the waiting derivation did not stop promptly"
        assert prep.cancelled and prep.error is None and not entered.is_set()
        banner, timer, _ = first_run.tick()
        assert banner["visible"] is False and timer.active is False
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_the_lock_is_reentrant_in_one_thread_and_serializes_threads(tmp_path):
    from detectlab.demo.build import demo_lock
    from detectlab.progress import CancelToken, Cancelled

    demo = tmp_path / "demo"
    said: list[str] = []
    waited = threading.Event()
    token = CancelToken()
    outcome: list[str] = []

    def on_wait(message: str) -> None:
        said.append(message)
        waited.set()

    def other():
        try:
            with demo_lock(demo, on_wait=on_wait, cancel=token):
                outcome.append("entered")
        except Cancelled:
            outcome.append("cancelled")

    with demo_lock(demo):
        with demo_lock(demo):  # materialize inside ensure_demo: no deadlock
            t = threading.Thread(target=other)
            t.start()
            waited.wait(10)  # the other thread reached the lock and said it waits
            assert said and "another thread" in said[0] and not outcome
            token.cancel()
            t.join(5)
    assert outcome == ["cancelled"]
    with demo_lock(demo):  # released: free again
        pass


# ---------------------------------------------------------------------------- item 10: shutdown and outputs
def test_clear_server_files_removes_this_servers_uploads_and_outputs(tmp_path, monkeypatch):
    from detectlab.ui import widgets

    home = tmp_path / "home"
    monkeypatch.setenv("DETECTLAB_HOME", str(home))
    uploads = home / "uploads"
    old = uploads / "earlier-server" / "kept.png"   # another live server's upload, from before this one started
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    since = time.time() + 5
    os.utime(old, (since - 600, since - 600))
    # this server's files, "after" it started: an upload, 40 empty multipart temp files, gallery PNGs
    mine = [uploads / "3f2a" / "photo.png", *(uploads / f"tmp{k:02d}" for k in range(40)),
            *(uploads / f"g{k}" / "pixel-shuffle.png" for k in range(3))]
    for f in mine:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"" if f.name.startswith("tmp") else b"png")
        os.utime(f, (since + 1, since + 1))
    outs = [widgets.output_path(f"heatmap{k}.png") for k in range(5)]
    for o in outs:
        o.write_bytes(b"png")
    foreign = widgets.outputs_dir() / "another-process"   # another live server's output: left
    foreign.mkdir()
    stale = widgets.outputs_dir() / "stale"               # older than the cache age: anyone's, gone
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    removed = widgets.clear_server_files(since=since)
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert left == ["uploads/earlier-server/kept.png"], left
    assert sorted(p.name for p in widgets.outputs_dir().iterdir()) == ["another-process"]
    assert removed == {"uploads": len(mine), "outputs": 6}, removed
    assert not any((uploads / d).exists() for d in ("3f2a", "g0")), "emptied folders stay"
    assert widgets.clear_server_files(since=since) == {"uploads": 0, "outputs": 0}  # twice is harmless


def test_clear_server_files_leaves_an_upload_folder_outside_the_home_alone(tmp_path, monkeypatch):
    from detectlab.ui import widgets

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    (shared / "someone-elses.txt").write_text("x")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(shared))
    widgets.clear_server_files(since=0)
    assert (shared / "someone-elses.txt").exists()


def test_outputs_beyond_the_count_limit_are_pruned(tmp_path, monkeypatch):
    from detectlab.ui import widgets

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DETECTLAB_MAX_OUTPUTS", "20")
    made = []
    for k in range(60):
        path = widgets.output_path(f"heatmap{k}.png")
        path.write_bytes(b"png")
        made.append(path)
        assert path.parent.is_dir()  # the folder just made is never the one pruned
    folders = sorted(widgets.outputs_dir().iterdir())
    assert len(folders) <= 20, len(folders)
    assert all(p.exists() for p in made[-10:]), "the newest outputs were pruned"
    monkeypatch.setenv("DETECTLAB_MAX_OUTPUTS", "3")  # below the floor: at least 16 are kept
    assert widgets.max_outputs() == widgets.MIN_OUTPUTS


@pytest.mark.slow
def test_a_server_stopped_while_it_derives_the_demo_exits_promptly_and_leaves_nothing(tmp_path):
    """SIGTERM during the first-start derivation: exit within seconds (status 0, no abort), no
    uploads, no outputs, no half-made demo folder. Needs the shutdown hook in ``ui.app``."""
    from gradio_client import Client, handle_file

    from detectlab.demo.build import GENERATORS

    n = 1223  # all of them: the derivation runs for a minute or more, so the stop finds it running
    copy = _repo_copy(tmp_path / "repo", n)
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0"], cwd=copy, env=_env(copy, home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ChildOutput(proc.stdout)
    try:
        m = out.wait_for(r"running on (http://127\.0\.0\.1:\d+/)", timeout=240)
        assert m and "deriving the demo images in the background" in out.text, out.text[-2000:]
        client = Client(m.group(1), verbose=False)
        image = sorted((copy / "assets" / "demo" / "real").glob("*.png"))[0]
        for _ in range(2):
            info, _ = client.predict(handle_file(str(image)), DETECTOR, "gradcam", 0.5, api_name="/detect")
            assert 0.0 <= info["p_fake"] <= 1.0
        client.close()
        assert any(p.is_file() for p in (home / "uploads").rglob("*")), "no upload reached the cache"
        assert any((home / "outputs").iterdir()), "no output was written"
        assert not (copy / "assets" / "demo" / ".materialized.json").exists(), "the derivation ended before the stop"
    finally:
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        took = time.monotonic() - start
    print(f"\nserver deriving the demo stopped {took:.1f} s after SIGTERM (exit status {code})")
    assert code == 0, out.text[-3000:]
    assert took < 15, f"stopping took {took:.1f} s"
    assert [p for p in (home / "uploads").rglob("*") if p.is_file()] == [], "uploads left after the stop"
    assert list((home / "outputs").iterdir()) == [], "outputs left after the stop"
    demo = copy / "assets" / "demo"
    assert not list(demo.glob(".*.tmp")) and not list((copy / "assets").glob(".*.tmp")), "half-made folders left"
    for name in GENERATORS:  # a generator folder exists only complete
        assert not (demo / name).exists() or len(list((demo / name).glob("*.png"))) == n, name


# ---------------------------------------------------------------------------- item 11: predict's exit code
def test_predict_exits_non_zero_when_any_input_is_refused_and_says_how_many(tmp_path, capsys):
    from detectlab.cli import main

    folder = tmp_path / "mixed"
    folder.mkdir()
    for k in range(3):
        _small_photo(seed=30 + k).save(folder / f"good{k}.png")
    (folder / "text.png").write_bytes(b"just some notes, not an image\n" * 10)
    (folder / "empty.jpg").write_bytes(b"")
    code = main(["predict", DETECTOR, str(folder)])
    captured = capsys.readouterr()
    assert code != 0, captured.out
    assert "2 of 5 file(s) refused" in captured.err and "3 scored" in captured.err, captured.err
    assert captured.out.count("\terror\t") == 2 and captured.out.count("\treal\t") + captured.out.count("\tfake\t") == 3
    code = main(["predict", DETECTOR, str(folder / "good0.png")])  # all scored: success
    assert code == 0, capsys.readouterr().err


# ================================================================================================
# Bounded memory for images small on disk and huge decoded
#
# Bounded memory for images that are small on disk and huge decoded.
#
# A 460-KB PNG can hold 7071×7071 pixels of 16-bit RGBA (just under the 50-MP pixel guard): each
# entry point that takes an image must decode it in bounded memory (budgeted by pixels and by
# bytes, converted band by band, brought straight to the size the step needs), N concurrent
# requests must not multiply the peak (a byte-budget semaphore), and the server's memory must come
# back afterwards (``malloc_trim``). Images over PIL's own bomb limit get DetectLab's message, and
# ``DETECTLAB_MAX_PIXELS`` is the limit that applies.
#
# Server memory is measured on an app server of its own, in a subprocess whose resident memory a
# thread samples every 10 ms (the suite's own server shares the pytest process with everything
# else); the CLI runs in a fresh subprocess, polled the same way. Tolerances are stated at each
# assertion, with the figures measured before and after the change (2-core CPU box).
# ================================================================================================
MB = 2**20
SIDE = 7071                          # 7071² = 49,999,041 pixels: just under the default 50-MP guard


# ---------------------------------------------------------------------------- the inputs
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_rgba16(path: Path, width: int = SIDE, height: int = SIDE) -> Path:
    """A real 16-bit RGBA PNG (vertical stripes, varying alpha) of ~460 KB: 400 MB of samples, 200 MB decoded.

    Written row by row (the first row, then "Up"-filtered zero rows), so making it costs no memory.
    """
    x = np.arange(width)
    row = np.stack([(x * 9) % 65536, (x * 37) % 65536, 60000 - (x * 5) % 50000, (x * 13) % 65536], -1)
    comp = zlib.compressobj(9)
    up = b"\2" + bytes(width * 8)
    body = [comp.compress(b"\0" + row.astype(">u2").tobytes())]
    body += [comp.compress(up) for _ in range(height - 1)]
    body.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(body))
                     + _chunk(b"IEND", b""))
    return path


def png_header(width: int, height: int, bit_depth: int = 1, colour: int = 0) -> bytes:
    """A valid PNG header claiming width×height, with a body of a few bytes (a bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def jpeg_49mp(path: Path) -> Path:
    """A 7000×7000 JPEG photo-like enough to compress (~3 MB)."""
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (350, 350, 3), dtype=np.uint8))
    small.resize((7000, 7000), Image.Resampling.BILINEAR).save(path, "JPEG", quality=90)
    return path


def small_png(path: Path) -> Path:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("memory")
    return {"rgba16.png": png_rgba16(d / "rgba16.png"), "big49.jpg": jpeg_49mp(d / "big49.jpg"),
            "small.png": small_png(d / "small.png")}


# ---------------------------------------------------------------------------- measuring
class RssSampler:
    """Samples a process's resident memory every 10 ms in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return self.proc.memory_info().rss

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def settled(self, timeout: float = 5.0, window: float = 0.3, tolerance: int = 4 * 2**20) -> int:
        """RSS once it stops moving (within ``tolerance`` over ``window`` seconds), or at ``timeout``."""
        deadline = time.monotonic() + timeout
        last = self.now()
        while not self._stop.wait(window) and time.monotonic() < deadline:
            now = self.now()
            if abs(now - last) <= tolerance:
                return now
            last = now
        return self.now()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.peak = max(self.peak, self.now())
            except psutil.Error:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _run_polling_rss(argv: list[str], env: dict | None = None, timeout: float = 300
                     ) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``argv``, polling its resident memory every 20 ms; (result, peak bytes)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watched, peak, start = psutil.Process(proc.pid), 0, time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            break
        try:
            proc.wait(timeout=0.02)
            break
        except subprocess.TimeoutExpired:
            continue
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), peak


_SERVE = """
import sys
from detectlab.ui.app import serve
served = serve(host="127.0.0.1", port=0)
print(served.url, flush=True)
sys.stdin.read()   # until the test closes our stdin
served.close()
"""


@pytest.fixture(scope="module")
def server(demo_root, files):
    """An app server in a subprocess of its own (own home and upload cache), warmed up on a small image.

    Yields (url, RssSampler, baseline RSS after the warm-up).
    """
    from gradio_client import Client

    home = Path(tempfile.mkdtemp(prefix="detectlab-mem-home-"))
    env = dict(os.environ, DETECTLAB_HOME=str(home), GRADIO_TEMP_DIR=str(home / "uploads"),
               HF_HUB_OFFLINE="1", YOLO_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    for var in ("DETECTLAB_MAX_PIXELS", "DETECTLAB_MAX_DECODE_MB", "DETECTLAB_DECODE_BUDGET_MB"):
        env.pop(var, None)   # the defaults are what is measured
    proc = subprocess.Popen([sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline().strip()), daemon=True)
    reader.start()
    reader.join(timeout=180)
    if not got or not got[0].startswith("http"):
        proc.kill()
        pytest.fail(f"the memory test's app server did not start: {got}")
    url = got[0]
    sampler = RssSampler(proc.pid)
    client = Client(url, verbose=False)
    for entry in ENTRIES:  # every code path loaded and its caches filled: later growth is the large image's
        call(client, entry, files["small.png"])
    yield url, sampler, sampler.settled()
    sampler.stop()
    proc.stdin.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def call(client, entry: str, path: Path):
    from gradio_client import handle_file

    f = handle_file(str(path))
    if entry == "/detect resize":
        return client.predict(f, DETECTOR, "gradcam", 0.5, "resize", api_name="/detect")
    if entry == "/detect tiles":
        return client.predict(f, CNN, "gradcam", 0.5, "tiles", api_name="/detect")
    if entry == "/localize":
        return client.predict(f, None, LOCALIZER, "", 0.25, api_name="/localize")
    if entry == "/degrade_score":
        return client.predict(f, DETECTOR, api_name="/degrade_score")
    if entry == "/attack":
        return client.predict(f, CNN, "fgsm", 0.01, api_name="/attack")
    if entry == "/fingerprints":
        return client.predict("demo (real + 3 generators)", "", ["pixel-shuffle"], 2, False, False, f,
                              api_name="/fingerprints")
    raise AssertionError(entry)


ENTRIES = ("/detect resize", "/detect tiles", "/localize", "/degrade_score", "/attack", "/fingerprints")


def _answered(entry: str, result) -> None:
    first = result[0] if isinstance(result, tuple) else result
    if entry == "/fingerprints":
        assert "Error" not in str(first) and "real images" in str(first), str(first)[:400]
    else:
        assert isinstance(first, dict) and first, str(first)[:400]


# ---------------------------------------------------------------------------- every endpoint
@pytest.mark.slow
@pytest.mark.parametrize("name", ["rgba16.png", "big49.jpg"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_large_image_is_decoded_in_bounded_memory_by_each_endpoint(entry, name, server, files):
    """Peak server RSS stays < 600 MB above its warmed-up baseline, and comes back within 300 MB.

    Measured against the baseline of the server's start (not of this request), so memory one request
    keeps cannot hide the next one's peak. Before the change (fresh processes, added peak):
    /detect resize 954 MB, tiles 1878 MB (2557 MB in a server), /localize 1049 MB (JPEG 1029 MB),
    /degrade_score, /attack, /fingerprints 954 MB each. After: 190-300 MB for the PNG (its decoded
    8-bit RGBA is 200 MB), under 260 MB for the JPEG (decoded at 1/2-1/8 scale but for tiles).
    """
    from gradio_client import Client

    url, sampler, baseline = server
    client = Client(url, verbose=False)
    sampler.reset()
    start = time.perf_counter()
    result = call(client, entry, files[name])
    seconds = time.perf_counter() - start
    peak, after = sampler.peak - baseline, sampler.settled() - baseline
    print(f"\n{entry} {name}: peak +{peak / MB:.0f} MB, after +{after / MB:.0f} MB over the server's baseline "
          f"{baseline / MB:.0f} MB, {seconds:.1f} s")
    _answered(entry, result)
    assert peak < 600 * MB, f"{entry} {name}: server peak +{peak / MB:.0f} MB"
    assert after < 300 * MB, f"{entry} {name}: server kept +{after / MB:.0f} MB"


@pytest.mark.slow
def test_three_concurrent_large_tile_requests_do_not_multiply_the_peak(server, files):
    """Three clients send the 16-bit RGBA PNG for native-resolution tiles at once.

    Tolerances: ≤ 1 GB added at the peak for the three (the issue allows 2.5 GB; before the change
    it was 8.25 GB, after 570 MB: the decode budget lets two 216-MB decodes run at once), and RSS
    back within 256 MB of the baseline once it settles after the last answer (before: 2.6 GB kept; after: 30 MB).
    """
    from gradio_client import Client

    url, sampler, _ = server
    clients = [Client(url, verbose=False) for _ in range(3)]
    sampler.settled()
    baseline = sampler.reset()
    results, errors = [], []

    def one(c):
        try:
            results.append(call(c, "/detect tiles", files["rgba16.png"]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    peak, after = sampler.peak - baseline, sampler.settled(timeout=10) - baseline
    print(f"\n3 concurrent /detect tiles: peak +{peak / MB:.0f} MB, after +{after / MB:.0f} MB over "
          f"{baseline / MB:.0f} MB")
    assert not errors and len(results) == 3, errors
    assert all(r[0]["tiles_scored"] == 64 for r in results)
    assert len({round(r[0]["p_fake"], 6) for r in results}) == 1   # the same answer three times
    assert peak <= 1024 * MB, f"three concurrent requests added {peak / MB:.0f} MB"
    assert after <= 256 * MB, f"the server kept {after / MB:.0f} MB after the requests"


@pytest.mark.slow
def test_cli_predict_on_large_images_stays_under_1_gb_and_agrees_with_the_api(server, files):
    """``detectlab predict`` on both large files in a fresh process: peak RSS < 1 GB (before: 1463 MB for the
    PNG alone; after: ~800 MB, of which ~600 MB is the process on a small image), and the JPEG, decoded at
    reduced scale, gets the P(fake) the server's ``/detect`` gives (4 decimals, as printed)."""
    from gradio_client import Client

    url, _, _ = server
    out, peak = _run_polling_rss([sys.executable, "-m", "detectlab", "predict", DETECTOR,
                                  str(files["rgba16.png"]), str(files["big49.jpg"])])
    print(f"\nCLI predict on the 16-bit RGBA PNG and the 49-MP JPEG: peak RSS {peak / MB:.0f} MB")
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    cli = {Path(line.split("\t")[0]).name: float(line.split("\t")[1]) for line in out.stdout.splitlines()
           if line.count("\t") >= 2}
    assert set(cli) == {"rgba16.png", "big49.jpg"}, out.stdout
    assert peak < 1024 * MB, f"peak RSS {peak / MB:.0f} MB"
    for name in cli:
        api = call(Client(url, verbose=False), "/detect resize", files[name])[0]["p_fake"]
        assert abs(api - cli[name]) < 1e-4, (name, api, cli[name])


# ---------------------------------------------------------------------------- limits
def test_images_over_pils_own_bomb_limit_get_detectlabs_message(tmp_path):
    """> 179 MP: PIL's DecompressionBombError fires inside Image.open; the user gets DetectLab's words."""
    from detectlab.data.decode import load_image, load_mask, load_tensor, open_image, probe_image
    from detectlab.errors import ImageDecodeError

    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(30000, 30000))

    def opened(p):
        with open_image(p):
            pass

    for fn in (load_image, probe_image, load_mask, lambda p: load_tensor(p, 128), opened):
        with pytest.raises(ImageDecodeError) as info:
            fn(path)
        text = str(info.value)
        assert "bomb.png" in text and "too large" in text and "DETECTLAB_MAX_PIXELS" in text, text
        assert "900,000,000 pixels is over the limit of 50,000,000" in text, text
        assert "could be decompression bomb" not in text and "Image size (" not in text, text


_PROBE = """
import sys
from detectlab.data.decode import load_tensor, probe_image
from detectlab.errors import ImageDecodeError
for path in sys.argv[1:]:
    try:
        info = probe_image(path) if "probe" in path else load_tensor(path, 128)
        print(path.rsplit("/", 1)[-1], "ok", getattr(info, "width", ""), flush=True)
    except ImageDecodeError as exc:
        print(path.rsplit("/", 1)[-1], "refused", exc, flush=True)
"""


def _decode_in_subprocess(paths: list[Path], **env_vars: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DETECTLAB_MAX_PIXELS", "DETECTLAB_MAX_DECODE_MB", "DETECTLAB_DECODE_BUDGET_MB")}
    out = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths)], capture_output=True, text=True,
                         env={**env, **env_vars}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.stdout.splitlines()}


def test_detectlab_max_pixels_is_the_limit_that_applies(tmp_path):
    """The variable named in the message works: below and above PIL's own 179-MP bomb limit.

    Default: a 60-MP header and a 225-MP header are refused with DetectLab's message. With
    DETECTLAB_MAX_PIXELS=250000000 the 60-MP file gets past the header (its body is a few bytes: refused
    as unreadable, not as too large) and the 225-MP header probes fine (PIL alone would refuse it).
    DETECTLAB_MAX_DECODE_MB is the byte budget's variable: at 100 MB, the 7071² 16-bit RGBA header (200 MB
    decoded) is refused before any decode, naming it.
    """
    mp60, mp225 = tmp_path / "mp60.png", tmp_path / "mp225-probe.png"
    rgba = tmp_path / "rgba16-header.png"
    mp60.write_bytes(png_header(7746, 7746))
    mp225.write_bytes(png_header(15000, 15000))
    rgba.write_bytes(png_header(SIDE, SIDE, 16, 6))
    default = _decode_in_subprocess([mp60, mp225, rgba])
    for name, pixels in (("mp60.png", "60,000,516"), ("mp225-probe.png", "225,000,000")):
        assert default[name].startswith("refused"), default
        assert f"{pixels} pixels is over the limit of 50,000,000" in default[name], default[name]
        assert "DETECTLAB_MAX_PIXELS" in default[name], default[name]
    assert default["rgba16-header.png"].startswith("refused") and "too large" not in default["rgba16-header.png"]

    raised = _decode_in_subprocess([mp60, mp225, rgba], DETECTLAB_MAX_PIXELS="250000000",
                                   DETECTLAB_MAX_DECODE_MB="100")
    assert raised["mp60.png"].startswith("refused"), raised
    assert "DETECTLAB_MAX_PIXELS" not in raised["mp60.png"] and "too large" not in raised["mp60.png"], raised
    assert ("truncated" in raised["mp60.png"]) or ("corrupt" in raised["mp60.png"]), raised
    assert raised["mp225-probe.png"] == "ok 15000", raised
    assert raised["rgba16-header.png"].startswith("refused"), raised
    assert "over the limit of 100 MB" in raised["rgba16-header.png"], raised
    assert "DETECTLAB_MAX_DECODE_MB" in raised["rgba16-header.png"], raised


# ---------------------------------------------------------------------------- the budget, the bands
def test_decode_budget_bounds_concurrent_reservations():
    """Reservations wait while the budget is held; an oversized one runs alone; nesting does not deadlock."""
    from detectlab.data.decode import DecodeBudget

    budget = DecodeBudget(100 * MB)
    held, most, asked = [0], [0], [0]
    cond = threading.Condition()

    def work(nbytes):
        with cond:
            asked[0] += 1
            cond.notify_all()
        with budget.reserve(nbytes):
            with cond:
                held[0] += nbytes
                most[0] = max(most[0], held[0])
                # hold the reservation until every thread has asked for its own: the others contend for real
                cond.wait_for(lambda: asked[0] == 4, timeout=10)
            with budget.reserve(nbytes):   # nested in its own reservation: must not wait for itself
                pass
            with cond:
                held[0] -= nbytes

    threads = [threading.Thread(target=work, args=(n,)) for n in (60 * MB, 60 * MB, 60 * MB, 500 * MB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads), "a reservation deadlocked"
    assert budget.in_use == 0 and budget.waits >= 2
    assert budget.peak <= 100 * MB and most[0] <= 500 * MB   # 500 MB (capped at the budget) ran alone
    with budget.reserve(1 * MB):     # small: never waits, not counted
        assert budget.in_use == 0


_MODES = {
    "RGBA": lambda a: Image.fromarray(a, "RGBA"),
    "I;16": lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257),
    "F": lambda a: Image.fromarray(a[..., 0].astype(np.float32) / 255),
    "P-transparency": lambda a: Image.fromarray(a[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=32),
    "LA": lambda a: Image.fromarray(a[..., :2], "LA"),
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", list(_MODES))
def test_banded_decoding_gives_the_pixels_of_whole_image_conversion(mode, orientation, tmp_path, monkeypatch):
    """Bands of one or two rows (the limit is patched down) give exactly the pixels of converting the whole
    image, orienting it, cropping and box-reducing it: the decode path stays one path."""
    from detectlab.data import decode

    monkeypatch.setattr(decode, "BAND_BYTES", 1)
    rng = np.random.default_rng(orientation)
    im = _MODES[mode](rng.integers(0, 256, (37, 53, 4), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    kw = {"transparency": 3} if mode == "P-transparency" else {}
    fmt = "TIFF" if mode == "F" else "PNG"
    path = tmp_path / f"img.{fmt.lower()}"
    im.save(path, fmt, exif=exif.tobytes(), **kw)
    with Image.open(path) as stored:
        stored.load()   # a TIFF applies its orientation itself on load (and drops the tag)
        whole, orientation = decode.to_rgb(stored), decode._orientation(stored)
    transpose = decode._ORIENTATION_TRANSPOSE.get(orientation)
    reference = whole.transpose(transpose) if transpose is not None else whole
    assert np.array_equal(np.asarray(decode.load_image(path)), np.asarray(reference))
    for size in (8, (6, 10), 16, 64):
        out_h, out_w = (size, size) if isinstance(size, int) else size
        top, left, h, w = decode._crop_box(reference.height, reference.width, out_h, out_w)
        crop = reference.crop((left, top, left + w, top + h))
        factor = min(h // (2 * out_h), w // (2 * out_w))
        if factor >= 2:
            crop = crop.reduce(factor)
        expected = decode.resize_center_crop(decode.to_tensor(crop), size)
        assert torch.equal(decode.load_tensor(path, size), expected), size
    # brought to a longer side (the localizer's path): the displayed aspect, whatever the stored orientation
    fitted, source_size = decode.load_fitted(path, max_side=20)
    scale = 20 / max(reference.size)
    assert source_size == reference.size
    assert fitted.shape == (3, round(reference.height * scale), round(reference.width * scale))
    full = torch.from_numpy(np.array(reference)).permute(2, 0, 1)
    with decode.open_image(path) as lazy:
        assert lazy.shape == tuple(full.shape)
        assert torch.equal(lazy.to_uint8(), full)
        assert torch.equal(lazy.region(5, 7, 20, 11), full[:, 5:25, 7:18])


def test_a_large_jpeg_is_decoded_at_reduced_scale_and_the_tab_and_cli_paths_agree(files):
    """The 49-MP JPEG is decoded by libjpeg at reduced scale for a detector's input (``draft``; its memory is
    measured through the endpoints above), and ``analyze_file`` (the tab and ``/detect``) and ``predict_files``
    (``detectlab predict``) score the same pixels, as ``load_tensor`` brings them."""
    from detectlab.data.decode import load_tensor

    from detectlab.catalog import load_detector
    from detectlab.detect.analyze import analyze_file
    from detectlab.detect.predict import predict_files

    loaded = load_detector(DETECTOR)
    a = analyze_file(loaded.detector, files["big49.jpg"], loaded.threshold)
    p = predict_files(loaded.detector, [files["big49.jpg"]], loaded.threshold)[0]
    assert abs(a.p_fake - p.p_fake) < 1e-6, (a.p_fake, p.p_fake)
    size = loaded.detector.preprocess.input_size
    assert torch.equal(a.image, load_tensor(files["big49.jpg"], size))


# ================================================================================================
# Bad training settings and a hostile .pt through the run entry points
#
# Bad training settings and a hostile .pt through the run entry points.
#
# Every field of every training config is checked in one place (``TrainConfig``, ``LocalizerConfig``),
# so the config classes, the run queue, the Train tab's ``/train`` and ``/train_localizer`` endpoints
# and the CLI refuse the same values with the same message naming the field — and queue nothing.
# A ``.pt`` uploaded to start a localizer from is never unpickled in the server: with *trust* ticked
# its pickle is read as opcodes only (a non-ultralytics pickle is refused there, unrun), and only the
# training worker process loads it; the form says in words that trusting lets the file run code as
# the server's user.
# ================================================================================================
DEMO = "demo (real + 3 generators)"
DEMO_INPAINT = "demo-inpainted (images + masks)"
_RUN_LEAKS = ("Traceback", "Could not preprocess input", "Unexpected error")

#: (field, value, phrase of the message) for detector runs: TrainConfig, /train, the CLI.
TRAIN_BAD = [
    ("iterations", -5, "iterations must be an integer in [1, "),
    ("epochs", 10**9, "epochs must be an integer in [1, "),
    ("threads", -1, "threads must be an integer in [1, 256], got -1"),
    ("threads", 1_000_000, "threads must be an integer in [1, 256], got 1000000"),
    ("name", "bad\0name", "name must be plain text without control characters; it contains a NUL byte"),
    ("name", "x" * 10_000, "name is too long: 10,000 characters (at most 100)"),
    ("name", "two\nlines", "name must be plain text without control characters"),
    ("data", "folder\0x", "data must be plain text without control characters; it contains a NUL byte"),
    ("generators", ["gan\0"], "generators must be plain text without control characters"),
    ("hflip", "false", "hflip must be true or false, got 'false'"),
    ("augment", {"jpeg_p": 0.5, "jpeg_quality": [0, 100]}, "augment: "),
]

#: (field, value, phrase) for localizer runs: LocalizerConfig, /train_localizer.
LOCALIZER_BAD = [
    ("imgsz", 100_000, "imgsz must be an integer in [32, 1024], got 100000"),
    ("imgsz", 100, "imgsz must be a multiple of 32"),
    ("threads", -1, "threads must be an integer in [0, 256], got -1"),
    ("threads", 1_000_000, "threads must be an integer in [0, 256], got 1000000"),
    ("epochs", 10**9, "epochs must be an integer in [1, 10000], got 1000000000"),
    ("epochs", 0, "epochs must be an integer in [1, 10000], got 0"),
    ("batch", -2, "batch must be an integer in [1, 1024], got -2"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("lr", 0, "lr must be a number in (0, 1), got 0"),
    ("width", 10**6, "width must be an integer in [1, 256]"),
    ("conf", 2, "conf must be a number in [0, 1], got 2"),
    ("workers", -1, "workers must be an integer in [0, 64], got -1"),
    ("trust_weights", "yes", "trust_weights must be true or false, got 'yes'"),
    ("name", "bad\0name", "name must be plain text without control characters; it contains a NUL byte"),
    ("name", "x" * 10_000, "name is too long: 10,000 characters (at most 100)"),
    ("name", "../../escape", "names the checkpoint file"),
    ("weights", "w\0.pt", "weights must be plain text without control characters"),
    ("weights", "model.pkl", "weights must be an ultralytics .pt file"),
    ("data", "d" * 5000, "data is too long: 5,000 characters (at most 4,096)"),
    ("kind", "detector", "kind must be 'localizer'"),
]


def _ids(rows):
    return [f"{f}={v!r}"[:40] for f, v, _ in rows]


# ---------------------------------------------------------------------------- the config classes
@pytest.mark.parametrize("field,value,phrase", TRAIN_BAD, ids=_ids(TRAIN_BAD))
def test_train_config_refuses_every_bad_field(field, value, phrase):
    from detectlab.train.config import TrainConfig, TrainConfigError

    with pytest.raises(TrainConfigError) as err:
        TrainConfig.from_dict(TrainConfig().to_dict() | {field: value})
    assert phrase in str(err.value) and isinstance(err.value, DetectLabError)
    assert len(str(err.value)) < 400, "a long value is not echoed back whole"
    if field not in ("augment", "generators"):  # the form's path: with_overrides (generators: comma text there)
        with pytest.raises(TrainConfigError, match=field):
            TrainConfig().with_overrides(**{field: value})


@pytest.mark.parametrize("field,value,phrase", LOCALIZER_BAD, ids=_ids(LOCALIZER_BAD))
def test_localizer_config_refuses_every_bad_field(field, value, phrase):
    from detectlab.localize import LocalizerConfig, LocalizerConfigError
    from detectlab.train.config import TrainConfigError

    with pytest.raises(LocalizerConfigError) as err:
        LocalizerConfig.from_dict({"kind": "localizer", field: value})
    assert phrase in str(err.value), str(err.value)
    assert isinstance(err.value, TrainConfigError) and isinstance(err.value, DetectLabError)
    assert len(str(err.value)) < 400


def test_good_localizer_settings_pass_and_come_back_as_numbers():
    from detectlab.localize import LocalizerConfig
    from detectlab.localize.defaults import LOCALIZER_DEFAULTS

    cfg = LocalizerConfig.from_dict({"arch": "unet", "epochs": 3.0, "imgsz": 64.0, "threads": 0, "name": " run-x "})
    assert (cfg.epochs, cfg.imgsz, cfg.threads, cfg.name) == (3, 64, 0, "run-x")
    assert isinstance(cfg.epochs, int) and isinstance(cfg.imgsz, int)
    for name, fields in LOCALIZER_DEFAULTS.items():
        assert LocalizerConfig.from_dict({**fields, "name": name}).name == name


def test_the_run_queue_refuses_bad_fields_and_run_names(tmp_path):
    """``RunManager.submit`` (the Train tab's, the Attack tab's and the API's way in) queues nothing bad."""
    from detectlab.runs import RunManager
    from detectlab.train.config import TrainConfig, TrainConfigError

    m = RunManager(tmp_path / "home")
    try:
        good = TrainConfig(data=str(tmp_path)).to_dict()
        for field, value, phrase in TRAIN_BAD:
            with pytest.raises(TrainConfigError) as err:
                m.submit(good | {field: value})
            assert phrase in str(err.value)
        for field, value, phrase in LOCALIZER_BAD:
            if field == "kind":
                continue  # another kind is a detector config: refused there, as an unknown setting
            with pytest.raises(TrainConfigError) as err:
                m.submit({"kind": "localizer", "arch": "yolov8n-seg", field: value})
            assert phrase in str(err.value)
        for name, phrase in (("a\0b", "run name must be plain text without control characters; it contains a NUL"),
                             ("y" * 10_000, "run name is too long: 10,000 characters (at most 100)"),
                             ("bell\x07", "control character U+0007")):
            with pytest.raises(TrainConfigError) as err:
                m.submit(good, name=name)
            assert phrase in str(err.value)
        assert m.store.list() == []  # nothing was queued
    finally:
        m.close()


@pytest.mark.parametrize("flags,phrase", [
    (["--iterations", "-5"], "iterations must be an integer in [1, "),
    (["--epochs", str(10**9)], "epochs must be an integer in [1, "),
    (["--threads", "-1"], "threads must be an integer in [1, 256], got -1"),
    (["--threads", "1000000"], "threads must be an integer in [1, 256], got 1000000"),
    (["--name", "x" * 10_000], "too long"),  # the CLI's own path-text check may answer first
    (["--name", "tab\there"], "name must be plain text without control characters"),
])
def test_the_cli_refuses_bad_fields_before_queueing(flags, phrase, capsys, tmp_path, monkeypatch):
    from detectlab.cli import main
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path))
    assert main(["train", *flags]) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert not runs_db(tmp_path).exists() or RunStore(runs_db(tmp_path)).list() == []


# ---------------------------------------------------------------------------- the API endpoints


def _queued_ids() -> set[str]:
    from detectlab.ui import state

    return {r.id for r in state.manager().store.list()}


def _api_refusal(client, **kwargs) -> str:
    """The message an endpoint refuses a call with (the client raises it)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(**kwargs)
    return str(err.value)


def _refused(message: str, phrase: str) -> None:
    assert phrase in message, message[:300]
    for leak in _RUN_LEAKS:
        assert leak not in message, message[:300]
    assert len(message) < 600, "a 10,000-character value is not echoed back"


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(iterations=-5), "iterations must be an integer in [1, "),
    (dict(epochs=10**9), "epochs must be an integer in [1, "),
    (dict(name="bad\0name"), "name must be plain text without control characters; it contains a NUL byte"),
    (dict(name="x" * 10_000), "name is too long: 10,000 characters (at most 100)"),
], ids=["iterations=-5", "epochs=1e9", "name-NUL", "name-10000"])
def test_train_endpoint_refuses_and_queues_nothing(kwargs, phrase, client):
    before = _queued_ids()
    _refused(_api_refusal(client, preset=None, data=DEMO, folder="", **kwargs, api_name="/train"), phrase)
    assert _queued_ids() == before


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(imgsz=100_000), "imgsz must be an integer in [32, 1024], got 100000"),
    (dict(threads=-1), "threads must be an integer in [0, 256], got -1"),
    (dict(threads=1_000_000), "threads must be an integer in [0, 256], got 1000000"),
    (dict(epochs=10**9), "epochs must be an integer in [1, 10000], got 1000000000"),
    (dict(name="bad\0name"), "run name must be plain text without control characters; it contains a NUL byte"),
    (dict(name="x" * 10_000), "run name is too long: 10,000 characters (at most 100)"),
], ids=["imgsz=100000", "threads=-1", "threads=1e6", "epochs=1e9", "name-NUL", "name-10000"])
def test_train_localizer_endpoint_refuses_and_queues_nothing(kwargs, phrase, client):
    before = _queued_ids()
    _refused(_api_refusal(client, arch="unet", data=DEMO_INPAINT, folder="", weights=None, **kwargs,
                          api_name="/train_localizer"), phrase)
    assert _queued_ids() == before


# ---------------------------------------------------------------------------- a hostile .pt
def _pid_recorder(folder: Path, names_ultralytics: bool) -> bytes:
    """A pickle whose loading writes ``folder/<pid of the loading process>``: proof of where code ran.

    Hand-written (protocol 0) so that it can name ultralytics' SegmentationModel without importing it.
    """
    code = f"import os; open(os.path.join({str(folder)!r}, str(os.getpid())), 'w').close()"
    data = b"(dp0\nVpayload\np1\ncbuiltins\nexec\np2\n(V" + code.encode("raw_unicode_escape") + b"\np3\ntp4\nRp5\ns"
    if names_ultralytics:
        data += b"Vmodel\np6\ncultralytics.nn.tasks\nSegmentationModel\np7\ns"
    return data + b"."


def test_the_pid_recorder_pickle_runs_where_it_is_loaded(tmp_path):
    """The test's own probe works: unpickled in another process, it names that process."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "probe.pt").write_bytes(_pid_recorder(marks, names_ultralytics=False))
    proc = subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))",
                           str(tmp_path / "probe.pt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(list(marks.iterdir())) == 1 and str(os.getpid()) not in os.listdir(marks)


def test_trusting_a_non_ultralytics_pickle_never_runs_it_in_the_server(client, tmp_path):
    """Through /train_localizer with trust ticked: refused from its opcodes, nothing in it ran, nothing queued."""
    from gradio_client import handle_file

    marks = tmp_path / "marks"
    marks.mkdir()
    evil = tmp_path / "evil.pt"
    evil.write_bytes(_pid_recorder(marks, names_ultralytics=False))
    before = _queued_ids()
    for trust in (True, False):
        message = _api_refusal(client, arch="yolov8n-seg", data=DEMO_INPAINT, folder="", epochs=1,
                               weights=handle_file(str(evil)), trust=trust, api_name="/train_localizer")
        _refused(message, "evil.pt")
        if trust:
            assert "not an ultralytics checkpoint" in message and "nothing in it ran" in message, message
        else:
            assert "run code as the server" in message and "trust" in message, message
    assert list(marks.iterdir()) == [], "the pickle's code ran in the server process"
    assert _queued_ids() == before


def test_a_trusted_pt_is_loaded_only_by_the_worker(tmp_path, monkeypatch, demo_root):
    """A pickle that passes the server's opcode check (it names ultralytics' SegmentationModel) is queued
    without being loaded; if its code runs at all, it runs in the training worker process, never here."""
    from detectlab.catalog import DEMO_INPAINT_LABEL
    from detectlab.runs import RunManager
    from detectlab.ui import state, train_tab

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    marks = tmp_path / "marks"
    marks.mkdir()
    upload = tmp_path / "upload" / "looks-like-yolo.pt"
    upload.parent.mkdir()
    upload.write_bytes(_pid_recorder(marks, names_ultralytics=True))
    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    monkeypatch.setattr(state, "manager", lambda: m)
    try:
        run_id, status, *_ = train_tab.launch_localizer("yolov8n-seg", DEMO_INPAINT_LABEL, "", 1, 64, 8, 0, 1,
                                                        str(upload), True, "trusted-upload")
        assert "Error" not in status, status
        assert list(marks.iterdir()) == [], "the server unpickled the upload"
        record = m.store.get(run_id)
        assert record.config["trust_weights"] is True
        kept = Path(record.config["weights"])
        assert kept.exists() and kept.parent == tmp_path / "home" / "weights"  # a copy the worker will load
        done = m.store.wait_for(run_id, lambda r: r.status in ("finished", "failed", "cancelled"), 240)
        assert done.status == "failed"  # not a real checkpoint: the worker's load fails, the run says why
        ran_in = {int(p.name) for p in marks.iterdir()}
        assert os.getpid() not in ran_in, "the pickle ran in the server process"
        assert ran_in <= {done.pid}, (ran_in, done.pid)  # if it ran at all, in the worker
    finally:
        m.close()


def test_the_form_says_trust_lets_the_file_run_code_as_the_servers_user(app_url):
    """The served page's text, not just a docstring: the tick box and the note say what trusting means."""
    import httpx

    from detectlab.ui import train_tab

    assert "run code as the server's user" in train_tab.TRUST_LABEL
    assert "run any code it carries, as the user this server runs as" in train_tab.TRUST_NOTE
    page = httpx.get(f"{app_url.rstrip('/')}/config", timeout=60).text
    assert "run code as the server's user" in page.replace("\\u0027", "'")
    assert "as the user this server runs as" in page


def test_opcode_check_accepts_the_shipped_yolo_and_refuses_other_files(tmp_path):
    """``inspect_ultralytics_pt`` reads opcodes only: the shipped YOLOv8-seg passes; a non-ultralytics pickle,
    a detection model, garbage and a renamed file are refused naming the file, and nothing runs."""
    from detectlab import config
    from detectlab.errors import CheckpointError
    from detectlab.localize.yolo import inspect_ultralytics_pt

    assert inspect_ultralytics_pt(config.CHECKPOINT_DIR / "localizer-yolov8n-seg.pt") == "SegmentationModel"
    marks = tmp_path / "marks"
    marks.mkdir()
    cases = {
        "evil.pt": (_pid_recorder(marks, names_ultralytics=False), "not an ultralytics checkpoint"),
        "detect.pt": (b"cultralytics.nn.tasks\nDetectionModel\n.", "not a segmentation model"),
        "garbage.pt": (b"\xff not a pickle" * 16, "cannot be read as a torch checkpoint"),
        "truncated.pt": (_pid_recorder(marks, names_ultralytics=True)[:40], "cannot be read as a torch checkpoint"),
        "empty.pt": (b"", "empty (0 bytes)"),
        "model.pkl": (b"N.", "ultralytics .pt file"),
    }
    for name, (data, phrase) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            inspect_ultralytics_pt(tmp_path / name)
        assert phrase in str(err.value) and name in str(err.value), str(err.value)
    assert list(marks.iterdir()) == []
    t0 = time.monotonic()
    inspect_ultralytics_pt(config.CHECKPOINT_DIR / "localizer-yolov8n-seg.pt")
    assert time.monotonic() - t0 < 5


# ================================================================================================
# Every file route of the running app; server paths to every endpoint that names a model
#
# Every route that can return a file, walked on the running app; server paths to every endpoint that names a model.
# ================================================================================================
SECRET = b"<script>document.title='owned-7f3a'</script>"


@pytest.fixture(scope="module")
def served(demo_root):
    from detectlab.ui.app import serve

    s = serve(host="127.0.0.1", port=0)
    yield s
    s.close()


def _routes(app, prefix: str = ""):
    """(path template, methods) of every route under ``app``, mounts followed."""
    for route in getattr(app, "routes", []):
        included = getattr(route, "original_router", None)  # FastAPI's include_router(), as Gradio's API uses
        if included is not None:
            yield from _routes(included, prefix + (route.include_context.prefix or ""))
            continue
        path = prefix + getattr(route, "path", "")
        sub = getattr(route, "app", None)
        if getattr(route, "routes", None) is not None and not getattr(route, "methods", None):
            yield from _routes(route, path)
        elif sub is not None and not getattr(route, "methods", None) and hasattr(sub, "routes"):
            yield from _routes(sub, path)
        else:
            yield path, set(getattr(route, "methods", None) or ())


def _file_routes(served) -> list[str]:
    """GET routes with a parameter that can carry a file system path (``{name:path}``)."""
    app = served.server.config.app
    while not hasattr(app, "routes"):
        app = app.app  # through our middleware
    return sorted({p for p, methods in _routes(app) if "GET" in methods and re.search(r"\{\w+:path\}", p)})


@pytest.fixture(scope="module")
def hostile_files():
    from detectlab import config

    root = config.datasets_dir() / f"hostile-{uuid.uuid4().hex[:6]}"
    (root / "real").mkdir(parents=True)
    files = {}
    for name in ("real/evil.html", "real/evil.svg", "real/evil.htm", "real/run.js", "manifest.json"):
        (root / name).write_bytes(SECRET)
        files[name] = root / name
    Image.new("RGB", (8, 8), (10, 200, 30)).save(root / "real" / "ok.png")
    files["real/ok.png"] = root / "real" / "ok.png"
    # shipped files in the assets data root: the demo's manifest and generator weights
    files["assets manifest"] = config.DEMO_DIR / "manifest.json"
    files["assets weights"] = next(config.GENERATOR_DIR.glob("*.safetensors"))
    return files


def test_every_file_route_serves_only_rasters_from_the_data_roots(served, hostile_files):
    routes = _file_routes(served)
    assert any("file=" in r for r in routes) and any(r.endswith("/file/{path:path}") for r in routes), routes
    base = served.url.rstrip("/")
    png_served = 0
    with httpx.Client(timeout=30) as http:
        for route in routes:
            for name, path in hostile_files.items():
                url = base + re.sub(r"\{\w+:path\}", str(path), re.sub(r"\{\w+\}", "x", route))
                r = http.get(url)
                assert r.headers.get("x-content-type-options") == "nosniff", (url, r.status_code)
                if name.endswith(".png"):
                    png_served += r.status_code == 200
                    continue
                # nothing of a non-raster file under a data root leaves the server, on any route
                assert r.status_code != 200 or path.read_bytes() not in r.content, (url, r.status_code)
                assert SECRET not in r.content, url
                if r.status_code == 200:
                    assert not r.headers.get("content-type", "").startswith(("text/html", "image/svg")), url
    assert png_served >= 2  # the raster itself is still served, by /file= and by /file/


def test_a_served_upload_of_an_active_type_is_a_download(served):
    """A file in Gradio's own cache (an upload, an output) is Gradio's: served, but never as a page."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    page = folder / "figure.html"
    page.write_bytes(SECRET)
    for route in ("file=", "file/"):
        r = httpx.get(f"{served.url}gradio_api/{route}{page}", timeout=30)
        if r.status_code == 200:
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment")
        assert r.headers["x-content-type-options"] == "nosniff"


SERVER_PATHS = ["/etc/shadow", "/etc/passwd", "checkpoints/cnn-resnet18.safetensors", "~/.ssh/id_rsa",
                "../../checkpoints/manifest.json"]


def _endpoint_calls(image, path):
    from gradio_client import handle_file

    img = handle_file(str(image))
    return {
        "/detect (detector)": dict(image=img, detector=path, api_name="/detect"),
        "/degrade_score (detector)": dict(image=img, detector=path, api_name="/degrade_score"),
        "/attack (detector)": dict(image=img, detector=path, api_name="/attack"),
        "/localize (localizer)": dict(image=img, mask=None, localizer=path, api_name="/localize"),
        "/localize (detector)": dict(image=img, mask=None, localizer="unet-small", detector=path, api_name="/localize"),
    }


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_no_endpoint_takes_a_server_path_as_a_model(served, demo_root, path):
    """Whether the file exists or not, the answer is the same sentence: the API learns nothing of the disk."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from detectlab import config

    if path.startswith("checkpoints/"):
        path = str(config.REPO_ROOT / path)  # a real, loadable checkpoint, named by its full path
    image = next((demo_root / "real").glob("*.png"))
    client = Client(served.url, verbose=False)
    for endpoint, kwargs in _endpoint_calls(image, path).items():
        with pytest.raises(AppError) as err:
            client.predict(**kwargs)
        text = str(err.value)
        assert "not a file path on the server" in text, (endpoint, text[:300])
        assert "cannot be loaded" not in text and "no such file" not in text.lower(), (endpoint, text[:300])


# ----------------------------------------------------------------------------- one queue for the app and the CLI
# The run store's helpers and tiny data set come from the queue's own tests (tests/test_runs.py).
from test_runs import _DEAD_PID, _Watch, _cfg, _ended, _wait, tiny_data  # noqa: E402, F401
from detectlab.runs import RunManager, RunStore  # noqa: E402
from detectlab.train.layout import runs_db  # noqa: E402


@pytest.mark.slow  # worker processes train for real
def test_cli_train_waits_for_the_apps_worker_and_never_runs_alongside(tmp_path, tiny_data):
    """`detectlab train` in a terminal joins the app's queue: it waits (saying for which run)
    while the app's worker executes, runs in its turn, and the app's next run waits for it."""
    home = tmp_path / "home"
    m = RunManager(home, poll_seconds=0.2)
    watch = _Watch(m.store)
    cli = None
    try:
        first = m.submit(_cfg(tiny_data, iterations=1_000_000), name="app-first")  # runs until cancelled
        _wait(m.store, first.id, _ended("running"), 120)
        env = {**os.environ, "DETECTLAB_HOME": str(home), "OMP_NUM_THREADS": "1"}
        cli = subprocess.Popen([sys.executable, "-m", "detectlab", "train", "--data", str(tiny_data), "--arch",
                                "resnet18", "--input-size", "32", "--iterations", "10", "--batch-size", "8",
                                "--threads", "1", "--name", "terminal"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        out = ChildOutput(cli.stdout)
        term = m.store.wait_until(lambda: next((r for r in m.store.list() if r.name == "terminal"), None), 120,
                                  "the CLI did not queue its run")
        assert term.from_terminal and term.owner_pid == cli.pid
        assert out.wait_for(re.escape(f"waiting for run {first.id}"), 60), out.text[-2000:]
        # the terminal keeps waiting while the app's worker executes: through two of the worker's heartbeats
        beat = m.store.get(first.id).heartbeat
        for _ in range(2):
            now = m.store.wait_until(lambda: (r := m.store.get(first.id)).heartbeat != beat and r, 30,
                                     "the app's worker stopped beating")
            beat = now.heartbeat
            assert m.store.get(term.id).status == "queued" and now.status == "running"
        after = m.submit(_cfg(tiny_data, iterations=10), name="app-after")  # queued behind the terminal's run
        m.cancel(first.id)
        _wait(m.store, term.id, lambda r: r.status != "queued", 60)
        def terminal_done() -> bool:  # the app's next run waits for the terminal's (read before its status: no race)
            m._tick()
            waiting, spawned = m.store.get(after.id).status, m._proc_run
            if m.store.get(term.id).status != "running":
                return True
            assert waiting == "queued" and spawned in (None, first.id), (waiting, spawned)
            return False

        m.store.wait_until(terminal_done, 240, "the terminal's run did not end")
        assert cli.wait(240) == 0, out.text[-2000:]
        out.thread.join(5)
        done = _wait(m.store, after.id, lambda r: r.status in ("finished", "failed", "cancelled"), 240)
        assert done.status == "finished", done.error
    finally:
        most = watch.close()
        m.close()
        if cli is not None:
            cli.kill()
    runs = sorted(m.store.list(), key=lambda r: r.started)
    assert [r.name for r in runs] == ["app-first", "terminal", "app-after"]
    assert [r.status for r in runs] == ["cancelled", "finished", "finished"]
    for a, b in zip(runs, runs[1:]):
        assert a.finished <= b.started, f"run {a.name} ({a.started}-{a.finished}) overlaps {b.name} ({b.started})"
    assert most == 1, f"{most} runs were running at once"
    assert m.store.get(runs[1].id).pid == cli.pid  # the terminal executed its own run


@pytest.mark.slow  # worker processes train for real
def test_started_app_reaps_dead_runs_and_starts_the_queue_with_no_tab_open(tmp_path, tiny_data):
    """After a restart the watcher runs from start-up, not from the first Train-tab call. A run
    left `running` by a dead process ends failed at once, one whose process stopped (alive, silent) ends
    failed after the heartbeat timeout, and the queued run then starts — no page opened, no API called."""
    import sqlite3

    home = tmp_path / "home"
    store = RunStore(runs_db(home))
    store.create("dead", {"arch": "resnet18"})
    store.mark_running("dead", pid=_DEAD_PID)
    store.create("stopped", {"arch": "resnet18"})
    queued = store.create("queued", _cfg(tiny_data, iterations=10), owner="app", owner_pid=_DEAD_PID)
    # a worker that beats its heartbeat (the worker's own heartbeat thread), SIGSTOPped once the app is up
    beater = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys\nfrom detectlab.runs.store import RunStore\nfrom detectlab.runs.worker import heartbeat\n"
        "with heartbeat(RunStore(sys.argv[1]), 'stopped', every=0.3):\n    signal.pause()\n"), str(store.path)])
    store.mark_running("stopped", pid=beater.pid)
    env = {**os.environ, "DETECTLAB_HOME": str(home), "DETECTLAB_HEARTBEAT_TIMEOUT": "10", "OMP_NUM_THREADS": "1"}
    app = subprocess.Popen([sys.executable, "-c", (
        "import signal\nfrom detectlab.ui.app import serve\nserved = serve(host='127.0.0.1', port=0)\n"
        "print(served.url, flush=True)\nsignal.pause()\n")], env=env, stdout=subprocess.PIPE, text=True)

    def status(run_id: str) -> str:  # a plain read: the test itself must not reap anything
        with sqlite3.connect(store.path, timeout=30) as c:
            return c.execute("SELECT status || ' ' || COALESCE(error, '') FROM runs WHERE id=?",
                             (run_id,)).fetchone()[0]

    def within(seconds: float, run_id: str, until) -> str:  # wakes when the database changes
        return RunStore(store.path).wait_until(lambda: text if until(text := status(run_id)) else None,
                                               seconds, lambda: f"run {run_id}: {status(run_id)}")

    try:
        import select

        assert select.select([app.stdout], [], [], 300)[0], "the app did not start within 300 s"
        assert app.stdout.readline().startswith("http://"), "the app did not start"
        os.kill(beater.pid, signal.SIGSTOP)  # alive, but its heartbeat stops now
        t0 = time.monotonic()
        assert "ended without recording" in within(5, "dead", lambda s: s.startswith("failed"))
        text = within(50, "stopped", lambda s: s.startswith("failed"))
        assert "no heartbeat" in text and time.monotonic() - t0 < 50
        within(60, queued.id, lambda s: not s.startswith("queued"))  # the queue moves without a visit
        assert within(240, queued.id, lambda s: not s.startswith("running")).startswith("finished")
    finally:
        app.kill()
        app.wait(10)
        beater.kill()
        with sqlite3.connect(store.path, timeout=30) as c:
            pid = c.execute("SELECT pid FROM runs WHERE id=? AND status='running'", (queued.id,)).fetchone()
        if pid and pid[0] != beater.pid:
            os.kill(pid[0], signal.SIGKILL)
