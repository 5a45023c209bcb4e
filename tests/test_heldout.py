"""Held-out real photos: selection checks, building from unpacked packages, false-positive rates.

Everything runs offline on images made here; fake "packages" are laid out as
``detectlab heldout build --sources`` expects them (a ``dpkg -x`` tree, a wheel, an npm tarball).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.demo.sources import SourcesError
from detectlab.heldout import (
    HeldoutSet,
    build_heldout,
    evaluate_heldout,
    false_positive_rate,
    load_selection,
)
from detectlab.models.base import Detector, PreprocessConfig


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """A textured colour image (smooth random field + noise), distinct per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float64)
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _packages(src: Path, photos: dict[str, tuple[Image.Image, str]]) -> dict:
    """Lay out one Debian tree, one wheel and one npm tarball under ``src``; return a selection."""
    deb = src / "fake-wallpapers"
    (deb / "usr/share/doc/fake-wallpapers").mkdir(parents=True)
    (src / "pypi").mkdir()
    (src / "npm").mkdir()
    wheel = zipfile.ZipFile(src / "pypi" / "fake_samples-1.0-py3-none-any.whl", "w")
    sel = {"debian": [], "pypi": [], "npm": []}
    tar_members = []
    for name, (img, fmt) in photos.items():
        registry, member = name.split(":", 1)
        data = _encode(img, fmt)
        if registry == "debian":
            (deb / member).parent.mkdir(parents=True, exist_ok=True)
            (deb / member).write_bytes(data)
        elif registry == "pypi":
            wheel.writestr(member, data)
        else:
            tar_members.append((member, data))
        sel[registry].append({"file": member, "licence": f"CC0-1.0 ({registry})"})
    wheel.close()
    with tarfile.open(src / "npm" / "scope-fake-api-2.0.0.tgz", "w:gz") as tf:
        for member, data in tar_members:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    names = {"debian": ("fake-wallpapers", "1.0-1"), "pypi": ("fake-samples", "1.0"), "npm": ("@scope/fake-api", "2.0.0")}
    return {"packages": [{"package": names[r][0], "registry": r, "version": names[r][1], "licence_source": "test",
                          "photos": sel[r]} for r in ("debian", "pypi", "npm") if sel[r]]}


def _write_selection(tmp_path: Path, selection: dict) -> Path:
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(selection))
    return path


def test_shipped_selection_is_held_out_and_attributed():
    packages = load_selection()
    photos = [ph for p in packages for ph in p.photos]
    assert len(photos) >= 40 and len(packages) >= 4
    assert all(ph.licence for ph in photos) and all(p.version for p in packages)


@pytest.mark.parametrize("package,registry", [("opencv-doc", "debian"), ("scikit-image", "pypi")])
def test_selection_refuses_a_package_the_demo_trains_on(tmp_path, package, registry):
    sel = {"packages": [{"package": package, "registry": registry, "version": "1",
                         "photos": [{"file": "x.jpg", "licence": "MIT"}]}]}
    with pytest.raises(SourcesError, match=f"'{package}' is one the demo trains on"):
        load_selection(_write_selection(tmp_path, sel))


