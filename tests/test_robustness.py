"""detectlab.robustness: sweeps on a tiny labelled set made here, live scoring, groups, bad input.

The detector double scores sharpness (mean |Laplacian|): the fakes here are noisy, the reals
smooth, so accuracy is 1 on clean images and falls to chance (0.5) once blur removes the
noise — a known curve a sweep must reproduce.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detectlab.degrade import DegradationError
from detectlab.errors import DatasetError, DetectLabError
from detectlab.models.base import Detector, HeatmapTarget, PreprocessConfig
from detectlab.progress import CancelToken, Cancelled
from detectlab.robustness import (
    DEFAULT_ORDER, SLIDERS, SweepSpec, augmented_groups, degrade_and_score, full_order, group_detectors, live_chain,
    parse_levels, robustness_reading, run_sweep, sweep_samples, unlisted_steps, working_image,
)
from detectlab.robustness.plots import export_sweep, pfake_figure, sweep_figure, write_html, write_png

SIZE = 24


class SharpnessDetector(Detector):
    """logit = gain * (mean |Laplacian| - 0.1): noisy images are 'fake', smooth ones 'real'."""

    kind = "cnn"

    def __init__(self, gain: float = 60.0, input_size: int = SIZE) -> None:
        super().__init__("test:sharpness", PreprocessConfig(input_size=input_size))
        self.conv = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.conv.weight.data[:] = lap
        self.gain = gain

    def features(self, x):
        return self.conv(x).abs().mean((1, 2, 3))[:, None]

    def forward_head(self, feats):
        return self.gain * (feats[:, 0] - 0.1)

    def heatmap_targets(self):
        return [HeatmapTarget("laplacian", self.conv)]


@dataclass
class Scored:
    """What the catalogue hands a sweep (LoadedDetector's fields)."""

    name: str
    detector: Detector
    meta: dict = field(default_factory=dict)
    threshold: float = 0.5


def _meta(seed: int, augment: bool = False) -> dict:
    return {"training": {"arch": "test:sharpness", "epochs": 3, "seed": seed, "name": f"run{seed}",
                         "augment": {"blur_p": 0.5 if augment else 0.0, "jpeg_p": 0.0}},
            "data": {"fingerprint": "abc"}}


def _image(noisy: bool, k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([xx, yy, (xx + yy) / 2], -1) * 0.5 + 0.25 + 0.05 * k / 10
    if noisy:
        base = base + rng.normal(0, 0.2, base.shape)
    return (np.clip(base, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def labelled(tmp_path):
    """6 smooth reals and 6 noisy fakes in the real/<generator> layout."""
    root = tmp_path / "set"
    for k in range(6):
        for folder, noisy in (("real", False), ("noisegen", True)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_image(noisy, k)).save(root / folder / f"img{k}.png")
    return root


def test_sweep_reproduces_the_known_blur_curve_with_the_expected_table_shape(labelled):
    samples, skipped = sweep_samples(labelled, "all")
    assert len(samples) == 12 and not skipped
    spec = SweepSpec.make("blur", "0,1,3")
    groups = group_detectors([Scored("sharp", SharpnessDetector())])
    result = run_sweep(groups, samples, spec, batch_size=5)
    rows = result.summary()
    assert len(rows) == 3 and [r["sigma"] for r in rows] == [0.0, 1.0, 3.0]
    assert set(rows[0]) == {"detector", "runs", "sigma", "n_images", "accuracy_mean", "accuracy_std",
                            "balanced_accuracy_mean", "balanced_accuracy_std", "ap_mean", "ap_std"}
    acc = [r["accuracy_mean"] for r in rows]
    assert acc[0] == pytest.approx(1.0) and acc[-1] == pytest.approx(0.5)   # sharp fakes, then all called real
    assert all(r["n_images"] == 12 and r["runs"] == 1 for r in rows)
    points = [p for p in result.points if p.level == 3.0]
    assert points[0].real_accuracy == 1.0 and points[0].fake_accuracy == 0.0


def test_batching_does_not_change_the_result_and_noise_is_seeded(labelled):
    samples, _ = sweep_samples(labelled, "all")
    groups = group_detectors([Scored("sharp", SharpnessDetector(gain=5))])
    spec = SweepSpec.make("noise", "0,0.05,0.2", seed=3)
    a = run_sweep(groups, samples, spec, batch_size=12).summary()
    b = run_sweep(groups, samples, spec, batch_size=12).summary()
    assert a == b
    blur = SweepSpec.make("blur", "0,1")
    x = run_sweep(groups, samples, blur, batch_size=4).summary()
    y = run_sweep(groups, samples, blur, batch_size=12).summary()
    assert [r["ap_mean"] for r in x] == pytest.approx([r["ap_mean"] for r in y], abs=1e-12)


def test_repeated_runs_form_one_group_with_mean_and_std(labelled):
    samples, _ = sweep_samples(labelled, "all")
    # run b learned the opposite (a bad seed): the two runs disagree and the std is not 0
    dets = [Scored("a", SharpnessDetector(gain=60), _meta(0)), Scored("b", SharpnessDetector(gain=-60), _meta(1)),
            Scored("c", SharpnessDetector(gain=60), _meta(2, augment=True))]
    groups = group_detectors(dets, repeat_group=True)
    assert [g.runs for g in groups] == [2, 1] and groups[0].name == "a (×2 runs)"
    assert len(group_detectors(dets, repeat_group=False)) == 3
    result = run_sweep(groups, samples, SweepSpec.make("blur", "0,0.5"))
    rows = result.summary()
    assert len(rows) == 4 and [r["runs"] for r in rows] == [2, 2, 1, 1]
    for r in rows[:2]:
        pts = [getattr(p, "accuracy") for p in result.points if p.group == groups[0].name and p.level == r["sigma"]]
        assert r["accuracy_mean"] == pytest.approx(np.mean(pts))
        assert r["accuracy_std"] == pytest.approx(np.std(pts, ddof=1))
    assert any(r["accuracy_std"] > 0 for r in rows[:2])
    fig = sweep_figure(result)
    assert len(fig.data) == 2 * 3  # two lines, three metric panels
    assert fig.data[0].error_y.visible and not fig.data[3].error_y.visible


def test_chain_around_the_varying_step(labelled):
    samples, _ = sweep_samples(labelled, "all")
    spec = SweepSpec.make("jpeg", "90,30", chain="blur 3 → *")
    assert str(spec.chain_at(30)) == "blur 3 → jpeg 30" and spec.label == "blur 3 → jpeg quality"
    rows = run_sweep(group_detectors([Scored("s", SharpnessDetector())]), samples, spec).summary()
    assert [r["accuracy_mean"] for r in rows] == pytest.approx([0.5, 0.5])   # the blur already hides the noise


def test_resize_only_is_scored_through_the_detectors_own_resize(labelled):
    samples, _ = sweep_samples(labelled, "all")
    rows = run_sweep(group_detectors([Scored("s", SharpnessDetector())]), samples,
                     SweepSpec.make("resize", "1,0.5")).summary()
    assert len(rows) == 2 and rows[0]["accuracy_mean"] == pytest.approx(1.0)


def test_progress_reaches_the_total_and_cancel_stops(labelled):
    samples, _ = sweep_samples(labelled, "all")
    groups = group_detectors([Scored("s", SharpnessDetector())])
    calls = []
    run_sweep(groups, samples, SweepSpec.make("jpeg", "90,50,10"), batch_size=5,
              progress=lambda d, t=None, desc="": calls.append((d, t)))
    assert calls[-1] == (36, 36) and all(d <= t for d, t in calls)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_sweep(groups, samples, SweepSpec.make("jpeg", "90"), cancel=token)


def test_unreadable_files_are_skipped_and_listed(labelled):
    samples, _ = sweep_samples(labelled, "all")
    (labelled / "noisegen" / "img0.png").write_bytes(b"not a png")   # broken after discovery
    result = run_sweep(group_detectors([Scored("s", SharpnessDetector())]), samples, SweepSpec.make("blur", "0"))
    assert result.n_images == 11 and len(result.skipped) == 1 and "img0.png" in result.skipped[0][0]


def test_decoding_workers_and_two_input_sizes_give_the_in_process_result(labelled, monkeypatch):
    """The sweep reads its files through DataLoader worker processes, one stream per input size, in step: the
    numbers (and the skipped file) are those of decoding in this process."""
    samples, _ = sweep_samples(labelled, "all")
    (labelled / "real" / "img3.png").write_bytes(b"\x89PNG broken")
    groups = group_detectors([Scored("s24", SharpnessDetector()), Scored("s16", SharpnessDetector(input_size=16))])
    spec = SweepSpec.make("noise", "0,0.05", seed=1)
    runs = {}
    for workers in ("0", "1"):
        monkeypatch.setenv("DETECTLAB_LOADER_WORKERS", workers)
        runs[workers] = run_sweep(groups, samples, spec, batch_size=4)
    a, b = runs["0"], runs["1"]
    assert a.n_images == b.n_images == 11 and a.skipped == b.skipped and "img3.png" in a.skipped[0][0]
    assert [(p.group, p.level, p.n) for p in a.points] == [(p.group, p.level, p.n) for p in b.points]
    assert [p.ap for p in a.points] == pytest.approx([p.ap for p in b.points], abs=1e-12)
    assert [p.accuracy for p in a.points] == [p.accuracy for p in b.points]


def test_csv_png_and_html_exports(labelled, tmp_path):
    samples, _ = sweep_samples(labelled, "all")
    result = run_sweep(group_detectors([Scored("s", SharpnessDetector())]), samples, SweepSpec.make("jpeg", "90,10"))
    path = result.write_csv(tmp_path / "s.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 2 and rows[0]["quality"] == "90" and float(rows[0]["accuracy_mean"]) == pytest.approx(
        result.summary()[0]["accuracy_mean"], abs=1e-6)
    png = write_png(result, tmp_path / "s.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = write_html(sweep_figure(result), tmp_path / "s.html").read_text()
    assert "plotly" in html and "jpeg quality" in html
    fig = sweep_figure(result)
    assert fig.layout.xaxis.autorange == "reversed"   # quality falls left to right, as strength rises
    csv_, png_, html_ = export_sweep(result, tmp_path, "all")   # the tab's downloads, in one call
    assert [p.name for p in (csv_, png_, html_)] == ["all.csv", "all.png", "all.html"]
    assert csv_.read_text() == path.read_text() and "jpeg quality" in html_.read_text()
    data = json.loads(result.write_json(tmp_path / "s.json").read_text())
    assert data["summary"] == json.loads(json.dumps(result.summary())) and data["n_images"] == result.n_images


@pytest.mark.parametrize("robust_threshold, verdict", [(0.0, "contradicts [Petrželková 2024]"), (0.5, "is a tie")])
def test_reading_says_whether_augmentation_lifts_robustness(labelled, robust_threshold, verdict):
    samples, _ = sweep_samples(labelled, "all")
    plain, robust = Scored("plain", SharpnessDetector(gain=60)), Scored("robust", SharpnessDetector(gain=60))
    robust.threshold = robust_threshold   # 0: calls everything fake, balanced accuracy 0.5 everywhere
    result = run_sweep(group_detectors([plain, robust]), samples, SweepSpec.make("blur", "0,0.3,3"))
    lines = robustness_reading(result, {"plain": False, "robust": True})
    trained = [Scored("p", SharpnessDetector(), _meta(0)), Scored("a", SharpnessDetector(), _meta(1, augment=True))]
    assert augmented_groups(group_detectors(trained + [plain])) == {"p": False, "a": True, "plain": False}
    assert len(lines) == 3 and lines[2].startswith("robust vs plain under blur")
    bal = {g: np.mean(result.curve(g, "balanced_accuracy")[1][1:]) for g in ("plain", "robust")}
    assert f"{bal['robust']:.3f} vs {bal['plain']:.3f}" in lines[2]
    assert verdict in lines[2]
    assert "balanced accuracy 1.000 → 0.500" in lines[0]


@pytest.mark.parametrize("make, match", [
    (lambda: SweepSpec.make("sharpen", "1"), "unknown degradation 'sharpen'"),
    (lambda: SweepSpec.make("jpeg", "100,ninety"), "'ninety' is not a number"),
    (lambda: SweepSpec.make("jpeg", "100,0"), "levels: 0 is not a valid jpeg"),
    (lambda: SweepSpec.make("blur", ""), "levels: none given"),
    (lambda: SweepSpec.make("blur", "1", chain="downsize 0.5"), "exactly once"),
    (lambda: SweepSpec.make("blur", "1", chain="* > * "), "exactly once"),
    (lambda: SweepSpec.make("blur", "1", chain="downsize 2 > *"), "got 2"),
    (lambda: parse_levels("0.5,1.5", "downsize"), "1.5"),
])
def test_bad_sweep_specs_name_the_value(make, match):
    with pytest.raises(DegradationError, match=match):
        make()


def test_bad_folders_name_the_problem(tmp_path, labelled):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty"):
        sweep_samples(empty, "all")
    one = tmp_path / "one"
    (one / "real").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(_image(False, k)).save(one / "real" / f"r{k}.png")
    with pytest.raises(DatasetError, match=r"only real images \(3\)"):
        sweep_samples(one, "all")
    with pytest.raises(DatasetError, match="unknown split 'tset'"):
        sweep_samples(labelled, "tset")
    with pytest.raises(DetectLabError, match="no detector"):
        run_sweep([], [], SweepSpec.make("blur", "1"))


# -- live ------------------------------------------------------------------------------------
_AT_REST = {param: identity for param, _, _, identity in SLIDERS.values()}
#: one value off the identity per slider, each inside its slider range
_MOVED = {"blur": 1.5, "jpeg": 40, "patch": 10, "downsize": 0.5, "noise": 0.05, "resize": 0.5}


def test_live_chain_skips_resting_sliders_and_names_bad_values():
    assert str(live_chain(None, {})) == "none" and str(live_chain(None, _AT_REST)) == "none"
    chain = live_chain(["downsize", "jpeg", "blur"], {"jpeg_quality": 30, "blur": 2.0, "downsize_scale": 0.5})
    assert str(chain) == "downsize 0.5 → jpeg 30 → blur 2"
    for values, match in [({"jpeg_quality": 3}, r"jpeg_quality must be a number in \[5, 100\], got 3"),
                          ({"blur_sigma": 25}, r"blur_sigma must be a number in \[0, 20\], got 25"),
                          ({"noise_sigma": float("nan")}, "noise_sigma"), ({"patch_size": 10.5}, "got 10.5"),
                          ({"downsize_scale": "half"}, "downsize_scale")]:
        with pytest.raises(DegradationError, match=match):
            live_chain(list(SLIDERS), values)
    with pytest.raises(DegradationError, match="unknown degradation 'sharpen'"):
        live_chain("blur → sharpen", {})
    with pytest.raises(DegradationError, match="blur appears twice"):
        live_chain(["blur", "blur"], {})


@pytest.mark.parametrize("order", [None, [], list(SLIDERS)])
def test_every_slider_at_rest_leaves_the_image_bit_exact(order, tmp_path):
    """At rest nothing applies (JPEG 100 included: no re-encode), so the score is that of the input itself."""
    path = tmp_path / "noisy.png"
    Image.fromarray(_image(True, 3)).save(path)
    work = working_image(path, SIZE)
    chain = live_chain(order, _AT_REST)
    assert len(chain) == 0
    r = degrade_and_score(work.image, chain, [Scored("sharp", SharpnessDetector())])
    assert torch.equal(r.degraded, work.image) and math.isinf(r.psnr_db)
    with torch.no_grad():
        direct = float(torch.sigmoid(SharpnessDetector()(work.image[None]))[0])
    assert r.scores[0].p_fake == pytest.approx(direct, abs=1e-7)


@pytest.mark.parametrize("name", list(SLIDERS))
def test_a_slider_at_its_identity_is_no_step_and_off_it_always_applies(name):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    param = SLIDERS[name][0]
    assert str(live_chain([name], {param: SLIDERS[name][3]})) == "none"
    # moved, and left out of the order: it still applies (after the listed steps), and says so
    others = [n for n in DEFAULT_ORDER if n != name][:2]
    chain = live_chain(others, {param: _MOVED[name]})
    assert [s.name for s in chain.steps] == [name] and unlisted_steps(others, chain) == [name]
    out = chain(x, seed=0)
    assert out.shape != x.shape or not torch.equal(out, x)
    listed = live_chain([name, *others], {param: _MOVED[name]})
    assert str(listed) == str(chain) and unlisted_steps([name, *others], listed) == []


def test_full_order_puts_unlisted_steps_after_the_listed_ones():
    assert full_order(None) == DEFAULT_ORDER and set(DEFAULT_ORDER) == set(SLIDERS)
    assert full_order(["jpeg", "blur"]) == ("jpeg", "blur", "downsize", "noise", "patch", "resize")
    chain = live_chain(["jpeg", "blur"], {"resize_scale": 0.5, "jpeg_quality": 50, "blur_sigma": 1.0})
    assert str(chain) == "jpeg 50 → blur 1 → resize 0.5"


def test_at_rest_each_detector_scores_the_file_at_its_own_size(tmp_path):
    """Two input sizes: at rest the smaller detector scores the file decoded at its size (as Detect does),
    not a resample of the larger working image; a moved slider scores the degraded working image."""
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 130, 3), dtype=np.uint8)).save(path)
    small, big = Scored("small", SharpnessDetector(input_size=SIZE)), Scored("big", SharpnessDetector(input_size=40))
    work = working_image(path, 40)
    seen = []

    def at_size(size):
        seen.append(size)
        return working_image(path, size).image

    rest = degrade_and_score(work.image, live_chain(None, {}), [small, big], at_size=at_size)
    assert seen == [SIZE]
    assert torch.equal(rest.scores[0].seen, working_image(path, SIZE).image)
    assert torch.equal(rest.scores[1].seen, work.image)
    degraded = degrade_and_score(work.image, live_chain(None, {"noise_sigma": 0.1}), [small, big], at_size=at_size)
    assert seen == [SIZE] and degraded.scores[0].seen.shape[-1] == SIZE


def test_the_working_image_is_the_tensor_detect_scores(tmp_path):
    """Same decode as ``load_tensor`` at the detector's size (Detect's resize path), for a camera-sized photo."""
    from detectlab.data import load_tensor

    path = tmp_path / "camera.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (477, 720, 3), dtype=np.uint8)).save(path)
    assert torch.equal(working_image(path, 128).image, load_tensor(path, 128))


def test_live_scoring_psnr_and_heatmap(tmp_path):
    path = tmp_path / "noisy.png"
    Image.fromarray(_image(True, 1)).save(path)
    dets = [Scored("sharp", SharpnessDetector()), Scored("soft", SharpnessDetector(gain=5), threshold=0.7)]
    work = working_image(path, SIZE)
    clean = degrade_and_score(work.image, live_chain([], {}), dets)
    assert math.isinf(clean.psnr_db) and clean.scores[0].decision == "fake" and clean.scores[1].threshold == 0.7
    blurred = degrade_and_score(work.image, live_chain(["blur"], {"blur_sigma": 3}), dets, heatmap=True)
    assert blurred.psnr_db < 30 and blurred.scores[0].p_fake < clean.scores[0].p_fake
    assert blurred.scores[0].decision == "real"
    (layer, cam), = blurred.scores[0].maps
    assert layer == "laplacian" and cam.shape == (SIZE, SIZE) and 0 <= float(cam.min()) and float(cam.max()) <= 1
    d = blurred.to_dict()
    assert d["chain"] == "blur 3" and [s["name"] for s in d["detectors"]] == ["sharp", "soft"]
    fig = pfake_figure(["sharp", "soft"], [s.p_fake for s in blurred.scores], [0.5, 0.7])
    assert list(fig.data[1].x) == [0.5, 0.7]
    png = blurred.write_png(tmp_path / "degraded.png")
    assert Image.open(png).format == "PNG" and Image.open(png).size == (SIZE, SIZE)
    assert np.abs(np.asarray(Image.open(png), float) / 255 - blurred.degraded.permute(1, 2, 0).numpy()).max() \
        <= 0.5 / 255 + 1e-6


def test_a_large_photo_is_brought_once_to_the_working_size(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), dtype=np.uint8)).save(big)
    work = working_image(big, 64)
    assert work.image.shape == (3, 64, 64) and work.source_size == (2000, 1500)
    assert "64×64 px" in work.describe() and "2000×1500" in work.describe()
    assert working_image(big, 64).image is work.image   # cached: a slider move does not decode again
    with pytest.raises(DetectLabError, match="missing.png"):
        working_image(tmp_path / "missing.png", 64)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 40)
    with pytest.raises(DetectLabError, match="broken.png"):
        working_image(bad, 64)


