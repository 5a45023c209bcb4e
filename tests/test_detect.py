"""The Detect capability in-process: scoring files and folders, metrics, CSV, heatmaps on the shipped detector."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detectlab.catalog import load_detector, shipped_checkpoints
from detectlab.detect.analyze import analyze_file
from detectlab.errors import DatasetError
from detectlab.detect.predict import evaluate_dataset, expand_inputs, predict_files, score_folder, write_csv
from detectlab.models.base import Detector, PreprocessConfig


class BrightnessDetector(Detector):
    """logit = 8 * (mean pixel - 0.5): P(fake) is known exactly for a flat image."""

    kind = "cnn"

    def __init__(self) -> None:
        super().__init__("test:brightness", PreprocessConfig(input_size=16))
        self.head = nn.Identity()

    def features(self, x):
        return 8 * (x.mean((1, 2, 3)) - 0.5)

    def forward_head(self, feats):
        return feats

    def heatmap_targets(self):
        return []


def _flat(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (value,) * 3).save(path)
    return path


def _p(value):
    return float(torch.sigmoid(torch.tensor(8 * (value / 255 - 0.5))))


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
def test_predict_files_scores_decides_and_reports_bad_files(tmp_path, threshold):
    files = [_flat(tmp_path / f"v{v}.png", v) for v in (0, 100, 200, 255)]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    preds = predict_files(BrightnessDetector(), files[:2] + [bad] + files[2:], threshold, batch_size=2)
    assert [p.file for p in preds] == [str(f) for f in files[:2] + [bad] + files[2:]]  # input order kept
    ok = [p for p in preds if p.decision != "error"]
    for p, v in zip(ok, (0, 100, 200, 255)):
        assert p.p_fake == pytest.approx(_p(v), abs=1e-5)
        assert p.decision == ("fake" if _p(v) > threshold else "real")
    err = preds[2]
    assert err.p_fake is None and err.decision == "error" and "broken.png" in err.error


def test_evaluate_dataset_and_score_folder_give_labels_and_metrics(tmp_path):
    for i in range(6):
        _flat(tmp_path / "ds" / "real" / f"r{i}.png", 10 + 10 * i)   # dark: P(fake) < 0.5
        _flat(tmp_path / "ds" / "gan" / f"g{i}.png", 190 + 10 * i)   # bright: P(fake) > 0.5
    preds, metrics, _ = evaluate_dataset(BrightnessDetector(), tmp_path / "ds")
    m = metrics.to_dict()
    assert m["n"] == 12 and m["accuracy"] == 1.0 and m["ap"] == pytest.approx(1.0)
    assert set(m["per_group"]) == {"real", "gan"}
    assert {(p.label, p.generator) for p in preds} == {(0, "real"), (1, "gan")}
    preds2, metrics2, sel2 = score_folder(BrightnessDetector(), tmp_path / "ds")
    assert metrics2.to_dict()["accuracy"] == 1.0 and len(preds2) == 12
    assert (sel2.split, sel2.n_selected, sel2.n_folder) == ("all", 12, 12)
    # a folder in no labelled layout is scored file by file, without metrics
    flat = tmp_path / "flat"
    for i in range(3):
        _flat(flat / f"{i}.png", 50 * i)
    preds3, metrics3, sel3 = score_folder(BrightnessDetector(), flat, split_name="test")
    assert metrics3 is None and [p.label for p in preds3] == [None] * 3
    assert sel3.split == "all" and "no splits" in sel3.describe()  # asked for test, told why all were scored


def test_score_folder_scores_one_split_and_says_so(tmp_path):
    """Metrics on one split: the same images `detectlab.data.split` puts there, counted in the Selection."""
    from detectlab.data import discover, split

    for i in range(20):
        _flat(tmp_path / "ds" / "real" / f"r{i}.png", 10 + 5 * i)
        _flat(tmp_path / "ds" / "gan" / f"g{i}.png", 150 + 5 * i)
    expected = split(discover(tmp_path / "ds").samples, seed=3)
    for name in ("train", "val", "test"):
        preds, metrics, sel = score_folder(BrightnessDetector(), tmp_path / "ds", split_name=name, seed=3)
        assert sorted(p.file for p in preds) == sorted(str(s.path) for s in expected[name])
        assert metrics.n == len(expected[name]) == sel.n_selected and sel.n_folder == 40
        assert sel.describe().startswith(f"{name} split (seed 3): {sel.n_selected} of 40 images")
    assert len(expected["test"]) < 10  # a tenth, not the folder
    with pytest.raises(DatasetError, match="unknown split 'everything'"):
        score_folder(BrightnessDetector(), tmp_path / "ds", split_name="everything")


def test_default_split_is_test_for_the_demo_only(tmp_path):
    from detectlab import config
    from detectlab.detect.predict import default_split

    assert default_split(config.DEMO_DIR) == "test"
    assert default_split(config.DEMO_DIR.parent / "." / config.DEMO_DIR.name) == "test"
    assert default_split(tmp_path) == "all" and default_split(None) == "all"


def test_write_csv_round_trip(tmp_path):
    files = [_flat(tmp_path / "a.png", 30), tmp_path / "missing.png"]
    preds = predict_files(BrightnessDetector(), files)
    out = write_csv(preds, tmp_path / "p.csv", "brightness")
    rows = list(csv.DictReader(out.open()))
    assert [r["decision"] for r in rows] == ["real", "error"]
    assert float(rows[0]["p_fake"]) == pytest.approx(_p(30), abs=1e-6) and rows[0]["detector"] == "brightness"
    assert rows[1]["p_fake"] == "" and "missing.png" in rows[1]["error"]


def test_expand_inputs_walks_folders_and_keeps_files(tmp_path):
    a = _flat(tmp_path / "d" / "sub" / "b.png", 1)
    b = _flat(tmp_path / "d" / "a.png", 1)
    (tmp_path / "d" / "notes.txt").write_text("x")
    loose = tmp_path / "loose.webp"
    assert expand_inputs([tmp_path / "d", loose]) == [b, a, loose]


@pytest.fixture(scope="module")
def cnn():
    return load_detector("cnn-resnet18")


def test_shipped_cnn_separates_demo_test_images(cnn, demo_root):
    from detectlab.data import discover, split

    test = split(discover(demo_root).samples, seed=0)["test"]
    picked = [s for g in ("real", "pixel-shuffle") for s in [t for t in test if t.generator == g][:8]]
    preds = predict_files(cnn.detector, [s.path for s in picked], cnn.threshold)
    real = np.array([p.p_fake for p, s in zip(preds, picked) if s.label == 0])
    fake = np.array([p.p_fake for p, s in zip(preds, picked) if s.label == 1])
    assert fake.mean() > real.mean() + 0.5  # the shipped CNN reaches > 0.95 test accuracy on the demo


def test_heatmap_of_a_synthetic_image_is_informative(cnn, demo_root):
    a = analyze_file(cnn.detector, demo_root / "pixel-shuffle" / "p0001_c0.png", cnn.threshold)
    (name, m), = a.maps
    assert m.shape == (128, 128)  # the input image's size
    assert float(m.std()) > 0.05  # not constant
    assert a.decision in ("fake", "real") and 0 <= a.p_fake <= 1
    assert a.threshold == cnn.threshold == shipped_threshold()


def shipped_threshold():
    from detectlab.models.checkpoint import read_metadata

    return float(read_metadata(shipped_checkpoints()["cnn-resnet18"])["threshold"])  # written by training


def test_gradio_client_endpoint(app_url, demo_root):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    result, heat = client.predict(handle_file(str(demo_root / "transposed-conv" / "p0002_c0.png")), "", "gradcam", 0.5,
                                  api_name="/detect")
    assert set(result) >= {"p_fake", "decision", "detector"}
    assert 0.0 <= result["p_fake"] <= 1.0
    assert Image.open(heat).size == (128, 128)


def test_colour_bar_runs_blue_to_red():
    from detectlab.explain import colour_bar

    bar = np.asarray(colour_bar())
    assert bar.shape == (24, 256, 3)
    left, right = bar[12, 0].astype(int), bar[12, -1].astype(int)
    assert left[2] > left[0] + 50 and right[0] > right[2] + 50  # jet: blue at 0, red at 1


def test_calibrated_p_fake_and_ood_flag_travel_with_every_entry_point(demo_root, tmp_path):
    """The checkpoint's trust statistics reach predict_files (CSV), the Detect tab's verdict and /detect's JSON."""
    import csv

    from detectlab.catalog import load_detector
    from detectlab.detect.predict import predict_files, write_csv
    from detectlab.ui.detect_tab import api_detect, detect_one

    loaded = load_detector("spectrum-durrall")
    assert loaded.trust is not None  # shipped with its calibration, tied to the checkpoint's bytes
    flat = tmp_path / "flat.png"
    Image.new("RGB", (128, 128), (128, 128, 128)).save(flat)  # a flat colour field: far from any photo
    image = sorted((demo_root / "real").glob("*.png"))[0]
    preds = predict_files(loaded.detector, [image, flat], loaded.threshold, trust=loaded.trust)
    real_pred, flat_pred = preds
    assert flat_pred.unlike_training is True and real_pred.unlike_training is False
    assert 0.0 <= real_pred.p_calibrated <= 1.0 and real_pred.p_calibrated != real_pred.p_fake
    rows = list(csv.DictReader(write_csv(preds, tmp_path / "p.csv", "spectrum-durrall").open()))
    assert rows[1]["unlike_training"] == "true" and float(rows[0]["p_fake_calibrated"]) == pytest.approx(
        real_pred.p_calibrated, abs=1e-6)

    verdict = detect_one(str(flat), "shipped: spectrum-durrall", "gradcam", 0.5)[0]
    assert "calibrated P(fake) =" in verdict and "unlike the training data" in verdict
    assert "→ **UNCERTAIN**" in verdict and "the detector was not validated on images like it" in verdict
    result, _ = api_detect(str(flat), "spectrum-durrall")
    assert result["unlike_training"] is True and result["ood_distance"] > result["ood_threshold"]
    assert result["verdict"] == "uncertain" and "unlike the training data" in result["verdict_reasons"][0]
    # one decode path, one forward; a batch of two and a single image differ in float32 rounding only
    # (seen: 1.2e-5 on the flat field, whose spectrum is all but zero)
    assert result["p_fake_calibrated"] == pytest.approx(flat_pred.p_calibrated, abs=1e-4)
    assert result["p_fake"] == pytest.approx(flat_pred.p_fake, abs=1e-4)


