"""Set-level attack experiments of [Petrželková 2024] §4.4 on ``Detector`` objects and labelled samples.

* ``transfer`` — residuals crafted on detector A, judged by detector B, for every pair and eps:
  the confusion rate against eps (the diagonal, Fig. 4.14), the cross-architecture matrix
  (Table 4.6), the mirror-model matrix (Table 4.5), and adversarial training's effect
  (Fig. 4.14: original and hardened model, each attacking and judging);
* ``mirror`` — ``transfer`` between two models of one architecture trained on disjoint halves
  of the training split (Table 4.5);
* ``cross_sample`` — the residual of one image added to every other image (Table 4.4);
* ``blur_defence`` — Gaussian blur before the detector against an attacker who does not
  know about it (Table 4.7).

Images come in only through ``detectlab.data`` (``load_image_set``), are kept as uint8 (a
test split of 1,000 images at 128 px is 49 MB) and are attacked one batch at a time, so
memory stays bounded. Every function reports progress and checks a cancel token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from detectlab.attacks.base import AttackError, check_eps, check_positive_int, eval_mode, require_gradients
from detectlab.attacks.confusion import ConfusionResult, confusion_from_decisions, decisions
from detectlab.attacks.registry import make_attack
from detectlab.data import DetectionDataset, Sample, discover, load_tensor, resize_center_crop, split
from detectlab.degrade.ops import gaussian_blur
from detectlab.errors import DatasetError, DetectLabError
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress


# -- the images ----------------------------------------------------------------------------------
@dataclass
class ImageSet:
    """Decoded, labelled images at one size, stored as uint8 ``[N, 3, S, S]``."""

    images: torch.Tensor                 # uint8 [N, 3, S, S]
    labels: torch.Tensor                 # float [N], 0 real / 1 fake
    names: list[str]
    generators: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.numel())

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def n_fake(self) -> int:
        return int(self.labels.sum())

    def batch(self, lo: int, hi: int) -> torch.Tensor:
        """Images ``lo:hi`` as float in [0, 1]."""
        return self.images[lo:hi].float().div_(255.0)

    def subset(self, keep: torch.Tensor) -> "ImageSet":
        idx = torch.nonzero(keep.flatten()).flatten().tolist()
        return ImageSet(self.images[idx], self.labels[idx], [self.names[i] for i in idx],
                        [self.generators[i] for i in idx], list(self.skipped))

    def require_fakes(self) -> None:
        """The confusion rate counts fake decisions: refuse a set without fake images."""
        if len(self) == 0:
            raise AttackError("no images to attack")
        if not bool((self.labels == 1).any()):
            raise AttackError(f"the confusion rate needs fake images ([Petrželková 2024] counts 'fake' decisions that turn "
                              f"'real'), but these {len(self)} images are all real")


def load_image_set(samples: Sequence[Sample], size: int, limit: int | None = None, seed: int = 0,
                   progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> ImageSet:
    """Decode ``samples`` through ``detectlab.data.load_tensor`` at ``size`` (shorter side + centre crop).

    ``limit`` keeps a seeded random subset of at most that many samples (order kept), so a
    large folder stays quick and bounded. Unreadable files are listed in ``skipped``.
    """
    samples = list(samples)
    if limit is not None:
        limit = check_positive_int(limit, "limit")
        if len(samples) > limit:
            keep = sorted(np.random.default_rng(seed).choice(len(samples), limit, replace=False).tolist())
            samples = [samples[i] for i in keep]
    images, labels, names, gens, skipped = [], [], [], [], []
    for i, s in enumerate(samples):
        cancel.check()
        try:
            x = load_tensor(s.path, size)
        except DetectLabError as exc:
            skipped.append((str(s.path), str(exc)))
            continue
        images.append(x.mul(255).round_().to(torch.uint8))
        labels.append(float(s.label))
        names.append(str(s.path))
        gens.append(s.generator)
        progress(i + 1, len(samples), "decode images")
    if not images:
        raise DatasetError(f"none of the {len(samples)} images could be read"
                           + (f" (e.g. {skipped[0][1]})" if skipped else ""))
    return ImageSet(torch.stack(images), torch.tensor(labels), names, gens, skipped)


def load_split(root: str | Path, split_name: str = "test", size: int = 128, seed: int = 0, limit: int | None = None,
               progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> ImageSet:
    """One split (``train`` | ``val`` | ``test`` | ``all``) of a labelled real/fake folder, decoded at ``size``."""
    ds = discover(root, progress=progress)
    if not isinstance(ds, DetectionDataset):
        raise DatasetError(f"{root}: attacks need a real/fake data set, not the {ds.layout} layout")
    if split_name == "all":
        samples = ds.samples
    elif split_name in ("train", "val", "test"):
        samples = split(ds.samples, seed=seed)[split_name]
    else:
        raise DatasetError(f"unknown split '{split_name}' (train, val, test or all)")
    if not samples:
        raise DatasetError(f"{root}: the {split_name} split is empty ({len(ds.samples)} images in all); try --split all")
    return load_image_set(samples, size, limit, seed, progress, cancel)


def _fit(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``x`` at the detector's input size (the same resize + crop as every entry point)."""
    size = getattr(getattr(model, "preprocess", None), "input_size", x.shape[-1])
    return x if x.shape[-1] == size and x.shape[-2] == size else resize_center_crop(x, size)


