"""Training configuration: everything the papers vary, with their settings as presets."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from detectlab.degrade import DegradeAugConfig
from detectlab.errors import DetectLabError


#: Degradation augmentation settings ([Petrželková 2024] §4.3); defined with the degradations.
AugmentConfig = DegradeAugConfig


class TrainConfigError(DetectLabError, ValueError):
    """A training setting out of its range: the message names the field and what it accepts."""


@dataclass
class TrainConfig:
    """One training run (or ``runs`` repeated runs with seeds seed, seed+1, ...)."""

    data: str = ""                          # data set folder (any accepted layout)
    generators: list[str] | None = None     # generators forming the fake class; None = all
    arch: str = "resnet18"
    pretrained: bool | str | None = None    # None: the architecture's default (see create_detector)
    input_size: int = 128
    epochs: int = 5
    iterations: int | None = None           # overrides epochs when set ([Wimmer 2024]: 3000 iterations)
    batch_size: int = 32
    lr: float = 1e-4                        # [Wimmer 2024]: Adam lr 1e-4
    weight_decay: float = 1e-3              # [Wimmer 2024]: weight decay 1e-3
    weighted_sampling: bool = True          # [Wimmer 2024]: each class equally likely per draw
    hflip: bool = True                      # [Petrželková 2024]: random horizontal flip
    augment: DegradeAugConfig = field(default_factory=DegradeAugConfig)
    adv_eps: list[float] = field(default_factory=list)   # [Petrželková 2024] §4.4.2: FGSM adversarial training
    adv_fraction: float = 0.5               # share of each batch replaced by adversarial copies
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    train_part: str = ""                    # "k/n": train on part k of n disjoint parts of the train split
    init_from: str = ""                     # a shipped detector or run id whose weights start training (same arch)
    seed: int = 0
    runs: int = 1
    select_best: bool = True                # [Petrželková 2024]: keep the best-validation checkpoint
    threads: int = 2                        # torch threads per process
    processes: int = 1                      # local training processes (torchrun --nproc-per-node): DDP when > 1
    device: str = "auto"                    # auto | cpu | cuda (config.device); AMP on CUDA only
    out_dir: str | None = None              # where checkpoints go; default DETECTLAB_HOME/runs/<id>
    name: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def part(self) -> tuple[int, int] | None:
        """``train_part`` as (k, n), or None for the whole train split."""
        return parse_part(self.train_part)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """A config from stored or submitted settings, validated (the one check the tab, the API and the CLI share)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise TrainConfigError(f"unknown training settings: {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("augment"), dict):
            try:
                d["augment"] = DegradeAugConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                   for k, v in d["augment"].items()})
            except TypeError as exc:
                raise TrainConfigError(f"augment: {exc}") from None
        for key in ("split_fractions",):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        if isinstance(d.get("adv_eps"), str):
            d["adv_eps"] = _floats(d["adv_eps"], "adv_eps")
        return validate(cls(**d))

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_preset(self, name: str) -> "TrainConfig":
        """A copy with a preset's settings (``name``: a key of ``PRESETS`` or a unique start of one)."""
        return self.with_overrides(**preset_fields(name))

    def with_overrides(self, **changes) -> "TrainConfig":
        """A copy with ``changes`` applied; a value of None leaves that setting as it is.

        Besides the fields, as typed in a form or on a command line:

        - ``adv_eps``: a list or text (``"0.002, 0.005"``; empty = no adversarial training);
        - ``generators``: a list or comma-separated text (empty = all of the data set's);
        - ``pretrained``: True/False or ``"true"``/``"false"``/a weight file;
        - ``iterations``: 0 means "use epochs" (a negative count is refused);
        - ``augment_p``: one probability for every degradation in ``augment_kinds`` (default all
          of ``AUGMENT_KINDS``; the others get 0; 0 turns augmentation off), with the free ends of
          the strength ranges ``blur_max``, ``jpeg_min``, ``scale_min`` and ``patch_min``.
        """
        d = self.to_dict()
        d["augment"] = DegradeAugConfig(**d["augment"])
        aug = {k: changes.pop(k, None) for k in ("augment_p", "augment_kinds", "blur_max", "jpeg_min",
                                                   "scale_min", "patch_min")}
        unknown = set(changes) - set(d)
        if unknown:
            raise TrainConfigError(f"unknown training settings: {sorted(unknown)}")
        for key, value in changes.items():
            if value is None:
                continue
            if key == "adv_eps" and isinstance(value, str):
                value = _floats(value, "adv_eps")
            elif key == "generators" and isinstance(value, str):
                value = [g.strip() for g in value.split(",") if g.strip()]
            elif key == "pretrained" and isinstance(value, str):
                value = {"true": True, "false": False}.get(value.strip().lower(), value)
            elif key == "augment" and isinstance(value, dict):
                value = DegradeAugConfig(**value)
            elif key == "iterations" and isinstance(value, (int, float)) and value == 0:
                value = None  # a form's "0 = use epochs"; a negative count is refused by validate
            if key == "generators":
                value = list(value) or None
            d[key] = copy.deepcopy(value)
        d["augment"] = _spread_augment(d["augment"], **aug)
        return TrainConfig.from_dict(d)


