"""Training detectors: one ``train(config, progress, cancel)`` for the CLI and the UI.

Names are loaded on first use, so ``detectlab.train.layout`` (run paths, read by the run
history and the catalogue) does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "detectlab.train.config",
    "AugmentConfig": "detectlab.train.config",
    "TrainConfig": "detectlab.train.config",
    "RunResult": "detectlab.train.engine",
    "TrainResult": "detectlab.train.engine",
    "predict_scores": "detectlab.train.engine",
    "train": "detectlab.train.engine",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'detectlab.train' has no attribute {name!r}")
