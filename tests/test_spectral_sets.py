"""Fingerprints and removal over folders, and their CLI commands."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from detectlab.data import discover
from detectlab.spectral.sets import clean_set, set_spectrum


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectral-sets")
    rng = np.random.default_rng(0)
    xs = np.arange(32)
    wave = (40 * np.cos(2 * np.pi * 8 * xs / 32))[None, :, None]
    for name in ("real", "gan"):
        (root / name).mkdir()
    for i in range(40):
        base = np.asarray(Image.fromarray(rng.integers(40, 200, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BILINEAR), float)
        Image.fromarray(base.astype(np.uint8)).save(root / "real" / f"{i:02d}.png")
        Image.fromarray(np.clip(base + wave, 0, 255).astype(np.uint8)).save(root / "gan" / f"{i:02d}.png")
    (root / "gan" / "broken.png").write_bytes(b"not a png")
    return root


def test_memory_stays_flat_and_bad_files_are_skipped(folders):
    files = sorted((folders / "gan").glob("*.png"))
    s = set_spectrum("gan", files, size=32)
    assert s.n == 40 and s.mean.shape == (32, 32) and s.profile.shape == (16,)


@pytest.mark.parametrize("method", ["msa", "fpa"])
def test_clean_set_writes_a_usable_data_set(folders, tmp_path, method):
    real = sorted((folders / "real").glob("*.png"))
    gan = sorted((folders / "gan").glob("*.png"))
    out = clean_set(real, gan, method, tmp_path / "cleaned", "gan", size=32)
    ds = discover(out)
    assert ds.counts() == {"real": 40, f"gan-{method}": 40}
    before = set_spectrum("gan", gan, 32).mean - set_spectrum("real", real, 32).mean
    after = set_spectrum("c", sorted((out / f"gan-{method}").glob("*.png")), 32).mean - set_spectrum("real", real, 32).mean
    assert after[16, 24] < 0.3 * before[16, 24]  # the planted peak is gone
    with pytest.raises(Exception, match="exists already"):
        clean_set(real, gan, method, out, "gan", size=32)


def test_cli_fingerprint_and_clean(folders, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "detectlab", *a], capture_output=True, text=True, timeout=300)  # noqa: E731
    res = run("fingerprint", str(folders / "real"), str(folders / "gan"), "--out", str(tmp_path / "fp"), "--size", "32")
    assert res.returncode == 0, res.stderr
    fp = np.load(tmp_path / "fp" / "gan.npy")
    iy, ix = np.unravel_index(np.argmax(fp), fp.shape)
    assert (iy, abs(ix - 16)) == (16, 8)
    assert (tmp_path / "fp" / "gan.png").exists()
    res = run("clean", "fpa", str(folders / "gan"), "--real", str(folders / "real"), "--out", str(tmp_path / "c"),
              "--size", "32")
    assert res.returncode == 0, res.stderr
    assert len(list((tmp_path / "c" / "gan-fpa").glob("*.png"))) == 40


def test_export_holds_panels_profiles_counts_and_settings(folders, tmp_path):
    import json

    from detectlab.spectral.sets import compare_sets, export_comparison, files_by_class

    by_class = files_by_class(folders)
    image = sorted((folders / "gan").glob("0*.png"))[0]
    cmp = compare_sets(by_class, ["gan"], size=32, image=image)
    out = export_comparison(cmp, tmp_path / "fp.npz", {"images per set": "all", "high-pass residual": False})
    with np.load(out) as z:
        assert z["panel/FP(real, gan)"].shape == (32, 32) and z["panel/FP(real, gan)"].dtype == np.float32
        np.testing.assert_allclose(z["panel/FP(real, gan)"], cmp.panels["FP(real, gan)"], atol=1e-5)
        assert z["profile/real"].shape == z["profile/gan"].shape == (16,)
        assert f"profile/uploaded: {image.name}" in z.files
        meta = json.loads(str(z["meta"]))
    assert meta["counts"] == {"real": 40, "gan": 40} and meta["raw"] is False
    assert meta["settings"]["images per set"] == "all" and "eq. 1" in meta["definition"]
