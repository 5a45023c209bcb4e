"""Binary real/fake metrics, overall and per generator, as the papers report them.

* accuracy, per-class accuracy and their mean, the balanced accuracy ([Wimmer 2024]);
* average precision and ROC AUC (scikit-learn), threshold-free;
* accuracy at the given threshold and at the best threshold (UnivFD reports both);
* per generator: that generator's fakes against **all** real images (UnivFD's
  per-generator AP / accuracy), plus the accuracy on the real images themselves;
* mean ± std over repeated runs ([Wimmer 2024] reports 5 runs).

Conventions: ``labels`` are 0 = real, 1 = fake; ``scores`` are P(fake) in [0, 1]; an image
is decided fake when ``score > threshold`` (so 0.5 matches ``logit > 0``). Metrics that a
sample set cannot define (AP with one class, the accuracy of an absent class) are ``None``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

#: The group name of real images in ``groups`` and in ``BinaryMetrics.per_group``.
REAL = "real"


@dataclass
class BinaryMetrics:
    """Metrics of one scored, labelled sample set (see the module docstring for conventions)."""

    n: int
    n_real: int
    n_fake: int
    accuracy: float
    real_accuracy: float | None       # TN / (TN + FP); None without real images
    fake_accuracy: float | None       # TP / (TP + FN); None without fake images
    balanced_accuracy: float | None   # mean of the two per-class accuracies; None with one class
    ap: float | None                  # average precision, fake = positive; None with one class
    roc_auc: float | None             # None with one class
    confusion: list[list[int]]        # [[TN, FP], [FN, TP]]
    threshold: float
    best_threshold: float             # the threshold in [0, 1] that maximizes accuracy
    accuracy_at_best: float
    per_group: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (Python ints/floats, ``None`` for undefined)."""
        return asdict(self)


def _as_labels(labels: Any) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be a 1-D sequence of 0 (real) / 1 (fake), got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = sorted({str(v) for v in arr[~np.isin(arr, (0, 1))][:5]})
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {', '.join(bad)}")
    return arr.astype(np.int64)


