"""detectlab.experiments.embeddings: the t-SNE map ([DFwF] §4.2) and the separability beside it, on a tiny
set made here.

The set: 16x16 noise PNGs, 40 source groups, each with one real image and one image per generator. "bright"
is the real image brightened by +0.2 of the range (planted: separable); "twin" is fresh noise from the real
images' distribution (unseparable). The backbone is replaced by 4x4 average pooling of the pixels (48
features).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments import embeddings as emb
from detectlab.experiments.registry import ExperimentError
from detectlab.progress import CancelToken, Cancelled

N = 40
PER_CLASS = 30
FAST = {"split": "all", "per_class": PER_CLASS, "iterations": 250, "thumbnail": 16}


def _noise(rng, shift=0.0):
    x = rng.uniform(0.1, 0.7, size=(16, 16, 3)) + shift
    return Image.fromarray(np.round(255 * np.clip(x, 0, 1)).astype(np.uint8))


def make_set(root, n=N, gens=("bright", "twin"), seed=0):
    rng = np.random.default_rng(seed)
    for cls in ("real", *gens):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        state = rng.bit_generator.state
        _noise(rng).save(root / "real" / f"s{i:03d}.png")
        if "bright" in gens:
            rng.bit_generator.state = state
            _noise(rng, 0.2).save(root / "bright" / f"s{i:03d}.png")
        if "twin" in gens:
            _noise(rng).save(root / "twin" / f"s{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("emb") / "set")


def _pool(data, backbone=core.DEFAULT_BACKBONE, size=core.DEFAULT_SIZE, progress=None, cancel=None, batch=64):
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(i.path).convert("RGB"), dtype=np.float32) / 255)
                     .permute(2, 0, 1) for i in data.items])
    return core.Features(backbone, size, torch.nn.functional.avg_pool2d(x, 4).flatten(1), False, 0.0)


@pytest.fixture(scope="module")
def pooled():
    """Replaces the backbone with 4x4 average pooling of the pixels (48 features), for this module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core, "extract_features", _pool)
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return core.ProbeCache(folder=tmp_path_factory.mktemp("probes"))


@pytest.fixture(scope="module")
def result(planted, pooled, cache):
    """One run, shared by the tests that read it (a run costs seconds)."""
    return emb.run_embeddings({"data": str(planted), **FAST}, cache=cache)


def test_the_map_has_one_trace_per_class_with_the_subsample_and_each_point_carries_its_image(result):
    fig = result.figures["tsne"]
    assert [t.name for t in fig.data] == [f"{c} ({PER_CLASS})" for c in ("real", "bright", "twin")]
    points = result.tables["points"]
    assert len(points) == 3 * PER_CLASS and [q["index"] for q in points] == list(range(3 * PER_CLASS))
    assert {c: sum(q["class"] == c for q in points) for c in ("real", "bright", "twin")} == \
        {"real": PER_CLASS, "bright": PER_CLASS, "twin": PER_CLASS}
    assert len({q["file"] for q in points}) == 3 * PER_CLASS
    assert all(np.isfinite([q["x"], q["y"]]).all() for q in points)
    cd = fig.data[1].customdata[0]
    assert cd[1] == "bright" and cd[0].startswith("bright/") and "%{customdata[0]}" in fig.data[1].hovertemplate
    thumb = Image.open(io.BytesIO(base64.b64decode(cd[2].split(",", 1)[1])))
    assert cd[2].startswith("data:image/png;base64,") and thumb.size == (16, 16)
    # the tab's click: the point's image from the data set, at the size asked
    uri = emb.thumbnail_of(result, int(cd[3]), size=12)
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (12, 12)
    with pytest.raises(IndexError):
        emb.thumbnail_of(result, 3 * PER_CLASS)
    assert "plotly_hover" in emb.embedding_html(fig, include_plotlyjs=False)


