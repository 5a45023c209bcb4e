"""The embedded demo: enough images, plausible generator outputs, distinct traces, exact masks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from detectlab import config
from detectlab.data import discover, load_image, load_mask
from detectlab.demo.build import GENERATORS, real_crops
from detectlab.generators.train import psnr


def test_counts_and_layout(demo_root):
    ds = discover(demo_root)
    counts = ds.counts()
    assert ds.layout == "real+generators"
    assert counts["real"] >= 300
    assert all(counts[g] >= 300 for g in GENERATORS)
    assert not ds.skipped
    masked = discover(config.DEMO_INPAINT_DIR)
    assert len(masked.pairs) >= 300 and not masked.skipped


def test_groups_keep_crops_of_one_photo_together(demo_root):
    from detectlab.data import split

    parts = split(discover(demo_root).samples, seed=0)
    photo_split = {}
    for name, samples in parts.items():
        for s in samples:
            assert photo_split.setdefault(s.group, name) == name
    assert all(s.group.startswith("p") and "_c" not in s.group for s in parts["train"][:20])


@pytest.mark.parametrize("generator", GENERATORS)
def test_outputs_are_photographs_not_noise(demo_root, generator):
    stems, real = real_crops()
    idx = range(0, len(stems), max(1, len(stems) // 40))
    r = torch.stack([real[i] for i in idx]).float() / 255
    s = torch.stack([torch.from_numpy(np.asarray(load_image(demo_root / generator / f"{stems[i]}.png"))).permute(2, 0, 1)
                     for i in idx]).float() / 255
    assert s.shape == r.shape and s.shape[-1] >= 128
    assert psnr(s, r) > 18.0  # close to its source photo; noise would be ~8-11 dB
    assert 0.01 < float((s - r).abs().mean()) < 0.15  # ... but not a copy


def test_fingerprints_differ_between_generators():
    fps = {g: np.load(config.ASSETS / "fingerprints" / f"{g}.npy") for g in GENERATORS}
    for i, a in enumerate(GENERATORS):
        for b in GENERATORS[i + 1 :]:
            fa, fb = fps[a].ravel(), fps[b].ravel()
            diff = np.abs(fa - fb).mean() / ((np.abs(fa).mean() + np.abs(fb).mean()) / 2)
            assert diff > 0.2, (a, b, diff)


def test_masks_match_manipulated_pixels():
    root = config.DEMO_INPAINT_DIR
    manifest = json.loads((root / "manifest.json").read_text())["images"]
    areas = []
    for stem, rec in list(manifest.items())[::25]:
        mask = np.asarray(load_mask(root / "masks" / f"{stem}.png"))
        real = np.asarray(load_image(config.DEMO_DIR / "real" / f"{stem}.png"), dtype=int)
        image = np.asarray(load_image(root / "images" / f"{stem}.png"), dtype=int)
        assert (image[~mask] == real[~mask]).all()  # outside the mask: untouched
        assert mask.mean() == pytest.approx(rec["area"], abs=1e-4)
        areas.append(mask.mean())
    assert 0 < min(areas) and max(areas) <= 0.36


def test_cli_data_info_prints_counts(demo_root):
    out = subprocess.run([sys.executable, "-m", "detectlab", "data", "info", str(demo_root)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counts = discover(demo_root).counts()
    for g in ("real", *GENERATORS):
        assert g in out.stdout and str(counts[g]) in out.stdout


def test_cli_reports_a_bad_folder(tmp_path):
    out = subprocess.run([sys.executable, "-m", "detectlab", "data", "info", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "folder does not exist" in out.stderr
