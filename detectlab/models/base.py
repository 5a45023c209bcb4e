"""The one interface every detector answers (in timm's spirit).

A detector takes images ``[B, 3, H, W]`` in [0, 1] at its input size, normalizes inside,
and returns one logit per image (``[B]``, positive = fake). It exposes its pooled
``features`` (pre-logits), its ``head``, its preprocessing config, and the layers a heatmap
method should look at.
"""

from __future__ import annotations

import functools
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


def model_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (the CPU for a module with neither)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def on_model_device(method: Callable) -> Callable:
    """Run ``method(self, x)`` on the detector's device and hand the result back on ``x``'s device.

    A detector moved to a GPU (``--device cuda``) is then a drop-in for every caller that holds CPU
    tensors (heatmaps, trust statistics, attacks); autograd flows through both moves. Where ``x`` is
    already on the model's device (training on a GPU) nothing is copied.
    """

    @functools.wraps(method)
    def run(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        device = model_device(self)
        if x.device == device:
            return method(self, x, *args, **kwargs)
        return method(self, x.to(device), *args, **kwargs).to(x.device)

    return run


class Detector(nn.Module):
    """Base class: subclasses implement ``features`` and set ``head``.

    ``features`` and ``forward_head`` run on the detector's device whatever device their input is on
    (``on_model_device``); a subclass's own definitions are wrapped the same way.
    """

    kind: str = "detector"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("features", "forward_head"):
            if name in cls.__dict__:
                setattr(cls, name, on_model_device(cls.__dict__[name]))

    def __init__(self, arch: str, preprocess: PreprocessConfig) -> None:
        super().__init__()
        self.arch = arch
        self.preprocess = preprocess
        self.weights_info = WeightsInfo()
        self.head: nn.Module = nn.Identity()

    @on_model_device
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled pre-logit features ``[B, D]`` of images in [0, 1]."""
        raise NotImplementedError

    @on_model_device
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
