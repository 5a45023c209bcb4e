"""Train tab in headless chromium: launch a tiny run, watch its curve grow, find its checkpoint in Detect."""

from __future__ import annotations

import shutil

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

EPOCHS = 8


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test(request):
    """Cancel what a test left queued or running: a worker outlives the app (by design), and one left training
    would slow every later test on a shared machine."""
    yield
    if "page" not in request.fixturenames:
        return
    from detectlab.ui import state

    m = state.manager()
    for r in m.store.list():
        if r.status in ("queued", "running"):
            m.cancel(r.id)
    for r in m.store.list():
        if r.status == "running":
            m.store.wait_for(r.id, lambda x: x.status != "running", 30)


@pytest.fixture
def tiny_set(demo_root, tmp_path_factory):
    """40 real and 40 synthetic demo images in a data set of their own, inside the data roots."""
    from detectlab import config

    root = config.datasets_dir() / tmp_path_factory.mktemp("tiny").name
    for src, dst in (("real", "real"), ("pixel-shuffle", "tinygan")):
        (root / dst).mkdir(parents=True)
        for f in sorted((demo_root / src).glob("*.png"))[:40]:
            shutil.copy(f, root / dst / f.name)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _fill_number(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def train_tab_on(page, root) -> None:
    """Open the Train tab on the data set folder ``root`` (its generators listed: ``tiny_set``'s tinygan)."""
    page.get_by_role("tab", name="Train").click()
    folder = page.get_by_label("…or a folder inside the data roots", exact=True)
    folder.fill(str(root))
    folder.press("Enter")
    expect(page.locator("#train-generators")).to_contain_text("tinygan", timeout=30_000)  # the set's own generators


def _launch(page, button: str) -> str:
    """Press a launch button; the id of the run it queued (the selection box shows it)."""
    page.locator(button).click()
    selected = page.locator("#train-selected textarea, #train-selected input").first
    expect(selected).not_to_have_value("", timeout=30_000)
    return selected.input_value()


@pytest.fixture
def tiny_heldout(tmp_path, monkeypatch):
    """A held-out set of three 200x150 photos and two crops, standing in for assets/heldout."""
    import json

    import numpy as np
    from PIL import Image

    from detectlab import heldout

    rng = np.random.default_rng(0)
    (tmp_path / "full").mkdir()
    (tmp_path / "crops").mkdir()
    photos = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)).save(tmp_path / "full" / f"p{i}.png")
        photos.append({"file": f"full/p{i}.png", "package": f"pkg{i % 2}"})
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "crops" / f"c{i}.png")
    (tmp_path / "manifest.json").write_text(json.dumps({"about": "test", "photos": photos, "packages": [],
                                                        "crop_files": [{"file": "c0.png"}, {"file": "c1.png"}]}))
    monkeypatch.setattr(heldout, "HELDOUT_DIR", tmp_path)
    return tmp_path


