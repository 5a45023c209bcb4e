"""detectlab.degrade: one parametrized walk over all degradations, their chains, and the augmentation."""

from __future__ import annotations

import pytest
import torch

from detectlab.degrade import (
    DEGRADATIONS,
    MASK_VALUE,
    Chain,
    DegradationError,
    DegradeAugConfig,
    RandomDegrade,
    degrade,
    downsize,
    jpeg,
    patch_mask,
    psnr,
)
from detectlab.errors import DetectLabError


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


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# name -> (identity strength, strengths from weak to strong, effect that must grow, bad strengths)
CASES = {
    "blur": (0, [0.5, 1.0, 2.0, 4.0], lambda a, b: -_high_freq_energy(b), [-1, float("nan"), "2", None]),
    "jpeg": (None, [95, 75, 50, 20, 5], _mse, [0, 101, 50.5, "high", True]),
    "downsize": (1.0, [0.9, 0.6, 0.4, 0.2, 0.1], _mse, [0, -0.5, 1.5, None]),
    "patch": (48, [40, 32, 16, 4, 1], _gray_pixels, [0, -3, 8.5, None]),
    "noise": (0, [0.01, 0.05, 0.1, 0.3, 1.0], _mse, [-0.1, 1.5, float("inf"), "0.1", None]),
    "resize": (1.0, [0.9, 0.6, 0.4, 0.2, 0.1], lambda a, b: -float(psnr(a, b).mean()), [0, 1.01, -1, None]),
}


def test_registry_names_every_degradation():
    assert set(DEGRADATIONS) == set(CASES) == {"blur", "jpeg", "downsize", "patch", "noise", "resize"}
    for name, op in DEGRADATIONS.items():
        assert op.name == name


@pytest.mark.parametrize("name", list(CASES))
def test_identity_strength_returns_the_input(name):
    x = _images()
    out = DEGRADATIONS[name](x, CASES[name][0])
    assert torch.equal(out, x) and out is not x


@pytest.mark.parametrize("name", list(CASES))
def test_a_chain_step_at_its_identity_is_bit_exact(name):
    """A chain of one step at the identity strength leaves every pixel as it was (no re-encode, no resample)."""
    x = _images(size=40)[:, :, :, :36]
    chain = Chain([(name, CASES[name][0])])
    out = chain(x, seed=3)
    assert torch.equal(out, x) and out is not x and chain.out_size((40, 36)) == (40, 36)


@pytest.mark.parametrize("name", list(CASES))
def test_shape_dtype_and_range_are_kept(name):
    x = _images(b=3, size=40)[:, :, :, :36]  # non-square
    op = DEGRADATIONS[name]
    for s in CASES[name][1]:
        out = op(x, s, generator=_seeded())
        assert out.shape[-2:] == op.out_size((40, 36), s) and out.shape[:2] == x.shape[:2] and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1
        if name != "resize":
            assert out.shape == x.shape