def _check_eps_list(eps_list: Sequence[float]) -> list[float]:
    values = [check_eps(e) for e in eps_list]
    if not values:
        raise AttackError("give at least one eps")
    return values


# -- transfer: A crafts, B judges ------------------------------------------------------------------
@dataclass
class TransferCell:
    """One (attacker, judge, eps) cell: the judge's confusion rate on residuals crafted on the attacker."""

    attacker: str
    judge: str
    eps: float
    result: ConfusionResult

    def row(self) -> dict:
        return {"attacker": self.attacker, "judge": self.judge, **self.result.to_dict()}


@dataclass
class TransferResult:
    """Cells of ``transfer``, with the matrix view of Table 4.6."""

    method: str
    attackers: list[str]
    judges: list[str]
    eps: list[float]
    cells: list[TransferCell]
    n_images: int

    def rows(self) -> list[dict]:
        return [{"method": self.method, **c.row()} for c in self.cells]

    def matrix(self, eps: float) -> list[list[float | None]]:
        """Confusion rates [attacker][judge] at ``eps`` (None: nothing eligible or pair not run)."""
        at = {(c.attacker, c.judge): c.result.rate for c in self.cells if c.eps == eps}
        return [[at.get((a, j)) for j in self.judges] for a in self.attackers]

    def curve(self, name: str, attacker: str | None = None) -> list[tuple[float, float | None]]:
        """(eps, confusion rate) of judge ``name`` on residuals crafted on ``attacker`` (itself by default)."""
        attacker = name if attacker is None else attacker
        return [(c.eps, c.result.rate) for c in self.cells if c.judge == name and c.attacker == attacker]