def _as_scores(scores: Any, n: int) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"scores must be a 1-D sequence as long as labels ({n}), got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError("scores must be probabilities P(fake) in [0, 1] (apply a sigmoid to logits)")
    return arr


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _confusion(y: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    tn = int(((y == 0) & (pred == 0)).sum())
    fp = int(((y == 0) & (pred == 1)).sum())
    fn = int(((y == 1) & (pred == 0)).sum())
    tp = int(((y == 1) & (pred == 1)).sum())
    return [[tn, fp], [fn, tp]]


def best_threshold(labels: Any, scores: Any, *, prefer: float = 0.5) -> tuple[float, float]:
    """The threshold that maximizes accuracy, and that accuracy (UnivFD's "best threshold" accuracy).

    Candidates are 0, 1 and the midpoints between consecutive distinct scores, with the
    rule ``fake iff score > threshold``; every achievable split of the sorted scores is
    covered except "all fake" when some score is exactly 0. Among equally accurate
    thresholds the one closest to ``prefer`` wins (then the smaller), so a perfectly
    separable set keeps the default threshold when it already separates.

    Returns:
        ``(threshold, accuracy)``.
    """
    y = _as_labels(labels)
    s = _as_scores(scores, len(y))
    if len(y) == 0:
        raise ValueError("best_threshold needs at least one scored image")
    uniq = np.unique(s)
    cands = np.unique(np.concatenate([[0.0, 1.0], (uniq[:-1] + uniq[1:]) / 2]))
    real_sorted = np.sort(s[y == 0])
    fake_sorted = np.sort(s[y == 1])
    # reals at or below t are correct; fakes above t are correct
    correct_real = np.searchsorted(real_sorted, cands, side="right")
    correct_fake = len(fake_sorted) - np.searchsorted(fake_sorted, cands, side="right")
    acc = (correct_real + correct_fake) / len(y)
    best = np.flatnonzero(acc == acc.max())
    pick = best[np.argmin(np.abs(cands[best] - prefer))]  # argmin takes the first = smaller on ties
    return float(cands[pick]), float(acc[pick])


def _core(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, Any]:
    """Counts, accuracies, AP and AUC of one label/score set (shared by overall and per group)."""
    pred = (s > threshold).astype(np.int64)
    (tn, fp), (fn, tp) = _confusion(y, pred)
    n_real, n_fake = tn + fp, fn + tp
    real_acc, fake_acc = _ratio(tn, n_real), _ratio(tp, n_fake)
    both = n_real > 0 and n_fake > 0
    return {
        "n": int(len(y)),
        "n_real": n_real,
        "n_fake": n_fake,
        "accuracy": float((tn + tp) / len(y)) if len(y) else None,
        "real_accuracy": real_acc,
        "fake_accuracy": fake_acc,
        "balanced_accuracy": (real_acc + fake_acc) / 2 if both else None,
        "ap": float(average_precision_score(y, s)) if both else None,
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "confusion": [[tn, fp], [fn, tp]],
    }


def binary_metrics(labels: Any, scores: Any, *, threshold: float = 0.5,
                   groups: Sequence[str] | None = None) -> BinaryMetrics:
    """Real/fake metrics of scored images, overall and per generator.

    Args:
        labels: ``[N]`` 0 = real, 1 = fake.
        scores: ``[N]`` P(fake) in [0, 1]; an image is decided fake when ``score > threshold``.
        threshold: decision threshold in [0, 1].
        groups: ``[N]`` each image's generator name (``"real"`` for real images). When given,
            ``per_group`` holds, for every generator, the metrics of its fakes against all
            real images (as UnivFD reports per-generator AP and accuracy), and under
            ``"real"`` the count and accuracy of the real images alone. Real images are
            pooled by their label, whatever their group name.

    Returns:
        a ``BinaryMetrics``; undefined metrics (one class present) are ``None``.

    Raises:
        ValueError: empty input, lengths that differ, labels not 0/1, scores outside
            [0, 1], a threshold outside [0, 1], or a fake image grouped as "real".

    Example:
        >>> m = binary_metrics([0, 1, 1], [0.2, 0.9, 0.4])
        >>> round(m.accuracy, 3), m.confusion
        (0.667, [[1, 0], [1, 1]])
    """
    y = _as_labels(labels)
    if len(y) == 0:
        raise ValueError("no scored images: metrics need at least one image")
    s = _as_scores(scores, len(y))
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    threshold = float(threshold)
    core = _core(y, s, threshold)
    best_t, best_acc = best_threshold(y, s, prefer=threshold)

    per_group: dict[str, dict[str, Any]] = {}
    if groups is not None:
        g = np.asarray([str(x) for x in groups], dtype=object)
        if len(g) != len(y):
            raise ValueError(f"groups must name the generator of each image: {len(g)} names for {len(y)} images")
        if ((g == REAL) & (y == 1)).any():
            raise ValueError('a fake image (label 1) is in group "real"; name its generator instead')
        real = y == 0
        if real.any():
            r = _core(y[real], s[real], threshold)
            per_group[REAL] = {"n": r["n"], "accuracy": r["accuracy"]}
        for name in sorted(set(g[y == 1])):
            sel = real | ((g == name) & (y == 1))
            per_group[name] = _core(y[sel], s[sel], threshold)

    return BinaryMetrics(threshold=threshold, best_threshold=best_t, accuracy_at_best=best_acc,
                         per_group=per_group, **core)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _mean_std(values: list[Any]) -> tuple[Any, Any] | None:
    """Mean and std of one field across runs; recurse into dicts; None for fields it skips."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    if all(isinstance(v, Mapping) for v in present):
        keys: list[str] = []
        for d in present:
            keys += [k for k in d if k not in keys]
        mean: dict[str, Any] = {}
        std: dict[str, Any] = {}
        for k in keys:
            out = _mean_std([d.get(k) for d in present])
            if out is not None:
                mean[k], std[k] = out
        return mean, std
    if all(_is_number(v) for v in present):
        arr = np.asarray(present, dtype=np.float64)
        return float(arr.mean()), float(arr.std())
    return None  # lists (confusion), strings: not averaged


def mean_std(runs: Sequence[Mapping[str, Any] | BinaryMetrics]) -> dict[str, Any]:
    """Mean and standard deviation of every numeric metric over repeated runs ([Wimmer 2024]: 5 runs).

    Args:
        runs: ``BinaryMetrics`` or their ``to_dict()`` (or any dicts of numbers, nested dicts
            such as ``per_group`` included).

    Returns:
        ``{"mean": {...}, "std": {...}, "runs": k}`` with the same keys as the inputs. The
        std is the population std (``ddof=0``; 0 for one run). A metric that is ``None`` in
        some runs is averaged over the runs that define it, and is ``None`` if none does.
        Non-numeric fields (the confusion matrix, strings) are left out.

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("mean_std needs at least one run")
    dicts = [r.to_dict() if isinstance(r, BinaryMetrics) else dict(r) for r in runs]
    mean, std = _mean_std(dicts)  # type: ignore[misc]  # dicts always give a pair
    return {"mean": mean, "std": std, "runs": len(dicts)}


__all__ = ["REAL", "BinaryMetrics", "best_threshold", "binary_metrics", "mean_std"]
