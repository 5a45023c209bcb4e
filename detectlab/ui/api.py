"""The app's public API in one place: every named endpoint, its parameters and their allowed values.

Every endpoint speaks the same names: ``image`` (the file to analyse), ``detector`` (a shipped name as
the command line spells it, a picker's label or a run id), ``scoring`` (resize or tiles), ``heatmap``,
``data`` and ``folder`` (a data set by name, or a folder inside the data roots). A parameter with a
fixed set of values is a dropdown, so the API page lists them; every parameter but the image has a
default, so the call the page prints runs as printed (its example image is one of the demo's real
photos, served by this server). Messages come back as plain text: no Markdown, no HTML entities.

The endpoints call the tabs' own functions, so a client gets what the page shows.
"""

from __future__ import annotations

import html
import os
import re

import gradio as gr

from detectlab import catalog, config
from detectlab.ui import (
    attack_tab, data_tab, detect_tab, fingerprints_tab, localize_tab, robustness_tab, state, train_tab,
)
from detectlab.ui.widgets import ImageInput, api_error

#: What a client may send for the parameters with a fixed set of values.
SCORING = ("resize", "tiles")
HEATMAPS = ("gradcam", "gradcam++")
ROBUST_HEATMAPS = ("none", "gradcam")

def example_image() -> str:
    """A demo real photo for the API page's example, as a path relative to where the server was started (the
    repository root, as README starts it): a client on this machine runs the printed call as it is, and the
    page shows no server path. Gradio's server refuses to fetch a URL on this machine, so it is a file."""
    photos = sorted((config.DEMO_DIR / "real").glob("*.png"))
    return os.path.relpath(photos[0]) if photos else ""


class ApiFile(gr.File):
    """A file parameter whose API-page example is no file at all (the call then says what to send), instead of
    Gradio's example on the internet."""

    is_template = True

    def example_payload(self):
        return None

    def example_value(self):
        return None


class ApiImage(ImageInput):
    """The API's image parameter: decoded by DetectLab, with an example the API page can print and a client
    can fetch offline (Gradio's own example is a file on the internet)."""

    is_template = True

    def example_payload(self):
        from gradio_client import handle_file

        image = example_image()
        return handle_file(image) if image else None

    def example_value(self):
        return example_image() or None


def plain(text: str) -> str:
    """A tab's Markdown status as plain text: no emphasis marks, no code ticks, no HTML entities."""
    return html.unescape(re.sub(r"\*\*|`", "", text or "")).strip()


def _ok(status: str) -> str:
    """``status`` as plain text; an error status becomes the endpoint's error (a client sees it raised)."""
    text = plain(status)
    if text.startswith(("Error:", "Unexpected error")):
        raise gr.Error(text)
    return text


def _shipped_names() -> list[str]:
    return [catalog.cli_name(label) for label in catalog.detector_choices() if label.startswith("shipped: ")]


def default_detector() -> str:
    """The detector every endpoint uses when none is named: the catalogue's first, as the CLI spells it."""
    try:
        return catalog.cli_name(catalog.pick_detector(None))
    except Exception:  # noqa: BLE001 - no detector built yet: the endpoints say so when called
        return ""


def _detector(name: str | None) -> str:
    return (name or "").strip() or default_detector()


# -- the endpoints ------------------------------------------------------------------------------
def detect(image: str, detector: str = "", heatmap: str = "gradcam", opacity: float = 0.5, scoring: str = "resize"):
    """P(fake), the verdict and a heatmap overlay of one image, scored by one detector.

    Args:
        image: the image file (PNG, JPEG, WebP, BMP, TIFF), decoded by DetectLab.
        detector: a shipped name (listed), a run id, or empty for the default.
        heatmap: the heatmap method.
        opacity: heatmap opacity over the image, 0 to 1.
        scoring: resize (the image shrunk to the detector's input, with a heatmap) or tiles (native resolution).
    Returns:
        The verdict as JSON (p_fake and decision of the scoring path asked for; verdict: fake, real or uncertain,
        with verdict_reasons; p_fake_resize and p_fake_tiles when a large image is scored both ways; the held-out
        false-positive rate; calibration when the checkpoint has it) and the heatmap overlay (PNG).
    """
    return detect_tab.api_detect(image, _detector(detector), heatmap, opacity, scoring)


def localize(image: str, mask: str | None = None, localizer: str = "", detector: str | None = None,
             conf: float = 0.25):
    """Manipulated regions of one image: masks with confidences, and pixel metrics when a true mask is given.

    Args:
        image: the image file.
        mask: optional: the true manipulation mask (white = manipulated), for pixel metrics.
        localizer: a shipped localizer name (listed), a trained one's label, or empty for the first.
        detector: optional: a detector whose heatmap is compared with the regions.
        conf: the confidence threshold of a region, 0 to 1.
    Returns:
        Regions and metrics as JSON, the overlay (PNG) and, with a mask, the TP/FP/FN map (PNG).
    """
    return localize_tab.api_localize(image, mask or "", localizer or "", (detector or "").strip(), conf)