def test_an_uncalibrated_checkpoint_says_so():
    from detectlab.detect.analyze import analyze
    from detectlab.models import create_detector
    from detectlab.ui.detect_tab import _trust_md

    det = create_detector("resnet18", pretrained=False, input_size=32).eval()
    a = analyze(det, torch.rand(3, 32, 32), with_heatmap=False)
    assert a.assessment is None
    assert "Uncalibrated" in _trust_md(a.assessment, "my-run") and "detectlab calibrate my-run" in _trust_md(None, "my-run")


def test_native_resolution_scoring_in_the_tab_and_the_api(tmp_path):
    """Scoring 'tiles': P(fake) from the mean tile logit at the image's own resolution, and the tile map."""
    from detectlab.catalog import load_detector
    from detectlab.detect.tiling import score_file_tiled
    from detectlab.ui.detect_tab import api_detect, detect_one

    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 900, 3), dtype=np.uint8)).save(big)
    expected = score_file_tiled(load_detector("cnn-resnet18").detector, big)
    assert (expected.tiles_scored, expected.tiles_total) == (40, 40)  # 5 rows x 8 columns of 128 px cover 900x600

    md, items, _ = detect_one(str(big), "shipped: cnn-resnet18", "gradcam", 0.5, "tiles")
    assert f"P(fake) = {expected.p_fake:.3f}" in md and "native resolution: 40 tiles of 128 px over 900×600" in md
    (preview, _), (tile_map, caption), (bar, _) = items
    assert tile_map.size == (8 * 32, 5 * 32) and "40 of 40 scored" in caption and bar.size == (256, 24)

    result, png = api_detect(str(big), "cnn-resnet18", scoring="tiles")
    assert result["scoring"] == "tiles" and result["tiles_scored"] == 40
    assert result["p_fake"] == pytest.approx(expected.p_fake, abs=1e-6)
    assert result["p_fake_max_tile"] == pytest.approx(expected.p_fake_max, abs=1e-6)
    with Image.open(png) as im:
        assert im.size == (256, 160)
    assert api_detect(str(big), "cnn-resnet18")[0]["scoring"] == "resize"
    with pytest.raises(Exception, match="scoring must be one of resize, tiles"):
        api_detect(str(big), "cnn-resnet18", scoring="sideways")