def test_build_writes_full_size_crops_and_provenance(tmp_path):
    src = tmp_path / "src"
    photos = {
        "debian:usr/share/backgrounds/big.jpg": (_photo(1500, 1000, 1), "JPEG"),
        "debian:usr/share/backgrounds/lossless.png": (_photo(420, 300, 2), "PNG"),
        "pypi:fake_samples/data/sample.jpg": (_photo(700, 900, 3), "JPEG"),
        "npm:package/demo/face.jpg": (_photo(600, 400, 4), "JPEG"),
    }
    selection = _write_selection(tmp_path, _packages(src, photos))
    out = tmp_path / "heldout"
    (out / "full").mkdir(parents=True)
    (out / "full" / "p0099.jpg").write_bytes(b"stale")
    m = build_heldout(src, out, selection=selection, max_side=640, crops_per_photo=2)

    assert [p["source_name"] for p in m["photos"]] == [k.split(":", 1)[1] for k in photos]
    assert sorted(f.name for f in (out / "full").iterdir()) == ["p0000.jpg", "p0001.png", "p0002.jpg", "p0003.jpg"]
    for p, (img, _) in zip(m["photos"], photos.values()):
        with Image.open(out / p["file"]) as stored:
            assert max(stored.size) == min(640, max(img.size))          # long side capped, never enlarged
            assert abs(stored.size[0] / stored.size[1] - img.size[0] / img.size[1]) < 0.01
        assert (p["width"], p["height"]) == img.size
    expected_sha = [hashlib.sha256(_encode(img, fmt)).hexdigest() for img, fmt in photos.values()]
    assert [p["source_sha256"] for p in m["photos"]] == expected_sha
    assert [(p["registry"], p["package"], p["version"]) for p in m["photos"]] == [
        ("debian", "fake-wallpapers", "1.0-1")] * 2 + [("pypi", "fake-samples", "1.0"), ("npm", "@scope/fake-api", "2.0.0")]
    assert m["photos"][2]["licence"] == "CC0-1.0 (pypi)"
    assert {p["package"]: p["photos"] for p in m["packages"]} == {"fake-wallpapers": 2, "fake-samples": 1,
                                                                   "@scope/fake-api": 1}

    crops = m["crop_files"]
    assert 4 <= len(crops) <= 8
    for c in crops:
        with Image.open(out / "crops" / c["file"]) as im:
            assert im.size == (128, 128) and im.format == "PNG"
        src_w, src_h = photos[next(k for k in photos if k.endswith(c["source_name"]))][0].size
        assert c["scale"] <= 0.5                                        # the demo's >= 2x antialiased downscale
        left, top, right, bottom = c["box"]
        assert 0 <= left < right <= src_w and 0 <= top < bottom <= src_h
    assert json.loads((out / "manifest.json").read_text())["photos"] == m["photos"]


@pytest.mark.parametrize("case,message", [
    ("too_small", "short side of at least 256"),
    ("duplicate", "near-duplicate of fake-wallpapers:a.jpg"),
    ("missing", "no package/demo/absent.jpg"),
])
def test_build_refuses_with_the_file_named(tmp_path, case, message):
    src = tmp_path / "src"
    photos = {"debian:a.jpg": (_photo(600, 400, 5), "JPEG")}
    if case == "too_small":
        photos["pypi:fake_samples/tiny.jpg"] = (_photo(300, 200, 6), "JPEG")
    elif case == "duplicate":
        photos["npm:package/demo/copy.jpg"] = (photos["debian:a.jpg"][0].resize((450, 300)), "JPEG")
    else:
        photos["npm:package/demo/present.jpg"] = (_photo(600, 400, 7), "JPEG")
    selection = _packages(src, photos)
    if case == "missing":
        selection["packages"][-1]["photos"][0]["file"] = "package/demo/absent.jpg"
    with pytest.raises(SourcesError, match=message):
        build_heldout(src, tmp_path / "out", selection=_write_selection(tmp_path, selection))


class _Brightness(Detector):
    """logit = 40 * (mean brightness - 0.5): bright images are "fake", dark ones "real"."""

    def __init__(self) -> None:
        super().__init__("test-brightness", PreprocessConfig(input_size=32))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return 40 * (x.mean(dim=(1, 2, 3)) - 0.5)[:, None]


class _FlagFirst:
    """Trust stand-in: flags the first image of every call as unlike the training data."""

    def assess(self, feats, logits):
        return [type("A", (), {"unlike_training": i == 0})() for i in range(len(logits))]


def _grey(path: Path, level: int, size: tuple[int, int]) -> Path:
    Image.new("RGB", size, (level,) * 3).save(path)
    return path


