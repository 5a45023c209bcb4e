"""The design of the mirror-model experiment ([Petrželková 2024] §4.4.1, Table 4.5): which two detectors to train.

[Petrželková 2024] trained two ResNet-50 of one configuration on disjoint halves of the training split
and let each attack the other. Here the pair takes a shipped detector's training config
(``cnn-resnet18`` by default, as recorded in ``checkpoints/manifest.json``) and trains it on
part 1/2 (``mirror-A``) and part 2/2 (``mirror-B``) of a data set's train split; validation and
test splits stay the whole set's, so both models are attacked on the same held-out images.

The configs are plain ``TrainConfig`` fields (this package sits below ``detectlab.train``);
whoever queues them validates them (the run queue, ``detectlab mirror``). ``experiments.mirror``
runs the attack once both are trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectlab.errors import DetectLabError
from detectlab.models.manifest import read_manifest

#: the shipped detector whose training config the mirror pair is trained with
MIRROR_BASE = "cnn-resnet18"
#: the two runs' names: trained on part 1/2 and part 2/2 of the train split
MIRROR_NAMES = ("mirror-A", "mirror-B")


def mirror_configs(data: str, base: str = MIRROR_BASE, names: tuple[str, str] = MIRROR_NAMES,
                   overrides: Mapping[str, Any] | None = None) -> list[tuple[str, dict]]:
    """(name, TrainConfig fields) of the two mirror runs: ``base``'s shipped config on parts 1/2 and 2/2 of ``data``.

    ``overrides`` replaces settings of both runs (a value of None leaves the setting as it is),
    e.g. fewer iterations for a quick look; the part, the name and the data set are the pair's own.
    """
    entry = read_manifest().get("checkpoints", {}).get(base)
    if not entry or "config" not in entry:
        raise DetectLabError(f"the shipped {base} and its config are missing from checkpoints/manifest.json")
    settings = {k: v for k, v in entry["config"].items() if k not in ("data", "out_dir")}
    settings |= {k: v for k, v in (overrides or {}).items() if v is not None}
    return [(name, settings | {"data": data, "train_part": f"{k}/2", "name": name})
            for k, name in enumerate(names, start=1)]


__all__ = ["MIRROR_BASE", "MIRROR_NAMES", "mirror_configs"]
