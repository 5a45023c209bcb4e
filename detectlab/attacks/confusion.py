"""How often an attack succeeds: the confusion rate of [Petrželková 2024] §4.4 (Tables 4.4-4.7, Fig. 4.14)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from detectlab.attacks.base import AttackError, check_eps, check_labels, check_positive_int, eval_mode, model_device
from detectlab.attacks.registry import make_attack
from detectlab.degrade.ops import check_images


@dataclass
class ConfusionResult:
    """Outcome of an attack on a set of images (see ``confusion_rate`` for the definition)."""

    eps: float
    eligible: int              # the denominator: images decided fake before the attack (see direction)
    flipped: int               # the numerator: those whose decision switched after the attack
    rate: float | None         # flipped / eligible; None when no image is eligible
    accuracy_before: float | None = None   # with labels: accuracy on the clean images
    accuracy_after: float | None = None    # with labels: accuracy on the adversarial images
    # with labels, per class, so what the attack does to real images is not hidden inside the accuracy
    # (an attack crafted against the true labels pushes each real image towards "fake"):
    n_fake: int | None = None
    n_real: int | None = None
    fakes_called_real_before: float | None = None   # share of the fake images decided real, clean
    fakes_called_real_after: float | None = None    # ... after the attack
    reals_called_fake_before: float | None = None   # share of the real images decided fake, clean
    reals_called_fake_after: float | None = None    # ... after the attack
    reals_turned_fake: int | None = None            # real images decided real clean and fake after the attack

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_direction(direction: str) -> None:
    if direction not in ("fake_to_real", "any"):
        raise AttackError(f'direction must be "fake_to_real" or "any", got {direction!r}')


def confusion_from_decisions(before: torch.Tensor, after: torch.Tensor, labels: torch.Tensor | None, eps: float,
                             direction: Literal["fake_to_real", "any"] = "fake_to_real") -> ConfusionResult:
    """The confusion rate from decisions (True = fake) before and after an attack; see ``confusion_rate``."""
    _check_direction(direction)
    dec0, dec1 = before.bool().cpu(), after.bool().cpu()
    y = None if labels is None else labels.cpu()
    if direction == "fake_to_real":
        eligible = dec0 if y is None else dec0 & (y == 1)
        flipped = eligible & ~dec1
    else:
        eligible = torch.ones_like(dec0) if y is None else dec0 == (y == 1)
        flipped = eligible & (dec0 != dec1)
    n_el, n_fl = int(eligible.sum()), int(flipped.sum())
    if y is None:
        return ConfusionResult(eps, n_el, n_fl, None if n_el == 0 else n_fl / n_el)
    fake, real = y == 1, y == 0

    def share(decided: torch.Tensor, among: torch.Tensor) -> float | None:
        return float(decided[among].float().mean()) if bool(among.any()) else None

    return ConfusionResult(
        eps, n_el, n_fl, None if n_el == 0 else n_fl / n_el,
        float((dec0 == fake).float().mean()), float((dec1 == fake).float().mean()),
        int(fake.sum()), int(real.sum()), share(~dec0, fake), share(~dec1, fake), share(dec0, real),
        share(dec1, real), int((real & ~dec0 & dec1).sum()))


@torch.no_grad()
def decisions(model: nn.Module, x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """True where the detector decides "fake": P(fake) = sigmoid(logit) above ``threshold``."""
    return torch.sigmoid(model(x).reshape(-1)) > threshold


def confusion_stats(model: nn.Module, images: torch.Tensor, labels: Any = None, eps: float = 0.025,
                    batch_size: int = 32, *, attack_model: nn.Module | None = None,
                    direction: Literal["fake_to_real", "any"] = "fake_to_real", method: str = "fgsm",
                    threshold: float = 0.5) -> ConfusionResult:
    """Confusion rate of an attack, with its counts; see ``confusion_rate``."""
    check_images(images)
    eps = check_eps(eps)
    y = check_labels(labels, images.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    _check_direction(direction)
    attack = make_attack(method, model if attack_model is None else attack_model, eps)
    device = model_device(model)
    before, after = [], []
    with eval_mode(model):
        for lo in range(0, images.shape[0], batch_size):
            xb = images[lo : lo + batch_size]
            adv = attack(xb, None if y is None else y[lo : lo + batch_size])
            before.append(decisions(model, xb.to(device), threshold).cpu())
            after.append(decisions(model, adv.to(device), threshold).cpu())
    return confusion_from_decisions(torch.cat(before), torch.cat(after), y, eps, direction)


def confusion_rate(model: nn.Module, images: torch.Tensor, labels: Any = None, eps: float = 0.025,
                   batch_size: int = 32, *, attack_model: nn.Module | None = None,
                   direction: Literal["fake_to_real", "any"] = "fake_to_real", method: str = "fgsm",
                   threshold: float = 0.5) -> float | None:
    """Confusion rate of an attack of strength ``eps`` ([Petrželková 2024] §4.4, Tables 4.4-4.7, Fig. 4.14).

    [Petrželková 2024] defines it as "a percentage of test cases when the model switched the
    classification due to the attack from 'fake' to 'real' over the number of 'fake'
    decisions prior to the attack". Here, as a fraction in [0, 1] (decision fake =
    P(fake) > ``threshold``):

    * ``direction="fake_to_real"`` (default, the paper's definition): denominator = images
      the model decides fake on the clean input; numerator = those of them it decides real
      on the adversarial input. When ``labels`` are given, only true fakes (label 1) count,
      i.e. correctly detected fakes: a real image wrongly called fake would be "attacked"
      towards its true class and is left out. On the paper's all-fake test sets (e.g. the 274
      Realistic Vision 5.1 images of §4.4.3) both readings agree.
    * ``direction="any"``: denominator = correctly classified images of either class (all
      images without labels); numerator = those whose decision changes either way.

    The adversarial images are crafted with ``method`` (FGSM, eq. 3.10, by default) on
    ``attack_model`` (default: ``model`` itself; another model gives the transfer attacks of
    Tables 4.5-4.6) against the true labels when given, else against its own verdicts;
    ``model`` judges them.

    Args:
        model: the detector whose decisions are counted.
        images: ``[N, 3, H, W]`` in [0, 1] (any device; processed ``batch_size`` at a time).
        labels: ``[N]`` 0 real / 1 fake, or ``None``.
        eps: attack strength in [0, 1]; 0 gives a confusion rate of 0 (Fig. 4.14).
        batch_size: images per forward/backward pass.
        attack_model: the model the attack is crafted on (transfer attack), default ``model``.
        direction: ``"fake_to_real"`` (paper) or ``"any"``.
        method: ``"fgsm"``, ``"pgd"`` or ``"lbfgs"`` (see ``ATTACKS``).
        threshold: the decision threshold on P(fake) of ``model``.

    Returns:
        the confusion rate in [0, 1], or ``None`` when no image is eligible (e.g. none is
        decided fake before the attack). ``confusion_stats`` returns the counts as well.

    Example:
        >>> confusion_rate(detector, fakes, torch.ones(len(fakes)), eps=0.02)
        0.97
    """
    return confusion_stats(model, images, labels, eps, batch_size, attack_model=attack_model,
                           direction=direction, method=method, threshold=threshold).rate