def parse_part(text: str) -> tuple[int, int] | None:
    """``"k/n"`` (1 <= k <= n, n >= 2) as (k, n); empty text: None (the whole train split)."""
    text = str(text or "").strip()
    if not text:
        return None
    k, sep, n = text.partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k = n = 0
    if not sep or n < 2 or not 1 <= k <= n:
        raise TrainConfigError(f"train_part must be 'k/n' with n >= 2 and 1 <= k <= n (e.g. 1/2), got {text!r}")
    return k, n


#: Allowed ranges of the numeric settings: field -> (integer?, low, high, low open?, high open?)
LIMITS: dict[str, tuple[bool, float, float, bool, bool]] = {
    "input_size": (True, 32, 1024, False, False),
    "epochs": (True, 1, 100_000, False, False),
    "batch_size": (True, 1, 1024, False, False),
    "lr": (False, 0.0, 1.0, True, True),
    "weight_decay": (False, 0.0, math.inf, False, False),
    "adv_fraction": (False, 0.0, 1.0, False, False),
    "runs": (True, 1, 20, False, False),
    "threads": (True, 1, 256, False, False),
    "processes": (True, 1, 64, False, False),
    "seed": (True, 0, 2**32 - 1, False, False),
    "split_seed": (True, 0, 2**32 - 1, False, False),
}
ADV_EPS_MAX = 0.5


def _range_text(integer: bool, lo, hi, lo_open: bool, hi_open: bool) -> str:
    kind = "an integer" if integer else "a number"
    if hi == math.inf or hi >= 2**32 - 1:
        return f"{kind} {'>' if lo_open else '>='} {lo:g}"
    return f"{kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _number(name: str, value, integer: bool, lo, hi, lo_open: bool, hi_open: bool):
    """``value`` as int/float within the range, or TrainConfigError naming ``name`` and the range."""
    want = _range_text(integer, lo, hi, lo_open, hi_open)
    try:
        if isinstance(value, bool) or value is None:
            raise TypeError
        x = float(value)
        if integer and not x.is_integer():
            raise TypeError
    except (TypeError, ValueError):
        raise TrainConfigError(f"{name} must be {want}, got {_shown(value)}") from None
    inside = (lo < x if lo_open else lo <= x) and (x < hi if hi_open else x <= hi)
    if not math.isfinite(x) or not inside:
        raise TrainConfigError(f"{name} must be {want}, got {_shown(value)}")
    return int(x) if integer else x


