"""Hostile and unusual input: bounded memory, no active content from uploads, thread-safe heatmaps."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.data import load_tensor
from detectlab.data.archive import extract_zip
from detectlab.data.decode import MAX_ASPECT_RATIO, load_image, probe_image, resize_center_crop
from detectlab.errors import ImageDecodeError


def _png(size, mode="RGB", color=0) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("size", [(65535, 1), (1, 20000), (2100, 100)])
def test_thin_images_are_refused_from_the_header(size):
    data = _png(size)
    assert len(data) < 5000  # a few hundred bytes that used to allocate gigabytes
    for fn in (load_image, probe_image, lambda d: load_tensor(d, 128)):
        with pytest.raises(ImageDecodeError, match=r"aspect ratio .* over the limit of 20:1"):
            fn(data)


def test_aspect_ratio_at_the_limit_is_scored_within_the_output_size():
    w = int(MAX_ASPECT_RATIO) * 10
    t = load_tensor(_png((w, 10), color=(200, 10, 10)), 128)
    assert t.shape == (3, 128, 128)
    assert torch.allclose(t[:, 64, 64], torch.tensor([200, 10, 10]) / 255, atol=1e-6)


@pytest.mark.parametrize("shape,size", [((3, 7, 4000), 128), ((3, 300, 200), (64, 96)), ((2, 3, 50, 50), 32)])
def test_resize_center_crop_crops_first_and_keeps_the_centre(shape, size):
    x = torch.rand(shape)
    out = resize_center_crop(x, size)
    oh, ow = (size, size) if isinstance(size, int) else size
    assert out.shape[-2:] == (oh, ow) and out.shape[:-2] == x.shape[:-2]
    assert 0 <= out.min() and out.max() <= 1
    # a constant image stays constant whatever its shape
    c = resize_center_crop(torch.full(shape, 0.25), size)
    assert torch.allclose(c, torch.full_like(c, 0.25), atol=1e-6)


def test_centre_crop_matches_resize_then_crop_on_a_smooth_image():
    # a smooth ramp: both orders agree away from the crop borders' filter support
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 200), torch.linspace(0, 1, 400), indexing="ij")
    x = torch.stack([xx, yy, (xx + yy) / 2])
    ours = resize_center_crop(x, 100)
    ref = torch.nn.functional.interpolate(x[None], size=(100, 200), mode="bilinear", antialias=True,
                                          align_corners=False)[0][:, :, 50:150]
    assert (ours - ref)[:, 5:-5, 5:-5].abs().max() < 0.01


def test_peak_memory_of_a_large_image_is_bounded(tmp_path):
    """A 49-MP photo through the scoring path stays far below 2 GB peak RSS (measured in a fresh process).

    The peak is the new process's own ``VmHWM``: ``ru_maxrss`` is not, since Linux carries the
    parent's high-water mark into a child across exec, and this test's parent (the suite's
    process) may itself be past 2 GB by the time it runs.
    """
    path = tmp_path / "big.png"
    Image.new("RGB", (7000, 7000), (30, 60, 90)).save(path)
    code = (
        "import re, torch, sys\n"
        "from detectlab.data import load_tensor\n"
        "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "base = hwm()\n"
        f"t = load_tensor(sys.argv[1], 128)\n"
        "assert t.shape == (3, 128, 128)\n"
        "print(base, hwm())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    base_kb, peak_kb = map(int, out.stdout.split())
    assert peak_kb < 2 * 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    # decoding holds the 147-MB RGB image (plus a crop); never a 49-MP float tensor (588 MB)
    assert peak_kb - base_kb < 450 * 1024, f"decode added {(peak_kb - base_kb) / 1024:.0f} MB"


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return path


def test_zip_import_keeps_only_images_and_unwraps_the_wrapper_folder(tmp_path):
    png = _png((8, 8))
    archive = _zip(tmp_path / "mydata.zip", [
        ("mydata/real/a.png", png), ("mydata/fake/b.png", png),
        ("mydata/real/x.html", b"<script>alert(document.domain)</script>"),
        ("mydata/fake/y.svg", b"<svg onload='alert(1)'/>"), ("mydata/.DS_Store", b"\0"),
        ("mydata/real/Thumbs.db", b"\0"), ("__MACOSX/mydata/._a.png", b"\0"), ("mydata/run.sh", b"rm -rf /"),
    ])
    skipped: list[str] = []
    root = extract_zip(archive, tmp_path / "out" / "mydata", skipped=skipped)
    assert root == tmp_path / "out" / "mydata"
    stored = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert stored == ["fake/b.png", "real/a.png"]
    assert {"mydata/real/x.html", "mydata/fake/y.svg", "mydata/run.sh"} <= set(skipped)


def test_gradcam_is_safe_under_concurrent_requests_on_one_model():
    from detectlab.explain import heatmaps
    from detectlab.models import create_detector

    torch.manual_seed(0)
    det = create_detector("resnet18", False, 64).eval()
    images = [torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    expected = [heatmaps(det, x)[0][0] for x in images]
    # every thread's forward pass meets the others inside the target layer, so all hooks fire
    # while all requests are in flight: the interleaving a busy server produces, made certain
    meet = threading.Barrier(len(images), timeout=60)

    def rendezvous(*_):
        meet.wait()  # returns None: the layer's inputs stay as they are

    det.heatmap_targets()[0].module.register_forward_pre_hook(rendezvous)
    errors, results = [], {}

    def work(k):
        try:
            for _ in range(4):
                got = heatmaps(det, images[k])[0][0]
                results.setdefault(k, []).append(got)
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k, maps in results.items():
        for m in maps:
            assert np.allclose(m.numpy(), expected[k].numpy(), atol=1e-5)


def test_decoding_ignores_another_librarys_image_open_patch(tmp_path):
    """ultralytics replaces PIL.Image.open process-wide; DetectLab's messages must not change."""
    code = (
        "import sys\n"
        "from detectlab.errors import ImageDecodeError\n"
        "from detectlab.data import load_image\n"
        "import ultralytics  # patches PIL.Image.open\n"
        "import PIL.Image\n"
        "assert PIL.Image.open.__module__ != 'PIL.Image'\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ImageDecodeError as e:\n"
        "    print(e)\n"
    )
    path = tmp_path / "notes.png"
    path.write_text("this is text, not an image")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert "not an image" in out.stdout and "pi_heif" not in out.stdout


def test_image_input_is_drawn_by_gradios_image_widget_with_its_properties():
    """The browser gets the properties gr.Image's widget reads; without them the tab holding it stays blank."""
    from detectlab.ui.widgets import ImageInput

    widget = ImageInput(visible=False)
    cfg = widget.get_config()
    assert widget.get_block_name() == "image"
    assert cfg["sources"] == ["upload"] and cfg["type"] == "filepath" and cfg["image_mode"] is None
    assert cfg["buttons"] and cfg["visible"] is False
