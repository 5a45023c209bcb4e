"""detectlab.degrade: one parametrized walk over all degradations, plus the augmentation."""

from __future__ import annotations

import pytest
import torch

from detectlab.degrade import (
    DEGRADATIONS,
    MASK_VALUE,
    DegradeAugConfig,
    RandomDegrade,
    degrade,
    downsize,
    jpeg,
    patch_mask,
)


def _images(b: int = 2, size: int = 48) -> torch.Tensor:
    """Smooth gradients plus fine noise: both low and high frequencies, never exactly 0.5."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])[None].repeat(b, 1, 1, 1)
    x = (0.2 + 0.6 * base + 0.15 * torch.rand(b, 3, size, size, generator=g)).clamp(0, 1)
    return torch.where(x == MASK_VALUE, x + 1e-3, x)


def _high_freq_energy(x: torch.Tensor) -> float:
    spec = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)).abs() ** 2
    h, w = x.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    return float(spec[..., (yy**2 + xx**2) > (min(h, w) // 4) ** 2].sum())


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean())


def _gray_pixels(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((b == MASK_VALUE).float().sum())


# name -> (identity strength, strengths from weak to strong, effect that must grow, bad strengths)
CASES = {
    "blur": (0, [0.5, 1.0, 2.0, 4.0], lambda a, b: -_high_freq_energy(b), [-1, float("nan"), "2", None]),
    "jpeg": (None, [95, 75, 50, 20, 5], _mse, [0, 101, 50.5, "high", True]),
    "downsize": (1.0, [0.9, 0.6, 0.4, 0.2, 0.1], _mse, [0, -0.5, 1.5, None]),
    "patch": (48, [40, 32, 16, 4, 1], _gray_pixels, [0, -3, 8.5, None]),
}


def test_registry_names_every_degradation():
    assert set(DEGRADATIONS) == set(CASES) == {"blur", "jpeg", "downsize", "patch"}
    for name, op in DEGRADATIONS.items():
        assert op.name == name


@pytest.mark.parametrize("name", list(CASES))
def test_identity_strength_returns_the_input(name):
    x = _images()
    out = DEGRADATIONS[name](x, CASES[name][0])
    assert torch.equal(out, x) and out is not x


@pytest.mark.parametrize("name", list(CASES))
def test_shape_dtype_and_range_are_kept(name):
    x = _images(b=3, size=40)[:, :, :, :36]  # non-square
    for s in CASES[name][1]:
        out = DEGRADATIONS[name](x, s)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", list(CASES))
def test_effect_grows_with_strength(name):
    x = _images()
    _, strengths, effect, _ = CASES[name]
    values = [effect(x, DEGRADATIONS[name](x, s)) for s in strengths]
    assert all(a < b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", list(CASES))
def test_bad_strength_names_the_valid_range(name):
    op = DEGRADATIONS[name]
    for bad in CASES[name][3]:
        with pytest.raises(ValueError, match=f"{op.strength_name} must be .*got"):
            op(_images(1, 8), bad)


@pytest.mark.parametrize("bad", [torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8) * 2,
                                 (torch.rand(1, 3, 8, 8) * 255).to(torch.uint8)])
def test_bad_images_are_refused(bad):
    with pytest.raises(ValueError, match="images"):
        degrade(bad, "blur", 1.0)


def test_specific_behaviour():
    x = _images(1, 32)
    # jpeg quality 100 still compresses (8-bit quantization, 4:2:0 chroma), less than quality 50
    q100 = jpeg(x, 100)
    assert not torch.equal(q100, x) and _mse(q100, x) < _mse(jpeg(x, 50), x)
    assert torch.equal(jpeg(x), x)
    # downsize keeps the size unless resize_only
    assert downsize(x, 0.25, resize_only=True).shape == (1, 3, 8, 8)
    # a centred 8 px patch keeps exactly the centre
    p = patch_mask(x, 8)
    assert torch.equal(p[..., 12:20, 12:20], x[..., 12:20, 12:20])
    assert int((p == MASK_VALUE).sum()) == 3 * (32 * 32 - 64)
    # random placement: seeded, still one 8x8 visible square per image
    r1 = patch_mask(x, 8, placement="random", generator=torch.Generator().manual_seed(1))
    r2 = patch_mask(x, 8, placement="random", generator=torch.Generator().manual_seed(1))
    assert torch.equal(r1, r2) and int((r1 != MASK_VALUE).sum()) == 3 * 64
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(x, "noise", 1)


def test_random_degrade_is_seeded_per_image_and_validated():
    x = _images(b=6, size=32)
    cfg = DegradeAugConfig(blur_p=0.5, jpeg_p=0.5, downsize_p=0.5, patch_p=0.5, patch_size=(8, None))
    aug = RandomDegrade(cfg)
    a = aug(x, generator=torch.Generator().manual_seed(0))
    b = aug(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    changed = [not torch.equal(a[i], x[i]) for i in range(len(x))]
    assert any(changed)
    # all probabilities 0: nothing happens; probability 1 on blur: every image changes
    assert torch.equal(RandomDegrade(DegradeAugConfig())(x), x)
    blurred = RandomDegrade(DegradeAugConfig(blur_p=1.0, blur_sigma=(1.0, 2.0)))(x, generator=torch.Generator())
    assert all(not torch.equal(blurred[i], x[i]) for i in range(len(x)))
    for bad, match in [(DegradeAugConfig(blur_p=1.5), "blur_p"), (DegradeAugConfig(jpeg_quality=(0, 50)), "quality"),
                       (DegradeAugConfig(downsize_scale=(0.8, 0.5)), "above high")]:
        with pytest.raises(ValueError, match=match):
            RandomDegrade(bad)
