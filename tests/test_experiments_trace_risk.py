"""Trace-risk compositions on a tiny set with a planted shortcut: the generator's images carry a bright
corner, the content groups differ only weakly in redness. A class trained from synthetic images must
collapse on real test images (real/synthetic, synthetic/real) while real/real and synthetic/synthetic
learn the content."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments import trace_risk as tr
from detectlab.experiments.core import Features, ProbeCache

SIDE = 32
#: photos per content group: A and B are the two largest, C is too small to be picked by default
SIZES = {"alpha": 70, "beta": 50, "gamma": 6}


def _write(path, arr):
    Image.fromarray((np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """real/ + gan/ with real_manifest.json: crops -> photos -> package (the content group)."""
    root = tmp_path_factory.mktemp("trace") / "set"
    (root / "real").mkdir(parents=True)
    (root / "gan").mkdir()
    (root / "vae").mkdir()
    rng = np.random.default_rng(0)
    photos, crops = [], []
    k = 0
    for group, count in SIZES.items():
        red = {"alpha": 0.42, "beta": 0.58}.get(group, 0.5)   # weak content difference
        for _ in range(count):
            pid = f"p{k:03d}"
            img = np.full((SIDE, SIDE, 3), 0.5) + rng.normal(0, 0.04, (SIDE, SIDE, 3))
            img[..., 0] = rng.normal(red, 0.08) + rng.normal(0, 0.04, (SIDE, SIDE))
            _write(root / "real" / f"{pid}_c0.png", img)
            fake = img.copy()
            fake[:6, :6] = 1.0                                     # the generator's trace: a bright corner
            _write(root / "gan" / f"{pid}_c0.png", fake)
            _write(root / "vae" / f"{pid}_c0.png", img * 0.9)   # another generator: no corner, a little darker
            photos.append({"id": pid, "package": group})
            crops.append({"file": f"{pid}_c0.png", "photo": pid})
            k += 1
    (root / "real_manifest.json").write_text(json.dumps({"photos": photos, "crops": crops}))
    return root


def _hand_features(data, backbone=core.DEFAULT_BACKBONE, size=core.DEFAULT_SIZE, progress=None, cancel=None,
                   batch=64):
    """Mean colour and the top-left corner's brightness of each image: a cheap stand-in backbone."""
    rows = []
    for item in data.items:
        x = np.asarray(Image.open(item.path).convert("RGB"), dtype=np.float64) / 255
        rows.append([*x.mean((0, 1)), x[:6, :6].mean()])
    return Features(backbone, size, torch.tensor(rows, dtype=torch.float32), False, 0.0)


@pytest.fixture
def hand(monkeypatch):
    monkeypatch.setattr(core, "extract_features", _hand_features)


def _params(root, **kw):
    return {**tr.defaults_trace_risk(), "data": str(root), "size": SIDE, "runs": 3, "train_per_class": 25, **kw}


def test_planted_shortcut_collapses_on_real_test_images(planted, hand, tmp_path):
    cache = ProbeCache(folder=tmp_path / "probes")
    res = tr.run_trace_risk(_params(planted), cache=cache)
    rows = {r["composition"]: r for r in res.tables["compositions"]}
    assert list(rows) == tr.COMPOSITIONS
    assert res.params["groups"] == ["alpha", "beta"] and res.params["generator"] == "gan"
    # the content is learnt from real/real and from synthetic/synthetic (both classes carry the corner) ...
    assert rows["real/real"]["balanced_accuracy"] > 0.75
    assert rows["synthetic/synthetic"]["balanced_accuracy"] > 0.75
    # ... but the class that was synthetic in training is never recognised on real test images
    assert rows["real/synthetic"]["class_b_accuracy"] < 0.2 < 0.9 < rows["real/synthetic"]["class_a_accuracy"]
    assert rows["synthetic/real"]["class_a_accuracy"] < 0.2 < 0.9 < rows["synthetic/real"]["class_b_accuracy"]
    for name in ("real/synthetic", "synthetic/real"):
        assert rows[name]["balanced_accuracy"] < rows["real/real"]["balanced_accuracy"] - 0.2
    for r in rows.values():
        assert r["balanced_accuracy"] == pytest.approx((r["class_a_accuracy"] + r["class_b_accuracy"]) / 2, abs=1e-3)
        assert 0 <= r["std"] <= 0.5
    # every run's numbers are kept, and the means are theirs
    runs = res.tables["runs"]
    assert len(runs) == 3 * len(tr.COMPOSITIONS) and {r["seed"] for r in runs} == {0, 1, 2}
    mine = [r["balanced_accuracy"] for r in runs if r["composition"] == "real/real"]
    assert rows["real/real"]["balanced_accuracy"] == pytest.approx(np.mean(mine), abs=1e-4)
    assert rows["real/real"]["std"] == pytest.approx(np.std(mine), abs=1e-4)
    groups = {g["class"]: g for g in res.tables["groups"]}
    assert groups["A"]["group"] == "alpha" and groups["B"]["train_per_run"] == 25
    assert groups["A"]["test_real"] + groups["B"]["test_real"] > 0
    assert "learnt the generator's trace, not the content" in res.summary.split(". ")[0] + "."
    assert res.models == {"fitted": 30, "reused": 0}
    fig = res.figures["compositions"]
    assert len(fig.data) == 3 and all(len(t.x) == len(tr.COMPOSITIONS) for t in fig.data)

    # the same params again: every probe comes from the cache and the tables are identical
    again = tr.run_trace_risk(res.params, cache=cache)
    assert again.models == {"fitted": 0, "reused": 30}
    assert again.tables == res.tables

    # another generator's images are other training data: only real/real's probes are reused
    four = tr.COMPOSITIONS[:4]
    other = tr.run_trace_risk({**res.params, "generator": "vae", "compositions": four}, cache=cache)
    assert other.models == {"fitted": 9, "reused": 3}
    json.dumps(res.tables)


