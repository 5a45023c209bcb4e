"""The detector registry: one interface over CNNs, frozen backbones and ensembles."""

from __future__ import annotations

import time

import pytest
import torch

from detectlab.models import create_detector, list_detectors

FAST_ARCHS = ["resnet18", "mobilenetv3_small_100", "vit_tiny_patch16_224", "frozen:mobilenet_v2",
              "frozen:mobilenet_v2+efficientnet_lite0"]


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
    assert len(targets) == (2 if "+" in arch else 1)
    assert det.spec()["preprocess"]["input_size"] == size


def test_frozen_backbones_stay_frozen_and_use_real_weights():
    det = create_detector("frozen:mobilenet_v2+efficientnet_lite0")
    assert det.weights_info.loaded, det.weights_info.messages
    assert "ImageNet" in det.weights_info.source
    trainable = det.trainable_parameters()
    assert sum(p.numel() for p in trainable) == 2560 + 1  # the linear head only
    det.train()
    assert not det.backbones[0].training  # batch-norm statistics stay frozen


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
