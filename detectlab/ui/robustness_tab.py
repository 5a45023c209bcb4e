"""Robustness tab: live degradation sliders on one image, and accuracy-vs-strength sweeps ([Petrželková 2024] §4.3).

Wiring only: the chain, the scoring, the sweep, their figures and files live in ``detectlab.robustness``.
"""

from __future__ import annotations

import math
from pathlib import Path

import gradio as gr

from detectlab import catalog, config
from detectlab.data.decode import to_pil
from detectlab.degrade import DEGRADATIONS
from detectlab.errors import CheckpointError, DetectLabError
from detectlab.explain import overlay
from detectlab.progress import Cancelled
from detectlab.robustness import (
    DEFAULT_LEVELS, DEFAULT_ORDER, SLIDERS, SPLITS, SweepSpec, augmented_groups, degrade_and_score, example_images,
    group_detectors, live_chain, robustness_reading, run_sweep, sweep_samples, unlisted_steps, working_image,
    working_size,
)
from detectlab.robustness.plots import export_sweep, pfake_figure, sweep_figure
from detectlab.ui import first_run, state
from detectlab.ui.common import GradioProgress, SessionJobs, refresh_on_open
from detectlab.ui.widgets import ImageInput, api_error, message, output_path

#: The pair [Petrželková 2024] §4.3 compares: the same CNN trained without and with degradation augmentation.
DEFAULT_PAIR = ("cnn-resnet18", "cnn-resnet18-aug")
_SLIDER_LABELS = {
    "blur": "Gaussian blur σ (px; 0 = off)", "jpeg": "JPEG quality (100 = off: no re-encode)",
    "patch": "visible patch side (px; ≥ image = off)", "downsize": "downsize scale (down and back up; 1 = off)",
    "noise": "Gaussian noise σ ([0, 1] units; 0 = off)", "resize": "resize-only scale (down, not back up; 1 = off)",
}
#: What the API's ``detectors`` parameter defaults to: the pair above where built, else the first detector.
DEFAULT_DETECTORS = "default"
_STEPS = {"blur": 0.1, "jpeg": 1, "patch": 1, "downsize": 0.01, "noise": 0.005, "resize": 0.01}
_PROMPT = "Upload an image or pick a demo image; every slider release re-scores it."
_jobs = SessionJobs()


# -- detectors -------------------------------------------------------------------------------
def _default_detectors(choices: list[str]) -> list[str]:
    picked = [c for c in choices if catalog.shipped_name(c) in DEFAULT_PAIR]
    return picked or choices[:1]


def _pair_note(choices: list[str]) -> str:
    missing = [n for n in DEFAULT_PAIR if f"{catalog.SHIPPED_PREFIX}{n}" not in choices]
    if not missing:
        return ""
    return (f"*{', '.join(missing)} is not built on this machine, so the with/without-augmentation pair is "
            f"incomplete: `detectlab checkpoints build --only {','.join(missing)}`.*")


def refresh_detectors(current: list[str] | None):
    choices = list(state.detector_choices())
    keep = [c for c in (current or []) if c in choices]
    return gr.update(choices=choices, value=keep or _default_detectors(choices))


def _load(labels: list[str] | str | None) -> list:
    if isinstance(labels, str):
        labels = [n.strip() for n in labels.split(",") if n.strip() and n.strip() != DEFAULT_DETECTORS]
    if not labels:
        labels = _default_detectors(list(state.detector_choices()))
    if not labels:
        raise CheckpointError("no detector available: train one in the Train tab or build the defaults")
    return [catalog.load_detector(n) for n in labels]


# -- live sliders ----------------------------------------------------------------------------
def _examples() -> dict[str, Path]:
    try:
        return example_images(config.DEMO_DIR)
    except Exception:  # noqa: BLE001 - no demo on disk yet: the upload still works
        return {}


def refresh_examples(current: str | None):
    choices = list(_examples())
    return gr.update(choices=choices, value=current if current in choices else None)


def _score(source: str | None, detectors, order, values: dict, heatmap: bool):
    if not source:
        raise DetectLabError("upload an image or pick a demo image first")
    loaded = _load(detectors)
    chain = live_chain(order, values)
    work = working_image(source, working_size(loaded))
    r = degrade_and_score(work.image, chain, loaded, heatmap=heatmap,
                          at_size=lambda size: working_image(source, size).image)
    return work, r, unlisted_steps(order, chain)


