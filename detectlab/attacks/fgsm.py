"""FGSM, [Petrželková 2024] §3.2.1 eq. (3.10) (Goodfellow et al., 2015), and its adversarial-training batches (§4.4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from detectlab.attacks.base import Attack, AttackError, check_eps
from detectlab.degrade.ops import check_images


class FGSM(Attack):
    r"""Fast Gradient Sign Method (Goodfellow et al., 2015), [Petrželková 2024] §3.2.1, eq. (3.10).

    .. math:: x' = \mathrm{clip}_{[0,1]}\big(x + \epsilon \cdot \mathrm{sign}(\nabla_x J(\theta, x, y))\big)

    with J the binary cross-entropy of the detector's logit against y. y is the true label
    when given, else the model's own verdict, so the step always pushes away from the
    current decision (a "fake" verdict towards "real", as in [Petrželková 2024] §4.4). Every pixel moves
    by exactly ``eps`` unless clipping to [0, 1] stops it or its gradient is exactly 0.

    Args:
        model: detector, ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits.
        eps: step size in [0, 1] pixel units ([Petrželková 2024] uses 0.01-0.3; 0 = identity). A
            ``[B]`` tensor gives each image its own eps.

    Shape:
        images ``[B, 3, H, W]`` in [0, 1], labels ``[B]`` or ``None`` -> ``[B, 3, H, W]`` in [0, 1].

    Example:
        >>> atk = FGSM(detector, eps=0.02)
        >>> x_adv = atk(images, labels)          # or atk(images): attack the model's verdicts
        >>> residuum = atk.residual(images)
    """

    name = "fgsm"

    def __init__(self, model: nn.Module, eps: float | torch.Tensor = 0.025) -> None:
        super().__init__(model)
        if isinstance(eps, torch.Tensor):
            if eps.ndim != 1 or not torch.isfinite(eps).all() or (eps < 0).any() or (eps > 1).any():
                raise AttackError("eps must be a number in [0, 1] or a [B] tensor of such numbers")
            self.eps: float | torch.Tensor = eps
        else:
            self.eps = check_eps(eps)

    def perturb(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        eps = self.eps
        if isinstance(eps, torch.Tensor):
            if eps.numel() != x.shape[0]:
                raise AttackError(f"a per-image eps needs {x.shape[0]} values, got {eps.numel()}")
            eps = eps.to(x.device, x.dtype).view(-1, 1, 1, 1)
        elif eps == 0.0:
            return x.clone()  # eq. (3.10) with eps = 0, without a useless backward pass
        grad = self.input_gradient(x, targets)
        return (x + eps * grad.sign()).clamp_(0.0, 1.0)


def fgsm(model: nn.Module, images: torch.Tensor, labels: Any = None, eps: float = 0.025) -> torch.Tensor:
    """One-call FGSM, [Petrželková 2024] eq. (3.10): ``FGSM(model, eps)(images, labels)``."""
    return FGSM(model, eps)(images, labels)


def fgsm_batch_for_training(model: nn.Module, x: torch.Tensor, y: Any, eps_list: Sequence[float],
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial copies of a training batch for adversarial training ([Petrželková 2024] §4.4.2).

    Each image gets FGSM (eq. 3.10) against its true label with an eps drawn uniformly from
    ``eps_list`` ([Petrželková 2024]: 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), from ``generator``. The model is
    run in eval mode and its train/eval flags are restored afterwards; its parameters and
    their gradients are untouched. Note: [Petrželková 2024] crafted the adversarial training set once,
    on the original (already trained) detector; passing the model being trained instead
    crafts them online against the current weights (Goodfellow et al.'s variant).

    Args:
        model: detector to craft the attack on.
        x: ``[B, 3, H, W]`` in [0, 1].
        y: ``[B]`` true labels 0 / 1.
        eps_list: the strengths to draw from, each in [0, 1].
        generator: randomness of the eps draws (global RNG when ``None``).

    Returns:
        ``[B, 3, H, W]`` in [0, 1], detached, on the device of ``x``.
    """
    if y is None:
        raise AttackError("adversarial training needs the true labels y")
    eps_values = [check_eps(e) for e in eps_list]
    if not eps_values:
        raise AttackError("eps_list must hold at least one FGSM strength")
    check_images(x)
    idx = torch.randint(0, len(eps_values), (x.shape[0],), generator=generator)
    eps = torch.tensor(eps_values, dtype=torch.float32)[idx]
    return FGSM(model, eps)(x, y)
