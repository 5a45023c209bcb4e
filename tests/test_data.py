"""Tests for detectlab.data: decoding, layouts, splits, archives, torch datasets.

All images are made inside the tests (tmp_path); nothing is downloaded.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from detectlab.data import (
    DetectionDataset,
    ImageFolderDataset,
    MaskedDataset,
    MaskedImageDataset,
    Sample,
    discover,
    extract_zip,
    load_image,
    load_mask,
    load_tensor,
    probe_image,
    split,
    split_files,
    split_summary,
    to_pil,
    to_tensor,
)
from detectlab.errors import DatasetError, ImageDecodeError

# --------------------------------------------------------------------------- helpers


def save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def png_bytes(color=(10, 20, 30), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def noise_image(mode="RGB", size=(32, 24), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), mode)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height, with a tiny (invalid) IDAT: a bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- decode: modes

GRADIENT16 = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
GRADIENT16_AS_8 = np.round(GRADIENT16 / 257.0)


def _case_l():
    a = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return Image.fromarray(a, "L"), "PNG", np.repeat(a[..., None], 3, axis=2)


def _case_la():
    a = np.zeros((4, 4, 2), np.uint8)
    a[..., 0] = 40
    a[:2, :, 1] = 255  # top opaque, bottom fully transparent
    expected = np.full((4, 4, 3), 255, np.uint8)
    expected[:2] = 40
    return Image.fromarray(a, "LA"), "PNG", expected


def _case_rgba():
    a = np.zeros((4, 4, 4), np.uint8)  # transparent black: must become white, not black
    a[0, 0] = (200, 10, 10, 255)
    a[0, 1] = (0, 0, 0, 128)
    expected = np.full((4, 4, 3), 255, np.uint8)
    expected[0, 0] = (200, 10, 10)
    expected[0, 1] = 127
    return Image.fromarray(a, "RGBA"), "PNG", expected


def _palette(transparent: bool):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    im.putpixel((1, 1), 1)
    expected = np.tile(np.array([10, 20, 30], np.uint8), (4, 4, 1))
    expected[1, 1] = (200, 100, 50)
    kw = {}
    if transparent:
        kw["transparency"] = 0
        expected = np.full((4, 4, 3), 255, np.uint8)
        expected[1, 1] = (200, 100, 50)
    return im, "PNG", expected, kw


def _case_cmyk():
    a = np.zeros((2, 4, 4), np.uint8)
    a[0, 1] = (255, 0, 0, 0)    # cyan
    a[0, 2] = (0, 0, 0, 255)    # black
    a[0, 3] = (0, 255, 255, 0)  # red
    expected = np.full((2, 4, 3), 255, np.uint8)
    expected[0, 1] = (0, 255, 255)
    expected[0, 2] = 0
    expected[0, 3] = (255, 0, 0)
    return Image.fromarray(a, "CMYK"), "TIFF", expected


def _case_16(mode: str, fmt: str):
    arr = {"I;16": GRADIENT16, "I;16B": GRADIENT16.astype(">u2"),
           "I": GRADIENT16.astype(np.int32)}[mode]
    im = Image.fromarray(arr)
    assert im.mode == mode
    return im, fmt, np.repeat(GRADIENT16_AS_8[..., None], 3, axis=2)


def _case_f():
    values = (GRADIENT16 / 65535.0).astype(np.float32)
    return Image.fromarray(values, "F"), "TIFF", np.repeat(GRADIENT16_AS_8[..., None], 3, axis=2)


def _case_bilevel():
    a = np.zeros((4, 4), bool)
    a[1] = True
    grey = (a * 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("1"), "PNG", np.repeat(grey[..., None], 3, 2)


MODE_CASES = {
    "L": _case_l,
    "LA-transparent": _case_la,
    "RGBA-transparent-black": _case_rgba,
    "P": lambda: _palette(False),
    "P-transparency": lambda: _palette(True),
    "CMYK": _case_cmyk,
    "I;16-png": lambda: _case_16("I;16", "PNG"),
    "I;16B-tiff": lambda: _case_16("I;16B", "TIFF"),
    "I-tiff": lambda: _case_16("I", "TIFF"),
    "F-tiff": _case_f,
    "1": _case_bilevel,
}


@pytest.mark.parametrize("case", MODE_CASES)
def test_every_mode_converts_to_rgb_with_correct_values(tmp_path, case):
    made = MODE_CASES[case]()
    im, fmt, expected = made[:3]
    kw = made[3] if len(made) > 3 else {}
    path = save(im, tmp_path / f"img.{fmt.lower()}", format=fmt, **kw)
    out = load_image(path)
    assert out.mode == "RGB"
    got = np.asarray(out).astype(int)
    assert got.shape == expected.shape
    assert np.abs(got - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("source_kind", ["path", "str", "bytes", "bytesio"])
def test_load_image_sources(tmp_path, source_kind):
    path = save(noise_image(), tmp_path / "a.png")
    source = {"path": path, "str": str(path), "bytes": path.read_bytes(),
              "bytesio": io.BytesIO(path.read_bytes())}[source_kind]
    out = load_image(source)
    assert np.array_equal(np.asarray(out), np.asarray(noise_image()))


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    im = Image.new("RGB", (4, 2), (0, 0, 255))
    im.putpixel((0, 0), (255, 0, 0))  # red marks the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(im, tmp_path / "rot.png", exif=exif)
    out = load_image(path)
    assert out.size == (2, 4)
    # Orientation 6: display = stored rotated 90° clockwise, so top-left goes top-right.
    assert out.getpixel((1, 0)) == (255, 0, 0)
    assert "exif" not in out.info


@pytest.mark.parametrize("fmt,ext", [("GIF", "gif"), ("WEBP", "webp")])
def test_animated_file_gives_first_frame(tmp_path, fmt, ext):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    path = tmp_path / f"anim.{ext}"
    kw = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=50, loop=0, **kw)
    with Image.open(path) as im:
        assert im.n_frames == 3
    assert load_image(path).getpixel((4, 4)) == (255, 0, 0)


# --------------------------------------------------------------------------- decode: bad files


def _bad_zero(tmp_path):
    return write(tmp_path / "zero.png", b""), {}, "empty"


def _bad_missing(tmp_path):
    return tmp_path / "missing.png", {}, "does not exist"


def _bad_text(tmp_path):
    return write(tmp_path / "notes.png", b"hello, I am text\n" * 20), {}, "not an image"


def _bad_truncated_png(tmp_path):
    data = io.BytesIO()
    noise_image(size=(64, 64)).save(data, "PNG")
    return write(tmp_path / "cut.png", data.getvalue()[: len(data.getvalue()) // 2]), {}, "truncated"


def _bad_truncated_jpeg(tmp_path):
    data = io.BytesIO()
    noise_image(size=(64, 64)).save(data, "JPEG", quality=90)
    return write(tmp_path / "cut.jpg", data.getvalue()[:-200]), {}, "truncated"


def _bad_corrupt(tmp_path):
    data = bytearray(png_bytes(size=(32, 32)))
    data[60:80] = b"\xff" * 20  # damage the IDAT stream (and its CRC)
    return write(tmp_path / "corrupt.png", bytes(data)), {}, ""


def _bad_over_limit(tmp_path):
    return save(noise_image(size=(100, 100)), tmp_path / "big.png"), {"max_pixels": 5_000}, "limit"


def _bad_bomb_header(tmp_path):
    # 8000×8000 is over DetectLab's default 50 MP, below PIL's own bomb limit.
    return write(tmp_path / "bomb.png", png_header_only(8000, 8000)), {}, "limit"


def _bad_pil_bomb(tmp_path):
    # Over twice PIL's limit: PIL raises DecompressionBombError itself, at open.
    return write(tmp_path / "huge.png", png_header_only(30000, 30000)), {"max_pixels": 10**12}, "large"


BAD_FILES = {
    "zero-byte": _bad_zero,
    "missing": _bad_missing,
    "text-with-png-extension": _bad_text,
    "truncated-png": _bad_truncated_png,
    "truncated-jpeg": _bad_truncated_jpeg,
    "corrupt-png": _bad_corrupt,
    "over-pixel-limit": _bad_over_limit,
    "bomb-header": _bad_bomb_header,
    "pil-bomb": _bad_pil_bomb,
}


@pytest.mark.parametrize("case", BAD_FILES)
@pytest.mark.parametrize("loader", [load_image, probe_image, load_tensor, load_mask])
def test_bad_file_raises_image_decode_error_naming_it(tmp_path, case, loader):
    path, kw, words = BAD_FILES[case](tmp_path)
    with pytest.raises(ImageDecodeError) as info:
        loader(path, **kw)
    message = str(info.value)
    assert path.name in message
    assert words in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bad_bytes_are_named_by_name_argument():
    with pytest.raises(ImageDecodeError, match="upload-7.png: not an image"):
        load_image(b"not an image at all", name="upload-7.png")
    with pytest.raises(ImageDecodeError, match="uploaded image: file is empty"):
        load_image(b"")


def test_tensor_round_trip_and_resize(tmp_path):
    im = noise_image(size=(40, 20))
    t = to_tensor(im)
    assert t.shape == (3, 20, 40) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    assert np.array_equal(np.asarray(to_pil(t)), np.asarray(im))
    assert np.asarray(to_pil(t * 3 - 1)).min() == 0  # clamps
    path = save(im, tmp_path / "wide.png")
    assert load_tensor(path).shape == (3, 20, 40)
    small = load_tensor(path, 16)
    assert small.shape == (3, 16, 16) and 0 <= small.min() and small.max() <= 1
    assert load_tensor(path, (10, 30)).shape == (3, 10, 30)


def test_load_mask_modes(tmp_path):
    grey = np.zeros((6, 6), np.uint8)
    grey[2:4, 2:4] = 255
    palette = Image.fromarray((grey > 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # dark foreground colour
    for img in (Image.fromarray(grey, "L"), palette):
        mask = load_mask(save(img, tmp_path / f"m_{img.mode}.png"))
        assert mask.dtype == torch.bool and mask.shape == (6, 6)
        assert torch.equal(mask, torch.from_numpy(grey > 0))


# --------------------------------------------------------------------------- discover

PNG = png_bytes()

# Layout trees: relative file paths -> (layout, expected counts or pair count).
LAYOUT_CASES = {
    "real+generators": (
        ["real/a.png", "real/b.png", "real/sub/c.png", "gan_a/a.png", "gan_a/b.jpg",
         "diffusion/a.png", "README.md", "real/.hidden.png", ".git/x.png", "real/notes.txt"],
        "real+generators", {"real": 3, "diffusion": 1, "gan_a": 2}),
    "binary": (
        ["0_real/a.png", "0_real/b.png", "1_fake/a.png", "1_fake/c.png", "1_fake/d.PNG"],
        "binary", {"real": 2, "fake": 3}),
    "binary+generators": (
        ["progan/0_real/a.png", "progan/0_real/b.png", "progan/1_fake/a.png",
         "stylegan/0_real/x.png", "stylegan/1_fake/x.png", "stylegan/1_fake/y.png",
         "stylegan/1_fake/z.png"],
        "binary+generators", {"real": 3, "progan": 1, "stylegan": 3}),
    "binary+generators+categories": (
        ["progan/airplane/0_real/a.png", "progan/airplane/1_fake/a.png",
         "progan/cat/0_real/b.png", "progan/cat/1_fake/b.png", "biggan/0_real/c.png",
         "biggan/1_fake/c.png", "biggan/1_fake/d.png"],
        "binary+generators", {"real": 3, "biggan": 2, "progan": 2}),
    "images+masks": (
        ["images/a.png", "images/b.jpg", "images/c.png", "masks/a.png", "masks/b.png",
         "masks/orphan.png"],
        "images+masks", 2),
}


def make_tree(root: Path, files: list[str]) -> Path:
    for rel in files:
        data = b"# not an image\n" if not rel.lower().endswith((".png", ".jpg")) else PNG
        if rel.endswith(".jpg"):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "JPEG")
            data = buf.getvalue()
        write(root / rel, data)
    return root


@pytest.mark.parametrize("case", LAYOUT_CASES)
def test_layouts_are_discovered_with_counts(tmp_path, case):
    files, layout, expected = LAYOUT_CASES[case]
    ds = discover(make_tree(tmp_path / "ds", files))
    assert ds.layout == layout
    if isinstance(expected, int):
        assert isinstance(ds, MaskedDataset)
        assert len(ds.pairs) == expected
        assert all(img.stem == mask.stem for img, mask in ds.pairs)
        reasons = {p.name: r for p, r in ds.skipped}
        assert "no mask" in reasons["c.png"] and "no image" in reasons["orphan.png"]
        assert "2 image/mask pairs" in ds.summary()
        return
    assert isinstance(ds, DetectionDataset)
    assert ds.counts() == expected
    assert ds.generators == sorted(k for k in expected if k != "real")
    n_fake = sum(v for k, v in expected.items() if k != "real")
    assert ds.class_counts() == {"real": expected["real"], "fake": n_fake}
    assert all((s.label == 0) == (s.generator == "real") for s in ds.samples)
    assert [s.path for s in ds.samples] == sorted((s.path for s in ds.samples), key=str)
    assert ds.skipped == []
    summary = ds.summary()
    assert layout in summary and all(g in summary for g in expected)
    if "gan_a" in expected:  # same stem -> same group across real and generator folders
        groups = {(s.generator, s.path.name): s.group for s in ds.samples}
        assert groups[("real", "a.png")] == groups[("gan_a", "a.png")] == "a"


def test_subset_keeps_real_and_named_generators(tmp_path):
    ds = discover(make_tree(tmp_path / "ds", LAYOUT_CASES["real+generators"][0]))
    sub = ds.subset(["gan_a"])
    assert sub.counts() == {"real": 3, "gan_a": 2}
    assert ds.subset(None).counts() == ds.counts()
    with pytest.raises(DatasetError, match="no generator 'nope'.*diffusion, gan_a"):
        ds.subset(["nope"])


def test_bad_files_are_skipped_and_reported_and_the_rest_load(tmp_path):
    root = make_tree(tmp_path / "ds", ["real/a.png", "real/b.png", "gen/a.png", "gen/b.png"])
    _bad_truncated_png(root / "real")
    _bad_truncated_jpeg(root / "gen")
    write(root / "gen" / "empty.png", b"")
    write(root / "real" / "text.png", b"just text")
    outside = save(noise_image(), tmp_path / "outside" / "secret.png")
    os.symlink(outside, root / "real" / "link.png")
    os.symlink(root / "real" / "a.png", root / "gen" / "inside.png")  # inside root: kept
    progress_calls = []
    ds = discover(root, progress=lambda done, total=None, desc="": progress_calls.append(done))
    assert ds.counts() == {"real": 2, "gen": 3}
    reasons = {p.name: r for p, r in ds.skipped}
    assert set(reasons) == {"cut.png", "cut.jpg", "empty.png", "text.png", "link.png"}
    assert "truncated" in reasons["cut.jpg"] and "outside" in reasons["link.png"]
    assert "5 skipped" in ds.summary() and "cut.jpg" in ds.summary()
    assert progress_calls and progress_calls[-1] == 9  # every candidate but the link out of root
    loader = ImageFolderDataset(ds.samples, size=8)
    images = [loader[i][0] for i in range(len(loader))]
    assert all(img.shape == (3, 8, 8) for img in images)
    # Without validation the bad file is listed, and loading it names it.
    unchecked = discover(root, validate=False)
    bad = [s for s in unchecked.samples if s.path.name == "cut.jpg"]
    with pytest.raises(ImageDecodeError, match="cut.jpg"):
        ImageFolderDataset(bad, size=8)[0]


def test_masked_dataset_validates_pairs(tmp_path):
    root = make_tree(tmp_path / "ds", ["images/a.png", "images/b.png", "masks/a.png"])
    save(Image.new("L", (5, 5)), root / "masks" / "b.png")  # wrong size
    ds = discover(root)
    assert [p[0].name for p in ds.pairs] == ["a.png"]
    assert "mask is 5×5 but image is 8×8" in dict((p.name, r) for p, r in ds.skipped)["b.png"]


def test_manifest_groups_override_stems(tmp_path):
    root = make_tree(tmp_path / "ds", ["real/r1.png", "real/r2.png", "gen/f1.png", "gen/f9.png"])
    (root / "manifest.json").write_text(json.dumps({"groups": {"r1": "src0", "f1": "src0"}}))
    groups = {s.path.stem: s.group for s in discover(root).samples}
    assert groups == {"r1": "src0", "f1": "src0", "r2": "r2", "f9": "f9"}


@pytest.mark.parametrize(
    "files,target,words",
    [
        ([], "missing", "does not exist"),
        (["file.txt"], "file.txt", "is a file, not a folder"),
        (["cats/a.png", "dogs/b.png"], "", "no 'real' folder"),
        (["a.png", "b.png"], "", "2 image(s) directly in the folder"),
        (["real/readme.txt", "gan/notes.md"], "", "no images found"),
        (["images/a.png"], "", "no 'masks' folder"),
        (["real/bad.png"], "", "no readable images"),
    ],
    ids=["missing", "file", "no-real", "flat", "no-images", "images-only", "all-bad"],
)
def test_wrong_folders_give_clear_dataset_errors(tmp_path, files, target, words):
    root = tmp_path / "ds"
    root.mkdir()
    for rel in files:
        write(root / rel, b"bad" if rel == "real/bad.png" else (PNG if rel.endswith(".png") else b"x"))
    with pytest.raises(DatasetError) as info:
        discover(root / target if target else root)
    assert words in str(info.value)
    if words == "no 'real' folder":
        assert "0_real" in str(info.value) and "Accepted layouts" in str(info.value)


# --------------------------------------------------------------------------- splits


def make_samples(n_shared=60, n_single=40) -> list[Sample]:
    """Groups of (real, gan) sharing a stem, plus single diffusion fakes."""
    out = []
    for i in range(n_shared):
        out.append(Sample(Path(f"real/s{i}.png"), 0, "real", f"s{i}"))
        out.append(Sample(Path(f"gan/s{i}.png"), 1, "gan", f"s{i}"))
    out += [Sample(Path(f"diff/d{i}.png"), 1, "diffusion", f"d{i}") for i in range(n_single)]
    return out


def test_split_is_deterministic_grouped_stratified_and_sized():
    samples = make_samples()
    a, b, c = split(samples, seed=1), split(samples, seed=1), split(samples, seed=2)
    assert a == b
    assert a != c
    assert split(list(reversed(samples)), seed=1)["test"] == list(reversed(a["test"]))
    where = {}
    for name, items in a.items():
        for s in items:
            assert where.setdefault(s.group, name) == name  # one split per group
    assert sorted(map(str, (s.path for items in a.values() for s in items))) == \
        sorted(str(s.path) for s in samples)
    for name, fraction in zip(("train", "val", "test"), (0.8, 0.1, 0.1)):
        assert abs(len(a[name]) - fraction * len(samples)) <= 2  # within one group (size 2)
        assert {s.generator for s in a[name]} == {"real", "gan", "diffusion"}
    summary = split_summary(a)
    assert summary["train"]["samples"] == len(a["train"])
    assert summary["val"]["classes"]["real"] + summary["val"]["classes"]["fake"] == len(a["val"])
    json.dumps(summary)
    files = split_files(a, root="real")
    assert sum(len(v) for v in files.values()) == len(samples)


@pytest.mark.parametrize("fractions", [(0.7, 0.2, 0.05), (0.5, 0.5), (1.2, -0.1, -0.1)])
def test_split_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split(make_samples(), fractions=fractions)


def test_split_zero_fraction_and_pairs():
    pairs = [(Path(f"images/{i}.png"), Path(f"masks/{i}.png")) for i in range(50)]
    out = split(pairs, seed=3, fractions=(0.9, 0.1, 0.0), group=lambda p: p[0].stem)
    assert out["test"] == [] and len(out["train"]) == 45 and len(out["val"]) == 5
    assert split_summary(out, group=lambda p: p[0].stem)["val"] == {"samples": 5, "groups": 5}


def test_split_groups_of_masked_dataset(tmp_path):
    root = make_tree(tmp_path / "ds", [f"images/{i}.png" for i in range(10)]
                     + [f"masks/{i}.png" for i in range(10)])
    ds = discover(root)
    out = split(ds.pairs, seed=0, group=ds.group_of)
    assert sum(map(len, out.values())) == 10 and len(out["train"]) == 8


# --------------------------------------------------------------------------- archives


def make_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("ds/real/link.png")
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    return info


def _lying_size_zip(path: Path) -> Path:
    """A zip whose directory declares 10 bytes for an entry that inflates to 1 MB."""
    make_zip(path, [("ds/real/a.png", b"\0" * 1_000_000)])
    data = bytearray(path.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig)
        data[at + offset: at + offset + 4] = struct.pack("<I", 10)
    path.write_bytes(bytes(data))
    return path


BAD_ZIPS = {
    "traversal": (lambda p: make_zip(p, [("ds/real/a.png", PNG), ("../evil.txt", b"x")]), {}, ".."),
    "backslash-traversal": (lambda p: make_zip(p, [("..\\evil.txt", b"x")]), {}, ".."),
    "absolute": (lambda p: make_zip(p, [("/tmp/evil.txt", b"x")]), {}, "absolute"),
    "drive-letter": (lambda p: make_zip(p, [("C:/evil.txt", b"x")]), {}, "absolute"),
    "symlink": (lambda p: make_zip(p, [("ds/real/a.png", PNG), (_symlink_entry(), b"/etc/passwd")]),
                {}, "symbolic link"),
    "size-bomb": (lambda p: make_zip(p, [("ds/real/a.png", b"\0" * 2_000_000)]),
                  {"max_total_bytes": 1_000_000}, "over the limit"),
    "lying-sizes": (_lying_size_zip, {"max_total_bytes": 100_000}, "zip"),
    "too-many-files": (lambda p: make_zip(p, [(f"ds/real/{i}.png", PNG) for i in range(5)]),
                       {"max_files": 3}, "over the limit"),
    "not-a-zip": (lambda p: write(p, b"this is text, not a zip"), {}, "not a zip"),
    "corrupt": (lambda p: _corrupt_zip(p), {}, "corrupt"),
}


def _corrupt_zip(path: Path) -> Path:
    data = bytearray(make_zip(path, [("ds/a.png", noise_image().tobytes())]).read_bytes())
    data[60:400] = bytes(340)  # wreck the deflate stream, keep the directory intact
    return write(path, bytes(data))


@pytest.mark.parametrize("case", BAD_ZIPS)
def test_unsafe_zip_is_refused_and_nothing_is_written(tmp_path, case):
    build, kw, words = BAD_ZIPS[case]
    work = tmp_path / "uploads"
    work.mkdir()
    archive = build(tmp_path / "upload.zip")
    target = work / "dataset"
    with pytest.raises(DatasetError) as info:
        extract_zip(archive, target, **kw)
    assert words in str(info.value)
    assert not target.exists()
    assert list(work.iterdir()) == []  # no staging folder left behind
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_zip_into_existing_target_is_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("ds/real/a.png", PNG)])
    (tmp_path / "taken").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        extract_zip(archive, tmp_path / "taken")


@pytest.mark.parametrize("prefix", ["mydata/", ""])
def test_normal_zip_extracts_to_dataset_root(tmp_path, prefix):
    entries = [(f"{prefix}{rel}", PNG) for rel in ("real/a.png", "real/b.png", "gan/a.png")]
    entries += [("__MACOSX/._junk", b"x"), (f"{prefix}real/", b"")]
    archive = make_zip(tmp_path / "ok.zip", entries)
    root = extract_zip(archive, tmp_path / "out" / "ds")
    assert root == tmp_path / "out" / "ds"  # a wrapper folder (zip -r mydata.zip mydata/) is unwrapped
    assert not (tmp_path / "out" / "ds" / "__MACOSX").exists()
    assert discover(root).counts() == {"real": 2, "gan": 1}


# --------------------------------------------------------------------------- torch datasets


def test_image_folder_dataset_items_transform_and_weights(tmp_path):
    root = make_tree(tmp_path / "ds", ["real/a.png", "real/b.png", "real/c.png", "gen/a.png"])
    ds = discover(root)
    flips = ImageFolderDataset(ds.samples, size=4, transform=lambda t: t.flip(-1) * 0 + 0.5)
    image, label, index = flips[3]
    assert image.shape == (3, 4, 4) and torch.all(image == 0.5)
    assert label.dtype == torch.float32 and label.item() == ds.samples[3].label and index == 3
    weights = flips.sample_weights()
    assert torch.isclose(weights[flips.labels == 0].sum(), weights[flips.labels == 1].sum())
    batch = next(iter(torch.utils.data.DataLoader(flips, batch_size=4)))
    assert batch[0].shape == (4, 3, 4, 4) and batch[1].shape == (4,)


def test_masked_image_dataset_aligns_image_and_mask(tmp_path):
    save(noise_image(size=(20, 10)), tmp_path / "ds" / "images" / "a.png")
    mask = np.zeros((10, 20), np.uint8)
    mask[:, 10:] = 255
    save(Image.fromarray(mask, "L"), tmp_path / "ds" / "masks" / "a.png")
    ds = discover(tmp_path / "ds")
    image, m, _ = MaskedImageDataset(ds.pairs, size=8)[0]
    assert image.shape == (3, 8, 8) and m.shape == (1, 8, 8)
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert m[0, :, :4].sum() == 0 and m[0, :, 4:].min() == 1


# --------------------------------------------------------------------------- overview and data-root confinement

from detectlab.data.overview import import_dataset_zip, new_dataset_dir, overview, resolve_in_roots  # noqa: E402


@pytest.fixture
def roots(tmp_path):
    """One data root holding a folder, a link to a folder inside it and a link to a folder outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "mine" / "real").mkdir(parents=True)
    outside.mkdir()
    os.symlink(root / "mine", root / "inside-link")
    os.symlink(outside, root / "escape-link")
    return root, outside