def test_false_positive_rates_on_every_part(tmp_path):
    """Known brightness -> known verdicts: each rate is the share of bright images in its part."""
    from detectlab.detect.tiling import load_uint8

    full = [_grey(tmp_path / f"f{i}.png", lv, (100, 70)) for i, lv in enumerate([230, 20, 20, 20])]   # 1/4 bright
    crops = [_grey(tmp_path / f"c{i}.png", lv, (128, 128)) for i, lv in enumerate([230, 230, 20, 20, 20])]
    demo = [_grey(tmp_path / f"d{i}.png", lv, (32, 32)) for i, lv in enumerate([230, 20, 20, 20, 20, 20, 20, 20])]
    manifest = {"photos": [{"package": "a"}, {"package": "a"}, {"package": "b"}, {"package": "b"}],
                "packages": [], "crop_files": []}
    # held-out generator designs: x has 3 of 4 fakes bright (caught); y 1 of 4, its first (dark, called real) flagged
    designs = {"x": [_grey(tmp_path / f"x{i}.png", lv, (32, 32)) for i, lv in enumerate([230, 230, 230, 20])],
               "y": [_grey(tmp_path / f"y{i}.png", lv, (32, 32)) for i, lv in enumerate([20, 230, 20, 20])]}
    hs = HeldoutSet(tmp_path, manifest, [load_uint8(f) for f in full], full, crops, demo, designs)
    res = evaluate_heldout(_Brightness(), hs, threshold=0.5, trust=_FlagFirst())
    assert res.designs == {"x": pytest.approx(0.75), "y": pytest.approx(0.25)}
    assert res.designs_uncertain == {"x": 0.0, "y": pytest.approx(0.25)}  # x's flagged first image was caught anyway
    assert res.full_tiled == res.full_resized == pytest.approx(0.25)
    assert res.crops == pytest.approx(0.4)
    # flat images keep their brightness under blur and down-up resize, so the verdicts hold
    assert res.demo_test_reals == res.demo_blur_sigma1 == res.demo_downup_2x == pytest.approx(0.125)
    assert res.full_tiled_by_package == {"a": 0.5, "b": 0.0}
    assert res.ood_share == pytest.approx(0.25) and res.ood_share_crops == pytest.approx(0.2)
    assert res.counts == {"heldout_photos": 4, "heldout_crops": 5, "demo_test_reals": 8, "design:x": 4, "design:y": 4}
    without = evaluate_heldout(_Brightness(), HeldoutSet(tmp_path, manifest, hs.full, full, crops, []), 0.5)
    assert without.ood_share is None and without.demo_test_reals is None and without.crops == pytest.approx(0.4)
    assert without.designs == {} and without.designs_uncertain == {}
    # a detector trained on design x (a run that ticked it) is not said to have never seen it
    trained_x = evaluate_heldout(_Brightness(), hs, threshold=0.5, trained_on=["x"])
    assert trained_x.designs == {"y": pytest.approx(0.25)} and "design:x" not in trained_x.counts


def test_the_held_out_designs_are_the_demo_test_splits_fakes_of_the_held_out_group(demo_root):
    from detectlab.data import discover, split
    from detectlab.generators.designs import HELD_OUT, designs_in

    hs = HeldoutSet.load(demo_dir=demo_root)
    test = split(discover(demo_root).samples, seed=0)["test"]
    assert list(hs.design_fakes) == designs_in(HELD_OUT)
    for design, files in hs.design_fakes.items():
        assert files == [s.path for s in test if s.generator == design] and len(files) >= 100
    assert hs.tensors(f"design:{designs_in(HELD_OUT)[0]}", 64).shape[1:] == (3, 64, 64)


@pytest.mark.parametrize("p,threshold,expected", [([0.2, 0.5, 0.9], 0.5, 1 / 3), ([0.2, 0.5, 0.9], 0.1, 1.0),
                                                  ([0.6], 0.7, 0.0)])
def test_false_positive_rate_counts_strictly_above_threshold(p, threshold, expected):
    assert false_positive_rate(p, threshold) == pytest.approx(expected)


def test_cli_build_lists_packages_and_names_a_missing_file(tmp_path, capsys):
    from detectlab.cli import main

    src = tmp_path / "src"
    selection = _write_selection(tmp_path, _packages(src, {"debian:a.jpg": (_photo(600, 400, 8), "JPEG"),
                                                           "pypi:fake_samples/b.jpg": (_photo(500, 500, 9), "JPEG")}))
    out = tmp_path / "out"
    args = ["heldout", "build", "--sources", str(src), "--selection", str(selection), "--out", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 photos, " in text and "fake-wallpapers" in text and "fake-samples" in text and "CC0-1.0 (pypi)" in text
    (src / "fake-wallpapers" / "a.jpg").unlink()
    assert main(args) == 2
    assert "fake-wallpapers: no a.jpg" in capsys.readouterr().err