def test_runs_draw_different_training_photos(planted, hand, tmp_path):
    res = tr.run_trace_risk(_params(planted, compositions=["real/real"], runs=4, train_per_class=10),
                            cache=ProbeCache(folder=tmp_path / "p"))
    bal = [r["balanced_accuracy"] for r in res.tables["runs"]]
    assert len(bal) == 4 and len(set(bal)) > 1   # another subsample per seed moves the number
    assert res.params["compositions"] == ["real/real"] and res.models["fitted"] == 4


def test_named_groups_and_summary_without_collapse(planted, hand, tmp_path):
    res = tr.run_trace_risk(_params(planted, groups=["beta", "alpha"], compositions=["real/real"], runs=1),
                            cache=ProbeCache(folder=tmp_path / "p"))
    assert res.tables["groups"][0]["group"] == "beta"
    rows = [{"composition": "real/synthetic", "class_a_accuracy": 0.8, "class_b_accuracy": 0.7,
             "balanced_accuracy": 0.75, "std": 0.0}]
    assert "did not replace the content" in tr.headline(rows, ["x", "y"])
    rows[0].update(class_b_accuracy=0.1, balanced_accuracy=0.45)
    assert tr.headline(rows, ["x", "y"]).startswith("Trained on real/synthetic, the classifier calls 90% of the real y")
    # a partial drop against real/real's same class is named as such
    rr = {"composition": "real/real", "class_a_accuracy": 0.9, "class_b_accuracy": 0.95, "balanced_accuracy": 0.925,
          "std": 0.0}
    rows[0].update(class_b_accuracy=0.6, balanced_accuracy=0.7)
    assert "only 60% of the real y test images (95% when trained on real/real" in tr.headline([rr, *rows], ["x", "y"])


@pytest.mark.parametrize("change, words", [
    ({"generator": "diffusion"}, "no generator 'diffusion'"),
    ({"groups": ["alpha", "delta"]}, "no content group 'delta'"),
    ({"groups": ["alpha", "gamma"], "train_per_class": 2}, None),   # gamma has a handful: still usable
    ({"compositions": ["real/fake"]}, "unknown source 'fake'"),
    ({"compositions": ["real"]}, "<class A source>/<class B source>"),
    ({"runs": 0}, "runs must be at least 1"),
    ({"groups": ["alpha"]}, "two different content groups"),
])
def test_check_refuses_in_one_line(planted, change, words):
    if words is None:
        tr.check_trace_risk(_params(planted, **change))
        return
    with pytest.raises((DatasetError, ValueError)) as e:
        tr.check_trace_risk(_params(planted, **change))
    assert words in str(e.value) and "\n" not in str(e.value)


def test_check_needs_content_groups(tmp_path, planted):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(planted, bare)
    (bare / "real_manifest.json").unlink()
    with pytest.raises(DatasetError, match="no real_manifest.json naming the real images' content groups"):
        tr.check_trace_risk(_params(bare))
    one = json.loads((planted / "real_manifest.json").read_text())
    for p in one["photos"]:
        p["package"] = "alpha"
    (bare / "real_manifest.json").write_text(json.dumps(one))
    with pytest.raises(DatasetError, match=r"1 content group\(s\).*needs two"):
        tr.check_trace_risk(_params(bare))
    with pytest.raises(DatasetError, match="no such folder"):
        tr.check_trace_risk(_params(tmp_path / "missing"))
