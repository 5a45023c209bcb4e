"""detectlab.localize without training: polygons, data set writer, metrics, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.data import split
from detectlab.errors import CheckpointError, DatasetError, DetectLabError
from detectlab.localize import (
    LocalizerConfig,
    MaskError,
    PixelCounts,
    area_quartile,
    heatmap_mask_iou,
    load_localizer,
    mask_to_polygons,
    masked_splits,
    pixel_counts,
    polygons_to_mask,
    read_mask,
    tp_fp_fn_image,
    write_yolo_dataset,
    yolo_label_lines,
)
from detectlab.progress import CancelToken, Cancelled


def _ellipse(size, centre, axes, angle) -> np.ndarray:
    m = np.zeros(size, np.uint8)
    cv2.ellipse(m, centre, axes, angle, 0, 360, 1, -1)
    return m.astype(bool)


def _two_regions_with_hole() -> np.ndarray:
    m = np.zeros((96, 128), np.uint8)
    cv2.circle(m, (35, 40), 28, 1, -1)
    cv2.circle(m, (38, 42), 11, 0, -1)   # a hole inside the first region
    cv2.ellipse(m, (95, 60), (22, 12), 35, 0, 360, 1, -1)
    return m.astype(bool)


def _iou(a, b) -> float:
    return (a & b).sum() / (a | b).sum()


MASKS = {
    "ellipse-large": _ellipse((128, 128), (64, 60), (40, 22), 30),
    "ellipse-small": _ellipse((128, 128), (20, 100), (6, 3), 75),
    "ellipse-cut-by-border": _ellipse((128, 128), (120, 10), (30, 18), 10),
    "ellipse-non-square": _ellipse((80, 150), (70, 40), (35, 20), 120),
    "two-regions-and-a-hole": _two_regions_with_hole(),
}


@pytest.mark.parametrize("name", list(MASKS))
def test_mask_polygon_round_trip_keeps_iou(name):
    mask = MASKS[name]
    polys = mask_to_polygons(mask)
    back = polygons_to_mask(polys, mask.shape)
    assert back.shape == mask.shape
    assert _iou(mask, back) >= 0.95, _iou(mask, back)


def test_one_instance_per_region_and_the_hole_stays_a_hole():
    mask = MASKS["two-regions-and-a-hole"]
    lines = yolo_label_lines(mask)
    assert len(lines) == 2
    for line in lines:
        cls, *coords = line.split()
        assert cls == "0" and len(coords) % 2 == 0 and len(coords) >= 6
        assert all(0.0 <= float(c) <= 1.0 for c in coords)
    back = polygons_to_mask(mask_to_polygons(mask), mask.shape)
    assert not back[42, 38] and back[40, 12]  # hole centre empty, ring filled


def test_label_coordinates_are_normalised_by_width_and_height():
    mask = np.zeros((50, 200), bool)
    mask[10:20, 100:150] = True
    (poly,) = mask_to_polygons(mask)
    # outline on the pixel corners, within a quarter pixel
    assert poly[:, 0].min() == pytest.approx(100 / 200, abs=0.26 / 200)
    assert poly[:, 0].max() == pytest.approx(150 / 200, abs=0.26 / 200)
    assert poly[:, 1].min() == pytest.approx(10 / 50, abs=0.26 / 50)
    assert poly[:, 1].max() == pytest.approx(20 / 50, abs=0.26 / 50)


@pytest.mark.parametrize("area,quartile", [(0.0, None), (0.01, "Q1"), (0.08, "Q1"), (0.0801, "Q2"), (0.16, "Q2"),
                                           (0.2, "Q3"), (0.25, "Q3"), (0.3, "Q4"), (0.36, "Q4"), (0.5, "Q4")])
def test_area_quartile_of_table_4_8(area, quartile):
    assert area_quartile(area) == quartile


def test_pixel_metrics_against_a_hand_computed_example():
    truth = np.zeros((4, 5), bool)
    truth[1:3, 1:4] = True            # 6 true pixels
    pred = np.zeros((4, 5), bool)
    pred[1:3, 2:5] = True             # 6 predicted, 4 of them true
    c = pixel_counts(pred, truth)
    assert (c.tp, c.fp, c.fn, c.tn) == (4, 2, 2, 12)
    assert c.precision == pytest.approx(4 / 6) and c.recall == pytest.approx(4 / 6)
    assert c.iou == pytest.approx(4 / 8) and c.dice == pytest.approx(8 / 12)
    total = c + pixel_counts(truth, truth)  # micro average over two images
    assert total.dice == pytest.approx(2 * 10 / (2 * 10 + 2 + 2))


def test_empty_prediction_on_empty_truth_is_perfect_and_on_a_region_is_zero():
    empty = np.zeros((3, 3), bool)
    assert pixel_counts(empty, empty).dice == 1.0
    one = empty.copy()
    one[1, 1] = True
    assert pixel_counts(empty, one).recall == 0.0 and pixel_counts(empty, one).precision == 0.0
    assert PixelCounts(0, 3, 0, 6).precision == 0.0


def test_tp_fp_fn_colours_follow_fig_4_15():
    image = torch.zeros(3, 2, 3)
    truth = np.array([[1, 1, 0], [0, 0, 0]], bool)
    pred = np.array([[1, 0, 1], [0, 0, 0]], bool)
    out = tp_fp_fn_image(image, pred, truth, opacity=1.0)
    assert tuple(out[0, 0]) == (255, 215, 0)    # TP yellow
    assert tuple(out[0, 2]) == (230, 30, 30)    # FP red
    assert tuple(out[0, 1]) == (30, 200, 60)    # FN green
    assert tuple(out[1, 1]) == (0, 0, 0)        # TN untouched


def test_heatmap_mask_iou_thresholds_and_resizes():
    truth = np.zeros((8, 8), bool)
    truth[:4, :] = True
    heat = torch.zeros(8, 8)
    heat[:2, :] = 1.0
    heat[2:4, :] = 0.4
    assert heatmap_mask_iou(heat, truth, 0.5) == pytest.approx(0.5)
    assert heatmap_mask_iou(heat, truth, 0.3) == pytest.approx(1.0)
    small = torch.zeros(2, 2)
    small[0, :] = 1.0
    assert heatmap_mask_iou(small, truth, 0.5) == pytest.approx(1.0)


# --------------------------------------------------------------------------- masks from files


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def test_read_mask_accepts_binary_and_refuses_bad_masks(tmp_path):
    good = np.zeros((32, 48), np.uint8)
    good[5:20, 10:30] = 255
    assert read_mask(_save(tmp_path / "ok.png", good), size=(32, 48)).sum() == 15 * 20
    ramp = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (32, 1))
    with pytest.raises(MaskError, match="not binary"):
        read_mask(_save(tmp_path / "soft.png", ramp))
    with pytest.raises(MaskError, match=r"mask is 48×32 but the image is 64×64"):
        read_mask(tmp_path / "ok.png", size=(64, 64))
    with pytest.raises(MaskError, match="empty"):
        read_mask(_save(tmp_path / "empty.png", np.zeros((32, 48), np.uint8)))
    assert not read_mask(tmp_path / "empty.png", allow_empty=True).any()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DetectLabError, match="broken.png"):
        read_mask(tmp_path / "broken.png")


def make_masked_set(root: Path, n: int = 20, size: int = 64, seed: int = 0) -> Path:
    """images/ + masks/ with a noisy ellipse pasted into a smooth background, groups of 2."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        base = (np.stack([np.sin(xx / (5 + c + i % 3)) + np.cos(yy / 7) for c in range(3)], -1) + 2) * 60
        mask = _ellipse((size, size), tuple(int(v) for v in rng.integers(16, size - 16, 2)),
                        (int(rng.integers(6, 16)), int(rng.integers(5, 12))), int(rng.integers(0, 180)))
        noise = rng.integers(0, 256, (size, size, 3))
        img = np.where(mask[..., None], noise, base).astype(np.uint8)
        _save(root / "images" / f"s{i // 2:02d}_{i % 2}.png", img)
        _save(root / "masks" / f"s{i // 2:02d}_{i % 2}.png", mask.astype(np.uint8) * 255)
    (root / "manifest.json").write_text(json.dumps(
        {"groups": {f"s{i // 2:02d}_{i % 2}": f"s{i // 2:02d}" for i in range(n)}}))
    return root


