"""Fingerprints (seed 000, eq. 1): planted periodic patterns are found, equal sets give ~0."""

import numpy as np
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
    np.testing.assert_allclose(streamed, log_spectrum(data).mean(0).numpy(), atol=1e-10)


def test_per_channel_shape():
    assert log_spectrum(torch.rand(2, 3, 8, 8), grayscale=False).shape == (2, 3, 8, 8)
