"""detectlab.attacks: FGSM ([Petrželková 2024] eq. 3.10) checked by hand on a linear detector."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detectlab.attacks import ATTACKS, FGSM, confusion_rate, confusion_stats, fgsm, fgsm_batch_for_training

H = W = 4
N = 3 * H * W  # 48 pixels


class LinearDetector(nn.Module):
    """logit = w . flatten(bn(x)) + b; bn is the identity at its initial running statistics.

    The batch norm (and a frozen parameter) are there to check that the attack runs in eval
    mode, restores the train flags and touches no parameter, buffer or requires_grad flag.
    """

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3, eps=0.0)
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))
        self.frozen = nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x).flatten(1) @ self.w + self.b + self.frozen


def _alternating() -> torch.Tensor:
    # no zero weight: linspace over an even count is symmetric around 0 without hitting it
    return torch.linspace(-1, 1, N)


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {k: p.requires_grad for k, p in model.named_parameters()},
            {k: p.grad for k, p in model.named_parameters()},
            [m.training for m in model.modules()])


def _assert_untouched(model: nn.Module, snap) -> None:
    state, flags, grads, training = snap
    now = _snapshot(model)
    assert all(torch.equal(state[k], now[0][k]) for k in state)
    assert now[1] == flags and all(g is None for g in now[2].values()) and grads == now[2]
    assert now[3] == training


def test_registry():
    assert ATTACKS["fgsm"] is FGSM


@pytest.mark.parametrize("label,expected_sign", [(1, -1.0), (0, 1.0), (None, -1.0)])
def test_fgsm_steps_eps_along_the_hand_computed_gradient_sign(label, expected_sign):
    # BCE with logits: dJ/dx = (sigmoid(z) - y) * w. For y = 1, sigmoid(z) - 1 < 0, so
    # sign(grad) = -sign(w): the step lowers the logit (fake -> real); for y = 0 it is +sign(w).
    # Without a label the target is the verdict: logit = 0.5 * sum(w) + 0.3 = 0.3 > 0 -> fake.
    w = _alternating()
    model = LinearDetector(w, b=0.3)
    x = torch.full((1, 3, H, W), 0.5)
    labels = None if label is None else torch.tensor([label])
    adv = FGSM(model, eps=0.1)(x, labels)
    expected = 0.5 + expected_sign * 0.1 * torch.sign(w).view(1, 3, H, W)
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose((adv - x).abs(), torch.full_like(x, 0.1), atol=1e-6)
    assert not adv.requires_grad


def test_fgsm_clips_to_the_unit_range():
    w = _alternating()
    model = LinearDetector(w, b=0.0)
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(0))
    x[0, :, :2] = 0.01   # clipped at 0 where the step goes down
    x[1, :, 2:] = 0.99   # clipped at 1 where the step goes up
    y = torch.tensor([1, 1])
    adv = fgsm(model, x, y, eps=0.2)
    expected = (x - 0.2 * torch.sign(w).view(1, 3, H, W)).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)
    assert adv.min() >= 0 and adv.max() <= 1
    moved = (adv - x).abs()
    unclipped = (expected > 0) & (expected < 1)
    assert torch.allclose(moved[unclipped], torch.tensor(0.2), atol=1e-6)
    assert torch.allclose(FGSM(model, 0.2).residual(x, y), adv - x)


def test_eps_zero_is_identity_and_the_model_is_untouched():
    model = LinearDetector(_alternating(), b=0.3)
    model.train()
    model.bn.eval()  # a submodule with its own flag must keep it
    snap = _snapshot(model)
    x = torch.rand(3, 3, H, W, generator=torch.Generator().manual_seed(1))
    assert torch.equal(FGSM(model, eps=0.0)(x), x)
    FGSM(model, eps=0.05)(x, torch.tensor([1, 0, 1]))
    with torch.no_grad():  # works under no_grad too
        FGSM(model, eps=0.05)(x)
    _assert_untouched(model, snap)
    assert model.training and not model.bn.training


def _fakes_and_a_real():
    # w = 1/N everywhere, b = -0.5: logit = mean(x) - 0.5; fakes at 0.6 (logit 0.1), real at 0.3
    model = LinearDetector(torch.full((N,), 1.0 / N), b=-0.5)
    x = torch.cat([torch.full((4, 3, H, W), 0.6), torch.full((1, 3, H, W), 0.3)])
    return model, x, torch.tensor([1, 1, 1, 1, 0])


def test_confusion_rate_follows_seed_001():
    model, x, y = _fakes_and_a_real()
    snap = _snapshot(model)
    # eps = 0.5 moves fakes to 0.1 (logit -0.4, now real): every fake decision switches
    assert confusion_rate(model, x, y, eps=0.5, batch_size=2) == 1.0
    assert confusion_rate(model, x, None, eps=0.5) == 1.0
    # eps = 0: the original images, confusion rate 0 ([Petrželková 2024] Fig. 4.14)
    assert confusion_rate(model, x, y, eps=0.0) == 0.0
    # eps = 0.05: fakes at 0.55, logit 0.05, still fake
    assert confusion_rate(model, x, y, eps=0.05) == 0.0
    stats = confusion_stats(model, x, y, eps=0.5)
    assert (stats.eligible, stats.flipped) == (4, 4)  # the real image is not a "fake" decision
    # the real image is attacked too (towards fake: 0.8, logit 0.3), so nothing is right after
    assert stats.accuracy_before == 1.0 and stats.accuracy_after == 0.0
    # ... and each class says so on its own: every fake called real, the one real turned fake
    assert (stats.n_fake, stats.n_real) == (4, 1)
    assert (stats.fakes_called_real_before, stats.fakes_called_real_after) == (0.0, 1.0)
    assert (stats.reals_called_fake_before, stats.reals_called_fake_after, stats.reals_turned_fake) == (0.0, 1.0, 1)
    assert confusion_stats(model, x, None, eps=0.5).n_real is None     # without labels: no classes
    # "any": the real (pushed up to 0.8, logit 0.3) flips too
    assert confusion_stats(model, x, y, eps=0.5, direction="any").flipped == 5
    # no fake decision at all: undefined
    assert confusion_rate(model, x[4:], y[4:], eps=0.5) is None
    # transfer: crafted on another linear model with the same sign pattern
    other = LinearDetector(torch.full((N,), 2.0 / N), b=-1.0)
    assert confusion_rate(model, x, y, eps=0.5, attack_model=other) == 1.0
    _assert_untouched(model, snap)


def test_fgsm_batch_for_training_draws_eps_per_image():
    model = LinearDetector(_alternating(), b=0.0)
    model.train()
    snap = _snapshot(model)
    x = 0.3 + 0.4 * torch.rand(8, 3, H, W, generator=torch.Generator().manual_seed(2))  # no clipping
    y = torch.tensor([1, 0] * 4, dtype=torch.float32)
    a = fgsm_batch_for_training(model, x, y, [0.05, 0.1, 0.2], torch.Generator().manual_seed(3))
    b = fgsm_batch_for_training(model, x, y, [0.05, 0.1, 0.2], torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    steps = (a - x).abs().flatten(1)
    per_image = steps[:, 0]
    assert torch.allclose(steps, per_image[:, None].expand_as(steps), atol=1e-6)
    assert all(min(abs(s - e) for e in (0.05, 0.1, 0.2)) < 1e-6 for s in per_image.tolist())
    _assert_untouched(model, snap)


@pytest.mark.parametrize("call,match", [
    (lambda m, x: FGSM(m, eps=-0.1), "eps"),
    (lambda m, x: FGSM(m, eps=2), "eps"),
    (lambda m, x: FGSM(m)(x, torch.tensor([1, 0])), "one 0 \\(real\\) / 1"),
    (lambda m, x: FGSM(m)(x, torch.tensor([2])), "0 \\(real\\) or 1"),
    (lambda m, x: FGSM(m)(x * 3), "\\[0, 1\\]"),
    (lambda m, x: FGSM(m)(x[0]), "\\[B, 3, H, W\\]"),
    (lambda m, x: confusion_rate(m, x, None, 0.1, batch_size=0), "batch_size"),
    (lambda m, x: fgsm_batch_for_training(m, x, torch.ones(1), []), "eps_list"),
])
def test_bad_input_raises_value_error(call, match):
    model = LinearDetector(_alternating(), b=0.0)
    with pytest.raises(ValueError, match=match):
        call(model, torch.full((1, 3, H, W), 0.5))


@pytest.mark.parametrize("scale,logit", [(1.0, 5.0), (6.0, 30.0), (16.0, 80.0)])
def test_fgsm_moves_images_the_detector_is_very_sure_of(scale, logit):
    # logit = scale * w . x (5 at scale 1): from ~17 on, sigmoid(z) - 1 is exactly 0 in float32, yet
    # the gradient sign -sign(w) must survive (the softplus form of the BCE keeps exp(-z) > 0)
    w = _alternating() * scale
    model = LinearDetector(w, b=0.0).eval()
    x = torch.full((1, 3, H, W), 0.5)
    x.view(-1)[w > 0] = 0.9  # logit = scale * sum(w+ * 0.9 + w- * 0.5) > 0: a confident "fake"
    with torch.no_grad():
        assert model(x).item() == pytest.approx(logit, rel=0.05)
    adv = FGSM(model, eps=0.05)(x, torch.tensor([1]))
    expected = (x - 0.05 * torch.sign(w).view(1, 3, H, W)).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)
