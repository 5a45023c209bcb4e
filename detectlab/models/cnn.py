"""CNN and ViT classifiers through timm, trained end to end with a one-logit head.

[Wimmer 2024] fine-tunes EfficientNet-B0, [Petrželková 2024] ResNet-50; the CPU demo uses ResNet-18.
"""

from __future__ import annotations

import torch

from detectlab.models.backbones import tokens_to_grid
from detectlab.models.base import Detector, HeatmapTarget, Normalize, PreprocessConfig
from detectlab.models.registry import detector_entry, register_detector
from detectlab.models.weights import create_timm, timm_mean_std


class TimmDetector(Detector):
    """A timm classifier with one output logit, trained end to end.

    ``heatmap_target`` names the layer for class-activation maps (default: timm's last feature
    stage); ``token_grid`` marks a ViT, built at ``input_size`` and whose tokens are reshaped to
    a grid for heatmaps.
    """

    kind = "cnn"

    def __init__(self, arch: str, pretrained: bool | str = False, input_size: int = 128,
                 heatmap_target: str | None = None, token_grid: bool = False) -> None:
        super().__init__(arch, PreprocessConfig(input_size=input_size))
        kwargs: dict = dict(num_classes=1)
        if token_grid:
            kwargs["img_size"] = input_size
        self.token_grid = token_grid
        self.normalize = Normalize(*timm_mean_std(arch))
        self.net = create_timm(arch, pretrained, self.weights_info, f"{arch} ImageNet", **kwargs)
        self._target = heatmap_target or self.net.feature_info[-1]["module"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(self.normalize(x)), pre_logits=True)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        # the classifier stays inside the timm model (registering it twice would alias weights)
        return self.net.get_classifier()(feats).squeeze(-1)

    def heatmap_targets(self) -> list[HeatmapTarget]:
        module = self.net.get_submodule(self._target)
        reshape = (lambda t: tokens_to_grid(t, getattr(self.net, "num_prefix_tokens", 1))) if self.token_grid else None
        return [HeatmapTarget(f"{self.arch}.{self._target}", module, reshape)]


def create_timm_detector(arch: str, pretrained: bool | str | None = None, input_size: int = 128) -> TimmDetector:
    """A ``TimmDetector`` for a registered name or any timm model name (random init by default)."""
    import timm

    entry = detector_entry(arch)
    if entry is None and not timm.is_model(arch):
        from detectlab.models.registry import list_detectors

        raise ValueError(f"unknown detector architecture {arch!r}; choose one of {sorted(list_detectors())}")
    # an unregistered timm model is a ViT when timm's model has prefix tokens (timm's own marker)
    token_grid = entry.token_grid if entry else _is_token_model(arch)
    return TimmDetector(arch, False if pretrained is None else pretrained, input_size,
                        entry.heatmap_target if entry else None, token_grid)


def _is_token_model(arch: str) -> bool:
    from timm.models import is_model_in_modules

    return is_model_in_modules(arch, ["vision_transformer", "deit", "eva", "beit", "vision_transformer_hybrid"])


_CNN_DESCRIPTION = "CNN/ViT classifier (timm), trained end to end"

# name -> the layer its heatmap uses
for _arch, _target, _tokens in (
    ("resnet18", "layer4", False),
    ("resnet50", "layer4", False),
    ("efficientnet_b0", "bn2", False),
    ("xception41", "blocks.11", False),  # the last block before the exit flow's wide convs keeps more resolution
    ("vit_tiny_patch16_224", "blocks.11.norm1", True),
    ("mobilenetv3_small_100", "blocks.5", False),
):
    register_detector(_arch, _CNN_DESCRIPTION,
                      lambda pretrained=None, input_size=128, _a=_arch: create_timm_detector(_a, pretrained, input_size),
                      family="cnn", heatmap_target=_target, token_grid=_tokens)