def test_yolo_dataset_uses_the_data_layers_split(tmp_path):
    root = make_masked_set(tmp_path / "set")
    yds = write_yolo_dataset(root, tmp_path / "yolo", seed=3)
    ds, parts = masked_splits(root, seed=3)
    expected = split(ds.pairs, seed=3, group=ds.group_of, stratify=None)
    for name in ("train", "val", "test"):
        assert yds.splits[name] == [img.stem for img, _ in expected[name]]
        assert [img.stem for img, _ in parts[name]] == yds.splits[name]
        for stem in yds.splits[name]:
            assert yds.image(stem, name).is_file()
            lines = (tmp_path / "yolo" / "labels" / name / f"{stem}.txt").read_text().splitlines()
            assert len(lines) == 1 and lines[0].startswith("0 ")
    # groups never straddle splits
    group_split = {}
    for name, stems in yds.splits.items():
        for stem in stems:
            assert group_split.setdefault(stem.split("_")[0], name) == name
    text = yds.data_yaml.read_text()
    assert "train: images/train" in text and "manipulated" in text
    assert all(0 < a < 0.36 for a in yds.areas.values())


def test_bad_pairs_are_skipped_and_named(tmp_path):
    root = make_masked_set(tmp_path / "set", n=12)
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    _save(root / "masks" / "s00_0.png", ramp)                       # not binary
    _save(root / "masks" / "s00_1.png", np.zeros((32, 32), np.uint8))  # wrong size
    (root / "masks" / "s01_0.png").unlink()                          # image without a mask
    yds = write_yolo_dataset(root, tmp_path / "yolo")
    reasons = {Path(p).name: r for p, r in yds.skipped}
    assert "not binary" in reasons["s00_0.png"]
    assert "32×32" in reasons["s00_1.png"]
    assert "no mask" in reasons["s01_0.png"]
    assert sum(len(v) for v in yds.splits.values()) == 9