def _check_arch(arch) -> None:
    from detectlab.models import list_detectors

    known = list_detectors()
    if not isinstance(arch, str) or not arch.strip():
        raise TrainConfigError(f"arch must name an architecture ({', '.join(known)}), got {arch!r}")
    if arch in known:
        return
    if arch.startswith("frozen:"):
        from detectlab.models.backbones import BACKBONES

        parts = arch.split(":", 1)[1].split("+")
        if 1 <= len(parts) <= 2 and all(p in BACKBONES for p in parts):
            return
        raise TrainConfigError(f"arch {arch!r}: frozen:<a> or frozen:<a>+<b> of the backbones "
                               f"{', '.join(BACKBONES)}")
    if ":" not in arch:
        import timm

        if timm.is_model(arch):  # any timm model trains end to end like the registered CNNs
            return
    raise TrainConfigError(f"unknown architecture arch={arch!r}; choose one of {', '.join(known)} "
                           "(see `detectlab models`) or a timm model name")


def validate(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its numbers checked against ``LIMITS`` and the rest of its settings; raises TrainConfigError.

    Called by ``from_dict`` (hence by ``with_overrides``, ``from_file`` and the run queue), so
    the Train tab, the ``/train`` API and the CLI refuse a bad value before a run is queued.
    """
    for name, (integer, lo, hi, lo_open, hi_open) in LIMITS.items():
        if name == "epochs" and cfg.iterations is not None:
            continue  # iterations override epochs
        setattr(cfg, name, _number(name, getattr(cfg, name), integer, lo, hi, lo_open, hi_open))
    if cfg.iterations is not None:
        cfg.iterations = _number("iterations", cfg.iterations, True, 1, 10_000_000, False, False)
    eps = cfg.adv_eps
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):
        eps = [eps]
    if not isinstance(eps, (list, tuple)):
        raise TrainConfigError(f"adv_eps must be a list of numbers in (0, {ADV_EPS_MAX:g}], got {cfg.adv_eps!r}")
    cfg.adv_eps = [_number("adv_eps", e, False, 0.0, ADV_EPS_MAX, True, False) for e in eps]
    fr = cfg.split_fractions
    try:
        fr = tuple(float(f) for f in fr)
    except (TypeError, ValueError):
        fr = ()
    if len(fr) != 3 or not all(math.isfinite(f) and f > 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
        raise TrainConfigError(f"split_fractions must be three positive numbers (train, val, test) summing to 1, "
                               f"got {cfg.split_fractions!r}")
    cfg.split_fractions = fr
    cfg.train_part = str(cfg.train_part or "").strip()
    parse_part(cfg.train_part)
    cfg.init_from = _check_init_from(cfg.init_from)
    for kind in AUGMENT_KINDS:
        _number(f"augment.{kind}_p", getattr(cfg.augment, f"{kind}_p"), False, 0.0, 1.0, False, False)
    if cfg.generators is not None and (not isinstance(cfg.generators, list)
                                       or not all(isinstance(g, str) for g in cfg.generators)):
        raise TrainConfigError(f"generators must be a list of generator names, got {_shown(cfg.generators)}")
    if cfg.generators is not None:
        cfg.generators = [check_text(g, "generators", MAX_NAME_CHARS) for g in cfg.generators] or None
    _check_augment(cfg.augment)
    for name in ("weighted_sampling", "hflip", "select_best"):
        setattr(cfg, name, check_bool(getattr(cfg, name), name))
    if cfg.pretrained is not None and not isinstance(cfg.pretrained, bool):
        if not isinstance(cfg.pretrained, str):
            raise TrainConfigError(f"pretrained must be true, false or a weight file, got {_shown(cfg.pretrained)}")
        cfg.pretrained = check_text(cfg.pretrained, "pretrained", MAX_PATH_CHARS)
    cfg.data = check_text(cfg.data, "data", MAX_PATH_CHARS)
    cfg.out_dir = check_text(cfg.out_dir, "out_dir", MAX_PATH_CHARS) or None
    cfg.name = check_name(cfg.name)
    cfg.device = _check_device(cfg.device)
    _check_arch(cfg.arch)
    return cfg


def _check_device(value) -> str:
    """``device`` as ``config.device`` names it (auto, cpu, cuda or cuda:N); where it is resolved (a GPU
    present or not) is the training process's business, since the app may queue for another machine."""
    from detectlab.config import DEVICES

    text = str(value or "auto").strip().lower()
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise TrainConfigError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {_shown(value)}")
    return text


#: The longest run name (a run's name is shown in every picker and table).
MAX_NAME_CHARS = 100
#: The longest path a setting may hold (data folders, weight files, output folders).
MAX_PATH_CHARS = 4096
#: Characters that are not control characters by category but reorder or hide text (bidi overrides).
_INVISIBLE = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _shown(value, limit: int = 60) -> str:
    """``value`` for an error message: its repr, cut short (a 10,000-character value is not echoed back)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(str(value)):,} characters)"


def check_text(value, what: str, max_chars: int) -> str:
    """``value`` as a string without control characters and at most ``max_chars`` long; else TrainConfigError.

    A NUL byte or a newline in a name or a path breaks file names, logs and tables; an unbounded
    value bloats the run database and every page that shows it.
    """
    import unicodedata

    if value is None:
        return ""
    if not isinstance(value, str):
        raise TrainConfigError(f"{what} must be text, got {_shown(value)}")
    for k, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _INVISIBLE:
            which = "a NUL byte" if ch == "\0" else f"the control character U+{ord(ch):04X}"
            raise TrainConfigError(f"{what} must be plain text without control characters; it contains {which} "
                                   f"at position {k + 1}")
    if len(value) > max_chars:
        raise TrainConfigError(f"{what} is too long: {len(value):,} characters (at most {max_chars:,})")
    return value


def check_name(value, what: str = "name") -> str:
    """A run name: plain text (no control characters, no NUL), at most ``MAX_NAME_CHARS`` characters, trimmed."""
    return check_text(value, what, MAX_NAME_CHARS).strip()


def check_bool(value, what: str) -> bool:
    """A yes/no setting: a bool (or 0 / 1); text such as "false" is refused rather than read as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TrainConfigError(f"{what} must be true or false, got {_shown(value)}")


def _check_augment(aug) -> None:
    """The degradation ranges (blur sigma, JPEG quality, downsize scale, patch size) as the augmentation checks them."""
    from detectlab.degrade.ops import RandomDegrade

    if not isinstance(aug, DegradeAugConfig):
        raise TrainConfigError(f"augment must be a table of degradation settings, got {_shown(aug)}")
    try:
        RandomDegrade(aug)
    except (ValueError, TypeError) as exc:
        raise TrainConfigError(f"augment: {exc}") from None


def _check_init_from(value) -> str:
    """``init_from`` as a detector name (shipped name or run id); a path on disk is refused, so a settings
    file or an API call cannot make the server read an arbitrary file."""
    text = str(value or "").strip()
    if len(text) > 200 or "/" in text or "\\" in text or text.lower().endswith((".pt", ".pth", ".ckpt", ".safetensors",
                                                                                  ".bin", ".pkl")):
        raise TrainConfigError(f"init_from must name a shipped detector (e.g. cnn-resnet18) or a run id, not a file; "
                               f"got {text[:80]!r}")
    return text


#: Degradations a single augmentation probability can be spread over (``DegradeAugConfig`` fields ``<kind>_p``).
AUGMENT_KINDS = ("blur", "jpeg", "downsize", "patch")


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(e) for e in text.replace(" ", "").split(",") if e]
    except ValueError:
        raise TrainConfigError(f"{what}: '{text}' is not a comma-separated list of numbers") from None