def test_the_live_score_is_unchanged_by_the_decode_cache(tmp_path):
    """A slider move scores the kept working image: the numbers equal those of a fresh decode (1e-6), moved or not."""
    from detectlab.data.decode import load_fitted
    from detectlab.robustness.live import REDUCE_HEADROOM

    path = tmp_path / "camera.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (477, 720, 3), dtype=np.uint8)).save(path, quality=90)
    dets = [Scored("sharp", SharpnessDetector()), Scored("soft", SharpnessDetector(gain=5), threshold=0.7)]
    fresh, _ = load_fitted(path, SIZE, headroom=REDUCE_HEADROOM)
    for values in ({}, {"blur_sigma": 1.5, "jpeg_quality": 40}, {"noise_sigma": 0.05, "downsize_scale": 0.5}):
        chain = live_chain(None, values)
        kept = degrade_and_score(working_image(path, SIZE).image, chain, dets, heatmap=True)
        direct = degrade_and_score(fresh, chain, dets, heatmap=True)
        assert torch.equal(kept.degraded, direct.degraded)
        for a, b in zip(kept.scores, direct.scores):
            assert abs(a.p_fake - b.p_fake) <= 1e-6 and a.decision == b.decision
            assert all(torch.allclose(ma, mb, atol=1e-6) for (_, ma), (_, mb) in zip(a.maps, b.maps))


