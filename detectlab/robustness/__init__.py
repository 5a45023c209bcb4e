"""Robustness to degradations ([Petrželková 2024] §4.3): live one-image scoring and accuracy-vs-strength sweeps.

* ``live``: a chain of degradations from slider values, applied to one image brought once to the
  detectors' working size; P(fake) of several detectors, PSNR, optional Grad-CAM.
* ``sweep``: accuracy, balanced accuracy and AP against strength on a labelled split, one curve
  per detector or per group of repeated runs (mean ± std, [Petrželková 2024] Figs 4.4-4.10).
* ``plots``: the plotly figures, PNG/HTML export (``export_sweep``: the sweep's CSV, PNG and HTML together).
"""

from detectlab.robustness.live import (
    DEFAULT_ORDER,
    SLIDERS,
    LiveResult,
    LiveScore,
    WorkingImage,
    degrade_and_score,
    example_images,
    full_order,
    live_chain,
    parse_order,
    unlisted_steps,
    working_image,
    working_size,
)
from detectlab.robustness.sweep import (
    DEFAULT_LEVELS,
    METRICS,
    SLOT,
    SPLITS,
    DetectorGroup,
    ScoredDetector,
    SweepPoint,
    SweepResult,
    SweepSpec,
    augmentation_of,
    augmented_groups,
    group_detectors,
    parse_levels,
    repeat_key,
    robustness_reading,
    run_sweep,
    sweep_samples,
)

__all__ = [
    "DEFAULT_LEVELS", "DEFAULT_ORDER", "METRICS", "SLIDERS", "SLOT", "SPLITS", "DetectorGroup", "LiveResult",
    "LiveScore", "ScoredDetector", "SweepPoint", "SweepResult", "SweepSpec", "WorkingImage", "augmentation_of",
    "augmented_groups", "degrade_and_score", "example_images", "full_order", "group_detectors", "live_chain",
    "parse_levels", "parse_order", "repeat_key", "robustness_reading", "run_sweep", "sweep_samples", "unlisted_steps",
    "working_image", "working_size",
]
