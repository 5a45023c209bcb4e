"""Adversarial attacks on detectors (seed 001 §3.2, §4.4): FGSM, confusion rate, adversarial training."""

from detectlab.attacks.fgsm import (
    FGSM,
    Attack,
    ConfusionResult,
    confusion_rate,
    confusion_stats,
    eval_mode,
    fgsm,
    fgsm_batch_for_training,
    model_device,
)

#: The named attacks (one file each, torchattacks style).
ATTACKS = {"fgsm": FGSM}

__all__ = [
    "ATTACKS", "Attack", "ConfusionResult", "FGSM", "confusion_rate", "confusion_stats", "eval_mode", "fgsm",
    "fgsm_batch_for_training", "model_device",
]
