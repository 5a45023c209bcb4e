"""The shared machinery of every attack on a real/fake detector ([Petrželková 2024] §3.2), torchattacks style.

An ``Attack`` holds a detector (``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits, positive = fake)
and turns images in [0, 1] into adversarial images in [0, 1]. The base class does the shared
work: input checks, moving images to the model's device, running the model in eval mode
(batch-norm statistics and dropout untouched) and restoring each submodule's train/eval
flag afterwards, and taking the gradient with respect to the input only, so neither the
parameters, their ``.grad`` nor their ``requires_grad`` flags ever change. Each attack is a
small subclass in its own file that implements ``perturb``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from detectlab.degrade.ops import check_images
from detectlab.errors import DetectLabError
from detectlab.models.base import model_device  # noqa: F401  (re-exported: the attacks' device rule)

#: Detector kinds that gradient attacks refuse: DetectLab treats the spectrum baseline as a
#: closed-form classifier on a 1-D radial spectrum, not as a network to differentiate.
NON_DIFFERENTIABLE_KINDS = ("spectrum",)


class AttackError(DetectLabError, ValueError):
    """Bad attack input (eps, labels, images, a detector without gradients); the message names the value."""


def check_labels(labels: Any, n: int) -> torch.Tensor | None:
    """``[n]`` float 0 (real) / 1 (fake), or ``None``; raises ``AttackError`` otherwise."""
    if labels is None:
        return None
    y = torch.as_tensor(labels).flatten()
    if y.numel() != n:
        raise AttackError(f"labels must give one 0 (real) / 1 (fake) per image: {y.numel()} labels for {n} images")
    if not torch.isin(y.to(torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)).all():
        raise AttackError("labels must be 0 (real) or 1 (fake)")
    return y.to(torch.float32)


def check_eps(eps: Any, what: str = "eps") -> float:
    """A finite number in [0, 1] (a step in [0, 1] pixel units); raises ``AttackError`` naming it."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(float(eps)) \
            or not 0.0 <= float(eps) <= 1.0:
        raise AttackError(f"{what} must be a number in [0, 1] (a step in [0, 1] pixel units), got {eps!r}")
    return float(eps)


def parse_eps_list(text: Any) -> list[float]:
    """An eps list as typed in the Attack tab or after ``--eps``: ``"0.01, 0.02; 0.05"`` -> ``[0.01, 0.02, 0.05]``.

    Numbers separated by commas (or semicolons), each checked by ``check_eps``; raises
    ``AttackError`` for anything else or for an empty list.
    """
    try:
        values = [float(t) for t in str(text).replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise AttackError(f"eps list '{text}': give numbers separated by commas, e.g. 0.01,0.02,0.05") from None
    if not values:
        raise AttackError("give at least one eps, e.g. 0.01,0.02,0.05")
    return [check_eps(v) for v in values]


def check_positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise AttackError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def require_gradients(model: nn.Module, name: str = "") -> None:
    """Refuse a detector that gradient attacks do not apply to, with a message that says why."""
    kind = getattr(model, "kind", "")
    if kind in NON_DIFFERENTIABLE_KINDS:
        label = name or getattr(model, "arch", kind)
        raise AttackError(
            f"gradient attacks (FGSM, PGD, L-BFGS) do not apply to '{label}': it is a {kind} baseline "
            "(radial log spectrum + logistic regression) that DetectLab does not differentiate. It can still "
            "judge residuals crafted on another detector (transfer matrix).")


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image binary cross-entropy J(theta, x, y) of a logit z against y in {0, 1}, with exact gradients.

    ``y softplus(-z) + (1 - y) softplus(z)`` equals ``F.binary_cross_entropy_with_logits``, but its
    gradient is ``-y sigmoid(-z) + (1 - y) sigmoid(z)``, computed without cancellation: PyTorch's
    BCE backward forms ``sigmoid(z) - y``, which is exactly 0 in float32 once |z| > ~17, so a very
    confident detector would give FGSM no gradient sign at all.
    """
    y = targets.to(logits.dtype)
    return y * F.softplus(-logits) + (1 - y) * F.softplus(logits)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode, then restore every submodule's own train/eval flag.

    Per submodule rather than ``model.train(was_training)``: a frozen backbone kept in eval
    mode inside a training detector must stay in eval mode.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in flags:
            m.training = training


class Attack:
    """Base class of attacks on a real/fake detector.

    Subclasses implement ``perturb(x, targets)`` on images already checked and on the
    model's device, with the model in eval mode. ``__call__`` returns detached adversarial
    images on the device of the input images. ``targets`` is the class each image is pushed
    away from: the true label when given, else the model's own verdict — so a fake image
    (target 1) is pushed towards "real" (P(fake) down), as in [Petrželková 2024] §4.4.

    Args:
        model: detector, ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits (positive = fake).

    Shape:
        images ``[B, 3, H, W]`` float in [0, 1]; labels ``[B]`` 0 real / 1 fake or ``None``;
        output ``[B, 3, H, W]`` in [0, 1].
    """

    name = "attack"

    def __init__(self, model: nn.Module) -> None:
        require_gradients(model)
        self.model = model

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, images: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """Adversarial copies of ``images``; ``labels`` (true classes) when known, else the model's verdicts."""
        try:
            check_images(images)
        except ValueError as exc:
            raise AttackError(str(exc)) from exc
        y = check_labels(labels, images.shape[0])
        x = images.detach().to(self.device)
        with eval_mode(self.model):
            targets = self.targets(x, y)
            adv = self.perturb(x, targets.to(x.device))
        return adv.detach().to(images.device)

    def residual(self, images: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """The adversarial residuum ``x_adv - x`` ([Petrželková 2024] Fig. 4.11), in [-1, 1]."""
        return self(images, labels) - images.detach()

    @torch.no_grad()
    def targets(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The class the attack moves away from: the true label, else the model's verdict (logit > 0)."""
        if labels is not None:
            return labels
        return (self.model(x).reshape(-1) > 0).float()

    @torch.no_grad()
    def losses(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-image BCE-with-logits loss J(theta, x, y) of the detector's logit against ``targets``."""
        return bce_with_logits(self.model(x).reshape(-1), targets)

    def loss_and_gradient(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image BCE-with-logits loss J(theta, x, y) and its gradient with respect to the input only.

        The loss is summed over the batch so each image's gradient is its own (not scaled by
        1/B). ``torch.autograd.grad`` with ``inputs=x`` leaves every parameter's ``.grad``
        untouched.
        """
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = bce_with_logits(self.model(x).reshape(-1), targets)
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), grad

    def input_gradient(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Gradient of the BCE-with-logits loss with respect to the input (see ``loss_and_gradient``)."""
        return self.loss_and_gradient(x, targets)[1]

    def perturb(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__})"