def degrade_score(image: str, detector: str = "", blur_sigma: float = 0.0, jpeg_quality: float = 100,
                  patch_size: float = 1024, downsize_scale: float = 1.0, noise_sigma: float = 0.0,
                  resize_scale: float = 1.0, order: str = "downsize, blur, noise, jpeg, patch, resize",
                  heatmap: str = "none"):
    """Degrade one image (each step at its value, in the given order) and score it with each detector.

    Args:
        image: the image file.
        detector: one detector or several, comma-separated (cnn-resnet18, spectrum-durrall); empty for the default.
        blur_sigma: Gaussian blur sigma in pixels, 0 to 20 (0: off).
        jpeg_quality: JPEG quality, 5 to 100 (100: off, no re-encode).
        patch_size: the visible patch's side in pixels, 1 to 1024 (the rest is set to grey; 1024: off).
        downsize_scale: downsize factor, 0.05 to 1 (1: off).
        noise_sigma: Gaussian noise sigma, 0 to 1 (0: off).
        resize_scale: resize factor, 0.05 to 1 (1: off).
        order: comma-separated steps, applied in this order; a step moved off its identity value that is not
            listed runs after the listed ones. With every value at its identity nothing is applied, and
            P(fake) equals /detect's (scoring resize).
        heatmap: none, or gradcam to compute each detector's heatmap too (slower).
    Returns:
        The chain, PSNR and each detector's P(fake) as JSON, and the degraded image (PNG).
    """
    return robustness_tab.api_degrade_score(
        image, _detector(detector), blur_sigma=blur_sigma, jpeg_quality=jpeg_quality, patch_size=patch_size,
        downsize_scale=downsize_scale, noise_sigma=noise_sigma, resize_scale=resize_scale, order=order,
        heatmap=heatmap not in ("", "none", None))


def attack(image: str, detector: str = "", method: str = "fgsm", eps: float = 0.02, scoring: str = "resize"):
    """Attack one image towards "real" and score it before and after.

    Args:
        image: the image file.
        detector: a shipped name (listed), a run id, or empty for the default.
        method: the attack.
        eps: the perturbation budget (L-infinity, images in 0..1), 0 to 0.1.
        scoring: resize or tiles, as Detect scores the image.
    Returns:
        The scores before and after as JSON, and the adversarial image (PNG).
    """
    return attack_tab.api_attack(image, _detector(detector), method, eps, scoring=scoring)


def fingerprints(data: str = catalog.DEMO_LABEL, folder: str = "", generators: list[str] | None = None,
                 n: float = 16, residual: bool = False, raw: bool = False, image: str | None = None):
    """Generator fingerprints FP(real, generator) of a data set: panels and radial spectrum profiles.

    Args:
        data: a data set by name (listed), or any name the Data tab shows.
        folder: a folder inside the data roots instead (wins over data when given).
        generators: the generators (fake folders) to compare with real; empty for all of the data set's.
        n: images per class averaged (0: all).
        residual: average the spectra of denoising residuals instead of the images.
        raw: each class's mean spectrum instead of its difference to real.
        image: optional: one image whose own spectrum is shown beside the fingerprints.
    Returns:
        The counts (text), the panels and the radial profiles (plotly figures), and the panels as arrays (.npz).
    """
    try:
        gens = list(generators or []) or catalog.dataset_generators(catalog.resolve_dataset(data, folder))
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc) from None
    status, grid, profiles, _, export = fingerprints_tab.compute(data, folder, gens, n, residual, 0, image, raw)
    return _ok(status), grid, profiles, export


def show_dataset(data: str = catalog.DEMO_LABEL):
    """What a known data set holds: layout, counts per class, generator and split, examples, skipped files.

    Args:
        data: the data set's name, as the Data tab lists it.
    """
    status, *rest = data_tab.show_dataset(data)
    return _ok(status), *rest


def open_folder(folder: str = "demo"):
    """What a folder inside the data roots holds: layout, counts per class, generator and split, examples.

    Args:
        folder: the folder, absolute or relative to a data root (e.g. demo).
    """
    status, *rest = data_tab.open_folder(folder)
    return _ok(status), *rest


def upload_zip(archive: str):
    """Import a data set from a .zip (real/ + generator folders, 0_real/ + 1_fake/, or images/ + masks/).

    Args:
        archive: the .zip file.
    Returns:
        Status, counts, examples, skipped files, and the data set's name as the pickers list it.
    """
    status, counts, gallery, skipped, picker = data_tab.upload_zip(archive)
    name = picker.get("value") if isinstance(picker, dict) else None
    return _ok(status), counts, gallery, skipped, name or ""


