"""The app's API as gradio_client sees it: every public endpoint named, described and callable by keyword
with the CLI's detector names; internal events hidden."""

from __future__ import annotations

import re
import shutil
import zipfile

import pytest
from PIL import Image

#: The public endpoints, and only these: what README and the API page document.
PUBLIC = {"/detect", "/localize", "/fingerprints", "/degrade_score", "/attack", "/train", "/train_localizer",
          "/show_dataset", "/open_folder", "/upload_zip", "/delete_dataset"}
DEMO = "demo (real + 3 generators)"


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def api(client):
    return client.view_api(return_format="dict", print_info=False)


@pytest.fixture(scope="module")
def image(demo_root, tmp_path_factory):
    """One 128 px demo image (a generator's), under a name of this module."""
    src = sorted((demo_root / "pixel-shuffle").glob("*.png"))[0]
    dst = tmp_path_factory.mktemp("api-names") / f"api-{src.name}"
    shutil.copy(src, dst)
    with Image.open(dst) as im:
        assert im.size == (128, 128)
    return dst


def _handle(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def test_every_endpoint_is_named_described_and_public_only(api):
    assert api["unnamed_endpoints"] == {}
    names = set(api["named_endpoints"])
    assert names == PUBLIC, f"hidden or missing: {sorted(names ^ PUBLIC)}"
    assert not [n for n in names if re.search(r"_\d+$", n)]  # no /list_sets_1 duplicates
    for name, ep in api["named_endpoints"].items():
        assert len(ep["description"]) > 20, f"{name}: no description"
        for p in ep["parameters"]:
            assert p["parameter_name"] and p["parameter_name"].isidentifier(), (name, p)
            assert not re.fullmatch(r"parameter_\d+", p["parameter_name"]), (name, p)
            assert p.get("label") and not re.fullmatch(r"parameter_\d+", p["label"]), (name, p)
        for r in ep["returns"]:
            assert r.get("label") and not re.fullmatch(r"value_\d+", r["label"]), (name, r)


def test_detect_takes_cli_names_and_screen_labels(client, image):
    for name in ("cnn-resnet18", "shipped: cnn-resnet18"):
        verdict, overlay = client.predict(image_path=_handle(image), detector=name, method="gradcam++", opacity=0.4,
                                          api_name="/detect")
        assert 0.0 <= verdict["p_fake"] <= 1.0 and verdict["decision"] in ("real", "fake")
        assert verdict["detector"] == name
        with Image.open(overlay) as im:
            assert im.size == (128, 128)
    spectrum, _ = client.predict(image_path=_handle(image), detector="spectrum-durrall", api_name="/detect")
    assert 0.0 <= spectrum["p_fake"] <= 1.0
    # the held-out false-positive rate of the path that ran travels with the verdict
    from detectlab import config
    from detectlab.catalog import heldout_record

    record = heldout_record(config.CHECKPOINT_DIR / "spectrum-durrall.safetensors")
    assert spectrum["heldout_fp"] == record.photo_rate("resize")
    assert spectrum["heldout_warning"] == "; ".join(record.misses("resize"))


def test_attack_and_degrade_score_take_cli_names(client, image):
    out, _ = client.predict(image=_handle(image), detector="cnn-resnet18", method="pgd", eps=0.02, api_name="/attack")
    assert out["eps"] == 0.02 and out["p_fake_after"] < out["p_fake_before"]
    out, _ = client.predict(image=_handle(image), detectors="spectrum-durrall", jpeg_quality=50,
                            api_name="/degrade_score")
    assert [d["name"] for d in out["detectors"]] == ["spectrum-durrall"]
    assert 0.0 <= out["detectors"][0]["p_fake"] <= 1.0


def test_localize_takes_cli_names(client, demo_root):
    from detectlab import config
    from detectlab.localize.dataset import split_examples

    _, img, mask = split_examples(config.DEMO_INPAINT_DIR)[25]
    info, overlay, _ = client.predict(image_path=_handle(img), mask_path=_handle(mask), localizer="unet-small",
                                      detector="cnn-resnet18", conf=0.25, api_name="/localize")
    assert info["file"] == img.name and 0.0 <= info["pixel"]["dice"] <= 1.0
    assert 0.0 <= info["detector"]["heatmap_iou"] <= 1.0


def test_fingerprints_and_data_endpoints(client, demo_root, tmp_path):
    status, *_ = client.predict(choice=DEMO, folder="", gens=["pixel-shuffle"], n=2, single_file=None,
                                api_name="/fingerprints")
    assert "Error" not in status and "pixel-shuffle" in status
    for name, kwargs in (("/show_dataset", {"label": DEMO}), ("/open_folder", {"text": "demo"})):
        status, counts, *_ = client.predict(**kwargs, api_name=name)
        assert "3 generators" in status or "demo" in status, (name, status)
        assert {row[1] for row in counts["data"]} >= {"pixel-shuffle", "resize-conv", "transposed-conv"}
    archive = tmp_path / "apinames.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for cls, value in (("real", 40), ("gan", 200)):
            for i in range(3):
                path = tmp_path / f"{cls}{i}.png"
                Image.new("RGB", (16, 16), (value + i,) * 3).save(path)
                zf.write(path, f"{cls}/{i}.png")
    status, *_, picker = client.predict(file=_handle(archive), api_name="/upload_zip")
    assert "apinames" in status and "6 images" in status, status
    status, *_ = client.predict(label="uploaded: apinames", confirmed=True, api_name="/delete_dataset")
    assert "Deleted **apinames**" in status


def test_train_endpoints_answer_by_name(client):
    """A bad field queues nothing and is named: the endpoint and its parameter names answer, cheaply."""
    from detectlab.train import PRESETS

    _, message, *_ = client.predict(preset=next(iter(PRESETS)), data_choice=DEMO, folder="", epochs=0,
                                    api_name="/train")
    assert "epochs" in message
    _, message, *_ = client.predict(arch="unet", data_choice="demo-inpainted (images + masks)", folder="", epochs=0,
                                    weights=None, api_name="/train_localizer")
    assert "epochs" in message
