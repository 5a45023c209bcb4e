"""Detectors: one interface over CNNs, frozen-backbone linear probes and ensembles."""

from detectlab.models.base import Detector, HeatmapTarget, PreprocessConfig, WeightsInfo
from detectlab.models.registry import CNN_ARCHS, FrozenBackboneDetector, TimmDetector, create_detector, list_detectors

__all__ = [
    "CNN_ARCHS",
    "Detector",
    "FrozenBackboneDetector",
    "HeatmapTarget",
    "PreprocessConfig",
    "TimmDetector",
    "WeightsInfo",
    "create_detector",
    "list_detectors",
]