@pytest.mark.parametrize("typed, expected", [
    ("mine", "root/mine"),                  # relative to a root
    ("{root}/mine", "root/mine"),           # absolute, inside
    ("inside-link", "root/mine"),           # a link whose target stays inside
    ("{root}", "root"),                     # the root itself
])
def test_resolve_in_roots_accepts_folders_inside(roots, typed, expected):
    root, _ = roots
    got = resolve_in_roots(typed.format(root=root), [root.resolve()])
    assert got == (root.parent / expected).resolve()


@pytest.mark.parametrize("typed", ["escape-link", "{outside}", "../outside", "missing", "/etc", "  "])
def test_resolve_in_roots_refuses_outside_and_missing(roots, typed):
    root, outside = roots
    text = typed.format(outside=outside)
    with pytest.raises(DatasetError) as info:
        resolve_in_roots(text, [root.resolve()])
    msg = str(info.value)
    assert ("no folder given" in msg) if not text.strip() else (text.strip() in msg and "data roots" in msg)


def test_overview_counts_per_generator_and_split(tmp_path):
    for cls, n in (("real", 20), ("gan", 10)):
        for i in range(n):
            write(tmp_path / "ds" / cls / f"{i:02d}.png", PNG)
    ov = overview(tmp_path / "ds", examples=3)
    assert ov.layout == "real+generators" and ov.total == 30
    rows = {r[1]: r for r in ov.rows}
    assert rows["real"][:3] == ["real", "real", 20] and rows["gan"][:3] == ["fake", "gan", 10]
    for r in ov.rows:
        assert sum(r[3:]) == r[2]  # every image in exactly one split
    assert [len(v) for v in ov.examples.values()] == [3, 3]