def _chain_note(r, unlisted: list[str]) -> str:
    if not len(r.chain):
        return ("Every slider is at rest: nothing is applied, and each detector scores the image exactly as "
                "Detect's resize scoring does (same pixels, same P(fake)).")
    if unlisted:
        return (f"{', '.join(unlisted)} {'is' if len(unlisted) == 1 else 'are'} not in the chain order, so "
                f"{'it runs' if len(unlisted) == 1 else 'they run'} after the listed steps.")
    return ""


def _verdict_md(work, r, unlisted: list[str]) -> str:
    db = "∞ (unchanged)" if math.isinf(r.psnr_db) else f"{r.psnr_db:.2f} dB"
    rows = "\n".join(f"| {catalog.shipped_name(s.name)} | {s.p_fake:.4f} | {s.threshold:.2f} | "
                     f"{s.decision.upper()} |" for s in r.scores)
    note = _chain_note(r, unlisted)
    return (f"**{work.name}** · chain **{r.chain}** · PSNR to the input {db} · {1000 * r.seconds:.0f} ms\n\n"
            f"{work.describe()}" + (f"\n\n*{note}*" if note else "")
            + f"\n\n| detector | P(fake) | threshold | decision |\n|---|---|---|---|\n{rows}")


def live(source: str | None, detectors, order, blur, jpeg, patch, downsize, noise, resize, heatmap):
    """One slider state -> (verdict markdown, gallery, the P(fake) bars' numbers for ``bars``).

    The bar chart is drawn by a second, chained call (``bars``): re-drawing a Plotly chart costs the
    page ~50 ms, so the verdict and the gallery are shown first and the chart follows."""
    values = dict(blur=blur, jpeg=jpeg, patch=patch, downsize=downsize, noise=noise, resize=resize)
    if not source:   # sliders moved before any image: say what to do, not an error
        return _PROMPT, gr.update(), None
    try:
        work, r, unlisted = _score(source, detectors, order, values, heatmap)
    except Exception as exc:  # noqa: BLE001 - a clear message; the tab keeps working
        return message(exc, source), gr.update(), None
    shown = [(to_pil(r.original), f"input ({work.size} px)"), (to_pil(r.degraded), f"degraded: {r.chain}")]
    for s in r.scores:
        shown += [(overlay(s.seen, m, 0.5), f"{catalog.shipped_name(s.name)}: Grad-CAM {layer}")
                  for layer, m in s.maps]
    scores = tuple((catalog.shipped_name(s.name), s.p_fake, s.threshold) for s in r.scores)
    return _verdict_md(work, r, unlisted), shown, scores


def bars(scores: tuple | None):
    """The P(fake) bar chart of ``live``'s numbers; none (an error, no image yet): the chart stays as it is."""
    if not scores:
        return gr.skip()
    names, p_fake, thresholds = zip(*scores)
    return pfake_figure(list(names), list(p_fake), list(thresholds))


def live_upload(file, *rest):
    return (*live(file, *rest), file)


def live_example(label, *rest):
    path = _examples().get(label) if label else None
    return (*live(str(path) if path else None, *rest), str(path) if path else None)


def api_degrade_score(image: str, detectors: str = DEFAULT_DETECTORS, blur_sigma: float = 0.0, jpeg_quality: float = 100,
                      patch_size: float = 1024, downsize_scale: float = 1.0, noise_sigma: float = 0.0,
                      resize_scale: float = 1.0, order: str = ", ".join(DEFAULT_ORDER), heatmap: bool = False):
    """Degrade one image (each step off its identity value, in ``order``) and score it with each detector.

    With every value at its identity the chain is empty ("none") and each P(fake) equals /detect's
    (scoring resize) for the same image and detector.

    Args:
        image: the image file.
        detectors: comma-separated detector names as the CLI spells them (cnn-resnet18,spectrum-durrall) or screen labels; "default": the tab's pair.
        blur_sigma: blur sigma in pixels, 0 to 20 (0: off).
        jpeg_quality: JPEG quality, 5 to 100 (100: off, no re-encode).
        patch_size: patch size in pixels, 1 to 1024 (1024: off).
        downsize_scale: downsize factor, 0.05 to 1 (1: off).
        noise_sigma: noise sigma, 0 to 1 (0: off).
        resize_scale: resize factor, 0.05 to 1 (1: off).
        order: comma-separated steps (downsize, blur, noise, jpeg, patch, resize), applied in this order; a step off its identity value that is not listed runs after the listed ones.
        heatmap: also compute the detectors' heatmaps (slower).
    Returns:
        JSON (chain, PSNR, scored size, appended_steps: the applied steps that order did not list, P(fake)/threshold/decision per detector) and the degraded image (PNG).
    """
    values = dict(blur_sigma=blur_sigma, jpeg_quality=jpeg_quality, patch_size=patch_size,
                  downsize_scale=downsize_scale, noise_sigma=noise_sigma, resize_scale=resize_scale)
    try:
        work, r, unlisted = _score(image, detectors, order, values, bool(heatmap))
    except Exception as exc:  # noqa: BLE001 - the client gets the message
        raise api_error(exc, image) from None
    out = r.to_dict()
    for d in out["detectors"]:
        d["name"] = catalog.shipped_name(d["name"])
    out.update(image=work.name, source_size=list(work.source_size), scored_size=work.size, appended_steps=unlisted)
    # a file: Gradio caches it atomically (a PIL image it rewrites in place)
    return out, str(r.write_png(output_path("degraded.png")))


