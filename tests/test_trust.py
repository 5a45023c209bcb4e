"""Native-resolution tiling, temperature scaling and the out-of-distribution flag."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.detect.tiling import MAX_TILES, score_file_tiled, score_tiled, tile_grid, tile_starts
from detectlab.detect.trust import (
    FeatureDensity,
    Trust,
    calibrate,
    expected_calibration_error,
    features_and_logits,
)
from detectlab.models import create_detector


class MeanBrightness(torch.nn.Module):
    """A detector stand-in whose logit is 10·(mean brightness − 0.5), with 3 penultimate features."""

    def __init__(self, size=16):
        super().__init__()
        from types import SimpleNamespace

        self.preprocess = SimpleNamespace(input_size=size)

    def features(self, x):
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 0].mean((1, 2))], 1)

    def forward_head(self, f):
        return 10 * (f[:, 0] - 0.5)

    def forward(self, x):
        return self.forward_head(self.features(x))


@pytest.mark.parametrize("length,size", [(16, 16), (17, 16), (100, 16), (1000, 128), (129, 128)])
def test_tiles_cover_every_pixel_and_stay_inside(length, size):
    starts = tile_starts(length, size)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + size <= max(length, size)
        covered[s:s + size] = True
    assert covered.all() and starts == sorted(starts)
    assert len(starts) == max(1, -(-length // size))


def test_tile_sample_is_capped_and_deterministic():
    rows, cols, cells = tile_grid(4000, 3000, 128, max_tiles=MAX_TILES, seed=0)
    assert len(rows) * len(cols) == 32 * 24 and len(cells) == MAX_TILES
    assert cells == tile_grid(4000, 3000, 128, seed=0)[2]
    assert cells != tile_grid(4000, 3000, 128, seed=1)[2]
    assert tile_grid(300, 300, 128)[2] == [(r, c) for r in range(3) for c in range(3)]


def test_tiled_score_aggregates_the_mean_logit_and_maps_tiles():
    det = MeanBrightness(16)
    img = torch.zeros(3, 32, 48, dtype=torch.uint8)
    img[:, :16, :16] = 255                     # one bright tile out of 2 x 3
    s = score_tiled(det, img)
    assert s.mode == "tiles" and s.tile_map.shape == (2, 3) and s.tiles_scored == 6
    z = np.array([5.0, -5, -5, -5, -5, -5])
    assert s.logit == pytest.approx(z.mean(), abs=1e-5)
    assert s.p_fake == pytest.approx(1 / (1 + np.exp(-z.mean())), abs=1e-6)
    assert s.p_fake_max == pytest.approx(1 / (1 + np.exp(-5)), abs=1e-6)
    assert s.tile_map[0, 0] > 0.99 and np.nanmax(s.tile_map[1]) < 0.01
    assert score_tiled(det, img).logit == s.logit   # deterministic


def test_small_images_use_the_resize_path_and_files_decode_through_the_data_layer(tmp_path):
    det = MeanBrightness(16)
    buf = io.BytesIO()
    Image.new("I;16", (10, 12), 65535).save(buf, "PNG")  # 16-bit white: full range, not clipped
    s = score_file_tiled(det, buf.getvalue())
    assert s.mode == "resize" and s.p_fake > 0.99 and "resized" in s.describe()


def test_temperature_scaling_lowers_ece_on_overconfident_logits():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    # honest logits with some noise, then made 4x over-confident
    z = 4 * ((2 * y - 1) * 1.0 + rng.normal(0, 1.2, y.size))
    cal = calibrate(z, y)
    assert 2.5 < cal.temperature < 6.0
    assert cal.ece_after < cal.ece_before / 2 and cal.nll_after < cal.nll_before
    p = 1 / (1 + np.exp(-z))
    assert expected_calibration_error(p, y) == pytest.approx(cal.ece_before)
    assert ((cal.apply(z) > 0.5) == (p > 0.5)).all()   # decisions unchanged


def test_ood_flag_fires_on_a_flat_field_not_on_in_distribution_images(tmp_path):
    torch.manual_seed(0)
    det = create_detector("resnet18", False, 32).eval()
    gen = torch.Generator().manual_seed(0)
    # "training data": textured noise images of two kinds
    real = torch.rand(120, 3, 32, 32, generator=gen)
    fake = torch.rand(120, 3, 32, 32, generator=gen).pow(2)
    feats, logits = features_and_logits(det, torch.cat([real, fake]))
    labels = torch.cat([torch.zeros(120), torch.ones(120)])
    density = FeatureDensity.fit(feats[::2], labels[::2])
    density.set_threshold(feats[1::2])
    trust = Trust(calibrate(logits.numpy(), labels.numpy()), density)
    flat = torch.full((1, 3, 32, 32), 0.5)
    text_like = torch.ones(1, 3, 32, 32)
    text_like[:, :, ::4, :] = 0.0
    probe = torch.cat([flat, text_like, torch.rand(2, 3, 32, 32, generator=gen)])
    f, z = features_and_logits(det, probe)
    verdicts = trust.assess(f, z)
    assert verdicts[0].unlike_training and verdicts[1].unlike_training
    assert not verdicts[2].unlike_training and not verdicts[3].unlike_training
    path = trust.save(tmp_path / "x.trust.safetensors")
    again = Trust.load(path).assess(f, z)
    assert [a.unlike_training for a in again] == [v.unlike_training for v in verdicts]
    assert again[0].ood_distance == pytest.approx(verdicts[0].ood_distance, rel=1e-5)


def test_trust_is_tied_to_the_checkpoint_bytes(tmp_path):
    from detectlab.detect.trust import Calibration, load_trust, save_trust

    ck = tmp_path / "d.safetensors"
    ck.write_bytes(b"weights v1")
    k = 3
    density = FeatureDensity(torch.zeros(5), torch.eye(5)[:, :k], torch.zeros(2, k), torch.eye(k), threshold=2.0)
    save_trust(Trust(Calibration(1.5, 0.1, 0.05, 0.3, 0.2, 10), density), ck)
    loaded = load_trust(ck)
    assert loaded is not None and loaded.calibration.temperature == 1.5 and loaded.density.threshold == 2.0
    ck.write_bytes(b"weights v2 (retrained)")
    assert load_trust(ck) is None


def test_calibration_keeps_a_generator_the_detector_never_trained_on_outside_its_range(tmp_path):
    """``fit_trust(generators=...)`` fits the feature range on the detector's own training generators only, so the
    fakes of a design it never saw are flagged "unlike the training data" (fitted on every folder, they are not)."""
    from detectlab.detect.trust import fit_trust, trained_generators

    rng = np.random.default_rng(0)
    looks = {"real": (0.45, 0.1), "seen": (0.7, 0.1), "unseen": (0.1, 0.02)}  # mean brightness, spread
    for folder, (mean, spread) in looks.items():
        (tmp_path / folder).mkdir()
        for i in range(60):
            a = np.clip(rng.normal(mean, spread, (16, 16, 3)), 0, 1)
            Image.fromarray((a * 255).astype(np.uint8)).save(tmp_path / folder / f"p{i:03d}.png")
    unseen = torch.stack([torch.from_numpy(np.asarray(Image.open(f), dtype=np.float32) / 255).permute(2, 0, 1)
                          for f in sorted((tmp_path / "unseen").glob("*.png"))[:20]])
    det = MeanBrightness()
    assert trained_generators({"data": {"generators": ["seen"]}}) == ["seen"] and trained_generators({}) is None
    flagged = {}
    for name, gens in (("own", ["seen"]), ("all", None)):
        trust = fit_trust(det, tmp_path, generators=gens)
        f, z = features_and_logits(det, unseen)
        flagged[name] = np.mean([a.unlike_training for a in trust.assess(f, z)])
    assert flagged["own"] == 1.0 and flagged["all"] < 0.2
