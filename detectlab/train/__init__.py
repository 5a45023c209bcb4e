"""Training detectors: one ``train(config, progress, cancel)`` for the CLI and the UI."""

from detectlab.train.config import PRESETS, AugmentConfig, TrainConfig
from detectlab.train.engine import RunResult, TrainResult, predict_scores, train

__all__ = ["PRESETS", "AugmentConfig", "TrainConfig", "RunResult", "TrainResult", "predict_scores", "train"]
