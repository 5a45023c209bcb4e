"""The Detect capability on the shipped detector: heatmaps, API endpoint, batch."""

from __future__ import annotations

import pytest

from detectlab.detect.analyze import analyze_file, load_detector
from detectlab.catalog import shipped_checkpoints


@pytest.fixture(scope="module")
def cnn():
    return load_detector(shipped_checkpoints()["cnn-resnet18"])


def test_heatmap_of_a_synthetic_image_is_informative(cnn, demo_root):
    det, meta = cnn
    a = analyze_file(det, demo_root / "pixel-shuffle" / "p0001_c0.png", meta["threshold"])
    (name, m), = a.maps
    assert m.shape == (128, 128)  # the input image's size
    assert float(m.std()) > 0.05  # not constant
    assert a.decision in ("fake", "real") and 0 <= a.p_fake <= 1


def test_gradio_client_endpoint(app_url, demo_root):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    result, heat = client.predict(handle_file(str(demo_root / "transposed-conv" / "p0002_c0.png")), "", "gradcam", 0.5,
                                  api_name="/detect")
    assert set(result) >= {"p_fake", "decision", "detector"}
    assert 0.0 <= result["p_fake"] <= 1.0
    from PIL import Image

    assert Image.open(heat).size == (128, 128)