# -- one verdict from the scoring paths that ran (detect.verdict) ----------------------------------------
def _assessment(unlike):
    from detectlab.detect.trust import Assessment

    return None if unlike is None else Assessment(0.5, 40.0 if unlike else 10.0, 25.0, unlike)


@pytest.mark.parametrize("p_resize, p_tiles, unlike, label, reasons", [
    (0.90, 0.80, False, "fake", []),                                   # both paths say fake
    (0.10, 0.20, False, "real", []),                                   # both say real
    (0.90, None, None, "fake", []),                                    # one path, uncalibrated checkpoint
    (0.50, None, None, "real", []),                                    # at the threshold: not above it
    (0.988, 0.034, False, "uncertain",
     ["resize says FAKE 0.988, tiles say REAL 0.034: the two scoring paths disagree"]),
    (0.20, 0.70, None, "uncertain", ["resize says REAL 0.200, tiles say FAKE 0.700: the two scoring paths disagree"]),
    (0.10, None, True, "uncertain", ["the image is unlike the training data (feature distance 40.0 > 25.0"]),
    (0.95, 0.02, True, "uncertain", ["the two scoring paths disagree", "unlike the training data"]),
])
def test_verdict_is_uncertain_when_the_paths_disagree_or_the_image_is_unlike_training(p_resize, p_tiles, unlike,
                                                                                       label, reasons):
    from detectlab.detect.verdict import decide

    v = decide(p_resize, p_tiles, 0.5, assessment=_assessment(unlike))
    assert v.label == label and len(v.reasons) == len(reasons)
    for got, want in zip(v.reasons, reasons):
        assert want in got
    assert v.p_fake == p_resize and v.decision == ("fake" if p_resize > 0.5 else "real")
    assert v.paths_disagree == any("disagree" in r for r in reasons)
    assert v.unlike_training == unlike
    assert v.headline().endswith(f"→ {label.upper()}")
    assert v.to_dict() == {"verdict": label, "verdict_reasons": list(v.reasons), "p_fake_resize": p_resize,
                           "p_fake_tiles": p_tiles}


