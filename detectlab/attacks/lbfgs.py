"""Box-constrained L-BFGS (Szegedy et al., 2014), [Petrželková 2024] §3.2.2, eq. (3.14)-(3.15)."""

from __future__ import annotations

import math

import torch
from torch import nn

from detectlab.attacks.base import Attack, AttackError, bce_with_logits, check_eps, check_positive_int


class LBFGS(Attack):
    r"""The smallest L2 residual that flips the decision, found with L-BFGS ([Petrželková 2024] eq. 3.14-3.15).

    .. math:: \min_r\; c\,\lVert r\rVert_2 + \mathrm{loss}_f(x + r, l) \quad \text{s.t.}\; x + r \in [0, 1]^m

    with ``loss_f`` the BCE of the detector's logit against ``l``, the class opposite to the
    target (a fake image is pushed to "real"). ``torch.optim.LBFGS`` (strong-Wolfe line search)
    minimises over r; the box is kept by clamping ``x + r`` inside the objective, so the
    penalty and the loss see only images in [0, 1] (and, with ``eps``, inside the L-infinity
    ball of radius eps as well). The search over c of eq. (3.14) is per image: a success
    (decision flipped) raises c, which shrinks r; a failure lowers it (x10 / ÷10 until both
    bounds are known, then geometric bisection). The successful residual with the smallest
    L2 norm is kept; an image that never flips gets the residual of its smallest c.

    Args:
        model: detector, ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits.
        c: the first c tried (default 1.0).
        search_steps: values of c tried per image (default 6).
        max_iter: L-BFGS iterations per value of c (default 20).
        eps: optional L-infinity bound on the residual in [0, 1] (None: only the [0, 1] box).

    Shape:
        images ``[B, 3, H, W]`` in [0, 1], labels ``[B]`` or ``None`` -> ``[B, 3, H, W]`` in [0, 1].

    Example:
        >>> x_adv = LBFGS(detector, search_steps=6)(images, labels)
    """

    name = "lbfgs"

    def __init__(self, model: nn.Module, c: float = 1.0, search_steps: int = 6, max_iter: int = 20,
                 eps: float | None = None) -> None:
        super().__init__(model)
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
            raise AttackError(f"c must be a positive number, got {c!r}")
        self.c = float(c)
        self.search_steps = check_positive_int(search_steps, "search_steps")
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.eps = None if eps is None else check_eps(eps)

    def _minimise(self, x: torch.Tensor, goal: torch.Tensor, c: torch.Tensor, lo: torch.Tensor,
                  hi: torch.Tensor) -> torch.Tensor:
        r = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.LBFGS([r], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def objective() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            adv = torch.minimum(torch.maximum(x + r, lo), hi)
            # sqrt with a floor: the L2 norm of eq. (3.14) without a NaN gradient at r = 0
            norm = ((adv - x).flatten(1).pow(2).sum(1) + 1e-12).sqrt()
            logits = self.model(adv).reshape(-1)
            total = (c * norm + bce_with_logits(logits, goal)).sum()
            total.backward(inputs=[r])  # the input only: no parameter gets a .grad
            return total

        with torch.enable_grad():
            opt.step(objective)
        return torch.minimum(torch.maximum(x + r.detach(), lo), hi)

    def perturb(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        lo, hi = torch.zeros_like(x), torch.ones_like(x)
        if self.eps is not None:
            lo, hi = (x - self.eps).clamp(min=0.0), (x + self.eps).clamp(max=1.0)
        goal = 1.0 - targets.to(x.dtype)
        n = x.shape[0]
        c = torch.full((n,), self.c, dtype=x.dtype, device=x.device)
        c_ok = torch.full_like(c, math.nan)    # largest c that flipped (smaller residual wanted)
        c_fail = torch.full_like(c, math.nan)  # smallest c that did not flip
        best, best_norm = x.clone(), torch.full_like(c, math.inf)
        fallback, fallback_c = x.clone(), torch.full_like(c, math.inf)
        for _ in range(self.search_steps):
            adv = self._minimise(x, goal, c, lo, hi)
            with torch.no_grad():
                flipped = (self.model(adv).reshape(-1) > 0).to(x.dtype) != targets.to(x.dtype)
            norm = (adv - x).flatten(1).norm(dim=1)
            keep = flipped & (norm < best_norm)
            best[keep], best_norm = adv[keep], torch.where(keep, norm, best_norm)
            weaker = ~flipped & (c < fallback_c)
            fallback[weaker], fallback_c = adv[weaker], torch.where(weaker, c, fallback_c)
            c_ok = torch.where(flipped, torch.fmax(c_ok, c), c_ok)
            c_fail = torch.where(~flipped, torch.fmin(c_fail, c), c_fail)
            both = ~torch.isnan(c_ok) & ~torch.isnan(c_fail)
            c = torch.where(both, (c_ok * c_fail).sqrt(), torch.where(flipped, c * 10, c / 10))
        found = torch.isfinite(best_norm)
        return torch.where(found.view(-1, 1, 1, 1), best, fallback)
