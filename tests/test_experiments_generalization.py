"""detectlab.experiments.generalization: cross-generator matrix, leave-one-out and few-shot curves
([Petrželková 2024] Tables 4.1, 4.2, Fig. 4.2) on a tiny set with a planted per-generator trace.

The set: 16x16 noise PNGs, 60 source groups, each with one real image and one image per generator a, b, c;
generator k adds +60 to colour channel k. The backbone is replaced by per-channel means (3 features), so
the probe of generator a sees only channel 0: it must detect a (diagonal) and call b and c real (off the
diagonal: fakes missed, reals right, so accuracy near 0.5 on a test split with as many fakes as reals).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.errors import DatasetError
from detectlab.experiments import core
from detectlab.experiments import generalization as gen
from detectlab.experiments.registry import ExperimentError, run_experiment
from detectlab.progress import CancelToken, Cancelled

GENS = ("a", "b", "c")
N_GROUPS = 60


def make_planted_set(root, gens=GENS, n=N_GROUPS, shift=60, seed=0):
    rng = np.random.default_rng(seed)
    for cls in ("real", *gens):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            x = rng.integers(0, 196, size=(16, 16, 3)).astype(np.int16)
            if cls != "real":
                x[..., gens.index(cls)] += shift
            Image.fromarray(x.astype(np.uint8)).save(root / cls / f"s{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return make_planted_set(tmp_path_factory.mktemp("planted") / "set")


@pytest.fixture
def extracted(monkeypatch):
    """Replaces the backbone with per-channel means; the list records one entry per extraction."""
    calls = []

    def channel_means(data, backbone=core.DEFAULT_BACKBONE, size=core.DEFAULT_SIZE, progress=None, cancel=None,
                      batch=64):
        calls.append(data.fingerprint)
        values = torch.stack([torch.from_numpy(np.asarray(Image.open(i.path).convert("RGB"), dtype=np.float32))
                              .mean((0, 1)) for i in data.items])
        return core.Features(backbone, size, values, False, 0.0)

    monkeypatch.setattr(core, "extract_features", channel_means)
    return calls


@pytest.fixture
def cache(tmp_path):
    return core.ProbeCache(folder=tmp_path / "probes")


def _cells(rows, row_key, metric):
    return {(r[row_key], r["tested_on"]): r[metric] for r in rows}


def test_cross_generator_matrix_has_a_strong_diagonal_and_a_weak_off_diagonal(planted, extracted, cache):
    res = gen.run_cross_generator({"data": str(planted)}, cache=cache)
    long = res.tables["cross_generator"]
    assert len(long) == 9 and [(r["trained_on"], r["tested_on"]) for r in long][:3] == [("a", "a"), ("a", "b"),
                                                                                          ("a", "c")]
    assert set(long[0]) == {"trained_on", "tested_on", "accuracy", "accuracy_std", "balanced_accuracy",
                            "balanced_accuracy_std", "ap", "ap_std"}
    for metric in ("accuracy", "balanced_accuracy", "ap"):
        cells = _cells(long, "trained_on", metric)
        for g in GENS:
            assert cells[g, g] >= 0.95, (metric, g)
        if metric != "ap":  # AP of an uninformative score is the fake share (~0.5) only on average
            off = [cells[g, t] for g in GENS for t in GENS if g != t]
            assert max(off) <= 0.65, (metric, off)
    # the matrix form holds the same numbers, rows = trained on, a column per tested-on generator
    matrix = res.tables["accuracy_matrix"]
    assert [r["trained_on"] for r in matrix] == list(GENS) and set(matrix[0]) == {"trained_on", *GENS}
    assert matrix[1]["c"] == _cells(long, "trained_on", "accuracy")["b", "c"]
    assert all(r["accuracy_std"] is None for r in long)  # one run: no spread
    assert res.models == {"fitted": 3, "reused": 0} and len(extracted) == 1
    assert res.name == "cross-generator" and res.params == {**gen.defaults_cross_generator(), "data": str(planted)}
    assert "near chance" in res.summary and "Table 4.1" in res.summary
    json.dumps(res.tables), json.dumps(res.params)


def test_heatmaps_label_rows_and_columns_and_show_the_numbers(planted, extracted, cache):
    res = gen.run_cross_generator({"data": str(planted)}, cache=cache)
    assert set(res.figures) == {"accuracy", "balanced_accuracy", "ap"}
    heat = res.figures["accuracy"].data[0]
    assert heat.type == "heatmap" and list(heat.x) == list(GENS) and list(heat.y) == list(GENS)
    acc = _cells(res.tables["cross_generator"], "trained_on", "accuracy")
    assert heat.text[0][1] == f"{100 * acc['a', 'b']:.1f}"   # percent, as the paper prints it
    layout = res.figures["accuracy"].layout
    assert layout.xaxis.title.text == "tested on" and layout.yaxis.title.text == "trained on"


def test_repeats_resplit_with_consecutive_seeds_and_average(planted, extracted, cache):
    res = gen.run_cross_generator({"data": str(planted), "seed": 4, "runs": 3}, cache=cache)
    per_run = res.tables["runs"]
    assert len(per_run) == 27 and sorted({r["seed"] for r in per_run}) == [4, 5, 6]
    assert len(extracted) == 1                       # one extraction serves every repeat's split
    assert res.models == {"fitted": 9, "reused": 0}
    for row in res.tables["cross_generator"]:
        vals = [r["accuracy"] for r in per_run if r["trained_on"] == row["trained_on"]
                and r["tested_on"] == row["tested_on"]]
        assert row["accuracy"] == pytest.approx(np.mean(vals), abs=1e-4)
        assert row["accuracy_std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-4)
    splits = res.tables["splits"]
    assert len(splits) == 9 and {r["seed"] for r in splits} == {4, 5, 6}
    assert all(sum(r[c] for r in splits if r["seed"] == 4) == N_GROUPS for c in ("real", *GENS))


def test_resplit_gives_what_load_set_gives_with_that_seed(planted):
    base = core.load_set(planted, seed=0)
    again = gen.resplit(base, 3)
    direct = core.load_set(planted, seed=3)
    assert again.items == direct.items and again.fingerprint == direct.fingerprint
    assert [i.path for i in again.items] == [i.path for i in base.items]   # rows of base's features still fit
    assert again.fingerprint != base.fingerprint


def test_a_rerun_reuses_every_probe_and_reproduces_the_tables(planted, extracted, cache, tmp_path):
    first = gen.run_cross_generator({"data": str(planted), "runs": 2}, cache=cache)
    assert first.models == {"fitted": 6, "reused": 0}
    # a new cache object on the same folder: the probes come from disk
    second = gen.run_cross_generator(first.params, cache=core.ProbeCache(folder=cache.folder))
    assert second.models == {"fitted": 0, "reused": 6}
    assert second.tables == first.tables
    # fitted afresh from the card's params (no cache at all): the same numbers
    fresh = gen.run_cross_generator(first.params, cache=core.ProbeCache(folder=tmp_path / "elsewhere"))
    assert fresh.models == {"fitted": 6, "reused": 0} and fresh.tables == first.tables


def test_leave_one_out_misses_the_left_out_generator_and_detects_the_seen_ones(planted, extracted, cache):
    res = gen.run_leave_one_out({"data": str(planted)}, cache=cache)
    long = res.tables["leave_one_out"]
    assert len(long) == 9
    assert {(r["left_out"], r["tested_on"]) for r in long if r["is_left_out"]} == {(g, g) for g in GENS}
    assert set(long[0]) >= {"left_out", "tested_on", "accuracy", "balanced_accuracy", "ap", "is_left_out"}
    vs = res.tables["left_out_vs_seen"]
    assert [r["left_out"] for r in vs] == list(GENS)
    for r in vs:
        assert r["accuracy_left_out"] <= 0.65 and r["accuracy_seen"] >= 0.95
    acc = _cells(long, "left_out", "accuracy")
    assert vs[0]["accuracy_seen"] == pytest.approx((acc["a", "b"] + acc["a", "c"]) / 2, abs=1e-4)
    assert res.models == {"fitted": 3, "reused": 0}
    assert list(res.figures["accuracy"].data[0].y) == ["−a", "−b", "−c"]
    assert "markedly worse" in res.summary and "Table 4.2" in res.summary


def test_few_shot_curves_rise_with_k_and_start_from_the_leave_one_out_probe(planted, extracted, cache):
    loo = gen.run_leave_one_out({"data": str(planted), "runs": 2}, cache=cache)
    assert loo.models == {"fitted": 6, "reused": 0}
    res = gen.run_few_shot({"data": str(planted), "runs": 2, "target": "a", "shots": [8, 0, 2]}, cache=cache)
    assert res.params["shots"] == [0, 2, 8]
    rows = res.tables["few_shot"]
    assert [(r["target"], r["shots"]) for r in rows] == [("a", 0), ("a", 2), ("a", 8)]
    assert len(res.tables["runs"]) == 6 and all(r["runs"] == 2 for r in rows)
    # k = 0 is the leave-one-out probe of a: reused, and equal to Table 4.2's diagonal cell
    assert res.models == {"fitted": 4, "reused": 2}
    assert rows[0]["accuracy_target"] == _cells(loo.tables["leave_one_out"], "left_out", "accuracy")["a", "a"]
    assert rows[0]["accuracy_target"] <= 0.65 and rows[-1]["accuracy_target"] >= 0.9
    assert all(r["accuracy_others"] >= 0.9 for r in rows)
    n_train = len(core.load_set(planted, seed=0).indices("train", ["b"], real=False))
    weights = {r["shots"]: r["weight"] for r in res.tables["runs"] if r["seed"] == 0}
    assert weights == {0: 0, 2: round(n_train / 2), 8: round(n_train / 8)}
    assert "As in the paper, a few images of a new generator raise its detection markedly" in res.summary


def test_few_shot_defaults_to_every_generator_in_turn_and_plots_k_on_a_log_axis(planted, extracted, cache):
    res = gen.run_few_shot({"data": str(planted), "runs": 2, "shots": [0, 4]}, cache=cache)
    assert [(r["target"], r["shots"]) for r in res.tables["few_shot"]] == [(g, k) for g in GENS for k in (0, 4)]
    assert len(extracted) == 1 and res.models == {"fitted": 12, "reused": 0}
    fig = res.figures["few_shot"]
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [1, 5] and list(fig.layout.xaxis.ticktext) == ["0", "4"]
    assert "k + 1" in fig.layout.xaxis.title.text
    assert len(fig.data) == 6 and all(t.error_y.array is not None for t in fig.data)   # target + others per generator


@pytest.mark.parametrize("setting, k, per_generator, expected",
                         [("auto", 0, 976, 0), ("auto", 5, 976, 195), ("auto", 100, 976, 10),
                          ("auto", 1000, 976, 1), (3, 5, 976, 3), (1, 50, 976, 1)])
def test_shot_weight(setting, k, per_generator, expected):
    assert gen.shot_weight(setting, k, per_generator) == expected


# -- bad input: one-line refusals before anything is extracted ---------------------------------------------------
@pytest.fixture(scope="module")
def one_generator(tmp_path_factory):
    return make_planted_set(tmp_path_factory.mktemp("one") / "solo", gens=("gan",), n=20)


@pytest.mark.parametrize("name, what", [("cross_generator", "the cross-generator matrix"),
                                        ("leave_one_out", "leave-one-generator-out"),
                                        ("few_shot", "the few-shot curves")])
def test_one_generator_is_refused_in_one_line(one_generator, extracted, name, what):
    for fn in (getattr(gen, f"check_{name}"), getattr(gen, f"run_{name}")):
        with pytest.raises(DatasetError) as err:
            fn({"data": str(one_generator)})
        assert str(err.value) == f"solo: 1 generator (gan); {what} needs at least 2"
    assert extracted == []


def test_a_few_shot_step_larger_than_the_train_split_names_the_generator(planted, extracted):
    n = len(core.load_set(planted, seed=0).indices("train", ["b"], real=False))
    with pytest.raises(DatasetError) as err:
        gen.check_few_shot({"data": str(planted), "target": "b", "shots": [0, 5, 500], "runs": 1})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == f"set: few-shot k=500 needs 500 training images of 'b'; its train split has {n} (split seed 0)"
    with pytest.raises(DatasetError, match="no generator 'zz'; its generators are a, b, c"):
        gen.check_few_shot({"data": str(planted), "target": "zz"})
    with pytest.raises(DatasetError, match="k=500"):
        gen.run_few_shot({"data": str(planted), "target": "b", "shots": [500]})
    assert extracted == []


def test_a_class_without_test_images_is_refused(tmp_path, extracted):
    tiny = make_planted_set(tmp_path / "tiny", gens=("a", "b"), n=3)
    with pytest.raises(DatasetError) as err:
        gen.check_cross_generator({"data": str(tiny)})
    assert "\n" not in str(err.value) and "needs train and test images of every class" in str(err.value)


@pytest.mark.parametrize("params, fragment", [
    ({"runs": 0}, "runs must be a whole number"),
    ({"seed": -1}, "seed must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"c": 0}, "c must be a positive number"),
    ({"backbone": "resnet50"}, "backbone must be a frozen backbone"),
    ({"shots": [-1, 5]}, "shots must be a list"),
    ({"shots": []}, "shots must be a list"),
    ({"shot_weight": "heavy"}, "shot_weight must be"),
    ({"colour": 1}, "unknown setting colour"),
])
def test_bad_settings_are_refused_in_one_line(planted, params, fragment):
    with pytest.raises(ExperimentError) as err:
        gen.check_few_shot({"data": str(planted), **params})
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        gen.check_leave_one_out({"data": str(tmp_path / "nowhere")})


# -- progress, cancel, the registry ---------------------------------------------------------------------------
def test_progress_reaches_the_end_and_cancel_stops_the_run(planted, extracted, cache):
    seen = []
    gen.run_leave_one_out({"data": str(planted)}, progress=lambda d, t=None, s="": seen.append((d, t, s)),
                          cache=cache)
    assert seen[-1] == (3, 3, "fit and test one probe per left-out")
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        gen.run_few_shot({"data": str(planted), "shots": [0, 2]}, cancel=token, cache=cache)


def test_the_registry_runs_it_by_name(planted, extracted, cache):
    res = run_experiment("leave-one-out", {"data": str(planted)}, cache=cache)
    assert res.name == "leave-one-out" and res.models == {"fitted": 3, "reused": 0}
    assert res.data_fingerprint == core.load_set(planted, seed=0).fingerprint
    assert set(res.timings) >= {"load", "features", "probes", "total"}


def test_the_fidelity_preset_trains_a_network_per_cell_reuses_it_and_says_so(planted, tmp_path):
    """preset "fidelity": a ResNet-18 trained end to end per cell (here 3 epochs at 16 px) gives the planted
    pattern too; a re-run reads every network from the model cache and gives the same tables; the notes say
    which preset ran."""
    from detectlab.experiments.networks import NetworkCache

    cache = NetworkCache(folder=tmp_path / "networks")
    params = {"data": str(planted), "preset": "fidelity", "epochs": 3, "size": 16}
    res = gen.run_cross_generator(params, cache=cache)
    acc = _cells(res.tables["cross_generator"], "trained_on", "accuracy")
    diag = np.mean([acc[g, g] for g in GENS])
    off = np.mean([acc[g, t] for g in GENS for t in GENS if g != t])
    assert diag >= 0.8 and off <= 0.65, (diag, off)
    assert res.models == {"fitted": 3, "reused": 0}
    assert res.notes[0].startswith("fidelity preset: a resnet18 trained end to end per cell")
    assert "features" not in res.timings and res.timings["models"] > 0
    assert res.summary.startswith("One resnet18 trained end to end (3 epochs) per generator")
    again = gen.run_cross_generator(params, cache=cache)
    assert again.models == {"fitted": 0, "reused": 3}
    assert again.tables["cross_generator"] == res.tables["cross_generator"]


@pytest.mark.parametrize("setting, message", [
    ({"preset": "gpu"}, "preset must be one of cpu, fidelity, got 'gpu'"),
    ({"preset": "fidelity", "network": "vgg"}, "network must be one of resnet18, resnet50, efficientnet_b0"),
    ({"preset": "fidelity", "epochs": 0}, "epochs must be a whole number in [1, 1000], got 0"),
])
def test_fidelity_settings_are_checked_before_anything_runs(planted, setting, message):
    with pytest.raises(ExperimentError, match=re.escape(message)):
        gen.check_leave_one_out({"data": str(planted), **setting})


@pytest.mark.parametrize("left, fragment", [
    (("a", "b"), "set: 0 generators (none); the cross-generator matrix needs at least 2"),
    (("real", "b"), "set is not a data set: no 'real' folder"),
])
def test_a_folder_with_one_class_is_refused_in_one_line(tmp_path, left, fragment):
    """Only real images, or only one generator's fakes: refused before anything runs, in one line naming
    what is missing."""
    import shutil

    root = make_planted_set(tmp_path / "set", gens=("a", "b"), n=8)
    for name in left:
        shutil.rmtree(root / name)
    with pytest.raises(DatasetError) as err:
        gen.check_cross_generator({"data": str(root)})
    assert fragment in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert "experiments need a real folder" in str(err.value) or "needs at least 2" in str(err.value)
