"""detectlab.experiments.distance: FID and KID (torchmetrics, on given features) against their formulas, and
``set-distance`` on tiny sets made here.

The sets: 16x16 noise PNGs. "real" and "same" are drawn from one distribution; "shift" is real's images made
brighter (+0.2 of the range, planted). The backbone is replaced by 4x4 average pooling of the pixels (48
features), so the distances are those of the pixels' local means: same-distribution sets sit at the
split-half floor, the brightened set far above it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments import distance as dist
from detectlab.experiments.registry import ExperimentError

N = 40


def _noise(rng, shift=0.0):
    x = rng.uniform(0.1, 0.7, size=(16, 16, 3)) + shift
    return Image.fromarray(np.round(255 * np.clip(x, 0, 1)).astype(np.uint8))


def make_set(root, n=N, seed=0):
    rng = np.random.default_rng(seed)
    for cls in ("real", "same", "shift"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        state = rng.bit_generator.state
        _noise(rng).save(root / "real" / f"s{i:03d}.png")
        rng.bit_generator.state = state          # the same noise, brightened
        _noise(rng, 0.2).save(root / "shift" / f"s{i:03d}.png")
        _noise(rng).save(root / "same" / f"s{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("dist") / "set")


@pytest.fixture
def pooled(monkeypatch):
    """Replaces the backbone with 4x4 average pooling of the pixels (48 features); records each extraction."""
    calls = []

    def pool(data, backbone=core.DEFAULT_BACKBONE, size=core.DEFAULT_SIZE, progress=None, cancel=None, batch=64):
        calls.append(len(data.items))
        x = torch.stack([torch.from_numpy(np.asarray(Image.open(i.path).convert("RGB"), dtype=np.float32) / 255)
                         .permute(2, 0, 1) for i in data.items])
        return core.Features(backbone, size, torch.nn.functional.avg_pool2d(x, 4).flatten(1), False, 0.0)

    monkeypatch.setattr(core, "extract_features", pool)
    return calls


# -- the formulas --------------------------------------------------------------------------------------------
def fid_by_hand(a, b):
    """[Heusel 2017] eq. 6 with scipy's matrix square root."""
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb).real
    return float(((ma - mb) ** 2).sum() + np.trace(sa + sb - 2 * root))


def mmd2_by_hand(a, b):
    """Unbiased MMD² with k(x, y) = (x.y / d + 1)^3 [Bińkowski 2018], on the whole sets (m = n)."""
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    m = len(a)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def test_fid_and_kid_equal_their_formulas():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(60, 8))
    b = rng.normal(0.3, 1.2, size=(60, 8))
    assert dist.frechet_distance(a, b) == pytest.approx(fid_by_hand(a, b), rel=1e-6)
    mean, std, size = dist.kernel_distance(a, b, subsets=1, subset_size=1000)
    assert size == 60 and std == 0.0
    assert mean == pytest.approx(mmd2_by_hand(a, b), rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_planted_shift():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 16))
    other = rng.normal(size=(200, 16))             # a second sample of the same distribution
    assert abs(dist.frechet_distance(a, a)) < 1e-8
    fids = [dist.frechet_distance(a, a + s) for s in (0.1, 0.2, 0.4)]
    # a mean shift s in every one of 16 dimensions adds exactly 16 s² (the covariances are the same)
    assert fids == pytest.approx([16 * 0.01, 16 * 0.04, 16 * 0.16], abs=1e-8)
    floor = dist.frechet_distance(a, other)
    assert dist.frechet_distance(a, other + 0.4) > floor + 2.0
    kid_same = dist.kernel_distance(a, other, subsets=20, subset_size=100)[0]
    kid_shift = dist.kernel_distance(a, other + 0.4, subsets=20, subset_size=100)[0]
    assert abs(kid_same) < 0.1 * kid_shift


def test_kid_with_the_kernels_computed_once_equals_torchmetrics_loop(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(50, 6)), rng.normal(0.4, 1, size=(45, 6))
    once = dist.kernel_distance(a, b, subsets=7, subset_size=20, seed=3)
    monkeypatch.setattr(dist, "KERNEL_ONCE_MAX", 10)           # every set is "large": torchmetrics' own loop
    loop = dist.kernel_distance(a, b, subsets=7, subset_size=20, seed=3)
    assert once == pytest.approx(loop, rel=1e-12) and once[1] > 0


def test_kid_subsets_are_drawn_with_the_seed():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 4)), rng.normal(0.5, 1, size=(50, 4))
    first = dist.kernel_distance(a, b, subsets=10, subset_size=20, seed=7)
    assert dist.kernel_distance(a, b, subsets=10, subset_size=20, seed=7) == first
    assert dist.kernel_distance(a, b, subsets=10, subset_size=20, seed=8) != first


