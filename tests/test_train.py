"""Training on a tiny data set made here: real = smooth noise, fake = the same plus a planted pattern."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from detectlab.models.checkpoint import load_checkpoint
from detectlab.progress import CancelToken
from detectlab.train import TrainConfig, train


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    pattern = (((yy + xx) % 2) * 2 - 1) * 18.0  # checkerboard: the "generator trace"
    for name in ("real", "gan"):
        (root / name).mkdir()
    for i in range(40):
        base = rng.normal(128, 30, (8, 8, 3))
        img = np.asarray(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR), float)
        Image.fromarray(img.astype(np.uint8)).save(root / "real" / f"{i:03d}.png")
        Image.fromarray(np.clip(img + pattern[..., None], 0, 255).astype(np.uint8)).save(root / "gan" / f"{i:03d}.png")
    return root


def _cfg(root, tmp_path, **kw):
    base = dict(data=str(root), arch="resnet18", input_size=32, iterations=40, batch_size=16, lr=1e-3,
                weight_decay=0.0, out_dir=str(tmp_path), threads=2)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_and_checkpoint_round_trips(tiny_set, tmp_path):
    epochs = []
    result = train(_cfg(tiny_set, tmp_path), on_epoch=epochs.append)
    run = result.runs[0]
    assert run.status == "finished"
    losses = [e["train_loss"] for e in run.history]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert len(epochs) == len(run.history) >= 10
    det, meta = load_checkpoint(run.checkpoint)
    assert meta["detector"]["arch"] == "resnet18"
    assert meta["training"]["iterations"] == 40
    assert len(meta["data"]["fingerprint"]) == 16
    assert meta["metrics"]["test"]["accuracy"] == pytest.approx(run.test["accuracy"])
    assert meta["data"]["splits"]["train"]["samples"] > meta["data"]["splits"]["test"]["samples"] > 0


@pytest.fixture
def backbone_passes(monkeypatch):
    """Counts the frozen backbone's passes (``calls``) and the images they saw (``images``)."""
    from detectlab.models import FrozenBackboneDetector

    seen = {"calls": 0, "images": 0}
    original = FrozenBackboneDetector.backbone_features

    def counting(self, x):
        seen["calls"] += 1
        seen["images"] += len(x)
        return original(self, x)

    monkeypatch.setattr(FrozenBackboneDetector, "backbone_features", counting)
    return seen


def test_frozen_detector_caches_backbone_features(tiny_set, tmp_path, backbone_passes):
    cfg = _cfg(tiny_set, tmp_path, arch="frozen:mobilenet_v2", iterations=60, lr=1e-2)
    run = train(cfg).runs[0]
    first = backbone_passes["calls"]
    assert first <= 6  # train, flipped train, val, test: one or two batches each, not one per step
    backbone_passes["calls"] = 0
    train(cfg)
    assert backbone_passes["calls"] == 0  # second run on the same data: every feature comes from the cache
    assert run.test["accuracy"] >= 0.5


def test_mid_level_probe_fits_its_standardization_and_keeps_it_in_the_checkpoint(tiny_set, tmp_path, monkeypatch):
    import json

    import torch

    from detectlab import config

    run = train(_cfg(tiny_set, tmp_path / "a", arch="frozen:mobilenet_v2_mid", iterations=60, lr=1e-2)).runs[0]
    det, _ = load_checkpoint(run.checkpoint)
    assert det.standardized and det.feat_std.shape == (464,)
    assert float(det.feat_mean.abs().max()) > 0.01 and not torch.allclose(det.feat_std, torch.ones(464))
    assert run.test["accuracy"] >= 0.8  # the checkerboard is a low-level trace: mid-level stages see it
    # a run started from it keeps the statistics its head was trained with
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(run.checkpoint, shipped / "probe.safetensors")
    (shipped / "manifest.json").write_text(json.dumps({"checkpoints": {"probe": {"file": "probe.safetensors"}}}))
    monkeypatch.setattr(config, "CHECKPOINT_DIR", shipped)
    again = train(_cfg(tiny_set, tmp_path / "b", arch="frozen:mobilenet_v2_mid", iterations=1, lr=1e-9,
                       init_from="probe")).runs[0]
    det2, _ = load_checkpoint(again.checkpoint)
    assert torch.equal(det2.feat_mean, det.feat_mean) and torch.equal(det2.feat_std, det.feat_std)