def test_a_changed_file_is_decoded_again_and_an_unchanged_one_is_not(tmp_path, monkeypatch):
    """The decode cache is keyed by the file's version (path, mtime, size): a file rewritten under the same
    name, even with the same size, is decoded again; a second slider move on the same file decodes nothing."""
    from detectlab.data import filecache

    decodes = []
    real = filecache.load_fitted
    monkeypatch.setattr(filecache, "load_fitted", lambda *a, **k: decodes.append(a[0]) or real(*a, **k))
    filecache.clear()
    path = tmp_path / "upload.png"
    Image.fromarray(np.full((40, 60, 3), 30, np.uint8)).save(path)
    first = working_image(path, SIZE)
    assert working_image(path, SIZE).image is first.image and len(decodes) == 1
    st = path.stat()
    Image.fromarray(np.full((40, 60, 3), 220, np.uint8)).save(path)        # same size in bytes, new pixels
    assert path.stat().st_size == st.st_size
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))   # only the mtime tells the versions apart
    second = working_image(path, SIZE)
    assert len(decodes) == 2
    assert float(first.image.mean()) == pytest.approx(30 / 255, abs=1e-3)
    assert float(second.image.mean()) == pytest.approx(220 / 255, abs=1e-3)


def test_detector_doubles_are_plain_objects():
    # a sweep needs only name / detector / meta / threshold: the catalogue's LoadedDetector fits
    s = SimpleNamespace(name="x", detector=SharpnessDetector(), meta={}, threshold=0.5)
    assert group_detectors([s])[0].members == [s]