# -- the experiment ------------------------------------------------------------------------------------------
def test_two_folders_a_copy_reads_zero_and_a_brightened_copy_does_not(planted, pooled, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(planted / "real", copy)
    p = {"a": str(planted / "real"), "b": str(copy), "kid_subsets": 10}
    same = dist.run_set_distance(p)
    rows = same.tables["distances"]
    pair = rows[0]
    assert pair["kind"] == "pair" and pair["n_a"] == pair["n_b"] == N
    assert abs(pair["fid"]) < 1e-4                       # identical features: FID 0 up to rounding
    # KID of a set against itself: the unbiased cross term keeps the k(x, x) terms, so it is O(1/n), tiny
    shifted = dist.run_set_distance({**p, "b": str(planted / "shift")}).tables["distances"][0]
    assert shifted["fid"] > 0.1 and shifted["kid_mean"] > 0
    assert abs(pair["kid_mean"]) < 0.05 * shifted["kid_mean"]
    assert [r["kind"] for r in rows] == ["pair", "split-half", "split-half"]
    assert all("not comparable with published FID" in r["features"] for r in rows)
    assert same.params["a"] == str(planted / "real") and same.params["data"] == ""
    assert same.models == {"fitted": 0, "reused": 0}
    assert "not comparable" in same.summary


def test_all_pairs_of_a_labelled_set_make_a_matrix_with_the_shift_far_above_the_floor(planted, pooled):
    res = dist.run_set_distance({"data": str(planted), "kid_subsets": 10})
    assert res.params["pairs"] == "all"
    rows = res.tables["distances"]
    pairs = {(r["a"], r["b"]): r for r in rows if r["kind"] == "pair"}
    floors = {r["a"]: r for r in rows if r["kind"] == "split-half"}
    assert set(pairs) == {("real", "same"), ("real", "shift"), ("same", "shift")}
    assert set(floors) == {"real", "same", "shift"} and floors["real"]["n_a"] == N // 2
    assert set(rows[0]) >= {"a", "b", "n_a", "n_b", "fid", "kid_mean", "kid_std", "features"}
    top_floor = max(r["fid"] for r in floors.values())
    assert pairs[("real", "same")]["fid"] < 1.5 * top_floor            # one distribution: at the floor
    assert pairs[("real", "shift")]["fid"] > 10 * top_floor            # brightened: far above it
    assert pairs[("real", "shift")]["kid_mean"] > 10 * abs(pairs[("real", "same")]["kid_mean"])
    assert "By KID, within the floors (the features hardly tell them apart): real vs same." in res.summary
    heat = res.figures["distance"].data
    assert len(heat) == 2 and len(heat[0].z) == 3 and heat[0].z[0][0] == floors["real"]["fid"]
    # the same params again give the same table (what a card's rerun compares)
    assert dist.run_set_distance(res.params).tables == res.tables


def test_two_classes_of_a_labelled_set(planted, pooled):
    res = dist.run_set_distance({"data": str(planted), "a": "real", "b": "shift", "floor": False,
                                 "kid_subsets": 5, "max_images": 30})
    (row,) = res.tables["distances"]
    assert (row["a"], row["b"], row["n_a"], row["n_b"]) == ("real", "shift", 30, 30)


@pytest.mark.parametrize("case, message", [
    ("empty", "0 images; FID and KID need at least 2 per set"),
    ("one", "1 image; FID and KID need at least 2 per set"),
    ("missing", "no such folder"),
])
def test_a_folder_that_cannot_be_measured_is_refused_in_one_line(planted, tmp_path, case, message):
    folder = tmp_path / case
    if case != "missing":
        folder.mkdir()
    if case == "one":
        shutil.copy(planted / "real" / "s000.png", folder / "x.png")
    with pytest.raises(DatasetError) as err:
        dist.check_set_distance({"a": str(planted / "real"), "b": str(folder)})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"a": "real", "b": "gan"}, "no class 'gan'; its classes are real, same, shift"),
    ({"a": "real", "b": "shift", "split": "test"}, "in the test split: "),
])
def test_a_labelled_set_without_the_named_class_is_refused(params, message, tmp_path):
    small = make_set(tmp_path / "small", n=3)
    with pytest.raises(DatasetError) as err:
        dist.check_set_distance({"data": str(small), **params})
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"data": "", "a": "x", "b": "y"}, "give two image folders a and b"),
    ({"a": "/x/A", "b": "real"}, "a and b must both be folder paths"),
    ({"a": "real"}, "name two classes a and b"),
    ({"kid_subsets": 0}, "kid_subsets must be a whole number"),
    ({"backbone": "resnet18"}, "backbone must be a frozen backbone"),
    ({"colour": 1}, "unknown setting colour"),
])
def test_bad_settings_are_refused_in_one_line(params, message):
    with pytest.raises(ExperimentError) as err:
        dist.check_set_distance(params)
    assert message in str(err.value) and "\n" not in str(err.value)