def delete_dataset(data: str, confirmed: bool = False):
    """Delete an imported data set ("uploaded: NAME"); its files cannot be recovered.

    Args:
        data: the imported data set, as listed.
        confirmed: must be true.
    """
    status, _, _ = data_tab.delete(data, confirmed)
    return _ok(status)


def default_preset() -> str:
    """The preset a client gets when it names none: the CPU demo's (a couple of minutes on 2 cores)."""
    from detectlab.train import PRESETS

    return next((p for p in PRESETS if p.startswith("CPU demo")), next(iter(PRESETS)))


def train(preset: str = "", data: str = catalog.DEMO_LABEL, folder: str = "", generators: list[str] | None = None,
          epochs: float = 0, iterations: float = 0, seed: float = 0, name: str = ""):
    """Queue a detector training run with a preset's settings; poll it with /run_status.

    Args:
        preset: a preset (listed).
        data: a data set by name (listed).
        folder: a folder inside the data roots instead (wins over data when given).
        generators: the generators forming the fake class; empty for all.
        epochs: 0 for the preset's length; else this many epochs.
        iterations: 0 for the preset's (or the epochs given); else this many training steps.
        seed: the random seed.
        name: an optional name for the run.
    Returns:
        The run as JSON: id, status, settings.
    """
    from detectlab.train import TrainConfig

    try:
        cfg = TrainConfig(data=str(catalog.resolve_dataset(data, folder))).with_preset(preset or default_preset())
        epochs, iterations = int(epochs), int(iterations)  # epochs given: these, not the preset's iterations
        cfg = cfg.with_overrides(generators=list(generators or []) or None, epochs=epochs or None,
                                 iterations=iterations or (0 if epochs else None), seed=int(seed), name=name or "")
        record = state.manager().submit(cfg.to_dict(), name=name or "")
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc) from None
    return _run_json(record)


def train_localizer(arch: str = "unet", data: str = catalog.DEMO_INPAINT_LABEL, folder: str = "",
                    epochs: float = 10, imgsz: float = 128, batch: float = 8, seed: float = 0, threads: float = 0,
                    weights: str | None = None, trust: bool = False, name: str = ""):
    """Queue a localizer training run (YOLOv8-seg or the U-Net) on an images/ + masks/ data set.

    Args:
        arch: the architecture (listed).
        data: an images/ + masks/ data set by name (listed).
        folder: a folder inside the data roots instead.
        epochs: epochs, at least 1.
        imgsz: training image size in pixels.
        batch: batch size.
        seed: the random seed.
        threads: CPU threads for training (0: all).
        weights: optional: a YOLOv8-seg .pt to start from (a pickle: refused unless trust is true, and then
            read as opcodes only; the training worker loads it, never the server).
        trust: true to accept the uploaded .pt as safe to load.
        name: an optional name for the run.
    Returns:
        The run as JSON: id, status, settings.
    """
    try:  # the Train tab's form builds the same config: checked numbers, the data set, the trusted upload
        cfg, name = train_tab.localizer_config(arch, data, folder, int(epochs), int(imgsz), int(batch), int(seed),
                                               int(threads), weights, bool(trust), name)
        record = state.manager().submit(cfg, name=name)
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc, weights) from None
    return _run_json(record)


def run_status(run_id: str = ""):
    """A training run's state: status, stage, progress, time left, results once it ends.

    Args:
        run_id: the id /train or /train_localizer returned; empty for the newest run.
    """
    try:
        store = state.manager().store
        if not (run_id or "").strip():
            newest = store.list(limit=1)
            return _run_json(newest[0]) if newest else {"id": None, "status": "no runs yet"}
        return _run_json(store.get(run_id.strip()))
    except Exception as exc:  # noqa: BLE001
        raise api_error(exc) from None


def _run_json(record) -> dict:
    return {"id": record.id, "name": record.name, "kind": record.kind, "status": record.status,
            "stage": record.stage, "step": record.step, "total": record.total, "eta_seconds": record.eta_seconds,
            "error": record.error, "result": record.result, "checkpoint_label": record.label if record.checkpoint
            else None, "config": record.config}


# -- the hookups --------------------------------------------------------------------------------
def _dropdown(label: str, choices, value, custom: bool = False) -> gr.Dropdown:
    return gr.Dropdown(choices=list(choices), value=value, label=label, allow_custom_value=custom, visible=False)


def _text(label: str, value: str = "") -> gr.Textbox:
    return gr.Textbox(value, label=label, visible=False)


def _number(label: str, value: float) -> gr.Number:
    return gr.Number(value=value, label=label, visible=False)


def _count(label: str, value: int) -> gr.Number:
    """A whole number (Gradio's number parameters are floats; this one is rounded to an integer)."""
    return gr.Number(value=value, label=label, precision=0, visible=False)


