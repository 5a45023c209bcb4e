"""The localizer registry: one entry per kind of localizer, registered next to its definition.

As ``detectlab.models.registry`` does for detectors: ``detectlab.localize.yolo`` registers
``yolo`` (YOLOv8-seg through ultralytics, [Petrželková 2024] §4.5) and ``detectlab.localize.unet`` the
``unet`` baseline (§4.5 before YOLO). An entry says which architectures it trains, the suffix
of its checkpoint, and how to load, predict, train, save and validate; ``Localizer``,
``LocalizerConfig``, ``train_localizer`` and ``evaluate_localizer`` ask the entry instead of
testing the kind's name. The kind's name is what checkpoints and the manifest record.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from detectlab.errors import CheckpointError

__all__ = ["LocalizerKind", "Region", "kind_for_arch", "kind_for_file", "localizer_archs", "localizer_kind",
           "localizer_kinds", "register_localizer"]

#: Modules whose import registers their kinds, in the order pickers list them (YOLO first: the default pick).
DEFINITIONS = ("detectlab.localize.yolo", "detectlab.localize.unet")


@dataclass
class Region:
    """One predicted manipulated region: its mask at the image's size, confidence, polygon (pixels)."""

    mask: np.ndarray
    confidence: float
    polygon: np.ndarray


@dataclass(frozen=True)
class LocalizerKind:
    """One registered kind of localizer.

    Attributes:
        name: what checkpoints and the manifest record as ``kind``.
        description: one line for pickers and ``--help``.
        archs: the ``LocalizerConfig.arch`` values this kind trains.
        suffix: its checkpoint file's suffix.
        load: ``load(path) -> (model, imgsz, metadata)``.
        predict: ``predict(model, image, conf, imgsz) -> [Region]`` (masks at the image's size).
        train: ``train(cfg, yds, work, progress, cancel, on_epoch) -> {"model", "history", "threads", ...}``.
        save: ``save(trained, meta, path) -> Path``: the checkpoint and its metadata.
        default_name: the checkpoint name for a ``LocalizerConfig`` without one.
        curves: (epoch-row key, legend, on the metric axis?) of its training history, for curves.
        pickled: its file is a pickle: loading it can run code, so a file from outside DetectLab's
            own folders needs the user's trust.
        takes_weights: can start from a local file (``LocalizerConfig.weights``).
        validate: ``validate(model, data_yaml, split, imgsz) -> {"map50", "map50_95", ...}``, the mask mAP
            of ultralytics' validation on a YOLO data set; None: the kind has no mAP (pixel metrics only).
    """

    name: str
    description: str
    archs: tuple[str, ...]
    suffix: str
    load: Callable[[Path], tuple[object, int, dict]]
    predict: Callable[..., list[Region]]
    train: Callable[..., dict]
    save: Callable[..., Path]
    default_name: Callable[[object], str]
    curves: tuple[tuple[str, str, bool], ...] = ()
    pickled: bool = False
    takes_weights: bool = False
    validate: Callable[..., dict] | None = None

    @property
    def needs_yolo_set(self) -> bool:
        """Whether evaluating (mAP) needs the ultralytics data set written from the masks."""
        return self.validate is not None


_REGISTRY: dict[str, LocalizerKind] = {}


def register_localizer(kind: LocalizerKind) -> LocalizerKind:
    """Register a kind (called by the module that defines it, at import)."""
    _REGISTRY[kind.name] = kind
    return kind


def localizer_kinds() -> dict[str, LocalizerKind]:
    """Every registered kind by name, in the order of ``DEFINITIONS``."""
    for module in DEFINITIONS:
        importlib.import_module(module)
    return dict(_REGISTRY)


def localizer_kind(name: str) -> LocalizerKind:
    """The registered kind called ``name`` (``yolo``, ``unet``); ``CheckpointError`` for another."""
    kinds = localizer_kinds()
    if name not in kinds:
        raise CheckpointError(f"unknown localizer kind {name!r}; known: {', '.join(kinds)}")
    return kinds[name]


def localizer_archs() -> tuple[str, ...]:
    """Every architecture a localizer can be trained as, kind by kind."""
    return tuple(a for k in localizer_kinds().values() for a in k.archs)


def kind_for_arch(arch: str) -> LocalizerKind | None:
    """The kind that trains ``arch`` (None: no kind does)."""
    return next((k for k in localizer_kinds().values() if arch in k.archs), None)


def kind_for_file(path: str | Path) -> LocalizerKind | None:
    """The kind whose checkpoints have ``path``'s suffix (None: no localizer file)."""
    suffix = Path(path).suffix
    return next((k for k in localizer_kinds().values() if k.suffix == suffix), None)
