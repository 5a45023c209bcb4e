"""The detector registry: ``create_detector(arch, pretrained=..., input_size=...)``.

Architectures:

- CNN classifiers through timm (``resnet18``, ``resnet50``, ``efficientnet_b0``,
  ``xception41``, ``vit_tiny_patch16_224``, ``mobilenetv3_small_100``) fine-tuned end to end
  with a one-logit head (seed 000: EfficientNet-B0; seed 001: ResNet-50);
- ``frozen:<backbone>``: UnivFD (seed 002) — a frozen foundation backbone and a trainable
  linear head on its pooled features;
- ``frozen:<a>+<b>``: the two-backbone ensemble of seed 002 §4.3, features concatenated
  before the head.
"""

from __future__ import annotations

import torch
from torch import nn

from detectlab.models.backbones import BACKBONES, tokens_to_grid
from detectlab.models.base import Detector, HeatmapTarget, Normalize, PreprocessConfig
from detectlab.models.weights import create_timm

#: CNN architectures offered in the UI, with the layer their heatmap uses.
CNN_ARCHS: dict[str, str] = {
    "resnet18": "layer4",
    "resnet50": "layer4",
    "efficientnet_b0": "bn2",
    "xception41": "blocks.11",  # the last block before the exit flow's wide convs keeps more resolution
    "vit_tiny_patch16_224": "blocks.11.norm1",
    "mobilenetv3_small_100": "blocks.5",
}


class TimmDetector(Detector):
    """A timm classifier with one output logit, trained end to end."""

    kind = "cnn"

    def __init__(self, arch: str, pretrained: bool | str = False, input_size: int = 128) -> None:
        import timm

        super().__init__(arch, PreprocessConfig(input_size=input_size))
        kwargs: dict = dict(num_classes=1)
        if "vit" in arch:
            kwargs["img_size"] = input_size
        cfg = timm.get_pretrained_cfg(arch)
        mean, std = (cfg.mean, cfg.std) if cfg else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        self.normalize = Normalize(mean, std)
        self.net = create_timm(arch, pretrained, self.weights_info, f"{arch} ImageNet", **kwargs)
        self._target = CNN_ARCHS.get(arch) or self.net.feature_info[-1]["module"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(self.normalize(x)), pre_logits=True)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        # the classifier stays inside the timm model (registering it twice would alias weights)
        return self.net.get_classifier()(feats).squeeze(-1)

    def heatmap_targets(self) -> list[HeatmapTarget]:
        module = self.net.get_submodule(self._target)
        reshape = (lambda t: tokens_to_grid(t, getattr(self.net, "num_prefix_tokens", 1))) if "vit" in self.arch else None
        return [HeatmapTarget(f"{self.arch}.{self._target}", module, reshape)]


class FrozenBackboneDetector(Detector):
    """Frozen backbone(s) + trainable linear head on their (concatenated) pooled features.

    Seed 002: UnivFD-style linear probe; two backbones give the feature-concatenation ensemble.
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
        self.head = nn.Linear(sum(bb.dim for bb in self.backbones), 1)
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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone_features(x)

    def heatmap_targets(self) -> list[HeatmapTarget]:
        return [bb.heatmap_target() for bb in self.backbones]

    def spec(self) -> dict:
        s = super().spec()
        s["backbones"] = [bb.name for bb in self.backbones]
        return s


def list_detectors() -> dict[str, str]:
    """Architectures by name with a one-line description (for the UI and ``--help``)."""
    out = {a: "CNN/ViT classifier (timm), trained end to end" for a in CNN_ARCHS}
    for b in BACKBONES:
        out[f"frozen:{b}"] = f"frozen {b} + linear head (UnivFD, seed 002)"
    out["frozen:mobilenet_v2+efficientnet_lite0"] = "two frozen backbones, features concatenated + linear head (seed 002 §4.3)"
    out["frozen:clip_vit_b32+dinov2_vits14"] = "CLIP + DINOv2 ensemble (needs their weights)"
    out["spectrum:durrall"] = "azimuthal average of the log spectrum + logistic regression (Durrall 2019)"
    return out


def create_detector(arch: str, pretrained: bool | str | None = None, input_size: int = 128) -> Detector:
    """Build a detector by name.

    Args:
        arch: a key of ``list_detectors()`` (or any timm model name).
        pretrained: True (use real weights where they can be found), False, or a local file.
            Default: True for frozen backbones (a random frozen backbone is useless), False for CNNs.
        input_size: side of the square input the data pipeline delivers.
    """
    if arch == "spectrum:durrall":
        from detectlab.spectral.baseline import SpectrumDetector

        return SpectrumDetector(input_size)
    if arch.startswith("frozen:"):
        return FrozenBackboneDetector(arch.split(":", 1)[1].split("+"), True if pretrained is None else pretrained, input_size)
    import timm

    if arch not in CNN_ARCHS and not timm.is_model(arch):
        raise ValueError(f"unknown detector architecture {arch!r}; choose one of {sorted(list_detectors())}")
    return TimmDetector(arch, False if pretrained is None else pretrained, input_size)