@pytest.mark.parametrize("name", list(CASES))
def test_effect_grows_with_strength(name):
    x = _images()
    _, strengths, effect, _ = CASES[name]
    values = [effect(x, DEGRADATIONS[name](x, s, generator=_seeded())) for s in strengths]
    assert all(a < b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("name", list(CASES))
def test_psnr_falls_as_strength_rises(name):
    """The issue's monotonicity: PSNR to the input falls as sigma rises, quality falls, the patch shrinks..."""
    x = _images()
    values = [float(psnr(x, DEGRADATIONS[name](x, s, generator=_seeded())).mean()) for s in CASES[name][1]]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_jpeg_quality_100_is_identity_within_tolerance():
    """Quality 100 still quantizes and subsamples chroma: close to, not equal to, the input (stated: >= 45 dB
    and every pixel within 4 grey levels on a smooth image)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    x = torch.stack([xx, yy, (xx + yy) / 2])[None] * 0.6 + 0.2
    out = jpeg(x, 100)
    assert not torch.equal(out, x)
    assert float(psnr(x, out)) >= 45 and float((out - x).abs().max()) <= 4 / 255


@pytest.mark.parametrize("name", ["noise", "patch"])
def test_random_degradations_are_determined_by_the_seed(name):
    from detectlab.degrade import PatchMask

    op = PatchMask("random") if name == "patch" else DEGRADATIONS[name]
    strength = 8 if name == "patch" else 0.1
    x = _images(b=4, size=32)
    a, b = op(x, strength, generator=_seeded(3)), op(x, strength, generator=_seeded(3))
    c = op(x, strength, generator=_seeded(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("size", [1, 5, 8, 31])
@pytest.mark.parametrize("placement", ["center", "random"])
def test_patch_leaves_exactly_one_s_by_s_visible_square(size, placement):
    x = _images(b=3, size=32)
    out = patch_mask(x, size, placement=placement, generator=_seeded(size))
    for i in range(3):
        visible = (out[i] != MASK_VALUE).all(0)
        rows, cols = visible.any(1).nonzero().flatten(), visible.any(0).nonzero().flatten()
        assert int(visible.sum()) == size * size
        assert len(rows) == size and len(cols) == size
        assert int(rows[-1] - rows[0]) == size - 1 and int(cols[-1] - cols[0]) == size - 1
        t, l = int(rows[0]), int(cols[0])
        assert torch.equal(out[i, :, t:t + size, l:l + size], x[i, :, t:t + size, l:l + size])


def test_noise_has_the_requested_sigma():
    x = torch.full((2, 3, 64, 64), 0.5)
    out = DEGRADATIONS["noise"](x, 0.05, generator=_seeded())
    assert abs(float((out - x).std()) - 0.05) < 0.002 and abs(float((out - x).mean())) < 0.002


# -- chains ----------------------------------------------------------------------------------
def test_chain_applies_steps_in_order_and_is_seeded():
    x = _images(b=2, size=32)
    chain = Chain.parse("downsize 0.5 -> jpeg 70 → noise 0.05")
    assert [(s.name, s.strength) for s in chain.steps] == [("downsize", 0.5), ("jpeg", 70), ("noise", 0.05)]
    assert str(chain) == "downsize 0.5 → jpeg 70 → noise 0.05" and Chain.parse(str(chain)) == chain
    by_hand = DEGRADATIONS["noise"](jpeg(downsize(x, 0.5), 70), 0.05, generator=_seeded(7))
    assert torch.equal(chain(x, seed=7), by_hand)
    assert torch.equal(chain(x, seed=7), chain(x, seed=7)) and not torch.equal(chain(x, seed=7), chain(x, seed=8))
    swapped = Chain([("jpeg", 70), ("downsize", 0.5)])
    assert not torch.equal(swapped(x), Chain([("downsize", 0.5), ("jpeg", 70)])(x))


def test_identity_chain_returns_a_copy_and_resize_changes_the_size():
    x = _images(b=1, size=32)
    for chain in (Chain(), Chain.parse(""), Chain.parse("blur 0, noise 0, downsize 1, jpeg off")):
        out = chain(x)
        assert torch.equal(out, x) and out is not x
    small = Chain.parse("resize 0.5 > blur 1")
    assert small.out_size((32, 32)) == (16, 16) and small(x).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("text, named", [
    ("blurr 2", "'blurr'"), ("jpeg 0", "got 0"), ("jpeg abc", "'abc'"), ("jpeg", "'jpeg'"),
    ("noise 2", "got 2"), ("downsize 0.5 -> patch 2.5", "got 2.5"),
])
def test_bad_chain_names_the_value(text, named):
    with pytest.raises(DegradationError) as err:
        Chain.parse(text)
    assert named in str(err.value)
    assert isinstance(err.value, DetectLabError) and isinstance(err.value, ValueError)


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
        degrade(x, "sharpen", 1)


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


@pytest.mark.parametrize("sigma", [0.5, 2.0, 10.0, 30.0])  # 30: kernel wider than the image -> replicate
def test_blur_as_matrices_equals_blur_as_convolutions(sigma, monkeypatch):
    import detectlab.degrade.ops as ops

    x = _images(b=2, size=40)[..., :36]
    by_matmul = ops.DEGRADATIONS["blur"](x, sigma)
    monkeypatch.setattr(ops, "BLUR_MATMUL_MAX_SIDE", 0)
    by_conv = ops.DEGRADATIONS["blur"](x, sigma)
    assert float((by_matmul - by_conv).abs().max()) < 1e-6
