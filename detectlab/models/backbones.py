"""Frozen foundation backbones for UnivFD-style detectors ([DFwF]).

Each backbone normalizes its own input (CLIP and ImageNet statistics differ, and an ensemble
feeds one image to two backbones), returns pooled features ``[B, dim]``, and names the layer
a heatmap method should use. ``pretrained`` is ``True`` (hub cache or a file a registry
package ships), a local file path, or ``False``; when weights cannot be had the backbone
stays randomly initialized and says so in ``weights_info`` — never a silent fallback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from detectlab.models.base import HeatmapTarget, Normalize, WeightsInfo
from detectlab.models.weights import IMAGENET, create_timm, find_weights, load_state_dict, timm_mean_std

CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


def tokens_to_grid(tokens: torch.Tensor, prefix: int = 1) -> torch.Tensor:
    """ViT tokens ``[B, 1 + h*w, C]`` -> ``[B, C, h, w]`` (drops class/register tokens)."""
    x = tokens[:, prefix:]
    side = int(math.isqrt(x.shape[1]))
    return x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)


class Backbone(nn.Module):
    name: str
    dim: int
    # fixed input side a ViT needs; None for fully convolutional backbones, which see the
    # data's own pixels (resampling would smear the high-frequency traces detectors look for)
    native_size: int | None
    # features whose scales differ by orders of magnitude (several stages' statistics) are
    # standardized by the detector, with statistics of the training features
    standardized: bool = False

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.weights_info = WeightsInfo()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.normalize(x))

    def heatmap_target(self) -> HeatmapTarget:
        raise NotImplementedError


def _load_local(model: nn.Module, key: str, pretrained: bool | str, info: WeightsInfo, label: str,
                convert: Callable[[dict], dict] | None = None) -> None:
    """Load ImageNet weights from a user path or a file a registry package ships."""
    if pretrained is False:
        info.source, info.loaded = "random init (pretrained=False)", False
        return
    path = Path(pretrained) if isinstance(pretrained, (str, Path)) else None
    looked: list[str] = []
    if path is None:
        path, looked = find_weights(key)
    if path is None:
        info.source, info.loaded = "random init", False
        info.messages.append(f"{label}: no pretrained weights found (looked in: {'; '.join(looked)}); "
                             "falling back to random init — features are not meaningful")
        return
    sd = load_state_dict(path)
    if convert:
        sd = convert(sd)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.startswith(("classifier", "_fc"))]
    if missing:
        info.messages.append(f"{label}: {len(missing)} weights missing in {path.name}, e.g. {missing[:3]}")
    info.source, info.loaded = f"{label} ImageNet weights ({path.name})", True


class MobileNetV2Backbone(Backbone):
    """torchvision MobileNetV2, ImageNet; 1280-d globally pooled features."""

    name, dim, native_size = "mobilenet_v2", 1280, None

    def __init__(self, pretrained: bool | str = True) -> None:
        super().__init__(*IMAGENET)
        import torchvision

        self.net = torchvision.models.mobilenet_v2(weights=None)
        _load_local(self.net, "mobilenet_v2", pretrained, self.weights_info, "MobileNetV2")
        self.net.classifier = nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x).mean((2, 3))

    def heatmap_target(self) -> HeatmapTarget:
        return HeatmapTarget("mobilenet_v2.features[-1]", self.net.features[-1])


def stage_statistics(h: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over space of each channel of a feature map: ``[B, 2C]``."""
    return torch.cat([h.mean((2, 3)), h.std((2, 3), correction=0)], dim=1)


def stage_features(x: torch.Tensor, layers, stages: tuple[int, ...]) -> torch.Tensor:
    """Run ``layers`` up to the last of ``stages`` and concatenate the ``stage_statistics`` of
    those layers' outputs: ``[B, sum 2C]``; later layers are not run."""
    feats = []
    for i, layer in enumerate(layers[: stages[-1] + 1]):
        x = layer(x)
        if i in stages:
            feats.append(stage_statistics(x))
    return torch.cat(feats, dim=1)


class MobileNetV2MidBackbone(MobileNetV2Backbone):
    """MobileNetV2's mid-level features: the spatial mean and std of each stage's output down to
    stride 16 (features[1, 3, 6, 10, 13]); 464-d.

    The up-sampling traces a detector needs are low-level; the last, semantic layer of an ImageNet
    network averages them away (on the demo a linear probe reached 0.868 test accuracy on the last
    layer, 0.971 on these stages, which were chosen on the validation split). Layers past stride 16
    are not run.
    """

    name = "mobilenet_v2_mid"
    STAGES = (1, 3, 6, 10, 13)
    dim, standardized = 2 * (16 + 24 + 32 + 64 + 96), True

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return stage_features(x, self.net.features, self.STAGES)

    def heatmap_target(self) -> HeatmapTarget:
        return HeatmapTarget("mobilenet_v2.features[13]", self.net.features[13])