def test_feature_cache_misses_when_a_file_is_rewritten_under_the_same_name(tiny_set, tmp_path, backbone_passes):
    """A data set re-derived in place (same names, new pixels) must not be served the old features."""
    import os

    root = tmp_path / "copy"
    shutil.copytree(tiny_set, root)
    cfg = _cfg(root, tmp_path, arch="frozen:mobilenet_v2", iterations=5, lr=1e-2)
    train(cfg)
    backbone_passes["calls"] = 0
    train(cfg)
    assert backbone_passes["calls"] == 0  # unchanged files: every feature from the cache
    for f in (root / "gan").glob("*.png"):  # regenerated: new content, same names
        Image.fromarray(255 - np.asarray(Image.open(f))).save(f)
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000_000))
    train(cfg)
    assert backbone_passes["calls"] > 0


def test_cancel_keeps_what_finished(tiny_set, tmp_path):
    token = CancelToken()
    seen = []

    def on_epoch(e):
        seen.append(e)
        if len(seen) == 2:
            token.cancel()

    run = train(_cfg(tiny_set, tmp_path), cancel=token, on_epoch=on_epoch).runs[0]
    assert run.status == "cancelled"
    assert len(run.history) == 2
    assert run.checkpoint is not None
    _, meta = load_checkpoint(run.checkpoint)
    assert meta["metrics"]["status"] == "cancelled"


def test_unknown_generator_is_named(tiny_set, tmp_path):
    with pytest.raises(ValueError, match="generators \\['nope'\\] are not in"):
        train(_cfg(tiny_set, tmp_path, generators=["nope"]))


# --------------------------------------------------------------------------- parts of the train split (mirror models)

def test_train_parts_are_disjoint_and_cover_the_train_split(tiny_set, tmp_path):
    from detectlab.train.engine import prepare_data

    _, whole, _ = prepare_data(_cfg(tiny_set, tmp_path))
    halves = [prepare_data(_cfg(tiny_set, tmp_path, train_part=f"{k}/2"))[1] for k in (1, 2)]
    a, b = ({s.path for s in h["train"]} for h in halves)
    assert a and b and not a & b
    assert a | b == {s.path for s in whole["train"]}
    # whole groups move: no source photo has its real in one half and its fake in the other
    assert not {s.group for s in halves[0]["train"]} & {s.group for s in halves[1]["train"]}
    assert abs(len(a) - len(b)) <= 2  # groups of two: the halves differ by at most one group
    for h in halves:
        assert {s.label for s in h["train"]} == {0, 1}
        for name in ("val", "test"):
            assert [s.path for s in h[name]] == [s.path for s in whole[name]]
    # deterministic, and a third of the split with n = 3
    again = prepare_data(_cfg(tiny_set, tmp_path, train_part="1/2"))[1]
    assert [s.path for s in again["train"]] == [s.path for s in halves[0]["train"]]
    thirds = [{s.path for s in prepare_data(_cfg(tiny_set, tmp_path, train_part=f"{k}/3"))[1]["train"]}
              for k in (1, 2, 3)]
    assert sum(map(len, thirds)) == len(whole["train"]) and set.union(*thirds) == {s.path for s in whole["train"]}


def test_a_part_run_records_its_part(tiny_set, tmp_path):
    import json

    run = train(_cfg(tiny_set, tmp_path, train_part="2/2", iterations=4)).runs[0]
    _, meta = load_checkpoint(run.checkpoint)
    files = json.loads((tmp_path / run.run_id / "splits.json").read_text())
    n = meta["data"]["splits"]["train"]["samples"]
    assert meta["data"]["train_part"] == {"part": "2/2", "samples": n} == files["train_part"]
    assert len(files["train"]) == n and 0 < n < 64  # about half of the 64-sample train split
    assert meta["training"]["train_part"] == "2/2"


# --------------------------------------------------------------------------- presets and overrides

@pytest.mark.parametrize("changes, expected", [
    (dict(adv_eps="0.002, 0.005"), dict(adv_eps=[0.002, 0.005])),
    (dict(adv_eps=""), dict(adv_eps=[])),
    (dict(generators="a, b"), dict(generators=["a", "b"])),
    (dict(generators=[]), dict(generators=None)),
    (dict(pretrained="FALSE"), dict(pretrained=False)),
    (dict(pretrained="/w.safetensors"), dict(pretrained="/w.safetensors")),
    (dict(iterations=0, epochs=3), dict(iterations=None, epochs=3)),
    (dict(lr=None, epochs=None), dict(lr=1e-4, epochs=5)),  # None leaves a setting as it is
])
def test_with_overrides_reads_form_and_command_line_values(changes, expected):
    cfg = TrainConfig().with_overrides(**changes)
    for key, value in expected.items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("kinds, ps", [
    (None, (0.3, 0.3, 0.3, 0.3)),
    (["blur", "jpeg", "downsize"], (0.3, 0.3, 0.3, 0.0)),
    ([], (0.0, 0.0, 0.0, 0.0)),
])
def test_one_augmentation_probability_spreads_over_the_chosen_degradations(kinds, ps):
    cfg = TrainConfig().with_overrides(augment_p=0.3, augment_kinds=kinds, blur_max=2.0, jpeg_min=40, scale_min=0.5,
                                       patch_min=16)
    a = cfg.augment
    assert (a.blur_p, a.jpeg_p, a.downsize_p, a.patch_p) == ps
    assert a.blur_sigma == (0.0, 2.0) and a.jpeg_quality == (40, 100) and a.downsize_scale == (0.5, 1.0)
    assert a.patch_size == (16, None) and a.enabled == any(ps)
    assert TrainConfig().augment.blur_p == 0.0  # the original is untouched