def test_launch_watch_finish_and_use_checkpoint(page, tiny_set, tiny_heldout):
    train_tab_on(page, tiny_set)
    _fill_number(page, "Input size (px)", 32)
    _fill_number(page, "Epochs", EPOCHS)
    _fill_number(page, "Batch size", 16)
    page.locator("#train-name textarea, #train-name input").first.fill("browser-run")
    run_id = _launch(page, "#train-launch")

    progress = page.locator("#train-progress")
    expect(progress).to_contain_text(f"Run {run_id}: running", timeout=120_000)
    # decoding first: the phase shows, then training; the per-step loss is drawn soon after training starts,
    # before its first epoch ends (90 s: a step takes seconds on a busy 2-core machine)
    expect(progress).to_contain_text(f"Run {run_id}: running — train resnet18", timeout=120_000)
    expect(page.locator("#train-curves .legendtext", has_text="per step")).to_be_visible(timeout=90_000)
    # the per-epoch train loss: the first trace with markers
    points = page.locator("#train-curves .scatterlayer .trace").filter(
        has=page.locator(".points path")).first.locator(".points path")
    # mid-run: the epoch curve has points while the run still says "running" (checked in one DOM snapshot)
    page.wait_for_function(
        """marker => {
               const traces = [...document.querySelectorAll('#train-curves .scatterlayer .trace')];
               return traces.some(t => t.querySelectorAll('.points path').length >= 1)
                   && document.querySelector('#train-progress').innerText.includes(marker);
           }""",
        arg=f"Run {run_id}: running", timeout=300_000)
    mid = points.count()
    expect(progress).to_contain_text(f"Run {run_id}: finished", timeout=300_000)
    expect(points).to_have_count(EPOCHS, timeout=30_000)  # the end: every epoch drawn
    assert 1 <= mid < EPOCHS, mid  # drawn while the run went on, then grew
    expect(page.locator("#train-history")).to_contain_text(run_id)
    # the results panel: headline numbers, the confusion counts and a row per generator
    expect(page.locator("#train-results")).to_contain_text(f"Test split of run {run_id}")
    expect(page.locator("#train-results")).to_contain_text("Confusion: real→real")
    expect(page.locator("#train-results-table")).to_contain_text("tinygan")
    # a test split of a few images says so, with the accuracy's interval
    expect(page.locator("#train-results")).to_contain_text("small test split")
    expect(page.locator("#train-results")).to_contain_text("95 % Wilson interval")
    # the checks the CLI makes, from the results panel; their numbers stay with the run
    checks = page.locator("#train-checks")
    page.locator("#train-calibrate").click()
    expect(checks).to_contain_text(f"Calibrated run {run_id}: temperature", timeout=180_000)
    expect(page.locator("#train-results")).to_contain_text("Calibration: temperature", timeout=10_000)
    page.locator("#train-heldout").click()
    expect(checks).to_contain_text(f"Held-out evaluation of run {run_id}:", timeout=180_000)
    expect(checks).to_contain_text("3 held-out photos full size")
    expect(page.locator("#train-results")).to_contain_text("Held-out evaluation: share of real images", timeout=10_000)

    page.get_by_role("tab", name="Detect").click()
    page.locator("#detect-refresh").click()
    page.locator("#detect-detector input").first.click()
    expect(page.get_by_role("option", name=run_id).or_(
        page.locator("[role=option]", has_text=run_id))).to_be_visible(timeout=20_000)


@pytest.fixture
def masked_set(tmp_path_factory):
    """24 images with ellipse masks (images/ + masks/) inside the data roots."""
    from detectlab import config
    from tests.test_localize import make_masked_set

    root = config.datasets_dir() / tmp_path_factory.mktemp("masked").name
    make_masked_set(root, n=24, size=64)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_localizer_run_from_the_queue_then_delete_it(page, masked_set):
    """A YOLOv8-seg localizer is another run kind: launched here, curves per epoch, then in the Localize tab."""
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-kind").get_by_text("localizer", exact=True).click()
    expect(page.locator("#train-loc-launch")).to_be_visible()
    expect(page.locator("#train-launch")).to_be_hidden()
    page.locator("#train-loc-folder textarea, #train-loc-folder input").first.fill(str(masked_set))
    _fill_number(page, "Localizer epochs", 2)
    _fill_number(page, "Image size (multiple of 32)", 64)
    _fill_number(page, "Localizer batch size", 8)
    page.locator("#train-loc-name textarea, #train-loc-name input").first.fill("browser-localizer")
    run_id = _launch(page, "#train-loc-launch")
    progress = page.locator("#train-progress")
    expect(progress).to_contain_text(f"Run {run_id}: finished", timeout=300_000)
    expect(progress).to_contain_text("test mAP50")
    expect(progress).to_contain_text("Localize tab")
    # both epochs drawn: the mask-loss trace has a point per epoch
    expect(page.locator("#train-curves .legendtext", has_text="mask loss")).to_be_visible()
    expect(page.locator("#train-curves .scatterlayer .trace").first.locator(".points path")).to_have_count(2)
    expect(page.locator("#train-results-table")).to_contain_text("Q1")
    # the history lists it as a localizer run (read from the store: the table re-renders every second, and
    # its virtual rows may show a moment's mix of two rows while a long history shifts)
    from detectlab.ui import state

    record = state.manager().store.get(run_id)
    assert record.kind == "localizer" and record.config["arch"] == "yolov8n-seg" and record.name == "browser-localizer"
    expect(page.locator("#train-history")).to_contain_text(run_id)

    page.get_by_role("tab", name="Localize").click()
    page.locator("button:visible", has_text="↻").first.click()  # the Localize tab's picker refresh
    page.locator("#localize-localizer input").first.click()
    expect(page.locator("#localize-localizer [role=option]", has_text=f"run-{run_id}")).to_be_visible(timeout=20_000)
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Train").click()
    page.locator("#train-delete").click()
    action = page.locator("#train-action")
    expect(action).to_contain_text(f"Tick confirm to delete run {run_id}")
    page.locator("#train-delete-confirm").get_by_role("checkbox").check()
    page.locator("#train-delete").click()
    expect(action).to_contain_text(f"Deleted run {run_id}")
    expect(page.locator("#train-history")).not_to_contain_text(run_id)