def test_verdict_leads_with_the_scoring_path_asked_for():
    from detectlab.detect.verdict import decide

    v = decide(0.988, 0.034, 0.5, scoring="tiles")
    assert v.p_fake == 0.034 and v.decision == "real" and v.label == "uncertain"
    assert v.headline() == "P(fake) = 0.034 (tiles) · 0.988 (resize) → UNCERTAIN"
    assert decide(0.988, 0.034, 0.5).headline() == "P(fake) = 0.988 (resize) · 0.034 (tiles) → UNCERTAIN"
    with pytest.raises(ValueError, match="at least one scoring path"):
        decide(None, None, 0.5)


@pytest.mark.parametrize("height, width, both", [(16, 16, False), (23, 200, False), (24, 24, True), (32, 64, True)])
def test_only_images_well_above_the_input_are_scored_both_ways(height, width, both):
    from detectlab.detect.verdict import scores_both_ways

    assert scores_both_ways(height, width, 16) is both


def _centre_bright(path, width=64, height=32, bright=230, dark=0):
    """Bright centre half, dark outer quarters: the resize path (centre crop) sees bright, the tiles see both."""
    a = np.full((height, width, 3), dark, np.uint8)
    a[:, width // 4: 3 * width // 4] = bright
    Image.fromarray(a).save(path)
    return path


def test_predict_files_scores_large_images_both_ways_and_gives_the_verdict(tmp_path):
    """With both_ways, an image 1.5 times the input or more also gets the tiles' P(fake); the verdict is the
    one ``decide`` gives, and the CSV carries both scores and it."""
    from detectlab.detect.tiling import score_file_tiled
    from detectlab.detect.verdict import decide

    det = BrightnessDetector()
    big = _centre_bright(tmp_path / "centre.png")             # 64 x 32: tiles 2 x 4 of 16 px
    small = _flat(tmp_path / "small.png", 200)                # 16 x 16: one path only
    plain, both = (predict_files(det, [big, small], both_ways=b) for b in (False, True))
    assert plain[0].p_fake_tiles is None and plain[0].verdict == plain[0].decision == "fake"
    tiles = score_file_tiled(det, big)
    assert tiles.tiles_scored == 8
    p_big, p_small = both
    # the centre crop is bright (logit 8 * (230 / 255 - 0.5) = 3.22 -> 0.961); half the tiles are black (logit -4)
    bright = 8 * (230 / 255 - 0.5)
    assert p_big.p_fake == pytest.approx(1 / (1 + np.exp(-bright)), abs=1e-4)
    assert p_big.p_fake_tiles == pytest.approx(tiles.p_fake, abs=1e-6)
    assert tiles.p_fake == pytest.approx(1 / (1 + np.exp(-(bright - 4) / 2)), abs=1e-4)  # 0.403
    assert p_big.verdict == "uncertain" and p_big.decision == "fake"
    assert list(p_big.reasons) == list(decide(p_big.p_fake, p_big.p_fake_tiles, 0.5).reasons)
    assert p_small.p_fake_tiles is None and p_small.verdict == "fake"
    rows = list(csv.DictReader(write_csv(both, tmp_path / "p.csv", "brightness").open()))
    assert rows[0]["verdict"] == "uncertain" and "the two scoring paths disagree" in rows[0]["verdict_reasons"]
    assert float(rows[0]["p_fake_tiles"]) == pytest.approx(p_big.p_fake_tiles, abs=1e-6)
    assert float(rows[0]["p_fake_resize"]) == float(rows[0]["p_fake"])
    assert rows[1]["p_fake_tiles"] == "" and rows[1]["verdict"] == "fake"


def test_judge_file_is_the_verdict_predict_files_gives(tmp_path):
    from detectlab.detect.verdict import judge_file

    det = BrightnessDetector()
    big = _centre_bright(tmp_path / "centre.png")
    (pred,) = predict_files(det, [big], both_ways=True)
    for scoring in ("resize", "tiles"):
        j = judge_file(det, big, 0.5, scoring=scoring)
        assert j.verdict.label == pred.verdict == "uncertain" and j.image_size == (32, 64)
        assert j.verdict.p_fake_resize == pytest.approx(pred.p_fake, abs=1e-6)
        assert j.verdict.p_fake_tiles == pytest.approx(pred.p_fake_tiles, abs=1e-6)
    small = _flat(tmp_path / "small.png", 40)
    j = judge_file(det, small, 0.5)
    assert j.tiled is None and j.verdict.p_fake_tiles is None and j.verdict.label == "real"


def test_heldout_line_says_it_is_a_rate_over_other_photos():
    from detectlab.catalog import HeldoutRecord

    def heldout_line(record, scoring):
        return record.describe(scoring)

    record = HeldoutRecord("x", {"full_resized": 0.0, "full_tiled": 0.05, "crops": 0.02, "demo_blur_sigma1": 0.1,
                                 "demo_downup_2x": 0.0}, 41, 6)
    line = heldout_line(record, "resize")
    assert "on 41 held-out real photos (from 6 packages it never saw)" in line
    assert "called 0 % fake (resized, as now)" in line
    assert "a rate over other photos, not a check of this one" in line and "Weak evidence" not in line
    assert "called 5 % fake (tiled, as now)" in heldout_line(record, "tiles")
    weak = HeldoutRecord("x", {**record.rates, "full_resized": 0.3}, 41, 6)
    assert "Weak evidence on real photos" in heldout_line(weak, "resize") and "30 %" in heldout_line(weak, "resize")
