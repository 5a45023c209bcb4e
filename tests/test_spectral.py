"""Fingerprints ([Wimmer 2024], eq. 1): planted periodic patterns are found, equal sets give ~0."""

import numpy as np
import pytest
import torch

from detectlab.spectral import fingerprint, log_spectrum, mean_log_spectrum


def _batches(t, size=16):
    for lo in range(0, len(t), size):
        yield t[lo : lo + size]


def test_planted_pattern_peak_is_found():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 3, 32, 32, generator=g) * 0.5 + 0.25
    synth = real.clone()
    xs = torch.arange(32)
    synth += 0.05 * torch.cos(2 * np.pi * 8 * xs / 32)[None, None, None, :]  # 8 cycles along x
    fp = fingerprint(_batches(real), _batches(synth)).values
    iy, ix = np.unravel_index(np.argmax(fp), fp.shape)
    assert iy == 16 and abs(ix - 16) == 8  # centred spectrum: DC at (16, 16)


def test_two_halves_of_one_set_give_near_zero():
    g = torch.Generator().manual_seed(1)
    n = 1000
    data = torch.rand(2 * n, 3, 16, 16, generator=g)
    fp = fingerprint(_batches(data[:n], 250), _batches(data[n:], 250)).values
    # log|F| of noise has std pi/sqrt(24) per bin, so E|FP| = sqrt(2/pi) * sqrt(2/n) * pi/sqrt(24)
    expected = np.sqrt(2 / np.pi) * np.sqrt(2 / n) * np.pi / np.sqrt(24)
    assert np.abs(fp).mean() < 1.5 * expected


def test_streaming_mean_equals_full_mean():
    data = torch.rand(50, 3, 16, 16)
    streamed, n = mean_log_spectrum(_batches(data, 7))
    assert n == 50
    np.testing.assert_allclose(streamed, log_spectrum(data).double().mean(0).numpy(), atol=1e-5)


def test_per_channel_shape():
    assert log_spectrum(torch.rand(2, 3, 8, 8), grayscale=False).shape == (2, 3, 8, 8)


# -- fingerprint removal and the spectrum baseline --------------------------------------------

from detectlab.models.spectrum import SpectrumDetector  # noqa: E402
from detectlab.spectral.fingerprint import radial_profile  # noqa: E402
from detectlab.spectral.removal import REMOVALS, peak_mask  # noqa: E402


def _planted(n=128, size=32, seed=0, amplitude=0.06, cycles=8):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(n, 3, size, size, generator=g), 3, 1, 1) * 0.6 + 0.2
    xs = torch.arange(size)
    wave = amplitude * torch.cos(2 * np.pi * cycles * xs / size)
    return base, (base + wave[None, None, None, :]).clamp(0, 1)


def _per_channel_fp(real, synth):
    return fingerprint(_batches(real), _batches(synth), grayscale=False).values


def test_msa_moves_the_mean_spectrum_onto_the_real_one():
    real, synth = _planted(seed=1)
    fp = _per_channel_fp(real, synth)
    cleaned = REMOVALS["msa"](synth, fp, strength=1.0)
    after = _per_channel_fp(real, cleaned)
    assert np.abs(after).mean() < 0.5 * np.abs(fp).mean()


@pytest.mark.parametrize("method", sorted(REMOVALS))
def test_removal_takes_out_a_planted_peak_and_keeps_the_image(method):
    real, synth = _planted(seed=2)
    fp = _per_channel_fp(real, synth)
    iy, ix = 16, 16 + 8
    assert fp.mean(0)[iy, ix] > 1.0
    assert peak_mask(fp)[iy, ix]
    cleaned = REMOVALS[method](synth, fp, strength=1.0)
    after = _per_channel_fp(real, cleaned).mean(0)
    assert after[iy, ix] < 0.25 * fp.mean(0)[iy, ix]
    assert float((cleaned - synth).abs().mean()) < 0.06  # content stays: only the trace goes
    assert cleaned.shape == synth.shape and float(cleaned.min()) >= 0 and float(cleaned.max()) <= 1


def test_strength_zero_is_identity_and_range_is_checked():
    real, synth = _planted(n=8)
    fp = _per_channel_fp(real, synth)
    assert torch.allclose(REMOVALS["msa"](synth, fp, 0.0), synth, atol=1e-6)
    with pytest.raises(ValueError, match="strength"):
        REMOVALS["fpa"](synth, fp, 5.0)


