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
    result, _ = api_detect(str(flat), "spectrum-durrall")
    assert result["unlike_training"] is True and result["ood_distance"] > result["ood_threshold"]
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
