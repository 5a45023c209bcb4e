"""The fidelity preset's models: a network trained end to end per experiment cell ([Petrželková 2024] trains
a ResNet-50 per cell), instead of the CPU preset's linear probe on cached features.

The set is decoded once per run (as Detect decodes, at the experiment's size); each cell trains with
``train.engine.fit_network`` (the Train tab's loop: Adam, class-balanced sampling, h-flip, the best
validation epoch kept) on its train indices, validated on the validation images of the same classes.
Trained weights are kept under ``DETECTLAB_HOME/cache/experiments/networks``, keyed like the probes
(settings, data fingerprint, seed, training indices), so a re-run trains only the cells that changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from detectlab import config
from detectlab.experiments.core import LabelledSet, ModelCache
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

#: Networks the fidelity preset trains (end to end, from random init: no hub weights offline).
ARCHES = ("resnet18", "resnet50", "efficientnet_b0")


def train_settings(arch: str, epochs: int, size: int) -> dict:
    """The training settings of one cell: the shipped ResNet-18's CPU recipe (``train.config.CPU_RESNET18``)
    with the experiment's network, epochs and input size."""
    from detectlab.train.config import CPU_RESNET18

    return {**CPU_RESNET18, "arch": arch, "epochs": int(epochs), "input_size": int(size), "pretrained": False}


def describe(arch: str, epochs: int, size: int) -> str:
    s = train_settings(arch, epochs, size)
    return (f"fidelity preset: a {arch} trained end to end per cell from random init ({epochs} epochs at {size} px, "
            f"Adam lr {s['lr']:g}, weight decay {s['weight_decay']:g}, batch {s['batch_size']}, h-flip, class-balanced "
            "sampling, the best validation epoch kept), as the paper trains its ResNet-50 (224 px, pretrained)")


@dataclass
class NetworkCache(ModelCache):
    """Trained networks' weights on disk (``DETECTLAB_HOME/cache/experiments/networks``)."""

    folder: Path = field(default_factory=lambda: config.home() / "cache" / "experiments" / "networks")

    def get(self, key: str, make):
        """The cached network of ``key`` (``make()`` builds the empty one), or None."""
        path = self.folder / f"{key}.pt"
        if not path.exists():
            return None
        try:
            net = make()
            net.load_state_dict(torch.load(path, weights_only=True))
        except Exception:  # noqa: BLE001 - a broken file is trained again
            return None
        self.hits += 1
        return net.eval()

    def put(self, key: str, net) -> None:
        self.fits += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.tmp"
        torch.save(net.state_dict(), tmp)
        tmp.replace(self.folder / f"{key}.pt")


def decode_all(data: LabelledSet, size: int, progress: Progress = null_progress,
               cancel: CancelToken = NEVER_CANCEL) -> torch.Tensor:
    """Every item decoded once (as Detect decodes, at ``size``), uint8 ``[N, 3, size, size]``."""
    from detectlab.train.engine import load_images

    return load_images(data.items, size, progress, "decode images (fidelity preset)", cancel)


def fit_cell(images: torch.Tensor, data: LabelledSet, train_idx: np.ndarray, *, arch: str, epochs: int, size: int,
             cache: NetworkCache, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL):
    """One cell's network: trained on ``train_idx`` (validated on the validation images of the same real and
    generator classes), or read from ``cache`` when these settings, data and indices were trained before."""
    from detectlab.models import create_detector
    from detectlab.train.config import TrainConfig
    from detectlab.train.engine import fit_network

    train_idx = np.asarray(train_idx, dtype=np.int64)
    settings = train_settings(arch, epochs, size)
    key = cache.key(settings=settings, data=data.fingerprint, seed=data.seed,
                    idx=hashlib.sha256(train_idx.tobytes()).hexdigest())
    hit = cache.get(key, lambda: create_detector(arch, False, size))
    if hit is not None:
        return hit
    gens = sorted({data.items[k].generator for k in train_idx if data.items[k].label == 1})
    val_idx = data.indices("val", gens)
    parts = {"train": [data.items[k] for k in train_idx], "val": [data.items[k] for k in val_idx]}
    cfg = TrainConfig(**{**settings, "seed": data.seed})
    net, _ = fit_network(cfg, parts, {"train": images[torch.as_tensor(train_idx)],
                                      "val": images[torch.as_tensor(val_idx)]}, data.seed, progress, cancel)
    cache.put(key, net)
    return net


def scores(net, images: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    """P(fake) of the images at ``idx``."""
    from detectlab.train.engine import predict_scores

    return predict_scores(net, images[torch.as_tensor(np.asarray(idx, dtype=np.int64))]).numpy().astype(np.float64)
