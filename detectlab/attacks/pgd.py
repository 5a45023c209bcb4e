"""PGD: iterated FGSM with projection onto the eps-ball (Madry et al., 2018; [Petrželková 2024] §3.2 "iterative techniques")."""

from __future__ import annotations

import torch
from torch import nn

from detectlab.attacks.base import Attack, check_eps, check_positive_int


class PGD(Attack):
    r"""Projected gradient descent on the loss (Madry et al., 2018): FGSM ([Petrželková 2024] eq. 3.10) iterated.

    .. math:: x^{t+1} = \Pi_{B_\infty(x, \epsilon) \cap [0,1]^m}\big(x^t + \alpha\,\mathrm{sign}(\nabla_x J(\theta, x^t, y))\big)

    starting from ``x`` (or, with ``random_start``, from a uniform point of the eps-ball). The
    iterate with the highest loss is kept per image, so more steps never give a weaker
    result than fewer (nor than the clean image); with ``steps=1``, ``alpha=eps`` and no random
    start PGD returns FGSM's image wherever that step raises the loss.

    Args:
        model: detector, ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits.
        eps: radius of the L-infinity ball in [0, 1] pixel units.
        alpha: step size (default ``eps / 4``).
        steps: iterations (default 10).
        random_start: start from a uniform random point of the ball.
        generator: randomness of the start (global RNG when ``None``).

    Shape:
        images ``[B, 3, H, W]`` in [0, 1], labels ``[B]`` or ``None`` -> ``[B, 3, H, W]`` in [0, 1].

    Example:
        >>> x_adv = PGD(detector, eps=0.02, steps=10)(images, labels)
    """

    name = "pgd"

    def __init__(self, model: nn.Module, eps: float = 0.025, alpha: float | None = None, steps: int = 10,
                 random_start: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__(model)
        self.eps = check_eps(eps)
        self.alpha = self.eps / 4 if alpha is None else check_eps(alpha, "alpha")
        self.steps = check_positive_int(steps, "steps")
        self.random_start = bool(random_start)
        self.generator = generator

    def perturb(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.eps == 0.0:
            return x.clone()
        lo, hi = (x - self.eps).clamp(min=0.0), (x + self.eps).clamp(max=1.0)
        adv = x.clone()
        if self.random_start:
            noise = torch.rand(x.shape, generator=self.generator, dtype=x.dtype).to(x.device)
            adv = torch.minimum(torch.maximum(x + (2 * noise - 1) * self.eps, lo), hi)
        best, best_loss = adv.clone(), None
        for _ in range(self.steps):
            loss, grad = self.loss_and_gradient(adv, targets)
            if best_loss is None:
                best_loss = loss
            else:  # the loss of the previous iterate, known only now
                better = loss > best_loss
                best[better], best_loss = adv[better], torch.where(better, loss, best_loss)
            adv = torch.minimum(torch.maximum(adv + self.alpha * grad.sign(), lo), hi)
        loss = self.losses(adv, targets)
        better = loss > best_loss
        best[better] = adv[better]
        return best
