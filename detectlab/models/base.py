"""The one interface every detector answers (in timm's spirit).

A detector takes images ``[B, 3, H, W]`` in [0, 1] at its input size, normalizes inside,
and returns one logit per image (``[B]``, positive = fake). It exposes its pooled
``features`` (pre-logits), its ``head``, its preprocessing config, and the layers a heatmap
method should look at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn


@dataclass
class PreprocessConfig:
    """How an image file becomes the detector's input (read by ``data`` code, like timm's data config)."""

    input_size: int = 128
    # images are resized (shorter side, antialiased) and centre-cropped to input_size
    resize: str = "shorter-side+center-crop"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HeatmapTarget:
    """A layer whose activations and gradients make a class-activation map."""

    name: str
    module: nn.Module
    # turns the layer's output into [B, C, h, w] (ViT tokens -> grid); None for CNN maps
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class WeightsInfo:
    """Which weights a detector's backbone(s) started from, in words a user can act on."""

    source: str = "random init"
    loaded: bool = False
    messages: list[str] = field(default_factory=list)


class Normalize(nn.Module):
    """Per-channel (x - mean) / std inside the model, so callers always pass [0, 1] images."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Detector(nn.Module):
    """Base class: subclasses implement ``features`` and set ``head``."""

    kind: str = "detector"

    def __init__(self, arch: str, preprocess: PreprocessConfig) -> None:
        super().__init__()
        self.arch = arch
        self.preprocess = preprocess
        self.weights_info = WeightsInfo()
        self.head: nn.Module = nn.Identity()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logit features ``[B, D]`` of images in [0, 1]."""
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x))

    def heatmap_targets(self) -> list[HeatmapTarget]:
        """Layers for class-activation maps; ensembles return one per backbone."""
        raise NotImplementedError

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def spec(self) -> dict:
        """What a checkpoint must carry to rebuild this detector."""
        return {
            "arch": self.arch,
            "kind": self.kind,
            "preprocess": self.preprocess.to_dict(),
            "weights": {"source": self.weights_info.source, "loaded": self.weights_info.loaded},
            "output": "one logit per image; sigmoid(logit) = P(fake); class 0 = real, 1 = fake",
        }
