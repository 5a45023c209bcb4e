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
          "/run_status", "/show_dataset", "/open_folder", "/upload_zip", "/delete_dataset"}
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
        verdict, overlay = client.predict(image=_handle(image), detector=name, heatmap="gradcam++", opacity=0.4,
                                          api_name="/detect")
        assert 0.0 <= verdict["p_fake"] <= 1.0 and verdict["decision"] in ("real", "fake")
        assert verdict["detector"] == name
        with Image.open(overlay) as im:
            assert im.size == (128, 128)
    spectrum, _ = client.predict(image=_handle(image), detector="spectrum-durrall", api_name="/detect")
    assert 0.0 <= spectrum["p_fake"] <= 1.0
    # the held-out false-positive rate of the path that ran travels with the verdict
    from detectlab import config
    from detectlab.catalog import heldout_record

    record = heldout_record(config.CHECKPOINT_DIR / "spectrum-durrall.safetensors")
    assert spectrum["heldout_fp"] == record.photo_rate("resize")
    assert spectrum["heldout_warning"] == "; ".join(record.misses("resize"))
    assert spectrum["heldout_designs"] == record.designs and len(record.designs) == 2
    assert spectrum["heldout_designs_caught"] == pytest.approx(record.designs_caught)


def test_attack_and_degrade_score_take_cli_names(client, image):
    out, _ = client.predict(image=_handle(image), detector="cnn-resnet18", method="pgd", eps=0.02, api_name="/attack")
    assert out["eps"] == 0.02 and out["p_fake_after"] < out["p_fake_before"]
    out, _ = client.predict(image=_handle(image), detector="spectrum-durrall", jpeg_quality=50,
                            api_name="/degrade_score")
    assert [d["name"] for d in out["detectors"]] == ["spectrum-durrall"]
    assert 0.0 <= out["detectors"][0]["p_fake"] <= 1.0


def test_localize_takes_cli_names(client, demo_root):
    from detectlab import config
    from detectlab.localize.dataset import split_examples

    _, img, mask = split_examples(config.DEMO_INPAINT_DIR)[25]
    info, overlay, _ = client.predict(image=_handle(img), mask=_handle(mask), localizer="unet-small",
                                      detector="cnn-resnet18", conf=0.25, api_name="/localize")
    assert info["file"] == img.name and 0.0 <= info["pixel"]["dice"] <= 1.0
    assert 0.0 <= info["detector"]["heatmap_iou"] <= 1.0


def test_fingerprints_and_data_endpoints(client, demo_root, tmp_path):
    status, *_ = client.predict(data=DEMO, folder="", generators=["pixel-shuffle"], n=2, image=None,
                                api_name="/fingerprints")
    assert "Error" not in status and "pixel-shuffle" in status
    for name, kwargs in (("/show_dataset", {"data": DEMO}), ("/open_folder", {"folder": "demo"})):
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
    status, *_, picker = client.predict(archive=_handle(archive), api_name="/upload_zip")
    assert "apinames" in status and "6 images" in status, status
    assert picker == "uploaded: apinames"
    status = client.predict(data="uploaded: apinames", confirmed=True, api_name="/delete_dataset")
    assert status == "Deleted apinames and its files."


def test_train_endpoints_answer_by_name(client):
    """A bad field queues nothing and is named: the endpoint and its parameter names answer, cheaply."""
    from gradio_client.exceptions import AppError

    from detectlab.train import PRESETS

    with pytest.raises(AppError, match="epochs"):
        client.predict(preset=next(iter(PRESETS)), data=DEMO, folder="", epochs=-1, api_name="/train")
    with pytest.raises(AppError, match="epochs"):
        client.predict(arch="unet", data="demo-inpainted (images + masks)", folder="", epochs=0,
                       api_name="/train_localizer")
    with pytest.raises(AppError, match="no-such-run"):
        client.predict(run_id="no-such-run", api_name="/run_status")


def _printed_examples(page) -> dict[str, str]:
    """The Python snippet the API page prints for each endpoint, as a user copies it."""
    page.get_by_text("Use via API").click()
    snippets = page.locator("code", has_text="client.predict(")
    snippets.first.wait_for()
    out = {}
    for text in snippets.all_inner_texts():
        name = re.search(r'api_name="(/\w+)"', text)
        if name and "from gradio_client import" in text:
            out[name.group(1)] = text
    return out


def test_every_endpoint_runs_exactly_as_the_api_page_prints_it(page, tmp_path):
    """Copy each snippet from the API page, run it as a script: it works (or, where the example cannot
    name a user's file or data set, it fails with a plain sentence saying what to send)."""
    import subprocess
    import sys

    from detectlab.ui import state

    printed = _printed_examples(page)
    assert set(printed) == PUBLIC
    needs_users_data = {"/upload_zip": "choose a .zip file first", "/delete_dataset": "is not an imported data set"}
    before = {r.id for r in state.manager().store.list()}
    failures = []
    try:
        for name, code in sorted(printed.items()):
            assert "Hello!!" not in code and "github" not in code, (name, code)
            script = tmp_path / f"{name[1:]}.py"
            script.write_text(code)
            run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
            message = (run.stderr.strip().splitlines() or [""])[-1]
            if name in needs_users_data:
                if run.returncode == 0 or needs_users_data[name] not in message:
                    failures.append((name, "should fail with a plain sentence", run.stderr[-600:]))
                elif re.search(r"&#x?\w+;|\*\*|`", message):
                    failures.append((name, "markup in the message", message))
            elif run.returncode != 0 or not run.stdout.strip() or "Error" in run.stdout:
                failures.append((name, run.stdout[-300:], run.stderr[-600:]))
    finally:  # the /train and /train_localizer examples queued runs: cancel them, and see their workers end
        store = state.manager().store
        for record in store.list():
            if record.id not in before:
                state.manager().cancel(record.id)
                store.wait_for(record.id, lambda r: r.status not in ("queued", "running"), timeout=60)
    assert not failures, failures
