"""The named attacks, one file each (torchattacks style), and one way to build them from a name and eps."""

from __future__ import annotations

from typing import Any

from torch import nn

from detectlab.attacks.base import Attack, AttackError
from detectlab.attacks.fgsm import FGSM
from detectlab.attacks.lbfgs import LBFGS
from detectlab.attacks.pgd import PGD

#: name -> attack class
ATTACKS: dict[str, type[Attack]] = {"fgsm": FGSM, "pgd": PGD, "lbfgs": LBFGS}

#: name -> what it is, in the papers' words (for pickers and --help)
DESCRIPTIONS = {
    "fgsm": "FGSM, one signed-gradient step of size eps ([Petrželková 2024] eq. 3.10)",
    "pgd": "PGD, 10 FGSM steps of eps/4 projected onto the eps-ball (iterated FGSM)",
    "lbfgs": "box-constrained L-BFGS, the smallest L2 residual that flips ([Petrželková 2024] eq. 3.14), within the eps-ball",
}


def make_attack(method: str, model: nn.Module, eps: float, **options: Any) -> Attack:
    """The attack ``method`` on ``model`` at strength ``eps`` (for L-BFGS: an L-infinity bound on its residual)."""
    if method not in ATTACKS:
        raise AttackError(f"unknown attack '{method}' (known: {', '.join(ATTACKS)})")
    return ATTACKS[method](model, eps=eps, **options)
