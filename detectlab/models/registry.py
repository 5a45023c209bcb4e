"""The detector registry: ``create_detector(arch, pretrained=..., input_size=...)``.

In timm's ``register_model`` spirit, every architecture is registered next to its definition
with a name, a one-line description, the layer its heatmap uses and a factory:

- ``detectlab.models.cnn``: CNN/ViT classifiers through timm (``resnet18``, ``resnet50``,
  ``efficientnet_b0``, ``xception41``, ``vit_tiny_patch16_224``, ``mobilenetv3_small_100``)
  fine-tuned end to end with a one-logit head ([Wimmer 2024]: EfficientNet-B0; [Petrželková 2024]: ResNet-50);
- ``detectlab.models.frozen``: ``frozen:<backbone>`` — UnivFD ([DFwF]), a frozen foundation
  backbone and a trainable linear head on its pooled features; ``frozen:<a>+<b>``, the
  two-backbone ensemble of [DFwF] §4.3, features concatenated before the head;
- ``detectlab.models.npr``: ``npr``, a small CNN on the neighbouring-pixel residual (Tan 2024);
- ``detectlab.models.spectrum``: ``spectrum:durrall``, the spectrum baseline (Durrall 2019).

``list_detectors()`` is derived from the registry; nothing else lists architectures.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from detectlab.models.base import Detector

#: Modules whose import registers their architectures, in the order pickers list them.
DEFINITIONS = ("detectlab.models.cnn", "detectlab.models.frozen", "detectlab.models.npr", "detectlab.models.spectrum")


@dataclass(frozen=True)
class DetectorEntry:
    """One registered architecture."""

    name: str
    description: str
    factory: Callable[..., Detector]    # factory(pretrained, input_size) -> Detector
    family: str                          # "cnn" | "frozen" | "ensemble" | "spectrum"
    heatmap_target: str | None = None    # the layer a class-activation map uses (CNNs)
    token_grid: bool = False             # a ViT: fixed input size at creation, tokens reshaped to a grid


_REGISTRY: dict[str, DetectorEntry] = {}


def register_detector(name: str, description: str, factory: Callable[..., Detector], family: str,
                      heatmap_target: str | None = None, token_grid: bool = False) -> DetectorEntry:
    """Register an architecture (called by the module that defines it, at import)."""
    entry = DetectorEntry(name, description, factory, family, heatmap_target, token_grid)
    _REGISTRY[name] = entry
    return entry


def _registry() -> dict[str, DetectorEntry]:
    for module in DEFINITIONS:
        importlib.import_module(module)
    return _REGISTRY


def detector_entry(arch: str) -> DetectorEntry | None:
    """The registered entry of ``arch``, or None (e.g. any other timm model name)."""
    return _registry().get(arch)


def list_detectors(family: str | None = None) -> dict[str, str]:
    """Architectures by name with a one-line description (for the UI and ``--help``)."""
    return {n: e.description for n, e in _registry().items() if family is None or e.family == family}


def create_detector(arch: str, pretrained: bool | str | None = None, input_size: int = 128) -> Detector:
    """Build a detector by name.

    Args:
        arch: a key of ``list_detectors()``, ``frozen:<a>[+<b>]`` of known backbones, or any
            timm model name (trained end to end like the registered CNNs).
        pretrained: True (use real weights where they can be found), False, or a local file.
            Default: True for frozen backbones (a random frozen backbone is useless), False for CNNs.
        input_size: side of the square input the data pipeline delivers.
    """
    entry = detector_entry(arch)
    if entry is not None:
        return entry.factory(pretrained, input_size)
    if arch.startswith("frozen:"):  # any one or two known backbones, not only the registered pairs
        from detectlab.models.frozen import create_frozen

        return create_frozen(arch, pretrained, input_size)
    from detectlab.models.cnn import create_timm_detector

    return create_timm_detector(arch, pretrained, input_size)