def transfer(attackers: Mapping[str, nn.Module], judges: Mapping[str, nn.Module], images: ImageSet,
             eps_list: Sequence[float], method: str = "fgsm", *, pairs: str = "all",
             thresholds: Mapping[str, float] | None = None, batch_size: int = 32,
             progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
             **options) -> TransferResult:
    """Confusion rates of residuals crafted on each attacker and judged by each judge ([Petrželková 2024] Tables 4.5-4.6).

    Each attacker crafts its adversarial images once per batch and eps (against the true
    labels: fakes pushed to "real"); every judge then scores them. The confusion rate is seed
    001's: among true fakes the judge decided fake on the clean image, the share it decides
    real on the adversarial image. ``pairs="diagonal"`` runs only attacker == judge (the
    white-box curve of Fig. 4.14, judges taken from ``attackers``).

    A judge need not be differentiable (the spectrum baseline can judge); an attacker must.
    """
    eps_values = _check_eps_list(eps_list)
    batch_size = check_positive_int(batch_size, "batch_size")
    if pairs not in ("all", "diagonal"):
        raise AttackError(f"pairs must be 'all' or 'diagonal', got {pairs!r}")
    if not attackers:
        raise AttackError("pick at least one detector to craft the attack on")
    for name, model in attackers.items():
        require_gradients(model, name)
    images.require_fakes()
    judges = dict(attackers) if pairs == "diagonal" else dict(judges)
    thresholds = dict(thresholds or {})
    y = images.labels
    n, total = len(images), len(attackers) * len(eps_values) * len(images)
    before = {j: [] for j in judges}
    after = {(a, j, e): [] for a in attackers for j in judges for e in eps_values}
    done = 0
    with contextlib.ExitStack() as stack:
        for m in {id(m): m for m in [*attackers.values(), *judges.values()]}.values():
            stack.enter_context(eval_mode(m))
        for lo in range(0, n, batch_size):
            xb, yb = images.batch(lo, lo + batch_size), y[lo:lo + batch_size]
            for j, judge in judges.items():
                before[j].append(decisions(judge, _fit(xb, judge), thresholds.get(j, 0.5)))
            for a, attacker in attackers.items():
                for e in eps_values:
                    cancel.check()
                    adv = make_attack(method, attacker, e, **options)(_fit(xb, attacker), yb)
                    for j, judge in judges.items():
                        if pairs == "all" or j == a:
                            after[(a, j, e)].append(decisions(judge, _fit(adv, judge), thresholds.get(j, 0.5)))
                    done += len(yb)
                    progress(done, total, f"{method} on {a}, eps {e:g}")
    cells = []
    for a in attackers:
        for j in judges:
            if pairs == "diagonal" and j != a:
                continue
            b = torch.cat(before[j])
            for e in eps_values:
                cells.append(TransferCell(a, j, e, confusion_from_decisions(b, torch.cat(after[(a, j, e)]), y, e)))
    return TransferResult(method, list(attackers), list(judges), eps_values, cells, n)


# -- mirror models: two detectors of one architecture on disjoint halves ----------------------------
@dataclass
class MirrorResult(TransferResult):
    """Table 4.5: two mirror models, each attacking itself and the other (a ``transfer`` of the pair)."""

    a: str = ""
    b: str = ""

    CASES = ("A→A", "A→B", "B→B", "B→A")

    def rate(self, attacker: str, judge: str, eps: float) -> float | None:
        return next((c.result.rate for c in self.cells if (c.attacker, c.judge, c.eps) == (attacker, judge, eps)),
                    None)

    def table(self, eps: float) -> list[list[float | None]]:
        """Petrželková 2024's orientation: rows judge (A, B), columns the model the residual was crafted on (A, B)."""
        return [[self.rate(attacker, judge, eps) for attacker in (self.a, self.b)] for judge in (self.a, self.b)]

    def case(self, attacker: str, judge: str) -> str:
        return f"{'A' if attacker == self.a else 'B'}→{'A' if judge == self.a else 'B'}"

    def rows(self) -> list[dict]:
        return [{"table": "4.5", "case": self.case(c.attacker, c.judge), **r}
                for c, r in zip(self.cells, super().rows())]


def mirror(model_a: nn.Module, model_b: nn.Module, images: ImageSet, eps_list: Sequence[float], method: str = "fgsm",
           *, names: tuple[str, str] = ("A", "B"), thresholds: Mapping[str, float] | None = None,
           batch_size: int = 32, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
           **options) -> MirrorResult:
    """Mirror models ([Petrželková 2024] §4.4.1 "cross-training-set generalization", Table 4.5).

    ``model_a`` and ``model_b`` share an architecture and were trained on disjoint halves of
    one training split (``TrainConfig.train_part`` 1/2 and 2/2). Residuals crafted on each
    are judged by both: A→A and B→B are white-box attacks, A→B and B→A the black-box attack
    of an attacker who trained a mirror of the target. The confusion rate is [Petrželková 2024]'s (see
    ``transfer``, which does the work; [Petrželková 2024] used FGSM at eps 0.025).
    """
    a, b = names
    if a == b:
        raise AttackError(f"the two mirror models need different names, got {a!r} twice")
    models = {a: model_a, b: model_b}
    res = transfer(models, models, images, eps_list, method, thresholds=thresholds, batch_size=batch_size,
                   progress=progress, cancel=cancel, **options)
    return MirrorResult(**vars(res), a=a, b=b)


