"""Detectors: one interface over CNNs, frozen-backbone linear probes, ensembles and the spectrum baseline."""

from detectlab.models.base import Detector, HeatmapTarget, PreprocessConfig, WeightsInfo
from detectlab.models.cnn import TimmDetector
from detectlab.models.frozen import FrozenBackboneDetector
from detectlab.models.npr import NPRDetector
from detectlab.models.registry import create_detector, detector_entry, list_detectors, register_detector
from detectlab.models.spectrum import SpectrumDetector

#: CNN architectures offered in the UI, with the layer their heatmap uses (derived from the registry).
CNN_ARCHS: dict[str, str] = {name: detector_entry(name).heatmap_target for name in list_detectors("cnn")}

__all__ = [
    "CNN_ARCHS",
    "Detector",
    "FrozenBackboneDetector",
    "HeatmapTarget",
    "NPRDetector",
    "PreprocessConfig",
    "SpectrumDetector",
    "TimmDetector",
    "WeightsInfo",
    "create_detector",
    "detector_entry",
    "list_detectors",
    "register_detector",
]