def test_separability_is_high_on_the_planted_generator_and_near_chance_on_its_twin(result):
    rows = {r["b"]: r for r in result.tables["separability"]}
    assert list(rows) == [emb.ALL_FAKES, "bright", "twin"]
    bright, twin = rows["bright"], rows["twin"]
    assert (bright["n_a"], bright["n_b"], bright["folds"]) == (PER_CLASS, PER_CLASS, 5)
    assert bright["probe_accuracy"] >= 0.95 and bright["probe_balanced_accuracy"] >= 0.95
    assert bright["silhouette"] > 0.3
    assert abs(twin["probe_balanced_accuracy"] - 0.5) <= 0.2          # chance, with 60 images: ±0.2
    assert abs(twin["silhouette"]) < 0.05
    assert twin["chance_accuracy"] == 0.5 and rows[emb.ALL_FAKES]["chance_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert all("pooled" not in r["features"] and "48-d" in r["features"] for r in rows.values())
    assert "bright" in result.summary and "balanced accuracy" in result.summary


def test_a_rerun_reuses_every_probe_and_reproduces_the_tables(result, cache):
    assert result.models == {"fitted": 15, "reused": 0}          # 3 pairs x 5 folds
    again = emb.run_embeddings(result.params, cache=cache)
    assert again.models == {"fitted": 0, "reused": 15}
    assert again.tables == result.tables
    assert result.params == {**emb.defaults_embeddings(), "data": result.params["data"], **FAST}


def test_cancel_stops_the_run(planted, pooled, cache):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        emb.run_embeddings({"data": str(planted), **FAST}, cancel=token, cache=cache)


def test_a_class_with_one_image_in_the_split_is_refused_in_one_line(tmp_path):
    small = make_set(tmp_path / "small", n=5)
    (tmp_path / "small" / "twin" / "s000.png").unlink()
    for f in sorted((tmp_path / "small" / "twin").glob("*.png"))[1:]:
        f.unlink()
    with pytest.raises(DatasetError) as err:
        emb.check_embeddings({"data": str(small), "split": "all"})
    assert str(err.value) == "small/twin: 1 image; embeddings need at least 2 per class"


def test_a_set_without_generators_is_refused_in_one_line(tmp_path):
    (tmp_path / "only" / "real").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / "only" / "real" / f"{i}.png")
    with pytest.raises(DatasetError) as err:
        emb.check_embeddings({"data": str(tmp_path / "only")})
    assert "\n" not in str(err.value) and "at least 1" in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"per_class": 1}, "per_class must be a whole number in [2, 100000]"),
    ({"split": "holdout"}, "split must be one of test, val, train, all"),
    ({"perplexity": 0}, "perplexity must be a number in [1, 500]"),
    ({"detector": "no-such-detector"}, "embeddings: "),
    ({"umap": True}, "unknown setting umap"),
])
def test_bad_settings_are_refused_in_one_line(planted, params, message):
    with pytest.raises(ExperimentError) as err:
        emb.check_embeddings({"data": str(planted), "split": "all", **params})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_detectors_penultimate_features_are_mapped_and_kept_on_disk(planted, cache, monkeypatch, tmp_path):
    """The detector path, with a stand-in detector (2x2 pooling as its "penultimate layer") in the catalogue."""
    from types import SimpleNamespace

    from detectlab import catalog

    calls = []

    class Tiny(torch.nn.Module):
        def features(self, x):
            calls.append(len(x))
            return torch.nn.functional.avg_pool2d(x, 8).flatten(1)          # 16x16 -> 2x2x3 = 12 features

    ckpt = tmp_path / "tiny.safetensors"
    ckpt.write_bytes(b"weights")
    loaded = SimpleNamespace(input_size=16, short_name="tiny", path=ckpt, kind="cnn", detector=Tiny())
    monkeypatch.setattr(catalog, "load_detector", lambda name: loaded)
    monkeypatch.setattr(catalog, "resolve_detector", lambda name: ckpt)
    p = {"data": str(planted), **FAST, "detector": "tiny", "per_class": 10}
    emb.check_embeddings(p)
    res = emb.run_embeddings(p, cache=cache)
    assert sum(calls) == 30 and len(res.tables["points"]) == 30
    assert res.tables["separability"][0]["features"] == "tiny penultimate features (cnn, 12-d)"
    assert res.tables["separability"][1]["probe_balanced_accuracy"] >= 0.9      # bright: +0.2 survives pooling
    again = emb.run_embeddings(p, cache=cache)
    assert sum(calls) == 30 and again.tables == res.tables                       # features read from disk
    assert again.models["fitted"] == 0