def test_new_dataset_dir_sanitises_and_never_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    first = new_dataset_dir("my data/../set!")
    assert first.name == "my-data-..-set"  # separators replaced: it stays one folder under datasets/
    assert first.parent == tmp_path / "home" / "datasets"
    first.mkdir()
    assert new_dataset_dir("my data/../set!").name == first.name + "-2"


def test_zip_in_no_layout_is_rolled_back(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    archive = make_zip(tmp_path / "flat.zip", [("flat/a.png", PNG), ("flat/b.png", PNG)])
    with pytest.raises(DatasetError):
        import_dataset_zip(archive)
    assert list((tmp_path / "home" / "datasets").iterdir()) == []  # nothing half-made is left


def test_zip_in_a_layout_becomes_a_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    archive = make_zip(tmp_path / "good.zip", [("good/real/a.png", PNG), ("good/gan/b.png", PNG)])
    root = import_dataset_zip(archive)
    assert root == tmp_path / "home" / "datasets" / "good"
    assert discover(root).counts() == {"real": 1, "gan": 1}


@pytest.mark.parametrize("typed,phrase", [("bad\0name", "NUL byte"), ("x" * 5000, "too long"),
                                          ("a/" + "b" * 256, "too long")])
def test_resolve_in_roots_names_impossible_paths(roots, typed, phrase):
    root, _ = roots
    with pytest.raises(DatasetError, match=phrase) as info:
        resolve_in_roots(typed, [root.resolve()])
    assert len(str(info.value)) < 300  # a 5,000-character name is not echoed back whole


def _noise_png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_import_quota_refuses_and_stores_nothing(tmp_path, monkeypatch):
    from detectlab.data.overview import stored_bytes

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    first = make_zip(tmp_path / "first.zip", [(f"first/{c}/{i}.png", _noise_png(i + 10 * (c == "gan")))
                                                for c in ("real", "gan") for i in range(4)])
    import_dataset_zip(first)
    used = stored_bytes()
    assert used > 8 * 6000  # eight noise PNGs of ~7 KB
    # room for about one more image: a second set of the same size is refused before a byte is written
    monkeypatch.setenv("DETECTLAB_IMPORT_MAX_MB", str((used + 10_000) / 2**20))
    second = make_zip(tmp_path / "second.zip", [(f"second/{c}/{i}.png", _noise_png(50 + i + 10 * (c == "gan")))
                                                  for c in ("real", "gan") for i in range(4)])
    with pytest.raises(DatasetError, match=r"import quota.*DETECTLAB_IMPORT_MAX_MB"):
        import_dataset_zip(second)
    assert sorted(p.name for p in (tmp_path / "home" / "datasets").iterdir()) == ["first"]
    assert stored_bytes() == used
    monkeypatch.setenv("DETECTLAB_IMPORT_MAX_MB", str(2 * used / 2**20 + 1))
    assert import_dataset_zip(second).name == "second"


def test_delete_dataset_only_inside_the_datasets_folder(tmp_path, monkeypatch):
    from detectlab import config
    from detectlab.data.overview import delete_dataset

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    root = import_dataset_zip(make_zip(tmp_path / "mine.zip", [("mine/real/a.png", PNG), ("mine/gan/b.png", PNG)]))
    outside = tmp_path / "precious"
    (outside / "real").mkdir(parents=True)
    os.symlink(outside, config.datasets_dir() / "link")
    (config.datasets_dir() / "afile").write_text("x")
    for name in ("link", "afile", "..", "../home", "demo", str(config.DEMO_DIR), "", ".mine.extract-1", "a\0b"):
        with pytest.raises(DatasetError):
            delete_dataset(name)
    assert outside.is_dir() and config.DEMO_DIR.is_dir() and (config.datasets_dir() / "link").is_symlink()
    assert delete_dataset("mine") == root and not root.exists()


def test_data_tab_delete_needs_the_tick_and_an_imported_set(tmp_path, monkeypatch):
    from detectlab.catalog import DEMO_LABEL
    from detectlab.ui.data_tab import delete

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    root = import_dataset_zip(make_zip(tmp_path / "mine.zip", [("mine/real/a.png", PNG), ("mine/gan/b.png", PNG)]))
    status, _, tick = delete("uploaded: mine", False)
    assert "tick" in status and root.is_dir() and tick["value"] is False
    status, _, _ = delete(DEMO_LABEL, True)
    assert "only data sets imported" in status
    status, choice, _ = delete("uploaded: mine", True)
    assert status.startswith("Deleted **mine**") and not root.exists()
    assert "uploaded: mine" not in choice["choices"] and choice["value"] == DEMO_LABEL


def test_resolve_in_roots_takes_paths_relative_to_the_project(tmp_path):
    """The README's own CLI path ('assets/demo') works in a folder box, as does a root-relative one."""
    from detectlab import config

    roots = config.data_roots()
    (config.ASSETS / "demo").mkdir(parents=True, exist_ok=True)
    assert resolve_in_roots("assets/demo", roots) == (config.ASSETS / "demo").resolve()
    assert resolve_in_roots("demo", roots) == (config.ASSETS / "demo").resolve()
    with pytest.raises(DatasetError, match="relative to the project folder"):
        resolve_in_roots("checkpoints", roots)  # inside the project, outside every root
