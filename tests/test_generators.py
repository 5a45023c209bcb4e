"""The demo generators: shapes, range, distinct traces, safe save/load."""

from __future__ import annotations

import pytest
import torch

from detectlab.errors import CheckpointError
from detectlab.generators import (
    UPSAMPLERS, GeneratorTrainConfig, ResidualGenerator, degrade_condition, load_generator, save_generator, train_generator,
)


@pytest.mark.parametrize("upsampler", sorted(UPSAMPLERS))
@pytest.mark.parametrize("size", [32, 64])
def test_generator_keeps_shape_and_range(upsampler, size):
    torch.manual_seed(0)
    g = ResidualGenerator(upsampler, width=8)
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_unknown_upsampler_is_named():
    with pytest.raises(ValueError, match="unknown upsampler 'bicubic'"):
        ResidualGenerator("bicubic")


def test_degrade_condition_is_seeded_and_desaturates():
    x = torch.rand(4, 3, 32, 32)
    a = degrade_condition(x, torch.Generator().manual_seed(3))
    b = degrade_condition(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # channel spread (saturation) drops
    assert (a.max(1).values - a.min(1).values).mean() < 0.6 * (x.max(1).values - x.min(1).values).mean()


def test_training_lowers_the_loss_and_round_trips(tmp_path):
    torch.manual_seed(0)
    imgs = (torch.rand(16, 3, 32, 32) * 255).to(torch.uint8)
    cfg = GeneratorTrainConfig(upsampler="pixel-shuffle", width=8, steps=30, batch_size=4, patch=16, seed=1)
    model, summary = train_generator(imgs, cfg)
    path = tmp_path / "g.safetensors"
    save_generator(model, path, cfg, summary)
    loaded, meta = load_generator(path)
    assert meta["config"]["upsampler"] == "pixel-shuffle"
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(model(x), loaded(x))


def test_load_refuses_foreign_files(tmp_path):
    bad = tmp_path / "g.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="g.safetensors"):
        load_generator(bad)


def test_transposed_conv_leaves_periodic_peaks():
    """An untrained transposed-conv decoder already shows energy at 1/4 and 1/2 of the sampling
    frequency on flat inputs (checkerboard artefacts), a resize-conv one far less."""
    torch.manual_seed(0)
    flat = torch.full((8, 3, 64, 64), 0.5)

    def peak_ratio(up):
        g = ResidualGenerator(up, width=8)
        with torch.no_grad():
            r = (g.decoder(g.encoder(flat))).mean(1)  # residual only
        spec = torch.fft.fft2(r - r.mean()).abs().mean(0)
        return float(spec[32, 32] + spec[0, 32] + spec[32, 0]) / float(spec.mean() + 1e-12)

    assert peak_ratio("transposed-conv") > 3 * peak_ratio("resize-conv")