def _spread_augment(aug: DegradeAugConfig, augment_p=None, augment_kinds=None, blur_max=None, jpeg_min=None,
                    scale_min=None, patch_min=None) -> DegradeAugConfig:
    aug = copy.deepcopy(aug)
    if augment_p is not None:
        if isinstance(augment_kinds, str):  # as typed: "blur, jpeg"
            augment_kinds = [k.strip() for k in augment_kinds.split(",") if k.strip()]
        kinds = AUGMENT_KINDS if augment_kinds is None else tuple(augment_kinds)
        bad = sorted(set(kinds) - set(AUGMENT_KINDS))
        if bad:
            raise TrainConfigError(f"unknown degradations {bad}; choose from {list(AUGMENT_KINDS)}")
        for kind in AUGMENT_KINDS:
            setattr(aug, f"{kind}_p", float(augment_p) if kind in kinds else 0.0)
    if blur_max is not None:
        aug.blur_sigma = (0.0, float(blur_max))
    if jpeg_min is not None:
        aug.jpeg_quality = (int(jpeg_min), 100)
    if scale_min is not None:
        aug.downsize_scale = (float(scale_min), 1.0)
    if patch_min is not None:
        aug.patch_size = (int(patch_min), None)  # up to the image side
    return aug


def preset_fields(name: str) -> dict:
    """The settings of a preset (its note left out); ``name`` may be a unique start of a preset's name."""
    match = [k for k in PRESETS if k == name] or [k for k in PRESETS if k.startswith(name)]
    if len(match) != 1:
        raise TrainConfigError(f"preset '{name}' must name one of: {list(PRESETS)}")
    return {k: copy.deepcopy(v) for k, v in PRESETS[match[0]].items() if k != "note"}


