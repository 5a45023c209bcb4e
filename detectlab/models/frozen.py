"""Frozen backbone(s) + a trainable linear head (UnivFD, [DFwF]; the ensemble of [DFwF] §4.3)."""

from __future__ import annotations

import torch
from torch import nn

from detectlab.models.backbones import BACKBONES
from detectlab.models.base import Detector, HeatmapTarget, PreprocessConfig
from detectlab.models.registry import register_detector


class FrozenBackboneDetector(Detector):
    """Frozen backbone(s) + trainable linear head on their (concatenated) pooled features.

    [DFwF]: UnivFD-style linear probe; two backbones give the feature-concatenation ensemble.
    Convolutional backbones see the input at its own resolution; ViT backbones that need a
    fixed size get the input resized to it inside, so the data pipeline can stay at the demo
    resolution.
    """

    kind = "frozen"

    def __init__(self, backbones: list[str], pretrained: bool | str = True, input_size: int = 128) -> None:
        super().__init__("frozen:" + "+".join(backbones), PreprocessConfig(input_size=input_size))
        unknown = [b for b in backbones if b not in BACKBONES]
        if unknown or not 1 <= len(backbones) <= 2:
            raise ValueError(f"frozen detectors take one or two backbones of {sorted(BACKBONES)}; got {backbones}")
        self.kind = "ensemble" if len(backbones) == 2 else "frozen"
        self.backbones = nn.ModuleList([BACKBONES[b](pretrained=pretrained) for b in backbones])
        for bb in self.backbones:
            bb.requires_grad_(False)
            bb.eval()
        dim = sum(bb.dim for bb in self.backbones)
        self.head = nn.Linear(dim, 1)
        # multi-stage features are standardized with the training features' statistics (set by
        # ``fit_standardization``, stored in the checkpoint with the head)
        self.standardized = any(bb.standardized for bb in self.backbones)
        if self.standardized:
            self.register_buffer("feat_mean", torch.zeros(dim))
            self.register_buffer("feat_std", torch.ones(dim))
        infos = [bb.weights_info for bb in self.backbones]
        self.weights_info.loaded = all(i.loaded for i in infos)
        self.weights_info.source = " + ".join(i.source for i in infos)
        self.weights_info.messages = [m for i in infos for m in i.messages]

    def train(self, mode: bool = True):
        super().train(mode)
        for bb in self.backbones:  # frozen: batch-norm statistics and dropout stay in eval mode
            bb.eval()
        return self

    def backbone_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated backbone features ``[B, D]`` (what the feature cache stores)."""
        feats = []
        for bb in self.backbones:
            xi = x if bb.native_size in (None, x.shape[-1]) else nn.functional.interpolate(
                x, size=(bb.native_size, bb.native_size), mode="bilinear", antialias=True, align_corners=False)
            feats.append(bb(xi))
        return torch.cat(feats, dim=1)

    def standardize(self, feats: torch.Tensor) -> torch.Tensor:
        """Backbone features -> the head's input (identity unless ``standardized``)."""
        return (feats - self.feat_mean) / self.feat_std if self.standardized else feats

    @torch.no_grad()
    def fit_standardization(self, feats: torch.Tensor) -> None:
        """Set the per-dimension mean and std from backbone features ``[N, D]`` of the training set."""
        if self.standardized:
            flat = feats.reshape(-1, feats.shape[-1]).float()
            self.feat_mean.copy_(flat.mean(0))
            self.feat_std.copy_(flat.std(0).clamp(min=1e-6))

    def head_on_backbone(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from (cached) backbone features."""
        return self.forward_head(self.standardize(feats))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardize(self.backbone_features(x))

    def heatmap_targets(self) -> list[HeatmapTarget]:
        return [bb.heatmap_target() for bb in self.backbones]

    def spec(self) -> dict:
        s = super().spec()
        s["backbones"] = [bb.name for bb in self.backbones]
        return s


def create_frozen(arch: str, pretrained: bool | str | None = None, input_size: int = 128) -> FrozenBackboneDetector:
    """``frozen:<a>`` or ``frozen:<a>+<b>``; real backbone weights by default (a random frozen backbone is useless)."""
    return FrozenBackboneDetector(arch.split(":", 1)[1].split("+"), True if pretrained is None else pretrained,
                                  input_size)


def _register(arch: str, description: str) -> None:
    register_detector(arch, description,
                      lambda pretrained=None, input_size=128: create_frozen(arch, pretrained, input_size),
                      family="ensemble" if len(arch.split("+")) == 2 else "frozen")


for _b in BACKBONES:
    _register(f"frozen:{_b}", f"frozen {_b} + linear head (UnivFD, [DFwF])")
_register("frozen:mobilenet_v2+efficientnet_lite0",
          "two frozen backbones, features concatenated + linear head ([DFwF] §4.3)")
_register("frozen:mobilenet_v2_mid+efficientnet_lite0_mid",
          "two frozen backbones' mid-level stage statistics, concatenated + linear head ([DFwF] §4.3)")
_register("frozen:clip_vit_b32+dinov2_vits14", "CLIP + DINOv2 ensemble (needs their weights)")
