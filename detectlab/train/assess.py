"""What a finished detector run's numbers mean, and the checks a run gets after training.

- ``wilson_interval`` / ``small_sample_warning``: a test accuracy over a handful of images is a
  wide interval, not a number to three decimals (Wilson 1927, "Probable inference, the law of
  succession, and statistical inference", the score interval; Brown, Cai & DasGupta 2001 eq. 4).
- ``calibrate_run``: temperature scaling + the out-of-distribution statistics of the run's
  checkpoint, fitted on the run's own data set and split seed: ``detectlab calibrate RUN --data
  DATA --split-seed S``, the same ``detect.trust.fit_trust`` / ``save_trust``.
- ``heldout_run``: false-positive rates of the run's checkpoint on the held-out real photos and
  on its own test-split reals: ``detectlab heldout eval RUN``, the same ``heldout.evaluate_heldout``.

Both store their outcome in the run's result (``RunStore.update_result``) so the Train tab shows
it again later.
"""

from __future__ import annotations

import math
from pathlib import Path

from detectlab.errors import DetectLabError
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

#: Fewer test images than this get a small-sample warning beside their accuracy.
SMALL_TEST_IMAGES = 30


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (95 % for z = 1.96); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(test: dict) -> tuple[float, float] | None:
    """The 95 % Wilson interval of a run's test accuracy (from its confusion counts), or None without them."""
    confusion = test.get("confusion")
    if not confusion:
        return None
    (tn, fp), (fn, tp) = confusion
    return wilson_interval(tn + tp, tn + fp + fn + tp)


def small_sample_warning(test: dict) -> str:
    """A warning for a test split under ``SMALL_TEST_IMAGES`` images, with the accuracy's 95 % interval; ""
    for a larger split (or no test numbers)."""
    n = test.get("n")
    if not test or n is None or n >= SMALL_TEST_IMAGES:
        return ""
    ci = accuracy_interval(test)
    where = f"95 % Wilson interval {ci[0]:.2f}–{ci[1]:.2f}" if ci else "no interval: no confusion counts"
    return (f"⚠ small test split: {n} image{'s' if n != 1 else ''} (fewer than {SMALL_TEST_IMAGES}) — test accuracy "
            f"{test.get('accuracy', float('nan')):.3f} ({where}) says little; add images to the data set")


# -- checks of a finished run --------------------------------------------------------------------
def _detector_run(record):
    """A run that has a detector checkpoint to check, or DetectLabError saying why not."""
    if record.kind != "detector":
        raise DetectLabError(f"run {record.id} is a localizer: calibration and held-out evaluation are for detectors")
    if record.status not in ("finished", "cancelled", "failed") or record.usable_checkpoint is None:
        raise DetectLabError(f"run {record.id} is {record.status} and has no checkpoint yet: wait until it finishes")
    return record.usable_checkpoint


def calibrate_run(record, loaded, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Fit and store the calibration + OOD statistics of run ``record``'s checkpoint (``loaded``: the detector as
    ``catalog.load_detector(record.id)`` loads it, as the pickers and `detectlab calibrate RUN` name it) on its
    own data set (validation split for the temperature, train split for the feature density); returns the numbers."""
    from detectlab.detect.trust import fit_trust, save_trust, trained_generators

    _detector_run(record)
    path = loaded.path
    data, seed = record.config.get("data"), int(record.config.get("split_seed") or 0)
    trust = fit_trust(loaded.detector, data, split_seed=seed, progress=progress, cancel=cancel,
                      generators=trained_generators(loaded.meta))
    saved = save_trust(trust, path)
    c, d = trust.calibration, trust.density
    out = {"temperature": c.temperature, "val_ece_before": c.ece_before, "val_ece_after": c.ece_after,
           "val_nll_before": c.nll_before, "val_nll_after": c.nll_after, "ood_threshold": d.threshold,
           "file": saved.name, "data": str(data), "split_seed": seed}
    return out


def heldout_run(record, loaded, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                max_tiles: int = 64) -> dict:
    """False-positive rates of run ``record``'s checkpoint on the held-out real photos (``assets/heldout``)
    and on the reals of its own test split (with blur and down-up resize); returns ``HeldoutResult.row()``."""
    from detectlab import heldout
    from detectlab.detect.trust import load_trust, trained_generators

    _detector_run(record)
    path = loaded.path
    data = record.config.get("data") or None
    held = heldout.HeldoutSet.load(heldout.HELDOUT_DIR, data, split_seed=int(record.config.get("split_seed") or 0))
    res = heldout.evaluate_heldout(loaded.detector, held, loaded.threshold, load_trust(path), max_tiles=max_tiles,
                                   progress=progress, cancel=cancel, trained_on=trained_generators(loaded.meta))
    return res.row() | {"set": str(heldout.HELDOUT_DIR), "data": str(data or "")}


def describe_calibration(c: dict) -> str:
    """One paragraph of a run's calibration numbers (``calibrate_run``'s result)."""
    return (f"temperature {c['temperature']:.3f}; validation ECE {c['val_ece_before']:.4f} → {c['val_ece_after']:.4f}, "
            f"NLL {c['val_nll_before']:.4f} → {c['val_nll_after']:.4f}; out-of-distribution threshold "
            f"{c['ood_threshold']:.2f} (99th percentile of the validation images' feature distances), stored in "
            f"`{c['file']}`. Detect now shows this run's calibrated P(fake) and the \"unlike the training data\" flag.")


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def describe_heldout(h: dict) -> str:
    """One paragraph of a run's held-out false-positive rates (``heldout_run``'s result)."""
    counts = h.get("counts") or {}
    text = (f"share of real images called fake at threshold {h.get('threshold', 0.5):g}: "
            f"{counts.get('heldout_photos', '?')} held-out photos full size, tiled {_pct(h.get('full_tiled'))}, "
            f"resized {_pct(h.get('full_resized'))}; {counts.get('heldout_crops', '?')} crops "
            f"{_pct(h.get('crops'))}")
    if h.get("demo_test_reals") is not None:
        text += (f"; the {counts.get('demo_test_reals', '?')} reals of this run's test split "
                 f"{_pct(h['demo_test_reals'])}, after blur σ=1 {_pct(h.get('demo_blur_sigma1'))}, after a 2× "
                 f"down-up resize {_pct(h.get('demo_downup_2x'))}")
    if h.get("ood_share") is not None:
        text += f"; held-out photos flagged unlike the training data {_pct(h['ood_share'])}"
    return text + ". Rates over these photos, not a statement about any one image."


def checkpoint_path(record) -> Path | None:
    """The run's checkpoint when it can be checked (see ``calibrate_run``), else None."""
    try:
        return _detector_run(record)
    except DetectLabError:
        return None