# -- cross-sample: one image's residual on every other image -------------------------------------
@dataclass
class CrossSampleResult:
    """Table 4.4: confusion rate when one image's residual is added to every other image."""

    detector: str
    method: str
    eps: list[float]
    sources: list[str]
    # eps -> per source: confusion rate on the other images (None: nothing eligible)
    rates: dict[float, list[float | None]]
    eligible: int                 # fake images decided fake on the clean image (the denominator pool)

    def mean(self, eps: float) -> float | None:
        vals = [r for r in self.rates[eps] if r is not None]
        return float(np.mean(vals)) if vals else None

    def rows(self) -> list[dict]:
        out = []
        for e in self.eps:
            for src, r in zip(self.sources, self.rates[e]):
                out.append({"detector": self.detector, "method": self.method, "eps": e, "source": src,
                            "confusion_rate": r})
            out.append({"detector": self.detector, "method": self.method, "eps": e, "source": "mean",
                        "confusion_rate": self.mean(e)})
        return out


def cross_sample(model: nn.Module, images: ImageSet, eps_list: Sequence[float], method: str = "fgsm", *,
                 name: str = "", n_sources: int = 5, threshold: float = 0.5, seed: int = 0, batch_size: int = 64,
                 progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                 **options) -> CrossSampleResult:
    """Residual of one image, added to every other image ([Petrželková 2024] §4.4.1, Table 4.4).

    ``n_sources`` source images are drawn (seeded) from the true fakes the detector decides
    fake. For each, the attack's residual ``r = x_adv - x`` is crafted on that image alone and
    added to every other eligible fake (``clip(x_j + r, 0, 1)``); the confusion rate is the
    share of them the detector then decides real. Reported per source and as the mean over
    sources ([Petrželková 2024] does not say how many sources it averaged).
    """
    eps_values = _check_eps_list(eps_list)
    n_sources = check_positive_int(n_sources, "n_sources")
    require_gradients(model, name)
    images.require_fakes()
    with eval_mode(model):
        dec = torch.cat([decisions(model, _fit(images.batch(lo, lo + batch_size), model), threshold)
                         for lo in range(0, len(images), batch_size)])
        pool = images.subset(dec & (images.labels == 1))
        if len(pool) < 2:
            raise AttackError(f"cross-sample needs at least 2 fake images the detector decides fake; "
                              f"{name or 'it'} decides {len(pool)} fake")
        rng = np.random.default_rng(seed)
        src_idx = sorted(rng.choice(len(pool), min(n_sources, len(pool)), replace=False).tolist())
        rates: dict[float, list[float | None]] = {e: [] for e in eps_values}
        total, done = len(eps_values) * len(src_idx), 0
        for e in eps_values:
            attack = make_attack(method, model, e, **options)
            for s in src_idx:
                cancel.check()
                x_src = _fit(pool.batch(s, s + 1), model)
                r = attack(x_src, torch.ones(1)) - x_src
                flipped = eligible = 0
                for lo in range(0, len(pool), batch_size):
                    xb = _fit(pool.batch(lo, lo + batch_size), model)
                    others = torch.arange(lo, lo + len(xb)) != s
                    after = decisions(model, (xb + r).clamp_(0, 1), threshold)
                    flipped += int((~after & others).sum())
                    eligible += int(others.sum())
                rates[e].append(flipped / eligible if eligible else None)
                done += 1
                progress(done, total, f"cross-sample, eps {e:g}")
    return CrossSampleResult(name, method, eps_values, [Path(pool.names[s]).name for s in src_idx], rates, len(pool))