def test_a_data_set_added_after_the_page_loaded_is_offered_when_the_picker_opens(page, tiny_set):
    """Pickers are read when opened, not fixed at server start."""
    from detectlab import config

    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#train-data")).to_be_visible()
    late = config.datasets_dir() / f"late-{tiny_set.name}"
    shutil.copytree(tiny_set, late)  # e.g. a zip imported in another browser tab
    try:
        page.locator("#train-data input").first.click()
        option = page.locator("#train-data [role=option]", has_text=f"uploaded: {late.name}")
        expect(option).to_be_visible(timeout=20_000)
        option.click()
        expect(page.locator("#train-generators")).to_contain_text("tinygan")  # picked: its generators load
    finally:
        shutil.rmtree(late, ignore_errors=True)


# --------------------------------------------------------------------------- the form as wiring (no browser)

AUG = "CNNDetection augmentation (blur+JPEG+downsize, p=0.5)"
ADV = "FGSM adversarial training"


@pytest.mark.parametrize("preset, epochs, lr, augment, p, kinds, eps", [
    (AUG, 10, 1e-4, True, 0.5, ["blur", "jpeg", "downsize"], ""),
    (ADV, 4, 1e-3, False, 0.3, ["blur", "jpeg", "downsize", "patch"], "0.005, 0.01, 0.02"),
])
def test_presets_fill_the_form(preset, epochs, lr, augment, p, kinds, eps):
    from detectlab.ui.train_tab import _PRESET_OUTPUTS, apply_preset

    values = dict(zip(_PRESET_OUTPUTS, apply_preset(preset)))
    assert (values["arch"], values["epochs"], values["lr"], values["batch"]) == ("resnet18", epochs, lr, 32)
    assert (values["augment"], values["aug_p"], values["aug_kinds"], values["adv_eps"]) == (augment, p, kinds, eps)
    if augment:
        assert (values["blur_max"], values["jpeg_min"], values["scale_min"]) == (3.0, 30, 0.5)
    assert preset in values["preset_note"]
    assert values["init_from"] == "cnn-resnet18"  # both robust twins re-train the shipped CNN


def test_the_start_from_picker_offers_shipped_detectors_and_runs_by_the_name_init_from_takes(monkeypatch):
    from detectlab.ui import state, train_tab

    monkeypatch.setattr(state, "detector_choices", lambda: {
        "shipped: cnn-resnet18": "a", "run 20261127-141827-410724 half (resnet18, finished, acc 0.973)": "b"})
    assert train_tab.init_choices() == [("none: the architecture's default initialisation", ""),
                                        ("shipped: cnn-resnet18", "cnn-resnet18"),
                                        ("run 20261127-141827-410724 half (resnet18, finished, acc 0.973)",
                                         "20261127-141827-410724")]


def test_the_preset_fills_the_start_from_picker_in_the_browser(page):
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-preset input").click()
    page.get_by_role("option", name=AUG).click()
    expect(page.locator("#train-init-from input")).to_have_value("shipped: cnn-resnet18", timeout=30_000)
    expect(page.locator("#train-epochs input")).to_have_value("10")