#: ResNet-18 from scratch at the demo's 128 px: the fast CPU CNN behind the shipped ``cnn-resnet18*`` detectors.
CPU_RESNET18 = dict(arch="resnet18", input_size=128, epochs=10, batch_size=32, lr=1e-3, weight_decay=1e-4,
                    weighted_sampling=True, hflip=True, seed=0)


#: Mild post-processing on both classes during training (CNNDetection's recipe, scaled to what a
#: photo meets on its way to a user): neither blur, nor a re-scale, nor JPEG can then tell the
#: classes apart, so a soft or re-compressed real photo is not "fake" for lack of detail.
POSTPROCESS_AUG = dict(blur_p=0.2, blur_sigma=(0.0, 1.5), jpeg_p=0.2, jpeg_quality=(60, 100), downsize_p=0.2,
                       downsize_scale=(0.5, 1.0))

#: The shipped cnn-resnet18: CPU_RESNET18 + the post-processing above.
CNN_DEMO = dict(CPU_RESNET18, augment=DegradeAugConfig(**POSTPROCESS_AUG))


#: A linear probe on frozen mid-level ImageNet features: the shipped univfd-mobilenet_v2 (and, with
#: two backbones, the shipped ensemble). The features are computed once and cached.
MID_PROBE_DEMO = dict(arch="frozen:mobilenet_v2_mid", input_size=128, epochs=40, batch_size=64, lr=1e-3,
                      weight_decay=0.0, weighted_sampling=True, hflip=True, seed=0)