# -- sweeps ----------------------------------------------------------------------------------
def cancel_sweep(request: gr.Request):
    _jobs.cancel(request)
    return "Cancelling… (stops after the current batch)"


def sweep(detectors, dataset, folder, split_name, degradation, levels, chain, repeat_group, seed,
          request: gr.Request = None, progress=gr.Progress()):
    """Run a sweep -> (status, figure, table rows, files, reading)."""
    empty = (None, [], None, "")
    token = _jobs.start(request)
    try:
        spec = SweepSpec.make(degradation, levels, chain, seed=int(seed or 0))
        loaded = _load(detectors)
        prog = GradioProgress(progress)
        root = catalog.resolve_dataset(dataset, folder, prog)
        samples, _ = sweep_samples(root, split_name, progress=prog)
        groups = group_detectors(loaded, repeat_group=bool(repeat_group))
        result = run_sweep(groups, samples, spec, data=f"{root.name} ({split_name})", progress=prog, cancel=token)
    except Cancelled:
        return ("Sweep cancelled; nothing was kept.", *empty)
    except Exception as exc:  # noqa: BLE001
        return (message(exc), *empty)
    fig = sweep_figure(result)
    files = [str(p) for p in export_sweep(result, output_path("sweep").parent, f"sweep_{spec.degradation}", fig)]
    key = spec.strength_name
    rows = [[r["detector"], r["runs"], "off" if r[key] is None else r[key]]
            + [None if r[f"{m}_mean"] is None else round(r[f"{m}_mean"], 4) for m in ("accuracy", "balanced_accuracy", "ap")]
            + [round(r["accuracy_std"] or 0, 4)] for r in result.summary()]
    reading = "\n".join(f"- {line}" for line in robustness_reading(result, augmented_groups(groups)))
    skipped = f"; {len(result.skipped)} unreadable files skipped" if result.skipped else ""
    status = (f"**{spec.label}** on {result.n_images} images of {root.name} ({split_name} split): "
              f"{len(result.groups)} detector line(s) × {len(spec.levels)} strengths in {result.seconds:.1f} s{skipped}")
    return status, fig, rows, files, reading


def default_levels(degradation: str) -> str:
    return ",".join(format(v, "g") for v in DEFAULT_LEVELS.get(degradation, ()))


