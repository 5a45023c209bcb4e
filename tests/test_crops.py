"""Real crops at several scales: deterministic, named per photo, each scale recorded."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detectlab.demo.crops import crop_scale, make_real_crops
from detectlab.demo.sources import SourcePhoto


def _photo(tmp_path, w, h, name="big.png"):
    rng = np.random.default_rng(0)
    # smooth colour field plus texture: informative at every scale
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
    arr = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    path = tmp_path / name
    Image.fromarray(arr).save(path)
    return SourcePhoto(path=path, package="pkg", registry="debian", licence="CC0-1.0", source_name=name, width=w, height=h)


def test_extra_scales_add_one_crop_each_where_they_differ_and_fit(tmp_path):
    photo = _photo(tmp_path, 2400, 1600)
    base = crop_scale(1600, 128)  # 0.24
    recs = make_real_crops([photo], tmp_path / "out", extra_scales=(0.5, 0.25, 0.125))
    scales = [r["scale"] for r in recs]
    # 0.25 is within 1.2x of the main scale (0.24): skipped; 0.5 and 0.125 (short side 200 px) kept
    assert scales.count(round(base, 6)) >= 1 and scales.count(0.5) == 1 and scales.count(0.125) == 1
    assert 0.25 not in scales
    names = [r["file"] for r in recs]
    assert names == [f"p0000_c{k}.png" for k in range(len(recs))]
    for r in recs:
        assert Image.open(tmp_path / "out" / r["file"]).size == (128, 128)
        left, top, right, bottom = r["box"]
        assert abs((right - left) * r["scale"] - 128) <= 1 and 0 <= left < right <= 2400 and 0 <= top < bottom <= 1600


def test_extra_scales_are_deterministic_and_leave_the_main_crops_alone(tmp_path):
    photo = _photo(tmp_path, 1200, 900)
    plain = make_real_crops([photo], tmp_path / "a")
    multi = make_real_crops([photo], tmp_path / "b", extra_scales=(0.5, 0.25, 0.125))
    again = make_real_crops([photo], tmp_path / "c", extra_scales=(0.5, 0.25, 0.125))
    assert multi == again
    assert multi[: len(plain)] == plain  # the main crops do not move
    for r in plain:
        assert (tmp_path / "a" / r["file"]).read_bytes() == (tmp_path / "b" / r["file"]).read_bytes()
    # 1200x900: main scale 0.427; 0.25 (225 px short side) added; 0.5 within 1.2x; 0.125 too small
    assert [r["scale"] for r in multi[len(plain):]] == [0.25]
