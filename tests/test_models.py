"""The detector registry: one interface over CNNs, frozen backbones and ensembles."""

from __future__ import annotations

import time

import pytest
import torch

from detectlab.models import CNN_ARCHS, create_detector, detector_entry, list_detectors, register_detector
from detectlab.models.base import Detector, PreprocessConfig

FAST_ARCHS = ["resnet18", "mobilenetv3_small_100", "vit_tiny_patch16_224", "npr", "frozen:mobilenet_v2",
              "frozen:mobilenet_v2+efficientnet_lite0", "frozen:mobilenet_v2_mid+efficientnet_lite0_mid"]


@pytest.mark.parametrize("arch", FAST_ARCHS)
def test_uniform_interface(arch):
    size = 64
    det = create_detector(arch, input_size=size).eval()
    x = torch.rand(3, 3, size, size)
    with torch.no_grad():
        logits = det(x)
        feats = det.features(x)
    assert logits.shape == (3,)
    assert feats.ndim == 2 and feats.shape[0] == 3
    assert torch.allclose(det.forward_head(feats), logits, atol=1e-5)
    targets = det.heatmap_targets()
    assert len(targets) == (2 if detector_entry(arch).family == "ensemble" else 1)
    assert det.kind == detector_entry(arch).family
    assert det.spec()["preprocess"]["input_size"] == size


def test_npr_sees_how_pixels_tie_to_their_neighbours_not_the_content():
    """The NPR residual of a nearest-neighbour up-sampled image is exactly 0 (every 2x2 cell repeats its
    anchor pixel); of an independent-pixel image it is not; the network is small (~1.4 M parameters)."""
    import torch.nn.functional as F

    from detectlab.models.npr import npr_residual

    low = torch.rand(2, 3, 32, 32)
    assert npr_residual(F.interpolate(low, scale_factor=2, mode="nearest")).abs().max().item() == 0.0
    assert npr_residual(torch.rand(2, 3, 64, 64)).abs().mean().item() > 0.2
    odd = npr_residual(torch.rand(1, 3, 65, 63))
    assert odd.shape == (1, 3, 65, 63)
    det = create_detector("npr", input_size=64)
    n = sum(p.numel() for p in det.parameters())
    assert 1.2e6 < n < 1.6e6, n
    assert det.weights_info.source.startswith("random init")


def test_frozen_backbones_stay_frozen_and_use_real_weights():
    det = create_detector("frozen:mobilenet_v2+efficientnet_lite0")
    assert det.weights_info.loaded, det.weights_info.messages
    assert "ImageNet" in det.weights_info.source
    trainable = det.trainable_parameters()
    assert sum(p.numel() for p in trainable) == 2560 + 1  # the linear head only
    det.train()
    assert not det.backbones[0].training  # batch-norm statistics stay frozen


@pytest.mark.parametrize("arch,dim", [("frozen:mobilenet_v2_mid", 464),
                                      ("frozen:mobilenet_v2_mid+efficientnet_lite0_mid", 464 + 544)])
def test_mid_level_features_are_stage_statistics_standardized_by_the_training_set(arch, dim):
    det = create_detector(arch).eval()
    mb = det.backbones[0]
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        raw = det.backbone_features(x)
        h = mb.normalize(x)
        for layer in mb.net.features[:2]:
            h = layer(h)
    assert raw.shape == (4, dim)
    # the first block's 16 channels: their spatial means, then their (population) stds
    assert torch.allclose(raw[:, :16], h.mean((2, 3)), atol=1e-5)
    assert torch.allclose(raw[:, 16:32], h.std((2, 3), correction=0), atol=1e-5)
    det.fit_standardization(raw)
    with torch.no_grad():
        z = det.features(x)
    assert torch.allclose(z.mean(0), torch.zeros(dim), atol=1e-4)
    assert torch.allclose(det.head_on_backbone(raw), det.forward_head(z), atol=1e-6)
    assert torch.isfinite(det(torch.rand(1, 3, 16, 16))).all()  # a 1 x 1 map at stride 16: std 0, not NaN


def test_pretrained_offline_fails_fast_with_a_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    det = create_detector("resnet18", pretrained=True)
    assert time.perf_counter() - start < 20
    assert not det.weights_info.loaded
    assert any("falling back to random init" in m for m in det.weights_info.messages)


def test_missing_backbone_weights_are_named(monkeypatch, tmp_path):
    import detectlab.models.backbones as bb

    monkeypatch.setattr(bb, "find_weights", lambda key: (None, [str(tmp_path / "nothing.pth")]))
    det = create_detector("frozen:mobilenet_v2")
    assert det.weights_info.source == "random init"
    assert "nothing.pth" in det.weights_info.messages[0]


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError, match="unknown detector architecture 'resnet9000'.*resnet18"):
        create_detector("resnet9000")
    assert "frozen:mobilenet_v2+efficientnet_lite0" in list_detectors()


def test_list_detectors_is_the_registry():
    names = list(list_detectors())
    assert names[:6] == ["resnet18", "resnet50", "efficientnet_b0", "xception41", "vit_tiny_patch16_224",
                         "mobilenetv3_small_100"]
    assert names[-1] == "spectrum:durrall"
    assert all(detector_entry(n).name == n for n in names)
    assert set(list_detectors("cnn")) == set(CNN_ARCHS)
    assert CNN_ARCHS["resnet18"] == "layer4" and CNN_ARCHS["vit_tiny_patch16_224"] == "blocks.11.norm1"
    assert detector_entry("vit_tiny_patch16_224").token_grid and not detector_entry("resnet18").token_grid


def test_a_new_architecture_registers_next_to_its_definition():
    class Mean(Detector):
        kind = "cnn"

        def __init__(self, input_size):
            super().__init__("test:mean", PreprocessConfig(input_size=input_size))
            self.head = torch.nn.Linear(3, 1)

        def features(self, x):
            return x.mean((2, 3))

        def heatmap_targets(self):
            return []

    from detectlab.models import registry

    register_detector("test:mean", "per-channel mean + linear head", lambda pretrained=None, input_size=128:
                      Mean(input_size), family="cnn")
    try:
        assert list_detectors()["test:mean"] == "per-channel mean + linear head"
        det = create_detector("test:mean", input_size=16)
        assert det(torch.rand(2, 3, 16, 16)).shape == (2,)
    finally:
        registry._REGISTRY.pop("test:mean")
    assert "test:mean" not in list_detectors()


@pytest.mark.parametrize("arch, tokens", [("resnet18", False), ("vit_tiny_patch16_224", True),
                                          ("deit_tiny_patch16_224", True), ("efficientnet_b1", False)])
def test_any_timm_name_builds_and_vits_get_a_token_grid(arch, tokens):
    det = create_detector(arch, input_size=32).eval()
    with torch.no_grad():
        assert det(torch.rand(1, 3, 32, 32)).shape == (1,)
    (target,) = det.heatmap_targets()
    assert (target.reshape is not None) == tokens


def test_imagenet_mean_std_fallback_has_one_owner(monkeypatch):
    import timm

    from detectlab.models import weights

    assert weights.timm_mean_std("resnet18") == weights.IMAGENET
    monkeypatch.setattr(timm, "get_pretrained_cfg", lambda name: None)
    assert weights.timm_mean_std("anything") == weights.IMAGENET