class EfficientNetLite0Backbone(Backbone):
    """EfficientNet-Lite0 (efficientnet-lite-pytorch), ImageNet; 1280-d pooled features."""

    name, dim, native_size = "efficientnet_lite0", 1280, None

    def __init__(self, pretrained: bool | str = True) -> None:
        # EfficientNet-Lite was trained on inputs scaled to [-1, 1]
        super().__init__((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        _load_local(self.net, "efficientnet_lite0", pretrained, self.weights_info, "EfficientNet-Lite0")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean((2, 3))

    def heatmap_target(self) -> HeatmapTarget:
        return HeatmapTarget("efficientnet_lite0._bn1", self.net._bn1)


class EfficientNetLite0MidBackbone(EfficientNetLite0Backbone):
    """EfficientNet-Lite0's mid-level features: the spatial mean and std of each stage's output down
    to stride 16 (blocks 0, 2, 4, 7, 10); 544-d. See ``MobileNetV2MidBackbone``."""

    name = "efficientnet_lite0_mid"
    STAGES = (0, 2, 4, 7, 10)
    dim, standardized = 2 * (16 + 24 + 40 + 80 + 112), True

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        # the stem as in extract_features; the blocks without drop-connect, which acts only in training
        # mode and a frozen backbone stays in eval mode
        return stage_features(net._swish(net._bn0(net._conv_stem(x))), net._blocks, self.STAGES)

    def heatmap_target(self) -> HeatmapTarget:
        return HeatmapTarget("efficientnet_lite0._blocks[10]", self.net._blocks[10])


class OpenClipBackbone(Backbone):
    """open_clip CLIP ViT-B/32 image tower (UnivFD's backbone); 512-d image embedding."""

    name, dim, native_size = "clip_vit_b32", 512, 224

    def __init__(self, pretrained: bool | str = True) -> None:
        super().__init__(*CLIP)
        import open_clip

        tag = None
        if pretrained is True:
            tag = "openai"
        elif pretrained:
            tag = str(pretrained)
        try:
            model = open_clip.create_model("ViT-B-32", pretrained=tag)
            self.weights_info.source = "random init" if tag is None else f"CLIP ViT-B/32 ({tag})"
            self.weights_info.loaded = tag is not None
        except Exception as exc:  # noqa: BLE001 - offline hub errors vary
            model = open_clip.create_model("ViT-B-32", pretrained=None)
            self.weights_info.source = "random init"
            self.weights_info.messages.append(
                f"CLIP ViT-B/32: weights '{tag}' could not be loaded ({type(exc).__name__}); give a local "
                "open_clip state-dict path to use real CLIP; falling back to random init")
        self.visual = model.visual

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    def heatmap_target(self) -> HeatmapTarget:
        return HeatmapTarget("clip.visual.transformer.resblocks[-1].ln_1", self.visual.transformer.resblocks[-1].ln_1,
                             tokens_to_grid)


class TimmViTBackbone(Backbone):
    """A timm ViT (DINOv2 ViT-S/14 by default) used as a frozen feature extractor."""

    def __init__(self, timm_name: str = "vit_small_patch14_dinov2", name: str = "dinov2_vits14",
                 pretrained: bool | str = True, img_size: int = 224) -> None:
        kwargs = dict(num_classes=0, img_size=img_size)
        super().__init__(*timm_mean_std(timm_name))
        self.name, self.native_size = name, img_size
        self.net = create_timm(timm_name, pretrained, self.weights_info, **kwargs)
        self.dim = self.net.num_features
        self.prefix = getattr(self.net, "num_prefix_tokens", 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def heatmap_target(self) -> HeatmapTarget:
        return HeatmapTarget(f"{self.name}.blocks[-1].norm1", self.net.blocks[-1].norm1,
                             lambda t: tokens_to_grid(t, self.prefix))


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "mobilenet_v2": MobileNetV2Backbone,
    "efficientnet_lite0": EfficientNetLite0Backbone,
    "mobilenet_v2_mid": MobileNetV2MidBackbone,
    "efficientnet_lite0_mid": EfficientNetLite0MidBackbone,
    "clip_vit_b32": OpenClipBackbone,
    "dinov2_vits14": lambda pretrained=True: TimmViTBackbone("vit_small_patch14_dinov2", "dinov2_vits14", pretrained),
}
