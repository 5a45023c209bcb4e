"""Training configuration: everything the seed papers vary, with their settings as presets."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from detectlab.degrade import DegradeAugConfig


#: Degradation augmentation settings (seed 001 §4.3); defined with the degradations.
AugmentConfig = DegradeAugConfig


@dataclass
class TrainConfig:
    """One training run (or ``runs`` repeated runs with seeds seed, seed+1, ...)."""

    data: str = ""                          # data set folder (any accepted layout)
    generators: list[str] | None = None     # generators forming the fake class; None = all
    arch: str = "resnet18"
    pretrained: bool | str | None = None    # None: the architecture's default (see create_detector)
    input_size: int = 128
    epochs: int = 5
    iterations: int | None = None           # overrides epochs when set (seed 000: 3000 iterations)
    batch_size: int = 32
    lr: float = 1e-4                        # seed 000: Adam lr 1e-4
    weight_decay: float = 1e-3              # seed 000: weight decay 1e-3
    weighted_sampling: bool = True          # seed 000: each class equally likely per draw
    hflip: bool = True                      # seed 001: random horizontal flip
    augment: DegradeAugConfig = field(default_factory=DegradeAugConfig)
    adv_eps: list[float] = field(default_factory=list)   # seed 001 §4.4.2: FGSM adversarial training
    adv_fraction: float = 0.5               # share of each batch replaced by adversarial copies
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    runs: int = 1
    select_best: bool = True                # seed 001: keep the best-validation checkpoint
    threads: int = 2
    out_dir: str | None = None              # where checkpoints go; default DETECTLAB_HOME/runs/<id>
    name: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings: {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("augment"), dict):
            d["augment"] = DegradeAugConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["augment"].items()})
        for key in ("split_fractions",):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


#: The seed papers' settings, scaled down where a 2-core CPU needs it (and saying so).
PRESETS: dict[str, dict] = {
    "seed 000: EfficientNet-B0, Adam 1e-4, wd 1e-3, batch 64, weighted sampling": dict(
        arch="efficientnet_b0", lr=1e-4, weight_decay=1e-3, batch_size=64, weighted_sampling=True,
        hflip=True, iterations=300, note="paper: ImageNet-pretrained, 3000 iterations, 5 runs; "
        "CPU demo: random init (no offline EfficientNet-B0 weights), 300 iterations, 1 run"),
    "seed 001: ResNet-50, Adam, h-flip, best validation": dict(
        arch="resnet50", lr=1e-4, weight_decay=0.0, batch_size=32, hflip=True, select_best=True, epochs=2,
        note="paper: 224 px, many epochs; CPU demo: 128 px, 2 epochs (ResNet-50 is slow on 2 cores)"),
    "seed 002: frozen backbone + linear head": dict(
        arch="frozen:mobilenet_v2", lr=1e-3, weight_decay=0.0, batch_size=64, epochs=30, weighted_sampling=True,
        note="paper: CLIP ViT-L/14, DINOv2; offline: ImageNet MobileNetV2 (no CLIP weights ship on any registry)"),
    "CPU demo: ResNet-18 from scratch": dict(
        arch="resnet18", lr=1e-3, weight_decay=1e-4, batch_size=32, epochs=6, hflip=True,
        note="small and fast; what the shipped CNN checkpoint uses"),
}
