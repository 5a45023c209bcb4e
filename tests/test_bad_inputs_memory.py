"""Bounded memory for images that are small on disk and huge decoded (issue 23, items 2 and 11).

A 460-KB PNG can hold 7071×7071 pixels of 16-bit RGBA (just under the 50-MP pixel guard): each
entry point that takes an image must decode it in bounded memory (budgeted by pixels and by
bytes, converted band by band, brought straight to the size the step needs), N concurrent
requests must not multiply the peak (a byte-budget semaphore), and the server's memory must come
back afterwards (``malloc_trim``). Images over PIL's own bomb limit get DetectLab's message, and
``DETECTLAB_MAX_PIXELS`` is the limit that applies.

Server memory is measured on an app server of its own, in a subprocess whose resident memory a
thread samples every 10 ms (the suite's own server shares the pytest process with everything
else); the CLI runs in a fresh subprocess, polled the same way. Tolerances are stated at each
assertion, with the figures measured before and after the change (2-core CPU box).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

MB = 2**20
DETECTOR = "spectrum-durrall"       # the cheapest detector
CNN = "cnn-resnet18"                 # tiles and attacks need the CNN
LOCALIZER = "shipped: unet-small"    # no ultralytics import, no pickle
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
    time.sleep(1)
    yield url, sampler, sampler.now()
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
        return client.predict("demo (real + 3 generators)", "", ["pixel-shuffle"], 2, False, 0, f, False,
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
    time.sleep(0.5)
    peak, after = sampler.peak - baseline, sampler.now() - baseline
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
    back within 256 MB of the baseline 3 s after the last answer (before: 2.6 GB kept; after: 30 MB).
    """
    from gradio_client import Client

    url, sampler, _ = server
    clients = [Client(url, verbose=False) for _ in range(3)]
    time.sleep(0.5)
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
    time.sleep(3)
    peak, after = sampler.peak - baseline, sampler.now() - baseline
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
    held, most = [0], [0]
    lock = threading.Lock()

    def work(nbytes):
        with budget.reserve(nbytes):
            with lock:
                held[0] += nbytes
                most[0] = max(most[0], held[0])
            time.sleep(0.05)
            with budget.reserve(nbytes):   # nested in its own reservation: must not wait for itself
                pass
            with lock:
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
