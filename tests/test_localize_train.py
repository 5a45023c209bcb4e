"""Localizer training offline (ultralytics YOLOv8-seg and the U-Net), prediction, cancel, the CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.localize import load_localizer, localize_image, train_localizer
from detectlab.progress import CancelToken, Cancelled
from tests.test_localize import make_masked_set


@pytest.fixture
def no_network(monkeypatch):
    """Every attempt to reach the network (or ultralytics' download helpers) is recorded and fails."""
    attempts: list[str] = []

    def refuse(what):
        def _refuse(*args, **kwargs):
            attempts.append(f"{what}{args[:2]}")
            raise OSError(f"network disabled in this test ({what})")
        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    from detectlab.localize.yolo import _yolo_class

    _yolo_class()  # sets the offline environment before ultralytics is imported
    import ultralytics.utils.downloads as downloads

    for name in ("safe_download", "download", "get_github_assets", "is_online"):
        monkeypatch.setattr(downloads, name, refuse(f"ultralytics.{name}"))
    original = downloads.attempt_download_asset

    def local_only(file, *args, **kwargs):
        # ultralytics routes every weights path through here; a local file is returned as is
        if not Path(str(file)).exists():
            return refuse("ultralytics.attempt_download_asset")(file)
        return original(file, *args, **kwargs)

    monkeypatch.setattr(downloads, "attempt_download_asset", local_only)
    return attempts


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_masked_set(tmp_path_factory.mktemp("loc") / "set", n=24, size=64)


@pytest.mark.parametrize("arch", ["yolov8n-seg", "unet"])
def test_two_epoch_training_offline_then_predict_masks_of_the_image_size(arch, tiny_localizer, tmp_path, no_network):
    """The session's shared tiny localizer (tests/conftest.py: trained once per architecture, 2 epochs, 64 px,
    network refused) reported what a run's queue and curves need, and predicts masks of each image's size."""
    tiny = tiny_localizer(arch)
    assert tiny.network_attempts == [], tiny.network_attempts
    assert [e["epoch"] for e in tiny.epochs] == [1, 2]  # live per-epoch rows for the run queue's curves
    ckpt = tiny.checkpoint
    assert ckpt.name == (f"localizer-{arch}.pt" if arch != "unet" else "unet-w16.safetensors") and ckpt.is_file()
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    assert meta["imgsz"] == 64 and len(meta["history"]) == 2 and meta["train_seconds"] > 0
    assert sorted(meta["dataset"]["splits"]) == ["test", "train", "val"]
    test = tiny.result["metrics"]["test"]
    assert 0.0 <= test["pixel"]["dice"] <= 1.0 and set(test["quartiles"]) == {"Q1", "Q2", "Q3", "Q4"}
    if arch != "unet":
        assert 0.0 <= test["map50"] <= 1.0 and 0.0 <= test["map50_95"] <= test["map50"] + 1e-9
    assert any("Training" in d for d in tiny.progress)
    # no work files left behind
    assert sorted(p.name for p in ckpt.parent.iterdir()) == sorted([ckpt.name, ckpt.with_suffix(".json").name])

    threads = torch.get_num_threads()
    localizer = load_localizer(ckpt, allow_pickle=True)
    image = tiny.data / "images" / "s00_0.png"
    out = localize_image(localizer, image, mask=tiny.data / "masks" / "s00_0.png", conf=0.0)
    assert out.image.shape == (3, 64, 64)
    for region in out.regions:
        assert region.mask.shape == (64, 64) and region.mask.dtype == bool and 0 <= region.confidence <= 1
    assert out.predicted_mask().shape == (64, 64)
    assert out.pixel() is not None and out.tp_fp_fn().size[0] >= 64
    # an image of another size and shape: masks come back at its own size
    odd = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)).save(odd)
    out = localize_image(localizer, odd, conf=0.0)
    assert torch.get_num_threads() == threads  # ultralytics' process-wide thread change is undone
    assert out.predicted_mask().shape == (80, 100)
    assert all(r.mask.shape == (80, 100) for r in out.regions)
    assert no_network == [], no_network


def test_cancel_stops_training_and_leaves_no_checkpoint(tiny_set, tmp_path, no_network):
    token = CancelToken()

    def progress(done, total=None, desc=""):
        if desc.startswith("Training"):
            token.cancel()

    with pytest.raises(Cancelled):
        train_localizer({"arch": "yolov8n-seg", "data": str(tiny_set), "epochs": 3, "imgsz": 64, "batch": 8,
                         "out_dir": str(tmp_path / "out")}, progress=progress, cancel=token)
    assert list((tmp_path / "out").iterdir()) == []
    work = list((tmp_path.parent).glob("**/work/localizer-*"))
    assert work == [], work


def test_cli_predict_writes_masks_and_overlays(tiny_set, tmp_path, no_network, capsys, monkeypatch):
    from detectlab.cli import main

    assert main(["localize", "train", "--arch", "unet", "--data", str(tiny_set), "--epochs", "1", "--imgsz", "64",
                 "--out", str(tmp_path / "ckpt"), "--name", "unet-test"]) == 0
    ckpt = tmp_path / "ckpt" / "unet-test.safetensors"
    rc = main(["localize", "predict", str(ckpt), str(tiny_set / "images" / "s01_0.png"),
               str(tiny_set / "images" / "s01_1.png"), "--out", str(tmp_path / "pred"), "--conf", "0"])
    assert rc == 0
    for stem in ("s01_0", "s01_1"):
        from detectlab.data import load_mask

        assert load_mask(tmp_path / "pred" / f"{stem}_mask.png").shape == (64, 64)
        assert (tmp_path / "pred" / f"{stem}_overlay.png").is_file()
    with monkeypatch.context() as m:  # the U-Net is evaluated on the folder: no YOLO set is written for it
        m.setattr("detectlab.localize.evaluate.write_yolo_dataset",
                  lambda *a, **k: pytest.fail("localize eval wrote a YOLO set for a U-Net"))
        assert main(["localize", "eval", str(ckpt), "--data", str(tiny_set), "--csv", str(tmp_path / "q.csv"),
                     "--json", str(tmp_path / "q.json")]) == 0
    rows = (tmp_path / "q.csv").read_text().splitlines()
    assert rows[0] == "quartile,area,images,precision,recall,dice" and len(rows) == 5
    assert json.loads((tmp_path / "q.json").read_text())["images"] > 0
    # bad input: a clear message and exit code 2, not a traceback
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["localize", "predict", str(tmp_path / "junk.pt"), str(tiny_set / "images"),
                 "--out", str(tmp_path / "p2")]) == 2
    assert "I trust this .pt file" in capsys.readouterr().err
    assert main(["localize", "predict", str(tmp_path / "junk.pt"), str(tiny_set / "images"),
                 "--out", str(tmp_path / "p2"), "--trust-pt"]) == 2
    assert "junk.pt: cannot be loaded" in capsys.readouterr().err
    assert not np.any([p.exists() for p in [tmp_path / "p2" / "s00_0_mask.png"]])
