"""The bad-input battery (issue 13): every hostile or unusual file through every entry point.

Each input goes through each CLI command that takes it (``main(argv)`` in-process, a real
subprocess where peak memory is measured), each API endpoint (``gradio_client`` against the
session's app server) and each upload widget's handler (called in-process). A bad input must
get DetectLab's own message (a phrase naming what is wrong), never a traceback, Gradio's
"Could not preprocess input" or a server path (the upload cache, the zip staging folder); a
good-but-unusual image (1×1, CMYK, 16-bit, palette + alpha, animated) must be scored. The
server must keep serving, and memory must stay bounded.

Also here, because it needs the same server: the one-decode-path test — ``/detect``, the
Detect tab's handler and ``detectlab predict`` give the same P(fake) for unusual files.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import resource
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

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
def _run_polling_rss(argv: list[str], timeout: float = 300) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``argv`` and poll its resident memory every 20 ms; (result, peak bytes).

    Polled rather than read from ``RUSAGE_CHILDREN``: a child forked from this (large) test
    process carries the parent's high-water mark across ``exec``.
    """
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched, peak, start = psutil.Process(proc.pid), 0, time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            break
        try:
            proc.wait(timeout=0.02)  # a sample every 20 ms, ending the moment the process exits
            break
        except subprocess.TimeoutExpired:
            continue
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), peak


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