@pytest.mark.parametrize("preset, default", [(AUG, "cnn-resnet18-aug"), (ADV, "cnn-resnet18-adv")])
def test_launching_a_preset_as_shown_queues_the_shipped_default_config(preset, default, monkeypatch, demo_root):
    """Pick a preset, leave the form as it fills, launch: the queued run trains what the shipped default trained."""
    from detectlab.catalog import DEMO_LABEL
    from detectlab.train import TrainConfig
    from detectlab.train.defaults import DEFAULTS
    from detectlab.ui import state, train_tab

    queued = {}

    class Manager:
        def submit(self, cfg, name=""):
            queued.update(cfg)
            raise RuntimeError("stop here")  # the form's outcome is all this test needs

    monkeypatch.setattr(state, "manager", lambda: Manager())
    form = dict(zip(train_tab._PRESET_OUTPUTS, train_tab.apply_preset(preset)))
    from detectlab.catalog import default_generators, demo_generators
    from detectlab.generators.designs import TRAIN, designs_in

    ticked = default_generators(demo_root, demo_generators())  # the form's generators as it opens on the demo
    train_tab.launch(preset, DEMO_LABEL, "", ticked, form["arch"], form["input_size"], form["epochs"], form["iterations"],
                     form["lr"], form["wd"], form["batch"], form["weighted"], form["hflip"], form["augment"],
                     form["aug_p"], form["aug_kinds"], form["blur_max"], form["jpeg_min"], form["scale_min"],
                     form["patch_min"], form["adv_eps"], 1, 0, "", form["init_from"])
    expected = TrainConfig(**DEFAULTS[default][0]).to_dict()
    got = TrainConfig.from_dict(queued).to_dict()
    for key in ("arch", "input_size", "epochs", "batch_size", "lr", "weight_decay", "adv_eps", "adv_fraction",
                "weighted_sampling", "hflip", "seed", "init_from"):
        assert got[key] == expected[key], key
    ga, ea = got["augment"], expected["augment"]
    for key in ("blur_p", "jpeg_p", "downsize_p", "patch_p", "blur_sigma", "jpeg_quality", "downsize_scale"):
        assert tuple(ga[key]) == tuple(ea[key]) if isinstance(ea[key], tuple) else ga[key] == ea[key], key
    # the form ticks the demo's train group of designs when it opens; the shipped ResNet-18 twins, as cnn-resnet18
    # which they start from, trained on three of them (their DEFAULTS entries name them)
    assert sorted(got["generators"]) == sorted(designs_in(TRAIN)) and got["data"] == str(demo_root)
    assert set(DEFAULTS[default][0].get("generators") or designs_in(TRAIN)) <= set(got["generators"])


# --------------------------------------------------------------------------- cancel, ETA, identical launches

def _seed(page, value):
    _fill_number(page, "Seed", value)


def _cancel_and_time(page, progress, run_id) -> tuple[float, float]:
    """Click Cancel; seconds from the click until the run ended "cancelled" (as recorded) and until the page said so."""
    import time

    from detectlab.ui import state

    clicked = time.time()
    page.locator("#train-cancel").click()
    expect(progress).to_contain_text(f"Run {run_id}: cancelled", timeout=30_000)
    shown = time.time() - clicked
    record = state.manager().store.get(run_id)
    assert record.status == "cancelled", (record.status, record.error)
    return record.finished - clicked, shown


def test_cancel_during_decode_ends_cancelled_within_5_s(page):
    """A ResNet-18 run on the demo spends its first minutes decoding: the phase shows progress and an ETA, and a
    cancel ends the run "cancelled" (never "failed") within 5 s of the click."""
    import time

    page.get_by_role("tab", name="Train").click()
    _seed(page, int(time.time()) % 100_000 + 1000)  # never identical to an earlier run
    run_id = _launch(page, "#train-launch")
    progress = page.locator("#train-progress")
    expect(progress).to_contain_text(f"Run {run_id}: running — decode train images", timeout=180_000)
    expect(progress).to_contain_text("left in this phase", timeout=30_000)
    expect(progress).to_contain_text("decode train images")  # still decoding when the cancel comes
    ended, shown = _cancel_and_time(page, progress, run_id)
    print(f"cancel during decode: ended cancelled {ended:.1f} s after the click, shown after {shown:.1f} s")
    assert ended < 5, ended
    expect(progress).not_to_contain_text("failed")