def test_cancel_or_failure_leaves_nothing_half_written(tmp_path):
    root = make_masked_set(tmp_path / "set", n=10)
    token = CancelToken()
    calls = []

    def progress(done, total=None, desc=""):
        calls.append(done)
        if desc == "Writing YOLO labels" and done >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        write_yolo_dataset(root, tmp_path / "out" / "yolo", progress=progress, cancel=token)
    assert list((tmp_path / "out").iterdir()) == []
    for cls in ("real", "gen"):
        _save(tmp_path / "detection" / cls / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="localization needs ROOT/images"):
        write_yolo_dataset(tmp_path / "detection", tmp_path / "out" / "yolo")
    assert list((tmp_path / "out").iterdir()) == []


# --------------------------------------------------------------------------- checkpoints and config


def test_corrupt_pt_is_refused_by_name(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="broken.pt: cannot be loaded"):
        load_localizer(bad, allow_pickle=True)


def test_untrusted_pt_needs_the_opt_in(tmp_path):
    pt = tmp_path / "someone_elses.pt"
    pt.write_bytes(b"whatever")
    with pytest.raises(CheckpointError, match="pickle.*I trust this .pt file"):
        load_localizer(pt)


def test_pt_that_is_not_a_segmentation_model_is_refused(tmp_path):
    from detectlab.localize.yolo import _yolo_class

    det = _yolo_class()("yolov8n.yaml")
    det.save(tmp_path / "detector.pt")
    with pytest.raises(CheckpointError, match="'detect' model, not a segmentation model"):
        load_localizer(tmp_path / "detector.pt", allow_pickle=True)


