"""Deterministic, group-aware train/val/test splits.

[Petrželková 2024] trains on an 80/10/10 split; every run stores its split so that a result can be
re-run and audited. Splits are made over *groups* (a real photo and the fakes derived
from it share a group), never over single files, so no source leaks from train into test.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence, TypeVar

import numpy as np

__all__ = ["SPLIT_NAMES", "probe_for_split", "split", "split_files", "split_summary"]

T = TypeVar("T")

SPLIT_NAMES = ("train", "val", "test")


def probe_for_split(split_name: str | None) -> bool:
    """Whether a step reading ``split_name`` ("all" or None: every file) must probe every file first
    (``discover(validate=...)``).

    All of a folder is only listed (an unreadable file becomes a per-file error row when scored). One split
    is chosen from the files that decode, as ``detectlab train`` chose it: a split over a listing that still
    holds unreadable files could hand training images to the test part. Probes are kept in the folder index,
    so only the first such open of a folder reads headers.
    """
    return (split_name or "all") != "all"


def _sample_group(item: Any) -> Hashable:
    return item.group


def _default_stratum(item: Any) -> Hashable:
    # Samples are balanced per generator (so every generator reaches val/test); items
    # without one, such as (image, mask) pairs, form a single stratum.
    return getattr(item, "generator", None)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), got {tuple(fractions)}")
    if any(f < 0 or not math.isfinite(f) for f in fractions):
        raise ValueError(f"fractions must be non-negative, got {tuple(fractions)}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must sum to 1, got {tuple(fractions)} (sum {sum(fractions)})")
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def split(
    samples: Sequence[T],
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    group: Callable[[T], Hashable] = _sample_group,
    stratify: Callable[[T], Hashable] | None = _default_stratum,
) -> dict[str, list[T]]:
    """Split ``samples`` into train/val/test by group, reproducibly from ``seed``.

    Groups are bucketed into strata (the sorted set of ``stratify`` values of their
    members, e.g. generators), shuffled within each stratum with
    ``numpy.random.default_rng(seed)``, and interleaved by their fractional rank in their
    stratum (systematic sampling). Walking that order, a group goes to the split whose
    cumulative-fraction interval holds the midpoint of its samples. Hence:

    * all samples of a group land in one split;
    * each split's size is within about one group of its fraction of the samples;
    * each split gets a share of every stratum that has enough groups.

    The result does not depend on the order of ``samples``; within a split, samples keep
    their input order.

    Args:
        samples: ``Sample`` objects, or anything ``group`` can key (e.g. (image, mask)
            pairs with ``group=dataset.group_of``).
        seed: the random seed; the same seed gives the same split.
        fractions: (train, val, test), non-negative, summing to 1.
        group: the group key of a sample (default ``sample.group``).
        stratify: the stratum of a sample (default its ``generator`` if it has one);
            None for no stratification.

    Raises:
        ValueError: fractions are not three non-negative numbers summing to 1.
    """
    fracs = _check_fractions(fractions)
    members: dict[Hashable, list[int]] = defaultdict(list)
    for index, item in enumerate(samples):
        members[group(item)].append(index)

    strata: dict[tuple, list[Hashable]] = defaultdict(list)
    for key, indices in members.items():
        stratum = () if stratify is None else tuple(
            sorted({str(stratify(samples[i])) for i in indices}))
        strata[stratum].append(key)

    rng = np.random.default_rng(seed)
    ranked: list[tuple[float, int, Hashable]] = []
    for s_index, stratum in enumerate(sorted(strata)):
        keys = sorted(strata[stratum], key=str)  # independent of input order
        order = rng.permutation(len(keys))
        offset = rng.random()  # random phase, so strata with few groups are not all train
        ranked += [((rank + offset) / len(keys), s_index, keys[k]) for rank, k in enumerate(order)]
    ranked.sort(key=lambda item: (item[0], item[1]))

    total = len(samples)
    bounds = np.cumsum(fracs)
    assignment: dict[Hashable, int] = {}
    done = 0
    for _, _, key in ranked:
        size = len(members[key])
        midpoint = (done + size / 2) / max(total, 1)
        index = min(int(np.searchsorted(bounds, midpoint, side="right")), 2)
        if fracs[index] == 0:  # rounding at a boundary: never fill a split asked to be empty
            index = min((i for i in range(3) if fracs[i] > 0), key=lambda i: abs(i - index))
        assignment[key] = index
        done += size

    out: dict[str, list[T]] = {name: [] for name in SPLIT_NAMES}
    for item in samples:
        out[SPLIT_NAMES[assignment[group(item)]]].append(item)
    return out


def split_summary(
    splits: dict[str, list[Any]],
    *,
    group: Callable[[Any], Hashable] = _sample_group,
) -> dict[str, dict[str, Any]]:
    """Counts per split, JSON-serialisable, for storing with a run.

    For ``Sample`` lists: samples, groups, per class ("real"/"fake") and per generator;
    for other items (e.g. (image, mask) pairs) samples and groups only.
    """
    summary: dict[str, dict[str, Any]] = {}
    for name, items in splits.items():
        entry: dict[str, Any] = {
            "samples": len(items),
            "groups": len({group(item) for item in items}),
        }
        if items and all(hasattr(item, "label") and hasattr(item, "generator") for item in items):
            fake = sum(int(item.label) for item in items)
            entry["classes"] = {"real": len(items) - fake, "fake": fake}
            entry["generators"] = dict(sorted(Counter(item.generator for item in items).items()))
        summary[name] = entry
    return summary


def split_files(
    splits: dict[str, list[Any]],
    root: str | Path | None = None,
) -> dict[str, list[str]]:
    """The files of each split as POSIX paths (relative to ``root`` if given), for a run record.

    ``Sample`` items give their image path; (image, mask) pairs give the image path.
    """
    def path_of(item: Any) -> Path:
        return Path(item.path if hasattr(item, "path") else item[0])

    def shown(path: Path) -> str:
        if root is not None:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    return {name: [shown(path_of(item)) for item in items] for name, items in splits.items()}