def test_with_preset_and_bad_values_are_named():
    cfg = TrainConfig(data="d").with_preset("Petrželková 2024")
    assert (cfg.arch, cfg.epochs, cfg.data) == ("resnet50", 2, "d")
    with pytest.raises(ValueError, match="preset 'C' must name one of"):
        TrainConfig().with_preset("C")  # two presets start so (CNNDetection, CPU demo)
    with pytest.raises(ValueError, match="unknown training settings: \\['nonsense'\\]"):
        TrainConfig().with_overrides(nonsense=1)
    with pytest.raises(ValueError, match="adv_eps: '0.1,x'"):
        TrainConfig().with_overrides(adv_eps="0.1,x")
    with pytest.raises(ValueError, match="unknown degradations \\['noise'\\]"):
        TrainConfig().with_overrides(augment_p=0.5, augment_kinds=["noise"])


def test_frozen_detector_with_augmentation_runs_the_backbone_once_per_draw(tiny_set, tmp_path, monkeypatch,
                                                                         backbone_passes):
    """Degradation augmentation on a frozen backbone: a fixed number of augmented draws per image, each
    computed once, not one backbone pass per sample and step."""
    from detectlab.train import engine

    monkeypatch.setattr(engine, "AUG_FEATURE_DRAWS", 3)
    cfg = _cfg(tiny_set, tmp_path, arch="frozen:mobilenet_v2", iterations=200, lr=1e-2)
    cfg = cfg.with_overrides(augment_p=0.5, augment_kinds="blur,jpeg")
    run = train(cfg).runs[0]
    n = {k: v["samples"] for k, v in load_checkpoint(run.checkpoint)[1]["data"]["splits"].items()}
    # val and test from the disk cache or one pass each; the train split once per draw (200 steps x 16 would be 3,200)
    assert backbone_passes["images"] <= 3 * n["train"] + n["val"] + n["test"]
    assert any("3 augmented draws" in note for note in run.notes)
    assert run.status == "finished" and run.test["accuracy"] >= 0.5


@pytest.mark.slow  # trains twice
def test_init_from_starts_where_a_trained_detector_stopped(tiny_set, tmp_path, monkeypatch):
    """A run initialised from a trained detector starts at its loss, not at chance; a wrong arch or a path is refused."""
    import json
    import shutil

    from detectlab import config
    from detectlab.train.config import TrainConfigError

    trained = train(_cfg(tiny_set, tmp_path / "a", iterations=60)).runs[0]
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(trained.checkpoint, shipped / "tiny.safetensors")
    (shipped / "manifest.json").write_text(json.dumps({"checkpoints": {"tiny": {"file": "tiny.safetensors"}}}))
    monkeypatch.setattr(config, "CHECKPOINT_DIR", shipped)

    fresh = train(_cfg(tiny_set, tmp_path / "b", iterations=4)).runs[0]
    warm = train(_cfg(tiny_set, tmp_path / "c", iterations=4, init_from="tiny")).runs[0]
    assert warm.history[0]["train_loss"] < 0.5 * fresh.history[0]["train_loss"]
    assert any("initialised from tiny" in n for n in warm.notes)
    assert load_checkpoint(warm.checkpoint)[1]["training"]["init_from"] == "tiny"

    with pytest.raises(TrainConfigError, match="is resnet18 at 32 px; this run trains efficientnet_b0"):
        train(_cfg(tiny_set, tmp_path / "d", arch="efficientnet_b0", iterations=2, init_from="tiny"))
    with pytest.raises(TrainConfigError, match="not a file"):
        TrainConfig(init_from="/etc/passwd").with_overrides()
    with pytest.raises(TrainConfigError, match="init_from 'nope'"):
        train(_cfg(tiny_set, tmp_path / "e", iterations=2, init_from="nope"))


# --------------------------------------------------------------------------- cancel in every phase

