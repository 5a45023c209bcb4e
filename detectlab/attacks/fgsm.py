"""Adversarial attacks on real/fake detectors (seed 001 §3.2, §4.4), torchattacks style.

An ``Attack`` holds a detector (``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits, positive = fake)
and turns images in [0, 1] into adversarial images in [0, 1]. The base class does the shared
work: input checks, moving images to the model's device, running the model in eval mode
(batch-norm statistics and dropout untouched) and restoring each submodule's train/eval
flag afterwards, and taking the gradient with respect to the input only, so neither the
parameters, their ``.grad`` nor their ``requires_grad`` flags ever change.

``FGSM`` implements seed 001 eq. (3.10) (Goodfellow et al., 2015); ``confusion_rate`` is the
measure of attack success of seed 001 §4.4; ``fgsm_batch_for_training`` makes the
adversarial copies for adversarial training (seed 001 §4.4.2).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from detectlab.degrade.ops import check_images


def _check_labels(labels: Any, n: int) -> torch.Tensor | None:
    if labels is None:
        return None
    y = torch.as_tensor(labels).flatten()
    if y.numel() != n:
        raise ValueError(f"labels must give one 0 (real) / 1 (fake) per image: {y.numel()} labels for {n} images")
    if not torch.isin(y.to(torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return y.to(torch.float32)


def _check_eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(float(eps)) \
            or not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"eps must be a number in [0, 1] (a step in [0, 1] pixel units), got {eps!r}")
    return float(eps)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


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

    Subclasses implement ``perturb(images, targets)`` on images already checked and on the
    model's device, with the model in eval mode. ``__call__`` returns detached adversarial
    images on the device of the input images.

    Args:
        model: detector, ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits (positive = fake).

    Shape:
        images ``[B, 3, H, W]`` float in [0, 1]; labels ``[B]`` 0 real / 1 fake or ``None``;
        output ``[B, 3, H, W]`` in [0, 1].
    """

    name = "attack"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, images: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """Adversarial copies of ``images``; ``labels`` (true classes) when known, else the model's verdicts."""
        check_images(images)
        y = _check_labels(labels, images.shape[0])
        x = images.detach().to(self.device)
        with eval_mode(self.model):
            targets = self.targets(x, y)
            adv = self.perturb(x, targets.to(x.device))
        return adv.detach().to(images.device)

    def residual(self, images: torch.Tensor, labels: Any = None) -> torch.Tensor:
        """The adversarial residuum ``x_adv - x`` (seed 001 Fig. 4.11), in [-1, 1]."""
        return self(images, labels) - images.detach()

    @torch.no_grad()
    def targets(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The class the attack moves away from: the true label, else the model's verdict (logit > 0)."""
        if labels is not None:
            return labels
        return (self.model(x).reshape(-1) > 0).float()

    def input_gradient(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Gradient of the BCE-with-logits loss J(theta, x, y) with respect to the input only.

        The loss is summed over the batch so each image's gradient is its own (not scaled by
        1/B). ``torch.autograd.grad`` with ``inputs=x`` leaves every parameter's ``.grad``
        untouched.
        """
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        return grad

    def perturb(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__})"


class FGSM(Attack):
    r"""Fast Gradient Sign Method (Goodfellow et al., 2015), seed 001 §3.2.1, eq. (3.10).

    .. math:: x' = \mathrm{clip}_{[0,1]}\big(x + \epsilon \cdot \mathrm{sign}(\nabla_x J(\theta, x, y))\big)

    with J the binary cross-entropy of the detector's logit against y. y is the true label
    when given, else the model's own verdict, so the step always pushes away from the
    current decision (a "fake" verdict towards "real", as in seed 001 §4.4). Every pixel moves
    by exactly ``eps`` unless clipping to [0, 1] stops it or its gradient is exactly 0.

    Args:
        model: detector, ``[B, 3, H, W]`` in [0, 1] -> ``[B]`` logits.
        eps: step size in [0, 1] pixel units (seed 001 uses 0.01-0.3; 0 = identity). A
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
                raise ValueError("eps must be a number in [0, 1] or a [B] tensor of such numbers")
            self.eps: float | torch.Tensor = eps
        else:
            self.eps = _check_eps(eps)

    def perturb(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        eps = self.eps
        if isinstance(eps, torch.Tensor):
            if eps.numel() != x.shape[0]:
                raise ValueError(f"a per-image eps needs {x.shape[0]} values, got {eps.numel()}")
            eps = eps.to(x.device, x.dtype).view(-1, 1, 1, 1)
        elif eps == 0.0:
            return x.clone()  # eq. (3.10) with eps = 0, without a useless backward pass
        grad = self.input_gradient(x, targets)
        return (x + eps * grad.sign()).clamp_(0.0, 1.0)


def fgsm(model: nn.Module, images: torch.Tensor, labels: Any = None, eps: float = 0.025) -> torch.Tensor:
    """One-call FGSM, seed 001 eq. (3.10): ``FGSM(model, eps)(images, labels)``."""
    return FGSM(model, eps)(images, labels)


@dataclass
class ConfusionResult:
    """Outcome of an attack on a set of images (see ``confusion_rate`` for the definition)."""

    eps: float
    eligible: int              # the denominator: images decided fake before the attack (see direction)
    flipped: int               # the numerator: those whose decision switched after the attack
    rate: float | None         # flipped / eligible; None when no image is eligible
    accuracy_before: float | None = None   # with labels: accuracy on the clean images
    accuracy_after: float | None = None    # with labels: accuracy on the adversarial images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def _decisions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).reshape(-1) > 0


def confusion_stats(model: nn.Module, images: torch.Tensor, labels: Any = None, eps: float = 0.025,
                    batch_size: int = 32, *, attack_model: nn.Module | None = None,
                    direction: Literal["fake_to_real", "any"] = "fake_to_real") -> ConfusionResult:
    """Confusion rate of an FGSM attack, with its counts; see ``confusion_rate``."""
    check_images(images)
    eps = _check_eps(eps)
    y = _check_labels(labels, images.shape[0])
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if direction not in ("fake_to_real", "any"):
        raise ValueError(f'direction must be "fake_to_real" or "any", got {direction!r}')
    source = model if attack_model is None else attack_model
    attack = FGSM(source, eps)
    device = model_device(model)
    before, after = [], []
    with eval_mode(model):
        for lo in range(0, images.shape[0], batch_size):
            xb = images[lo : lo + batch_size]
            yb = None if y is None else y[lo : lo + batch_size]
            adv = attack(xb, yb)
            before.append(_decisions(model, xb.to(device)).cpu())
            after.append(_decisions(model, adv.to(device)).cpu())
    dec0, dec1 = torch.cat(before), torch.cat(after)
    if direction == "fake_to_real":
        eligible = dec0 if y is None else dec0 & (y == 1)
        flipped = eligible & ~dec1
    else:
        eligible = torch.ones_like(dec0) if y is None else dec0 == (y == 1)
        flipped = eligible & (dec0 != dec1)
    n_el, n_fl = int(eligible.sum()), int(flipped.sum())
    acc0 = acc1 = None
    if y is not None:
        acc0 = float((dec0 == (y == 1)).float().mean())
        acc1 = float((dec1 == (y == 1)).float().mean())
    return ConfusionResult(eps, n_el, n_fl, None if n_el == 0 else n_fl / n_el, acc0, acc1)


def confusion_rate(model: nn.Module, images: torch.Tensor, labels: Any = None, eps: float = 0.025,
                   batch_size: int = 32, *, attack_model: nn.Module | None = None,
                   direction: Literal["fake_to_real", "any"] = "fake_to_real") -> float | None:
    """Confusion rate of an FGSM attack of strength ``eps`` (seed 001 §4.4, Tables 4.4-4.7, Fig. 4.14).

    seed 001 defines it as "a percentage of test cases when the model switched the
    classification due to the attack from 'fake' to 'real' over the number of 'fake'
    decisions prior to the attack". Here, as a fraction in [0, 1] (decision fake = logit > 0):

    * ``direction="fake_to_real"`` (default, the paper's definition): denominator = images
      the model decides fake on the clean input; numerator = those of them it decides real
      on the adversarial input. When ``labels`` are given, only true fakes (label 1) count,
      i.e. correctly detected fakes: a real image wrongly called fake would be "attacked"
      towards its true class and is left out. On the paper's all-fake test sets (e.g. the 274
      Realistic Vision 5.1 images of §4.4.3) both readings agree.
    * ``direction="any"``: denominator = correctly classified images of either class (all
      images without labels); numerator = those whose decision changes either way.

    The adversarial images are crafted with FGSM (eq. 3.10) on ``attack_model`` (default:
    ``model`` itself; another model gives the transfer attacks of Tables 4.5-4.6) against the
    true labels when given, else against its own verdicts; ``model`` judges them.

    Args:
        model: the detector whose decisions are counted.
        images: ``[N, 3, H, W]`` in [0, 1] (any device; processed ``batch_size`` at a time).
        labels: ``[N]`` 0 real / 1 fake, or ``None``.
        eps: FGSM strength in [0, 1]; 0 gives a confusion rate of 0 (Fig. 4.14).
        batch_size: images per forward/backward pass.
        attack_model: the model the attack is crafted on (transfer attack), default ``model``.
        direction: ``"fake_to_real"`` (paper) or ``"any"``.

    Returns:
        the confusion rate in [0, 1], or ``None`` when no image is eligible (e.g. none is
        decided fake before the attack). ``confusion_stats`` returns the counts as well.

    Example:
        >>> confusion_rate(detector, fakes, torch.ones(len(fakes)), eps=0.02)
        0.97
    """
    return confusion_stats(model, images, labels, eps, batch_size, attack_model=attack_model,
                           direction=direction).rate


def fgsm_batch_for_training(model: nn.Module, x: torch.Tensor, y: Any, eps_list: Sequence[float],
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial copies of a training batch for adversarial training (seed 001 §4.4.2).

    Each image gets FGSM (eq. 3.10) against its true label with an eps drawn uniformly from
    ``eps_list`` (seed 001: 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), from ``generator``. The model is
    run in eval mode and its train/eval flags are restored afterwards; its parameters and
    their gradients are untouched. Note: seed 001 crafted the adversarial training set once,
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
        raise ValueError("adversarial training needs the true labels y")
    eps_values = [_check_eps(e) for e in eps_list]
    if not eps_values:
        raise ValueError("eps_list must hold at least one FGSM strength")
    check_images(x)
    idx = torch.randint(0, len(eps_values), (x.shape[0],), generator=generator)
    eps = torch.tensor(eps_values, dtype=torch.float32)[idx]
    return FGSM(model, eps)(x, y)


__all__ = [
    "Attack", "ConfusionResult", "FGSM", "confusion_rate", "confusion_stats", "eval_mode", "fgsm",
    "fgsm_batch_for_training", "model_device",
]
