"""Ellipse masks for the manipulated demo set ([Petrželková 2024] §4.5.1)."""

import numpy as np
import pytest

from detectlab.demo.inpaint import AREA_QUARTILES, area_quartile, blend, ellipse_mask


def test_mask_areas_fill_all_quartiles():
    fracs = [ellipse_mask(64, 64, np.random.default_rng(i)).mean() for i in range(200)]
    assert min(fracs) > 0 and max(fracs) <= 0.36
    per_q = [sum(1 for f in fracs if area_quartile(f) == f"Q{k}") for k in range(1, 5)]
    assert all(n >= 25 for n in per_q), per_q


@pytest.mark.parametrize("frac,q", [(0.01, "Q1"), (0.08, "Q1"), (0.1, "Q2"), (0.2, "Q3"), (0.3, "Q4")])
def test_area_quartile(frac, q):
    assert area_quartile(frac) == q


def test_blend_pastes_exactly_under_mask():
    real = np.zeros((8, 8, 3), np.uint8)
    fake = np.full((8, 8, 3), 255, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 3:6] = True
    out = blend(real, fake, mask)
    assert (out[mask] == 255).all() and (out[~mask] == 0).all()
    assert AREA_QUARTILES[-1][1] == 0.36