@pytest.mark.parametrize("arch, phase, kept", [
    ("resnet18", "decode", False),
    ("frozen:mobilenet_v2", "extract backbone features", False),
    ("resnet18", "train", False),
    ("resnet18", "validate", False),
    ("resnet18", "score the test split", True),
])
def test_cancel_is_honoured_in_every_phase(tiny_set, tmp_path, monkeypatch, arch, phase, kept):
    """A cancel in decoding, feature extraction, training, validation or test scoring ends the run "cancelled"
    at the next image or batch: nothing of a later phase runs, and only a finished epoch is kept."""
    import functools
    import time

    from detectlab.train import engine

    monkeypatch.setattr(engine, "_feature_cache_key", lambda *a: f"{tmp_path.name}-{len(a[1])}-{a[3]}")  # fresh: extracted
    monkeypatch.setattr(engine, "predict_scores", functools.partial(engine.predict_scores, batch_size=4))
    token, stages, when = CancelToken(), [], {}

    def progress(done, total=None, desc=""):
        stages.append(desc)
        if desc.startswith(phase) and not token.cancelled:
            when["cancel"] = time.perf_counter()
            token.cancel()

    cfg = _cfg(tiny_set, tmp_path, arch=arch, iterations=8, batch_size=8, split_fractions=(0.5, 0.1, 0.4))
    result = train(cfg, progress=progress, cancel=token)
    latency = time.perf_counter() - when["cancel"]
    run = result.runs[0]
    assert run.status == "cancelled"
    print(f"cancel latency in {phase!r}: {latency * 1000:.0f} ms")
    assert latency < 2.0, latency  # the very next image or batch (ms; 2 s leaves room for a loaded machine)
    after = stages[stages.index(next(s for s in stages if s.startswith(phase))) + 1:]
    assert all(s.startswith(phase) for s in after), after  # no later phase started
    assert (run.checkpoint is not None) == kept and run.test == {}
    if kept:
        _, meta = load_checkpoint(run.checkpoint)
        assert meta["metrics"]["status"] == "cancelled" and "test" not in meta["metrics"]
        assert any("test split not scored" in n for n in run.notes)


# --------------------------------------------------------------------------- small test splits

def test_wilson_interval_matches_the_formula():
    from detectlab.train.assess import wilson_interval

    lo, hi = wilson_interval(2, 2)
    assert (lo, hi) == (pytest.approx(0.3424, abs=1e-4), 1.0)
    lo, hi = wilson_interval(81, 100)  # Brown, Cai & DasGupta's kind of example: p = 0.81, n = 100
    assert (lo, hi) == (pytest.approx(0.7222, abs=1e-4), pytest.approx(0.8749, abs=1e-4))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_a_small_test_split_gets_a_warning_with_its_interval():
    from detectlab.train.assess import small_sample_warning

    two = {"n": 2, "accuracy": 1.0, "confusion": [[1, 0], [0, 1]]}
    text = small_sample_warning(two)
    assert "small test split: 2 images" in text and "0.34–1.00" in text and "1.000" in text
    assert small_sample_warning({"n": 30, "accuracy": 0.9, "confusion": [[14, 1], [2, 13]]}) == ""
    assert small_sample_warning({}) == ""


# --------------------------------------------------------------------------- preset time labels

def test_preset_labels_read_their_times_from_one_file(tmp_path, monkeypatch):
    import json

    from detectlab.train import config

    labels = dict((name, label) for label, name in config.preset_choices())
    assert set(labels) == set(config.PRESETS)
    every = json.loads(config.PRESET_TIMES_FILE.read_text())["presets"]
    assert set(every) == set(config.PRESETS)  # every preset measured by the bench on an idle machine
    for name, t in every.items():
        assert t["source"] == "idle" and t["cpus"] == 2 and t["command"].startswith("bench/bench_presets.py"), name
        assert abs(sum(t["phases"].values()) + t["startup"] - t["seconds"]) <= 0.05 * t["seconds"] + 2, (name, t)
        assert labels[name].endswith("on an idle 2-core machine, all phases")
    shipped = every["CPU demo: frozen MobileNetV2 + linear head"]
    assert 30 <= shipped["seconds"] <= 300, shipped
    # the bench rewrites the file; the labels follow it
    times = tmp_path / "times.json"
    times.write_text(json.dumps({"presets": {"FGSM adversarial training": {"seconds": 1500, "source": "idle"},
                                             "DFwF: frozen backbone + linear head": {"seconds": 40, "source": "x"}}}))
    monkeypatch.setattr(config, "PRESET_TIMES_FILE", times)
    labels = dict((name, label) for label, name in config.preset_choices())
    assert labels["FGSM adversarial training"].endswith("— about 25 min on an idle 2-core machine, all phases")
    assert labels["DFwF: frozen backbone + linear head"].endswith(
        "about 40 s on 2 cores, all phases (not yet timed on an idle machine)")
    assert config.preset_time_label("x", {"x": {"seconds": 65, "source": "idle"}}).startswith("about 65 s")
    assert labels["CPU demo: frozen MobileNetV2 + linear head"].endswith("time not measured yet (bench/bench_presets.py)")