#: The papers' settings, scaled down where a 2-core CPU needs it (and saying so).
PRESETS: dict[str, dict] = {
    "Wimmer 2024: EfficientNet-B0, Adam 1e-4, wd 1e-3, batch 64, weighted sampling": dict(
        arch="efficientnet_b0", lr=1e-4, weight_decay=1e-3, batch_size=64, weighted_sampling=True,
        hflip=True, iterations=300, note="paper: ImageNet-pretrained, 3000 iterations, 5 runs; "
        "CPU demo: random init (no offline EfficientNet-B0 weights), 300 iterations, 1 run"),
    "Petrželková 2024: ResNet-50, Adam, h-flip, best validation": dict(
        arch="resnet50", lr=1e-4, weight_decay=0.0, batch_size=32, hflip=True, select_best=True, epochs=2,
        note="paper: 224 px, many epochs; CPU demo: 128 px, 2 epochs (ResNet-50 is slow on 2 cores)"),
    "DFwF: frozen backbone + linear head": dict(
        arch="frozen:mobilenet_v2", lr=1e-3, weight_decay=0.0, batch_size=64, epochs=30, weighted_sampling=True,
        note="paper: CLIP ViT-L/14, DINOv2; offline: ImageNet MobileNetV2 (no CLIP weights ship on any registry)"),
    "CNNDetection augmentation (blur+JPEG+downsize, p=0.5)": dict(
        CPU_RESNET18, epochs=10, lr=1e-4, init_from="cnn-resnet18",
        augment=DegradeAugConfig(blur_p=0.5, blur_sigma=(0.0, 3.0), jpeg_p=0.5, jpeg_quality=(30, 100),
                                 downsize_p=0.5, downsize_scale=(0.5, 1.0)),
        note="CNNDetection's recipe (Wang et al. 2020), [Petrželková 2024] §4.3's robust re-training: blur sigma in [0, 3], "
        "JPEG quality in [30, 100], downsize scale in [0.5, 1], each with p = 0.5, for 10 epochs at lr 1e-4 (a "
        "fine-tune: at the from-scratch 1e-3, validation accuracy swung 0.83-0.93 and selection kept epoch 1) "
        "from the shipped cnn-resnet18's weights (from random init, 10 epochs of it stayed at chance on the demo: "
        "test ROC AUC 0.54); what the shipped cnn-resnet18-aug uses"),
    "FGSM adversarial training": dict(
        CPU_RESNET18, epochs=4, init_from="cnn-resnet18", adv_eps=[0.005, 0.01, 0.02], adv_fraction=0.5,
        note="Petrželková 2024 §4.4.2: half of each batch replaced by FGSM copies at eps drawn from {0.005, 0.01, 0.02}, "
        "made on the fly from the weights being trained (the paper built them once from the trained model), "
        "for 4 epochs from the shipped cnn-resnet18's weights (an FGSM step doubles a step's cost on 2 cores); "
        "what the shipped cnn-resnet18-adv uses"),
    "CPU demo: frozen MobileNetV2 + linear head": dict(
        MID_PROBE_DEMO,
        note="the quickest useful run on a CPU: the demo is decoded, the ImageNet backbone's mid-level features "
        "are computed once (cached: a second run skips it), then only a linear head trains (the shipped "
        "univfd-mobilenet_v2 settings: 0.971 test accuracy on the current demo). A ResNet-18 from scratch "
        "reaches 0.975 in 10 epochs, many times slower"),
    "ResNet-18 from scratch (the shipped cnn-resnet18)": dict(
        **CNN_DEMO,
        note="the shipped cnn-resnet18's settings: 10 epochs at 128 px, blur/JPEG/downsize post-processing on "
        "both classes with p = 0.2 each"),
}


#: Wall time of each preset on the demo, every phase counted (decode, feature extraction, training,
#: evaluation), from a cold cache: written by ``bench/bench_presets.py --write``; the preset labels read it.
PRESET_TIMES_FILE = Path(__file__).with_name("preset_times.json")


def preset_times() -> dict[str, dict]:
    """Preset name -> ``{"seconds", "source", "phases", ...}`` as last measured (empty when never measured)."""
    try:
        return json.loads(PRESET_TIMES_FILE.read_text(encoding="utf-8")).get("presets", {})
    except (OSError, ValueError):
        return {}


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {max(2, round(seconds / 60)):.0f} min"


def preset_time_label(name: str, times: dict | None = None) -> str:
    """How long preset ``name`` takes on the demo, in words: measured on an idle 2-core machine from a cold
    cache (every phase counted), or what is known short of that."""
    t = (preset_times() if times is None else times).get(name)
    if not t or not t.get("seconds"):
        return "time not measured yet (bench/bench_presets.py)"
    if t.get("source") == "idle":
        return f"{_minutes(t['seconds'])} on an idle 2-core machine, all phases"
    return f"{_minutes(t['seconds'])} on 2 cores, all phases (not yet timed on an idle machine)"


def preset_choices() -> list[tuple[str, str]]:
    """(label, preset name) for a picker: each preset's name with its time label."""
    times = preset_times()
    return [(f"{name} — {preset_time_label(name, times)}", name) for name in PRESETS]
