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


def test_condition_sigma_sets_how_much_detail_the_condition_keeps():
    """A milder conditioning blur keeps more high-frequency energy; the range is part of the config."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)

    def high_energy(t):
        spec = torch.fft.fft2(t.mean(1)).abs()
        return float(spec[:, 8:25, 8:25].mean())

    mild = degrade_condition(x, torch.Generator().manual_seed(1), (0.4, 0.4))
    strong = degrade_condition(x, torch.Generator().manual_seed(1), (1.6, 1.6))
    assert high_energy(mild) > 3 * high_energy(strong)
    cfg = GeneratorTrainConfig(condition_sigma=[0.3, 0.7])
    assert cfg.condition_sigma == (0.3, 0.7)


def test_saved_generator_keeps_its_loss_weights_and_condition(tmp_path):
    imgs = (torch.rand(8, 3, 32, 32) * 255).to(torch.uint8)
    cfg = GeneratorTrainConfig(upsampler="resize-conv", width=8, steps=3, batch_size=2, patch=16,
                               spectral_weight=0.7, pixel_weight=0.1, condition_sigma=(0.5, 0.6))
    model, summary = train_generator(imgs, cfg)
    save_generator(model, tmp_path / "g.safetensors", cfg, summary)
    _, meta = load_generator(tmp_path / "g.safetensors")
    assert tuple(meta["config"]["condition_sigma"]) == (0.5, 0.6)
    assert (meta["config"]["spectral_weight"], meta["config"]["pixel_weight"]) == (0.7, 0.1)


def test_a_generator_file_from_before_the_lowpass_loss_loads_as_it_was_trained(tmp_path):
    import json

    from safetensors.torch import save_file

    model = ResidualGenerator("pixel-shuffle", width=8)
    old = {"upsampler": "pixel-shuffle", "width": 8, "steps": 1, "batch_size": 2, "patch": 16, "lr": 0.002,
           "spectral_weight": 0.1, "seed": 0}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "old.safetensors"),
              metadata={"config": json.dumps(old), "summary": "{}", "kind": "detectlab-generator"})
    _, meta = load_generator(tmp_path / "old.safetensors")
    assert tuple(meta["config"]["condition_sigma"]) == (0.8, 1.6)
    assert (meta["config"]["pixel_weight"], meta["config"]["lowpass_weight"]) == (1.0, 0.0)
    assert meta["config"]["spectral_loss"] == "full"


def test_radial_spectral_loss_ignores_where_a_peak_sits_the_full_one_does_not():
    """The radial loss compares how much energy each frequency band holds, so a grid peak the
    up-sampler adds costs it little; the per-frequency loss would flatten such peaks."""
    from detectlab.generators.train import _spectral_loss

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    assert float(_spectral_loss("radial", x.transpose(-1, -2), x)) < 1e-5
    assert float(_spectral_loss("full", x.transpose(-1, -2), x)) > 0.1
    with pytest.raises(ValueError, match="spectral_loss must be one of"):
        GeneratorTrainConfig(spectral_loss="perceptual")


# -- the broader demo's styles and designs ----------------------------------------------------------
@pytest.mark.parametrize("style", ["residual", "latent", "denoiser"])
def test_every_style_keeps_shape_and_range(style):
    from detectlab.generators.nets import build_generator

    torch.manual_seed(0)
    g = build_generator(style, "bilinear-conv", width=8)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = g.generate(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert g.style == style


def test_the_latent_decoder_sees_the_image_only_through_its_latent():
    """No pixel of the input reaches the output but through the 1/8-resolution latent: two inputs with the same
    latent give the same output."""
    from detectlab.generators.nets import LatentDecoderGenerator

    torch.manual_seed(0)
    g = LatentDecoderGenerator("transposed-conv-k3", width=8).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        z = g.encoder(x)
        assert z.shape == (1, 16, 4, 4)
        assert torch.allclose(g(x), (0.5 + g.decoder(z)).clamp(0, 1))


def test_the_denoiser_samples_reproducibly_and_differs_with_the_noise():
    from detectlab.generators.nets import DenoisingGenerator

    torch.manual_seed(0)
    g = DenoisingGenerator("pixel-shuffle", width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = g.generate(x, torch.Generator().manual_seed(5))
        b = g.generate(x, torch.Generator().manual_seed(5))
        c = g.generate(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_designs_span_three_upsampling_families_three_styles_two_losses_and_hold_two_out(tmp_path):
    from detectlab.generators.designs import DESIGNS, HELD_OUT, TRAIN, designs_in

    families = {"transposed-conv": "transposed", "transposed-conv-k3": "transposed", "resize-conv": "interpolation",
                "bilinear-conv": "interpolation", "pixel-shuffle": "sub-pixel"}
    assert len(DESIGNS) >= 6
    assert len({families[d.upsampler] for d in DESIGNS.values()}) == 3
    assert {d.style for d in DESIGNS.values()} == {"residual", "latent", "denoiser"}
    assert {d.loss for d in DESIGNS.values()} == {"spectral", "pixel"}
    assert len(designs_in(HELD_OUT)) >= 2 and set(designs_in(TRAIN)).isdisjoint(designs_in(HELD_OUT))
    # each design trains and round-trips through the safetensors file with its style
    images = (torch.rand(8, 3, 32, 32) * 255).to(torch.uint8)
    for name in ("latent-bilinear", "denoiser-pixel-shuffle"):
        cfg = DESIGNS[name].train_config(steps=2, width=8, seed=0)
        cfg.patch, cfg.batch_size = 16, 4
        model, summary = train_generator(images, cfg)
        save_generator(model, tmp_path / f"{name}.safetensors", cfg, summary)
        loaded, meta = load_generator(tmp_path / f"{name}.safetensors")
        assert type(loaded) is type(model) and meta["config"]["style"] == DESIGNS[name].style
        x = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(loaded.generate(x, torch.Generator().manual_seed(0)),
                               model.generate(x, torch.Generator().manual_seed(0)))
