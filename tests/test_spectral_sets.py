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


@pytest.mark.parametrize("classes,generators,match", [
    (["real"], ["gan"], "x: fingerprints compare a real/ folder with at least one generator folder; this data set "
                        "has only real"),
    (["gan"], ["gan"], "x: fingerprints compare .* this data set has only gan"),
    ([], ["gan"], "this data set has only no images"),
    (["real", "gan"], [], "pick at least one synthetic set"),
    (["real", "gan"], ["vae"], "synthetic sets \\['vae'\\] are not in the data set"),
])
def test_compare_sets_says_what_is_missing(folders, classes, generators, match):
    from detectlab.errors import DatasetError
    from detectlab.spectral.sets import compare_sets, files_by_class

    by_class = {k: v for k, v in files_by_class(folders).items() if k in classes}
    with pytest.raises(DatasetError, match=match):
        compare_sets(by_class, generators, size=32, name="x")


def test_save_clean_set_is_a_new_data_set_within_the_quota(folders, tmp_path, monkeypatch):
    from detectlab import config
    from detectlab.errors import DatasetError
    from detectlab.spectral.sets import files_by_class, save_clean_set

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path))  # the session's home keeps its data sets
    by_class = files_by_class(folders)
    out = save_clean_set(by_class, "gan", "msa", "", 0.5)
    assert out.parent == config.datasets_dir() and out.name.startswith("gan-msa")
    assert discover(out).counts() == {"real": 40, "gan-msa": 40}
    again = save_clean_set(by_class, "gan", "msa", out.name)  # a taken name gets a suffix
    assert again.name == f"{out.name}-2"
    before = sorted(config.datasets_dir().iterdir())
    monkeypatch.setattr(config, "import_quota_bytes", lambda: 1)
    with pytest.raises(DatasetError):
        save_clean_set(by_class, "gan", "fpa", "over-quota")
    assert sorted(config.datasets_dir().iterdir()) == before  # refused before anything was written
    with pytest.raises(DatasetError, match="no vae class"):
        save_clean_set(by_class, "vae", "fpa")


def test_figures_of_the_fingerprints_view(folders):
    from detectlab.spectral.plots import auto_limit, grid_figure, profile_figure, removal_figure
    from detectlab.spectral.sets import compare_sets, files_by_class, removal_preview

    by_class = files_by_class(folders)
    cmp = compare_sets(by_class, ["gan"], size=32, image=sorted((folders / "gan").glob("0*.png"))[0])
    fig = grid_figure(cmp.panels, 0, cmp.raw)  # 0: the automatic scale
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    assert fig.layout.coloraxis.cmax == -fig.layout.coloraxis.cmin == pytest.approx(auto_limit(cmp.panels))
    raw = grid_figure(cmp.panels, 1.0, raw=True)
    assert fig.layout.coloraxis.colorscale != raw.layout.coloraxis.colorscale
    assert grid_figure(cmp.panels, 2.5).layout.coloraxis.cmax == 2.5
    assert list(fig.data[0].x) == list(range(-16, 16))  # centred frequencies
    prof = profile_figure(cmp.profiles, cmp.single)
    assert [t.name for t in prof.data if t.showlegend is not False] == ["real", "gan", cmp.single[0]]
    assert prof.data[-1].line.dash == "dot"
    assert prof.data[0].x[-1] < 0.5 and prof.data[0].x[0] == 0
    p = removal_preview(by_class["real"], by_class["gan"], "msa", size=32, limit=16)
    rem = removal_figure(p, "gan")
    assert [a.text for a in rem.layout.annotations] == ["FP(real, gan) before", "after msa"]
    assert rem.layout.coloraxis.cmax == pytest.approx(float(np.percentile(np.abs(p.fp_before), 99.5)))


def test_the_uploaded_image_has_its_own_colour_scale(folders):
    from detectlab.spectral.plots import auto_limit, grid_figure
    from detectlab.spectral.sets import compare_sets, files_by_class

    by_class = files_by_class(folders)
    cmp = compare_sets(by_class, ["gan"], size=32, image=sorted((folders / "real").glob("*.png"))[0])
    single, sets = cmp.panels[cmp.single_panel], {k: v for k, v in cmp.panels.items() if k != cmp.single_panel}
    # one image's spectrum is much noisier than a mean over many: on a shared scale it would set the limit
    assert auto_limit({"one": single}) > 1.5 * auto_limit(sets)
    fig = grid_figure(cmp.panels, 0, cmp.raw, cmp.single_panel)
    axes = {t.name: t.coloraxis for t in fig.data}
    assert axes == {"FP(real, gan)": "coloraxis", cmp.single_panel: "coloraxis2"}
    assert fig.layout.coloraxis.cmax == pytest.approx(auto_limit(sets))          # the sets' scale ignores the image
    assert fig.layout.coloraxis2.cmax == pytest.approx(auto_limit({"one": single}))
    assert fig.layout.coloraxis2.cmin == -fig.layout.coloraxis2.cmax
    titles = [a.text for a in fig.layout.annotations]
    assert any("own colour scale" in t and cmp.single_panel in t for t in titles), titles
    assert "own scale" in fig.layout.coloraxis2.colorbar.title.text
    # a manual limit moves the sets' scale only
    manual = grid_figure(cmp.panels, 0.3, cmp.raw, cmp.single_panel)
    assert manual.layout.coloraxis.cmax == 0.3 and manual.layout.coloraxis2.cmax == fig.layout.coloraxis2.cmax
    # without an uploaded image there is one colour axis, as before
    one = grid_figure(sets, 0)
    assert "coloraxis2" not in one.layout.to_plotly_json() and {t.coloraxis for t in one.data} == {"coloraxis"}


def test_radial_profile_lines_are_told_apart():
    from detectlab.spectral.plots import profile_figure

    f = np.linspace(0, 1, 16)
    spectra = {"real": -f, **{f"gen{k}": -f - 0.01 * k for k in range(1, 5)}}
    fig = profile_figure(spectra, ("uploaded: x.png", -f + 0.2))
    top = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in top] == ["real", "gen1", "gen2", "gen3", "gen4", "uploaded: x.png"]
    for attr in (lambda t: t.line.color, lambda t: t.line.dash, lambda t: t.marker.symbol):
        assert len({attr(t) for t in top}) == len(top)            # colour, dash and marker each differ
    assert all("markers" in t.mode and t.marker.maxdisplayed for t in top)
    # the lower row: each line minus the real profile, on the same legend entry
    diff = {t.legendgroup: np.asarray(t.y) for t in fig.data if t.showlegend is False}
    assert set(diff) == {t.name for t in top}
    np.testing.assert_allclose(diff["gen3"], -0.03, atol=1e-12)
    np.testing.assert_allclose(diff["real"], 0, atol=1e-12)
    assert fig.layout.yaxis2.title.text == "minus real"