def _check(label: str, value: bool = False) -> gr.Checkbox:
    return gr.Checkbox(value, label=label, visible=False)


def build() -> None:
    """Register every public endpoint (hidden components; the tabs' own events are not public)."""
    from detectlab.attacks.registry import ATTACKS
    from detectlab.localize.registry import localizer_archs
    from detectlab.train import PRESETS

    detectors = _shipped_names()
    default = default_detector()
    datasets = list(catalog.known_datasets())
    localizers = [catalog.cli_name(label) for label in catalog.localizer_choices()]
    json = lambda label: gr.JSON(label=label, visible=False)  # noqa: E731
    png = lambda label: gr.Image(label=label, format="png", type="filepath", visible=False)  # noqa: E731

    def det(label="detector"):
        return _dropdown(label, detectors, default or None, custom=True)

    def image(label="image"):
        return ApiImage(label=label, visible=False)

    def hook(fn, inputs, outputs, name):
        gr.Button(visible=False).click(fn, inputs, outputs, api_name=name, show_progress="hidden")

    hook(detect, [image(), det(), _dropdown("heatmap", HEATMAPS, "gradcam"), _number("opacity", 0.5),
                  _dropdown("scoring", SCORING, "resize")], [json("verdict"), png("heatmap overlay")], "detect")
    hook(localize, [image(), ApiImage(label="mask", visible=False),
                    _dropdown("localizer", localizers, localizers[0] if localizers else None, custom=True),
                    _dropdown("detector", detectors, None, custom=True), _number("conf", 0.25)],
         [json("result"), png("overlay"), png("TP/FP/FN")], "localize")
    hook(degrade_score, [image(), det("detector (one, or several comma-separated)"),
                         _number("blur_sigma", 0.0), _number("jpeg_quality", 100), _number("patch_size", 1024),
                         _number("downsize_scale", 1.0), _number("noise_sigma", 0.0), _number("resize_scale", 1.0),
                         _text("order", "downsize, blur, noise, jpeg, patch, resize"),
                         _dropdown("heatmap", ROBUST_HEATMAPS, "none")],
         [json("scores"), png("degraded image")], "degrade_score")
    hook(attack, [image(), det(), _dropdown("method", list(ATTACKS), "fgsm"), _number("eps", 0.02),
                  _dropdown("scoring", SCORING, "resize")], [json("result"), png("adversarial image")], "attack")
    hook(fingerprints, [_dropdown("data", datasets, catalog.DEMO_LABEL, custom=True), _text("folder"),
                        gr.Dropdown(choices=catalog.demo_generators(), value=[], multiselect=True,
                                    allow_custom_value=True, label="generators", visible=False),
                        _count("n", 16), _check("residual"), _check("raw"),
                        ApiImage(label="image (optional)", visible=False)],
         [_text("counts"), gr.Plot(label="fingerprint panels", visible=False),
          gr.Plot(label="radial profiles", visible=False), gr.File(label="panels (.npz)", visible=False)],
         "fingerprints")
    counts = lambda: gr.Dataframe(label="counts", visible=False)  # noqa: E731
    data_out = lambda: [_text("status"), counts(), gr.Gallery(label="examples", visible=False),  # noqa: E731
                        gr.Dataframe(label="skipped files", visible=False)]
    hook(show_dataset, [_dropdown("data", datasets, catalog.DEMO_LABEL, custom=True)], data_out(), "show_dataset")
    hook(open_folder, [_text("folder", "demo")], data_out(), "open_folder")
    hook(upload_zip, [ApiFile(label="archive (.zip)", type="filepath", visible=False)],
         [*data_out(), _text("data set name")], "upload_zip")
    hook(delete_dataset, [_dropdown("data", datasets, None, custom=True), _check("confirmed")], _text("status"),
         "delete_dataset")
    presets = list(PRESETS)
    hook(train, [_dropdown("preset", presets, default_preset()), _dropdown("data", datasets, catalog.DEMO_LABEL, custom=True),
                 _text("folder"), gr.Dropdown(choices=catalog.demo_generators(), value=[], multiselect=True,
                                              allow_custom_value=True, label="generators", visible=False),
                 _count("epochs", 0), _count("iterations", 0), _count("seed", 0), _text("name")], json("run"), "train")
    hook(train_localizer, [_dropdown("arch", localizer_archs(), "unet"),
                           _dropdown("data", datasets, catalog.DEMO_INPAINT_LABEL, custom=True), _text("folder"),
                           _count("epochs", 10), _count("imgsz", 128), _count("batch", 8), _count("seed", 0),
                           _count("threads", 0), ApiFile(label="weights (.pt)", type="filepath", visible=False),
                           _check("trust"), _text("name")], json("run"), "train_localizer")
    hook(run_status, [_text("run_id")], json("run"), "run_status")
