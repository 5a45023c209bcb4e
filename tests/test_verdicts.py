"""Trustworthy verdicts on photos the shipped CNN never saw (issue 15's targets), re-measured.

The held-out photos come from whole registry packages the demo never reads; the numbers are
recomputed from the shipped checkpoint here and must equal what the manifest (and so the README
and the Detect tab's detector table) reports.
"""

from __future__ import annotations

import pytest

from detectlab import catalog
from detectlab.heldout import HeldoutSet, evaluate_heldout


@pytest.fixture(scope="module")
def measured(demo_root):
    loaded = catalog.load_detector("cnn-resnet18")
    return evaluate_heldout(loaded.detector, HeldoutSet.load(demo_dir=demo_root), threshold=loaded.threshold)


def test_shipped_cnn_rarely_calls_unseen_real_photos_fake(measured):
    assert measured.counts["heldout_photos"] >= 40 and measured.counts["heldout_crops"] >= 100
    assert measured.full_tiled <= 0.10
    assert measured.crops <= 0.10


def test_blur_or_a_rescale_alone_does_not_make_a_real_photo_fake(measured):
    assert measured.counts["demo_test_reals"] >= 100
    assert measured.demo_blur_sigma1 <= 0.15
    assert measured.demo_downup_2x <= 0.15


def test_manifest_reports_what_the_checkpoint_does(measured):
    reported = catalog.read_manifest()["heldout"]["cnn-resnet18"]
    for key in ("demo_test_reals", "full_tiled", "full_resized", "crops", "demo_blur_sigma1", "demo_downup_2x"):
        assert getattr(measured, key) == pytest.approx(reported[key], abs=1e-4), key
