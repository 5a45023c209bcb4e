"""NPR: a small CNN on the image's neighbouring-pixel residual (Tan et al., CVPR 2024, "Rethinking the
Up-Sampling Operations in CNN-based Generative Network for Generalizable Deepfake Detection").

Every generator that up-samples (transposed convolution, resize + convolution, sub-pixel convolution,
a latent decoder) ties the pixels of each 2x2 cell to each other; a camera's pixels are not tied that
way. The residual ``x - up(down(x))`` (nearest-neighbour, factor 2) keeps only how each pixel differs
from its cell's anchor pixel: image content largely cancels and the up-sampling's local correlation is
what is left, which is why the trace carries across generator designs. The network is the first two
stages of a ResNet-50 (bottleneck blocks, 512 channels out) as in the paper's reference code, trained
from random init (no ImageNet weights: its input is a residual, not a photo): about 1.4 M parameters,
cheap enough to train on 2 CPU cores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detectlab.models.base import Detector, HeatmapTarget, PreprocessConfig
from detectlab.models.registry import register_detector


def npr_residual(x: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """``x - up(down(x))`` with nearest-neighbour resampling by ``factor`` (the paper's NPR); an odd side's
    last row or column is compared with itself (residual 0)."""
    h, w = x.shape[-2:]
    down = F.interpolate(x, scale_factor=factor, mode="nearest", recompute_scale_factor=True)
    up = F.interpolate(down, size=(h, w), mode="nearest")
    return x - up


class NPRDetector(Detector):
    """Residual -> ResNet stem (3x3 conv, stride 2) -> ResNet-50 stages 1-2 -> pooled 512 features -> one logit."""

    kind = "cnn"

    def __init__(self, input_size: int = 128) -> None:
        import timm

        super().__init__("npr", PreprocessConfig(input_size=input_size))
        self.weights_info.source = "random init (NPR is trained from scratch)"
        base = timm.create_model("resnet50", pretrained=False, num_classes=0)
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        self.layer1, self.layer2 = base.layer1, base.layer2
        self.head = nn.Linear(512, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # the paper scales the residual by 2/3 before the stem
        y = self.layer2(self.layer1(self.stem(npr_residual(x) * (2.0 / 3.0))))
        return y.mean(dim=(2, 3))

    def heatmap_targets(self) -> list[HeatmapTarget]:
        return [HeatmapTarget("npr.layer2", self.layer2)]


register_detector("npr", "NPR: neighbouring-pixel residual + ResNet-50 stages 1-2, from scratch (Tan 2024)",
                  lambda pretrained=None, input_size=128: NPRDetector(input_size), family="cnn",
                  heatmap_target="layer2")