# -- defence: Gaussian blur before the detector ----------------------------------------------------
@dataclass
class BlurDefenceResult:
    """Table 4.7: accuracy on clean / blurred clean / adversarial / blurred adversarial images, confusion rates."""

    detector: str
    method: str
    eps: float
    sigma: float
    n: int
    n_fake: int
    accuracy: dict[str, float]          # case -> accuracy on all images
    fake_accuracy: dict[str, float]     # case -> accuracy on the fakes ([Petrželková 2024] used fakes only)
    real_accuracy: dict[str, float | None]  # case -> accuracy on the reals (None without reals)
    confusion: dict[str, float | None]  # "adversarial" / "blurred adversarial" -> confusion rate vs clean decisions

    CASES = ("clean", "blurred clean", "adversarial", "blurred adversarial")

    def rows(self) -> list[dict]:
        return [{"detector": self.detector, "method": self.method, "eps": self.eps, "sigma": self.sigma,
                 "case": c, "accuracy": self.accuracy[c], "fake_accuracy": self.fake_accuracy[c],
                 "real_accuracy": self.real_accuracy[c], "confusion_rate": self.confusion.get(c)} for c in self.CASES]


def blur_defence(model: nn.Module, images: ImageSet, eps: float = 0.05, sigma: float = 5.0, method: str = "fgsm", *,
                 name: str = "", threshold: float = 0.5, batch_size: int = 32, progress: Progress = null_progress,
                 cancel: CancelToken = NEVER_CANCEL, **options) -> BlurDefenceResult:
    """Gaussian blur (sigma px) before the detector as a defence ([Petrželková 2024] §4.4.3, Table 4.7).

    The attacker does not know about the blur: the residual is crafted on the detector alone,
    then the defender blurs every input. Accuracy on clean, blurred clean, adversarial and
    blurred adversarial images, and the confusion rate of the adversarial and of the blurred
    adversarial images, both counted against the clean, unblurred decisions ([Petrželková 2024]: 96 % ->
    18 %).
    """
    eps = check_eps(eps)
    require_gradients(model, name)
    images.require_fakes()
    batch_size = check_positive_int(batch_size, "batch_size")
    attack = make_attack(method, model, eps, **options)
    dec = {c: [] for c in BlurDefenceResult.CASES}
    n = len(images)
    with eval_mode(model):
        for lo in range(0, n, batch_size):
            cancel.check()
            xb, yb = _fit(images.batch(lo, lo + batch_size), model), images.labels[lo:lo + batch_size]
            adv = attack(xb, yb)
            for case, x in zip(BlurDefenceResult.CASES, (xb, gaussian_blur(xb, sigma), adv, gaussian_blur(adv, sigma))):
                dec[case].append(decisions(model, x, threshold))
            progress(min(lo + batch_size, n), n, f"blur defence, {method} eps {eps:g}, sigma {sigma:g}")
    y = images.labels.bool()
    dec = {c: torch.cat(v) for c, v in dec.items()}
    acc = {c: float((d == y).float().mean()) for c, d in dec.items()}
    fake_acc = {c: float(d[y].float().mean()) for c, d in dec.items()}
    real_acc = {c: float((~d[~y]).float().mean()) if (~y).any() else None for c, d in dec.items()}
    conf = {c: confusion_from_decisions(dec["clean"], dec[c], images.labels, eps).rate
            for c in ("adversarial", "blurred adversarial")}
    return BlurDefenceResult(name, method, eps, float(sigma), n, int(y.sum()), acc, fake_acc, real_acc, conf)


# -- tables out --------------------------------------------------------------------------------
def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Rows of dicts (the ``rows()`` of any result here) as a CSV with a header."""
    from detectlab.eval.tables import write_rows_csv

    return write_rows_csv(rows, path)


__all__ = [
    "BlurDefenceResult", "CrossSampleResult", "ImageSet", "MirrorResult", "TransferCell", "TransferResult",
    "blur_defence", "cross_sample", "load_image_set", "load_split", "mirror", "transfer", "write_csv",
]
