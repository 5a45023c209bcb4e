"""Degradations composed in a chosen order, seeded: ``downsize 0.5 → jpeg 70``.

A real image meets several degradations one after another (resized for a page, then
re-compressed); [Petrželková 2024] §4.3 studies them one at a time, and a chain lets a user combine
them on the same footing. A ``Chain`` is an ordered tuple of ``Step(name, strength)``
over ``DEGRADATIONS``; every step is validated when the chain is made, identity steps
cost nothing, and all randomness comes from one generator seeded by ``seed``, so the same
chain, images and seed always give the same result.

Text form (``Chain.parse``): steps separated by ``→``, ``->``, ``>``, ``;`` or ``,``; each
``NAME STRENGTH`` (also ``NAME=STRENGTH`` or ``NAME:STRENGTH``); ``jpeg off`` = no JPEG.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from detectlab.degrade.ops import DEGRADATIONS, DegradationError, check_images, get_degradation

#: What separates the steps of a chain written as text.
STEP_SEPARATOR = re.compile(r"\s*(?:→|->|>|;|,)\s*")
_STEP = re.compile(r"^\s*([A-Za-z][\w-]*)\s*(?:[=:]\s*|\s+)(\S+)\s*$")
_OFF = {"off", "none"}


def parse_number(text: str, what: str) -> float | int:
    """``"70"`` -> 70, ``"0.5"`` -> 0.5; DegradationError naming ``text`` and ``what`` otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DegradationError(f"{what}: {text!r} is not a number") from None
    return int(value) if value.is_integer() and "." not in str(text) and "e" not in str(text).lower() else value


@dataclass(frozen=True)
class Step:
    """One degradation at one strength (validated by ``Chain``)."""

    name: str
    strength: Any

    def __str__(self) -> str:
        s = self.strength
        return f"{self.name} {'off' if s is None else format(s, 'g')}"


def parse_step(text: str) -> Step:
    """``"jpeg 70"`` -> ``Step("jpeg", 70)``; the name and the strength are checked by ``Chain``."""
    m = _STEP.match(text)
    if not m:
        raise DegradationError(f"{text.strip()!r} is not a step: write NAME STRENGTH, e.g. 'jpeg 70' "
                               f"(names: {', '.join(DEGRADATIONS)})")
    name, value = m.group(1).lower(), m.group(2)
    get_degradation(name)
    strength = None if value.lower() in _OFF else parse_number(value, f"step {text.strip()!r}")
    return Step(name, strength)


class Chain:
    """Degradations applied in order, each validated up front ([Petrželková 2024] §4.3, combined).

    Args:
        steps: ``Step``s or ``(name, strength)`` pairs, applied first to last.

    Raises:
        DegradationError: an unknown name or a strength outside that degradation's range; the
            message names the value.

    Example:
        >>> chain = Chain([("downsize", 0.5), ("jpeg", 70)])
        >>> out = chain(images, seed=0)                       # [B, 3, H, W] in [0, 1]
        >>> Chain.parse("downsize 0.5 -> jpeg 70") == chain   # True
    """

    def __init__(self, steps: Iterable[Step | tuple[str, Any]] = ()) -> None:
        checked = []
        for step in steps:
            step = step if isinstance(step, Step) else Step(*step)
            op = get_degradation(step.name)
            checked.append(Step(step.name, op.check_strength(step.strength)))
        self.steps: tuple[Step, ...] = tuple(checked)

    @classmethod
    def parse(cls, text: str) -> Chain:
        """A chain from its text form (see the module docstring); empty text = no degradation."""
        parts = [p for p in STEP_SEPARATOR.split(text.strip()) if p] if text and text.strip() else []
        return cls(parse_step(p) for p in parts)

    def __call__(self, images: torch.Tensor, *, seed: int = 0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply every step to ``[B, 3, H, W]`` in [0, 1]; randomness from ``generator``, else from ``seed``."""
        check_images(images)
        gen = generator if generator is not None else torch.Generator().manual_seed(int(seed))
        out = images
        for step in self.steps:
            out = DEGRADATIONS[step.name](out, step.strength, generator=gen)
        return out if out is not images else images.clone()

    def out_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` of the result for ``(H, W)`` input."""
        for step in self.steps:
            size = DEGRADATIONS[step.name].out_size(size, step.strength)
        return size

    def replace(self, index: int, strength: Any) -> Chain:
        """The same chain with step ``index`` at another strength (validated)."""
        steps = list(self.steps)
        steps[index] = Step(steps[index].name, strength)
        return Chain(steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chain) and self.steps == other.steps

    def __hash__(self) -> int:
        return hash(self.steps)

    def __str__(self) -> str:
        return " → ".join(map(str, self.steps)) or "none"

    def __repr__(self) -> str:
        return f"Chain({str(self)!r})"


def chain_of(steps: Sequence[Step | tuple[str, Any]] | str | Chain) -> Chain:
    """A ``Chain`` from a chain, its text form, or a list of steps."""
    if isinstance(steps, Chain):
        return steps
    if isinstance(steps, str):
        return Chain.parse(steps)
    return Chain(steps)
