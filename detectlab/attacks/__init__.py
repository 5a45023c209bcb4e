"""Adversarial attacks on detectors ([Petrželková 2024] §3.2, §4.4): one file per attack over one base class.

``base`` (the shared machinery), ``fgsm`` (eq. 3.10, and adversarial-training batches), ``pgd``,
``lbfgs`` (eq. 3.14), ``confusion`` (the confusion rate), ``playground`` (one image on the path the
detector scores it, resize or native-resolution tiles, with the change's size and whether it survives
being saved, compressed or blurred, beside the same step on the clean image), ``experiments`` (set-level: confusion
against eps, transfer matrix, mirror models, cross-sample, blur defence, Tables 4.4-4.7),
``mirror_pair`` (the two training configs of the mirror-model experiment), ``plots`` (their
figures; imported on its own, it needs plotly) and ``paper`` (what a result says against [Petrželková 2024]).
"""

from detectlab.attacks.base import (
    NON_DIFFERENTIABLE_KINDS,
    Attack,
    AttackError,
    eval_mode,
    model_device,
    parse_eps_list,
    require_gradients,
)
from detectlab.attacks.confusion import (
    ConfusionResult,
    confusion_from_decisions,
    confusion_rate,
    confusion_stats,
    decisions,
)
from detectlab.attacks.experiments import (
    BlurDefenceResult,
    CrossSampleResult,
    ImageSet,
    MirrorResult,
    TransferResult,
    blur_defence,
    cross_sample,
    load_image_set,
    load_split,
    mirror,
    transfer,
    write_csv,
)
from detectlab.attacks.fgsm import FGSM, fgsm, fgsm_batch_for_training
from detectlab.attacks.lbfgs import LBFGS
from detectlab.attacks.mirror_pair import MIRROR_BASE, MIRROR_NAMES, mirror_configs
from detectlab.attacks.pgd import PGD
from detectlab.attacks.playground import (
    PLAYGROUND_OPTIONS,
    SCORINGS,
    SURVIVAL_CHECKS,
    PerturbationSize,
    PlaygroundResult,
    SurvivalCheck,
    TiledLogit,
    attack_file,
    attack_image,
)
from detectlab.attacks.registry import ATTACKS, DESCRIPTIONS, make_attack

__all__ = [
    "ATTACKS", "Attack", "AttackError", "BlurDefenceResult", "ConfusionResult", "CrossSampleResult", "DESCRIPTIONS",
    "FGSM", "ImageSet", "LBFGS", "MIRROR_BASE", "MIRROR_NAMES", "MirrorResult", "NON_DIFFERENTIABLE_KINDS", "PGD",
    "PLAYGROUND_OPTIONS", "PerturbationSize", "PlaygroundResult", "SCORINGS", "SURVIVAL_CHECKS", "SurvivalCheck",
    "TiledLogit", "TransferResult", "attack_file", "attack_image", "blur_defence",
    "confusion_from_decisions", "confusion_rate", "confusion_stats", "cross_sample", "decisions", "eval_mode", "fgsm",
    "fgsm_batch_for_training", "load_image_set", "load_split", "make_attack", "mirror", "mirror_configs",
    "model_device", "parse_eps_list", "require_gradients", "transfer", "write_csv",
]
