"""Heatmaps: every method on every kind of detector; the target is right for negative logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detectlab.explain import CAM_METHODS, heatmaps, overlay
from detectlab.models import create_detector
from detectlab.models.base import Detector, HeatmapTarget, PreprocessConfig


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
@pytest.mark.parametrize("arch,size", [("resnet18", 64), ("vit_tiny_patch16_224", 64), ("frozen:mobilenet_v2", 64),
                                       ("frozen:mobilenet_v2+efficientnet_lite0", 96)])
def test_maps_have_input_size_and_range(arch, size, method):
    torch.manual_seed(0)
    det = create_detector(arch, input_size=size)
    x = torch.rand(2, 3, size, size)
    maps, logits = heatmaps(det, x, method)
    assert len(maps) == len(det.heatmap_targets())
    for m in maps:
        assert m.shape == (2, size, size)
        assert float(m.min()) >= 0 and float(m.max()) <= 1
    params_grad = [p.grad for p in det.parameters()]
    assert all(g is None for g in params_grad)  # parameters untouched


class _Masks(nn.Module):
    def __init__(self):
        super().__init__()
        m = torch.zeros(2, 16, 16)
        m[0, :, :8] = 1.0  # channel 0 sees the left half
        m[1, :, 8:] = 1.0  # channel 1 sees the right half
        self.register_buffer("m", m)

    def forward(self, a):
        return a * self.m


class _Split(Detector):
    """Logit = mean(left half) - mean(right half): evidence for fake lives left, for real right."""

    def __init__(self):
        super().__init__("split", PreprocessConfig(16))
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        nn.init.constant_(self.conv.weight, 1 / 3)
        self.masks = _Masks()

    def features(self, x):
        return self.masks(self.conv(x)).mean((2, 3)) * 2

    def forward(self, x):
        f = self.features(x)
        return f[:, 0] - f[:, 1]

    def heatmap_targets(self):
        return [HeatmapTarget("masks", self.masks)]


def test_decision_target_explains_real_verdicts_too():
    det = _Split()
    x = torch.full((1, 3, 16, 16), 0.2)
    x[..., 8:] = 0.9  # bright right half -> negative logit -> "real"
    maps, logits = heatmaps(det, x, "gradcam", target="decision")
    assert logits[0] < 0
    m = maps[0][0]
    assert m[:, 8:].mean() > m[:, :8].mean()  # the map points at the evidence for "real"
    fake_maps, _ = heatmaps(det, x, "gradcam", target="fake")
    assert not torch.allclose(fake_maps[0], maps[0])


def test_overlay_opacity_bounds():
    img = torch.rand(3, 8, 8)
    assert overlay(img, torch.rand(8, 8), 0.0).size == (8, 8)
    with pytest.raises(ValueError, match="opacity"):
        overlay(img, torch.rand(8, 8), 1.5)