# -- layout ----------------------------------------------------------------------------------
def build() -> dict:
    choices = list(state.detector_choices())
    gr.Markdown("### Robustness to degradations ([Petrželková 2024] §4.3)\nHow P(fake) and accuracy move under blur, JPEG, "
                "a visible patch, downsizing, noise and resizing — and whether training with degradations "
                "(`cnn-resnet18-aug`) makes the detector more robust than the same CNN without (`cnn-resnet18`).")
    with gr.Row():
        detectors = gr.Dropdown(choices=choices, value=_default_detectors(choices), multiselect=True,
                                label="Detectors (several at once)", elem_id="rob-detectors", scale=4)
        refresh_on_open(detectors, state.detector_choices)
        refresh = gr.Button("↻ refresh detectors", scale=1, elem_id="rob-refresh")
    gr.Markdown(_pair_note(choices), elem_id="rob-pair-note")
    refresh.click(refresh_detectors, detectors, detectors, api_name=False)
    with gr.Tab("Live sliders"):
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Image (PNG, JPEG, WebP, BMP, TIFF; any size)", file_count="single",
                                 type="filepath", elem_id="rob-upload")
                example = gr.Dropdown(choices=list(_examples()), value=None, label="…or a demo test image",
                                      elem_id="rob-example")
                order = gr.Dropdown(choices=list(SLIDERS), value=list(DEFAULT_ORDER), multiselect=True,
                                    label="Chain order (remove and re-add to reorder; a moved slider always "
                                          "applies, and one left out of this list runs after it)",
                                    elem_id="rob-order")
                sliders = {}
                for name, (param, lo, hi, identity) in SLIDERS.items():
                    sliders[name] = gr.Slider(lo, hi, value=identity, step=_STEPS[name], label=_SLIDER_LABELS[name],
                                              elem_id=f"rob-{name}")
                heatmap = gr.Checkbox(False, label="heatmap follows (Grad-CAM of the degraded image)",
                                      elem_id="rob-heatmap")
            with gr.Column(scale=3):
                verdict = gr.Markdown(_PROMPT,
                                      elem_id="rob-live-verdict")
                gallery = gr.Gallery(label="Input, degraded, heatmaps", columns=4, height=300, object_fit="contain",
                                     format="png", elem_id="rob-live-gallery")
                bar_chart = gr.Plot(label="P(fake) per detector (| = its decision threshold)",
                                    elem_id="rob-live-bars")
        source = gr.State(None)
        scores = gr.State(None)   # the numbers of the verdict on the page, for the bar chart
        live_inputs = [detectors, order, *sliders.values(), heatmap]
        outs = [verdict, gallery, scores]
        # sub-second work, so no queue: Gradio's queue round trip alone is ~60 ms more than a direct call
        # (bench/bench_sliders.py); "hidden": no progress overlay to draw and take down around each answer
        fast = dict(api_name=False, trigger_mode="always_last", queue=False, show_progress="hidden")
        events = [upload.upload(live_upload, [upload, *live_inputs], [*outs, source], api_name=False),
                  example.input(live_example, [example, *live_inputs], [*outs, source], api_name=False),
                  # a newly picked detector may load for seconds: queued, with its progress shown
                  detectors.change(live, [source, *live_inputs], outs, api_name=False, trigger_mode="always_last")]
        events += [s.release(live, [source, *live_inputs], outs, **fast) for s in sliders.values()]
        events += [c.change(live, [source, *live_inputs], outs, **fast) for c in (order, heatmap)]
        for event in events:   # the verdict first; the chart (slower to draw) in a second call
            event.then(bars, scores, bar_chart, **fast)
        example.focus(refresh_examples, example, example, api_name=False)
        first_run.on_demo_ready(refresh_examples, example, example)
    with gr.Tab("Sweep"):
        with gr.Row():
            datasets = list(catalog.known_datasets())
            dataset = gr.Dropdown(choices=datasets, value=catalog.DEMO_LABEL, label="Data set", scale=2,
                                  elem_id="rob-dataset")
            refresh_on_open(dataset, catalog.known_datasets)
            folder = gr.Textbox(label="…or a labelled folder inside the data roots", scale=2, elem_id="rob-folder")
            split_name = gr.Radio(list(SPLITS), value="test", label="Split (seed 0)", scale=2, elem_id="rob-split")
        with gr.Row():
            degradation = gr.Dropdown(list(DEGRADATIONS), value="jpeg", label="Degradation to vary",
                                      elem_id="rob-degradation", scale=1)
            levels = gr.Textbox(default_levels("jpeg"), label="Strengths (comma-separated)", elem_id="rob-levels",
                                scale=2)
            chain = gr.Textbox("*", label="Chain around it (* = the varying step), e.g. downsize 0.5 → *",
                               elem_id="rob-chain", scale=2)
        with gr.Row():
            repeat = gr.Checkbox(False, label="group repeated runs (same training config) → mean ± std error bars")
            seed = gr.Number(0, precision=0, label="Seed (noise)", minimum=0)
            run = gr.Button("Run sweep", variant="primary", elem_id="rob-sweep-run")
            stop = gr.Button("Cancel", elem_id="rob-sweep-cancel")
        status = gr.Markdown(elem_id="rob-sweep-status")
        plot = gr.Plot(label="Accuracy, balanced accuracy and AP against strength", elem_id="rob-sweep-plot")
        reading = gr.Markdown(elem_id="rob-sweep-reading")
        table = gr.Dataframe(headers=["detector", "runs", "strength", "accuracy", "balanced acc", "AP", "accuracy std"],
                             interactive=False, label="Sweep table", elem_id="rob-sweep-table")
        files = gr.File(label="Downloads: CSV, PNG, interactive HTML", file_count="multiple", elem_id="rob-sweep-files")
        degradation.change(default_levels, degradation, levels, api_name=False)
        run.click(sweep, [detectors, dataset, folder, split_name, degradation, levels, chain, repeat, seed],
                  [status, plot, table, files, reading], api_name=False)
        stop.click(cancel_sweep, None, status, api_name=False)
    # named endpoint for gradio_client: /degrade_score
    return {"detectors": detectors, "verdict": verdict}