def test_training_eta_identical_launch_the_running_run_on_a_fresh_page_and_cancel(page, browser, app_url, tiny_set):
    import time

    train_tab_on(page, tiny_set)
    _fill_number(page, "Input size (px)", 32)
    _fill_number(page, "Iterations (0 = use epochs)", 3000)
    _fill_number(page, "Batch size", 16)
    seed = int(time.time()) % 100_000 + 200_000
    _seed(page, seed)
    run_id = _launch(page, "#train-launch")
    progress = page.locator("#train-progress")
    page.wait_for_function(
        """id => { const t = document.querySelector('#train-progress').innerText;
                   return t.includes(`Run ${id}: running — train resnet18`) && t.includes('left in this phase'); }""",
        arg=run_id, timeout=180_000)

    # the same form again: named, not queued
    page.locator("#train-launch").click()
    action = page.locator("#train-action")
    expect(action).to_contain_text(f"An identical run {run_id} is already running", timeout=30_000)
    expect(page.locator("#train-history tr", has_text="queued")).to_have_count(0)

    # another seed is another run: it queues behind; cancelled while queued it becomes the newest ended run
    _seed(page, seed + 1)
    selected = page.locator("#train-selected textarea, #train-selected input").first
    page.locator("#train-launch").click()
    expect(selected).not_to_have_value(run_id, timeout=30_000)
    queued_id = selected.input_value()
    expect(progress).to_contain_text(f"Run {queued_id}: queued", timeout=30_000)
    page.locator("#train-cancel").click()
    expect(progress).to_contain_text(f"Run {queued_id}: cancelled", timeout=30_000)

    # a fresh page shows the running run, not the newest (cancelled) one
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = context.new_page()
        fresh.goto(app_url)
        fresh.get_by_role("tab", name="Train").click()
        fresh_progress = fresh.locator("#train-progress")
        expect(fresh_progress).to_contain_text(f"Run {run_id}: running", timeout=60_000)
        # cancel from there (nothing selected: the run it shows) while it trains: cancelled within 5 s
        ended, shown = _cancel_and_time(fresh, fresh_progress, run_id)
        print(f"cancel during training: ended cancelled {ended:.1f} s after the click, shown after {shown:.1f} s")
        assert ended < 5, ended
    finally:
        context.close()


def test_the_page_shows_the_running_run_then_the_newest_queued_then_the_newest():
    from types import SimpleNamespace as R

    from detectlab.ui.train_tab import default_run

    runs = [R(id="c", status="cancelled", created=3), R(id="q1", status="queued", created=2.5),
            R(id="r", status="running", created=2), R(id="q0", status="queued", created=1)]
    assert default_run(runs).id == "r"
    assert default_run([x for x in runs if x.id != "r"]).id == "q1"
    assert default_run([runs[0]]).id == "c" and default_run([]) is None


@pytest.mark.parametrize("stage, eta, expected", [
    ("decode train images", 70.0, "decode train images: 40/100 (40 %), about 1 min 10 s left in this phase"),
    ("extract backbone features of the train split", 9.0, "(40 %), about 9 s left in this phase"),
    ("train resnet18 (epoch 2/5)", 125.0, "about 2 min 05 s left in this phase"),
    ("score the test split", None, "score the test split: 40/100 (40 %), measuring its speed"),
])
def test_the_status_line_shows_progress_and_an_eta_in_every_phase(stage, eta, expected):
    from detectlab.runs.store import RunRecord
    from detectlab.ui.train_tab import _progress_md

    r = RunRecord(id="x", name="", status="running", config={}, created=0, step=40, total=100, stage=stage, eta=eta)
    assert expected in _progress_md(r)


def test_an_identical_launch_is_named_and_queued_on_the_second_click(monkeypatch):
    from types import SimpleNamespace as R

    from detectlab.ui import state, train_tab

    queued = []
    twin = R(id="run-7", name="first", status="finished")

    class Manager:
        def identical(self, cfg):
            return twin

        def submit(self, cfg, name=""):
            queued.append(cfg)
            return R(id="run-8")

    monkeypatch.setattr(state, "manager", lambda: Manager())
    monkeypatch.setattr(train_tab, "show_run", lambda run_id: ("shown " + run_id,) + ("",) * 5)
    cfg = {"arch": "resnet18", "seed": 0, "name": "again"}
    key, message, selected, shown, *_ = train_tab.submit_unless_identical(cfg, "again", "")
    assert "An identical run run-7 (first) is already finished" in message and selected == "run-7" and not queued
    key2, message, selected, *_ = train_tab.submit_unless_identical(cfg, "again", key)  # the second click
    assert queued == [cfg] and selected == "run-8" and message == "" and key2 == ""
    # another setting is another key: named again rather than queued
    _, message, *_ = train_tab.submit_unless_identical(dict(cfg, seed=1), "again", key)
    assert "An identical run" in message and len(queued) == 1