def test_radial_profile_of_a_ring():
    spec = torch.zeros(1, 16, 16)
    yy, xx = torch.meshgrid(torch.arange(16) - 8, torch.arange(16) - 8, indexing="ij")
    spec[0][(yy**2 + xx**2).float().sqrt().round() == 5] = 1.0
    prof = radial_profile(spec)[0]
    assert prof.shape == (8,) and prof[5] == pytest.approx(1.0) and prof[4] == 0 and prof[6] == 0


def test_durrall_baseline_separates_planted_from_clean():
    # the trace Durrall's 1-D feature is built for: excess energy at high frequencies
    real, _ = _planted(n=200, seed=3)
    g = torch.Generator().manual_seed(4)
    synth = (real + 0.03 * torch.randn(real.shape, generator=g)).clamp(0, 1)
    det = SpectrumDetector(input_size=32)
    x = torch.cat([real[:150], synth[:150]])
    y = np.r_[np.zeros(150), np.ones(150)]
    det.fit(x, y)
    with torch.no_grad():
        scores = torch.sigmoid(det(torch.cat([real[150:], synth[150:]]))).numpy()
    acc = ((scores > 0.5) == np.r_[np.zeros(50), np.ones(50)]).mean()
    assert acc >= 0.9


def _share_fake(det, x) -> float:
    with torch.no_grad():
        return float((torch.sigmoid(det(x)) > 0.5).float().mean())


def test_balanced_fit_does_not_lean_towards_the_majority_class():
    # overlapping classes, four fakes per real: an unweighted fit moves its boundary into the reals
    base, _ = _planted(n=600, seed=7)
    noise = torch.randn(base.shape, generator=torch.Generator().manual_seed(8))
    reals, fakes = (base[:200] + 0.04 * noise[:200]).clamp(0, 1), (base[200:] + 0.036 * noise[200:]).clamp(0, 1)
    x, y = torch.cat([reals[:50], fakes[:200]]), np.r_[np.zeros(50), np.ones(200)]
    plain, balanced = SpectrumDetector(input_size=32), SpectrumDetector(input_size=32)
    plain.fit(x, y)
    balanced.fit(x, y, balanced=True)
    fp_plain, fp_balanced = _share_fake(plain, reals[50:]), _share_fake(balanced, reals[50:])
    assert fp_plain > 0.4 and fp_balanced < fp_plain - 0.15  # measured 0.51 -> 0.25


def test_augmented_fit_calls_fewer_blurred_reals_fake():
    # fakes lack high frequencies and carry a grid line; blur on both classes leaves the line as the cue
    from detectlab.degrade import DegradeAugConfig, RandomDegrade
    from detectlab.degrade.ops import GaussianBlur

    base, synth = _planted(n=400, seed=5, amplitude=0.03)
    noise = 0.04 * torch.randn(base.shape, generator=torch.Generator().manual_seed(6))
    reals = (base[:200] + noise[:200]).clamp(0, 1)
    fakes = (GaussianBlur()(base[200:] + noise[200:], 1.0) + (synth - base)[200:]).clamp(0, 1)
    x, y = torch.cat([reals[:40], fakes[:160]]), np.r_[np.zeros(40), np.ones(160)]
    plain, augmented = SpectrumDetector(input_size=32), SpectrumDetector(input_size=32)
    plain.fit(x, y, balanced=True)
    augmented.fit(x, y, balanced=True, augment=RandomDegrade(DegradeAugConfig(blur_p=0.5, blur_sigma=(0.0, 1.5))),
                  copies=3, generator=torch.Generator().manual_seed(0))
    blurred_reals = GaussianBlur()(reals[40:], 1.0)
    assert _share_fake(plain, blurred_reals) == 1.0
    assert _share_fake(augmented, blurred_reals) < 0.9  # measured 0.77
    assert _share_fake(augmented, reals[40:]) <= 0.05 and _share_fake(augmented, fakes) >= 0.9


@pytest.mark.parametrize("h,w", [(16, 16), (15, 17), (8, 5)])
def test_half_plane_reconstruction_equals_the_full_spectrum(h, w):
    x = torch.rand(3, 3, h, w)
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    direct = torch.log(torch.fft.fftshift(torch.fft.fft2(gray, norm="ortho"), dim=(-2, -1)).abs() + 1e-8)
    torch.testing.assert_close(log_spectrum(x), direct, atol=1e-4, rtol=1e-4)