def test_unet_file_that_is_not_a_localizer_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a DetectLab U-Net localizer"):
        load_localizer(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors"):
        load_localizer(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("bad,message", [
    ({"arch": "yolov9-seg"}, "unknown localizer architecture 'yolov9-seg'"),
    ({"epochs": 0}, r"epochs must be an integer in \[1, "),
    ({"imgsz": 100}, "multiple of 32"),
    ({"conf": 2}, r"conf must be a number in \[0, 1\]"),
    ({"arch": "unet", "weights": "x.pt"}, "weights= is for YOLO"),
    ({"colour": "red"}, "unknown localizer setting"),
])
def test_config_errors_name_the_value(bad, message):
    with pytest.raises(DetectLabError, match=message):
        LocalizerConfig.from_dict(bad)


def test_heatmap_iou_on_a_split_is_a_mean_per_quartile(tmp_path):
    from detectlab.localize import heatmap_iou_on_split
    from detectlab.models import create_detector

    yds = write_yolo_dataset(make_masked_set(tmp_path / "set", n=20), tmp_path / "yolo")
    detector = create_detector("resnet18", pretrained=False, input_size=64).eval()
    out = heatmap_iou_on_split(detector, yds, split="train")
    assert out["images"] == len(yds.splits["train"])
    assert 0.0 <= out["mean_iou"] <= 1.0
    assert set(out["quartiles"]) == {"Q1", "Q2", "Q3", "Q4"}
    values = [v for v in out["quartiles"].values() if v is not None]
    assert values and all(0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize("q4,unet_dice,phrase", [(0.97, 0.5, "rising with area"), (0.5, 0.9, "not monotone"),
                                                  (0.97, 0.9, "contradicts [Petrželková 2024]")])
def test_findings_follow_the_measured_numbers(monkeypatch, q4, unet_dice, phrase):
    from detectlab.localize import defaults

    quart = {"Q1": {"map50": 0.1}, "Q2": {"map50": 0.5}, "Q3": {"map50": 0.8}, "Q4": {"map50": q4}}
    manifest = {"localizers": {
        "y": {"kind": "yolo", "imgsz": 128, "config": {"epochs": 3},
              "test": {"map50": 0.6, "quartiles": quart, "pixel": {"dice": 0.6}},
              "heatmap_iou": {"detector": "d", "mean_iou": 0.05, "images": 9}},
        "u": {"kind": "unet", "test": {"pixel": {"dice": unet_dice}}}}}
    monkeypatch.setattr("detectlab.models.manifest.read_manifest", lambda: manifest)
    text = " ".join(defaults.findings())
    assert phrase in text and "mAP50 0.60" in text and "mean IoU 0.050" in text


# --------------------------------------------------------------------------- the registry, evaluation, plots


@pytest.mark.parametrize("kind", ["yolo", "unet"])
def test_every_registered_kind_answers_the_same_interface(kind, tmp_path):
    from detectlab.localize.registry import kind_for_arch, kind_for_file, localizer_archs, localizer_kinds

    entry = localizer_kinds()[kind]
    assert entry.name == kind and entry.archs and entry.description
    assert kind_for_file(tmp_path / f"x{entry.suffix}") is entry
    for arch in entry.archs:
        assert kind_for_arch(arch) is entry and arch in localizer_archs()
        cfg = LocalizerConfig.from_dict({"arch": arch})
        assert cfg.kind == kind and cfg.name == entry.default_name(cfg)
    assert all(len(c) == 3 for c in entry.curves) and entry.curves
    # a pickled kind is the one whose file needs the user's trust; only it validates on a YOLO set (mAP)
    assert entry.pickled == (kind == "yolo") and entry.needs_yolo_set == (kind == "yolo")
    assert list(localizer_kinds()) == ["yolo", "unet"]   # the pickers' order: YOLO first


def _random_unet(imgsz: int = 64):
    from detectlab.localize import Localizer
    from detectlab.localize.unet import UNet

    torch.manual_seed(0)
    return Localizer("unet-random", "unet", UNet(width=4, depth=2).eval(), imgsz)


def test_a_unet_is_evaluated_on_the_folder_without_a_yolo_set(tmp_path, monkeypatch):
    """``evaluate_set`` on a U-Net reads the folder (no YOLO set written) and gives the numbers the written
    set gives; unusable pairs are left out as the writer leaves them out."""
    from detectlab.localize import evaluate_localizer, evaluate_set, heatmap_iou_on_split
    from detectlab.models import create_detector

    root = make_masked_set(tmp_path / "set", n=20)
    _save(root / "masks" / "s00_0.png", np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1)))  # not binary
    loc = _random_unet()
    detector = create_detector("resnet18", pretrained=False, input_size=64).eval()
    yds = write_yolo_dataset(root, tmp_path / "yolo", seed=1)
    written = evaluate_localizer(loc, yds, split="train", conf=0.0)
    written_heat = heatmap_iou_on_split(detector, yds, split="train")

    def no_yolo_set(*args, **kwargs):
        raise AssertionError("a U-Net evaluation wrote a YOLO set")

    monkeypatch.setattr("detectlab.localize.evaluate.write_yolo_dataset", no_yolo_set)
    result = evaluate_set(loc, root, split="train", seed=1, conf=0.0, detector=detector, detector_name="resnet18")
    heat = result.metrics.pop("heatmap_iou")
    assert result.metrics == written
    assert heat == {"detector": "resnet18", **written_heat} and result.heatmap == written_heat
    assert written["images"] == len(yds.splits["train"])
    rows = result.rows()
    assert [r["quartile"] for r in rows] == ["Q1", "Q2", "Q3", "Q4"] and rows[0]["area"] == "0.00-0.08"
    assert "mAP50" not in rows[0] and "heatmap_iou" in rows[0]
    out = result.write_csv(tmp_path / "csv" / "q.csv")
    lines = out.read_text().splitlines()
    assert lines[0] == "quartile,area,images,precision,recall,dice,heatmap_iou" and len(lines) == 5


def test_uploaded_weights_are_kept_by_content_only_when_trusted(tmp_path, monkeypatch):
    """An uploaded .pt is refused without trust; with it, its opcodes are read (never unpickled) and a copy
    named by its content is kept under DETECTLAB_HOME/weights."""
    from detectlab.localize import store_uploaded_weights

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    looks_like_yolo = tmp_path / "up.pt"
    looks_like_yolo.write_bytes(b"cultralytics.nn.tasks\nSegmentationModel\n.")   # a pickle stream, never loaded
    with pytest.raises(CheckpointError, match="run code as the server's user"):
        store_uploaded_weights(looks_like_yolo, trusted=False)
    kept = store_uploaded_weights(looks_like_yolo, trusted=True)
    assert kept.parent == tmp_path / "home" / "weights" and kept.read_bytes() == looks_like_yolo.read_bytes()
    assert store_uploaded_weights(looks_like_yolo, trusted=True) == kept
    (tmp_path / "garbage.pt").write_bytes(b"\xff not a pickle" * 8)
    with pytest.raises(CheckpointError, match="garbage.pt: cannot be read"):
        store_uploaded_weights(tmp_path / "garbage.pt", trusted=True)


def test_localizer_run_config_checks_the_numbers_first():
    from detectlab.localize import localizer_run_config

    cfg = localizer_run_config(arch="unet", epochs=2, imgsz=64, batch=4, seed=0, threads=1)
    assert cfg["kind"] == "localizer" and cfg["data"] == "" and cfg["trust_weights"] is False
    with pytest.raises(DetectLabError, match="multiple of 32"):
        localizer_run_config(arch="unet", epochs=2, imgsz=100, batch=4, seed=0, threads=1)


def test_the_catalogue_loads_a_localizer_once_per_file_version(tmp_path):
    from detectlab.catalog import load_localizer_by_name
    from detectlab.localize.unet import UNet, save_unet

    path = save_unet(UNet(width=4, depth=2), tmp_path / "mine.safetensors", {"imgsz": 64})
    first = load_localizer_by_name("", upload=str(path))
    assert first.kind == "unet" and first.imgsz == 64
    assert load_localizer_by_name("", upload=str(path)) is first            # cached
    (tmp_path / "up.pt").write_bytes(b"whatever")
    with pytest.raises(CheckpointError, match="tick 'I trust this .pt file'"):
        load_localizer_by_name("", upload=str(tmp_path / "up.pt"))
    with pytest.raises(CheckpointError, match="not a file path on the server"):
        load_localizer_by_name(str(path))


def test_localize_figures_show_the_measured_numbers_beside_table_4_8():
    from detectlab.localize.plots import quartile_figure, training_curves_figure
    from detectlab.papers import TABLE_4_8_MAP50

    px = {"dice": 0.5}
    metrics = {"map50": 0.6, "pixel": px, "quartiles": {q: {"map50": 0.1 * k, "pixel": px} for k, q in
                                                        enumerate(["Q1", "Q2", "Q3", "Q4"], 1)},
               "heatmap_iou": {"detector": "d", "mean_iou": 0.1, "quartiles": {q: 0.2 for q in "Q1 Q2 Q3 Q4".split()}}}
    fig = quartile_figure(metrics)
    assert [t.name for t in fig.data] == ["mAP50 (this localizer)", "mAP50, [Petrželková 2024] Table 4.8", "pixel dice",
                                          "heatmap↔mask IoU (d)"]
    assert list(fig.data[1].y) == [TABLE_4_8_MAP50[k] for k in ("all", "Q1", "Q2", "Q3", "Q4")]
    assert "Q1 0–0.08 · Q2 –0.16" in fig.layout.xaxis.title.text
    unet = training_curves_figure([{"epoch": 1, "train_loss": 1.0, "val_dice": 0.3, "val_iou": 0.2}])
    assert [t.name for t in unet.data] == ["dice + BCE loss", "val pixel dice", "val pixel IoU"]
    yolo = training_curves_figure([{"epoch": 1, "train/box_loss": 1.0, "metrics/mAP50(M)": 0.3}])
    assert [t.name for t in yolo.data] == ["box loss", "val mask mAP50"]


# --------------------------------------------------------------------------- reliability on unmanipulated photos

@pytest.mark.parametrize("size, marked, expect_warning", [
    ((128, 128), 0.10, None),                       # a region of usual size on a crop like the training ones
    ((128, 128), 0.42, ("large",)),                 # more than any demo region
    ((477, 720), 0.00, ("unlike",)),                # a camera photo: unlike the training crops, even if clean
    ((477, 720), 0.42, ("large", "unlike")),
])
def test_reliability_warning(size, marked, expect_warning):
    import torch

    from detectlab.localize import Localization, Region
    from detectlab.localize.reliability import reliability_warning

    h, w = size
    mask = np.zeros((h, w), bool)
    mask[: round(h * marked)] = True  # whole rows: the area is `marked` to a row
    result = Localization(torch.zeros(3, h, w), [Region(mask, 0.92, np.zeros((0, 2)))], conf=0.25)
    measured = {"heldout-full": {"images": 41, "mean": 0.0147, "median": 0.0, "max": 0.2119},
                "demo-real-test": {"images": 121, "mean": 0.001, "median": 0.0, "max": 0.0562}}
    r = reliability_warning(result, "unet-small", 128, measured)
    assert r.area == pytest.approx(marked, abs=1 / h)
    if expect_warning is None:
        assert r.warning == "" and not r.large and not r.unlike_training
        return
    assert r.large == ("large" in expect_warning) and r.unlike_training == ("unlike" in expect_warning)
    assert r.warning.startswith(f"unet-small marks {100 * marked:.0f} % of the image as manipulated")
    assert "1 % on average (max 21 %) of 41 held-out camera photos" in r.warning
    assert "0 % on average (max 6 %) of 121 real test crops of the demo" in r.warning
    assert ("720×477 image is unlike its training images" in r.warning) == ("unlike" in expect_warning)
    assert r.warning.endswith("treat the regions as unreliable.")
    unmeasured = reliability_warning(result, "trained-here", 128, {}).warning
    assert "not measured" in unmeasured


def test_shipped_localizers_have_measured_false_positive_areas(tmp_path):
    from detectlab.localize.localizer import shipped_localizers
    from detectlab.localize.reliability import measured_areas, measured_areas_of_file

    assert measured_areas_of_file(tmp_path / "unet-small.safetensors") == {}  # a user's file: not measured
    for name, path in shipped_localizers().items():
        m = measured_areas(name)
        assert measured_areas_of_file(path) == m
        assert m and {"demo-real-test", "heldout-crops", "heldout-full"} <= set(m), name
        assert all(0.0 <= m[k]["mean"] <= m[k]["max"] <= 1.0 and m[k]["images"] > 30 for k in m if k != "seconds")
