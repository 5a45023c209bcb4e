"""Localize tab: where was the image manipulated (YOLOv8-seg / U-Net), and does the detector look there?

Wires widgets to ``detectlab.localize``; no science here. One image: predicted regions
with their confidence, a confidence slider that re-draws on release (the model does not
run again), TP/FP/FN against a ground-truth mask ([Petrželková 2024] Fig. 4.15), and beside it a
detector's Grad-CAM with the heatmap↔mask IoU; a warning when the result is unreliable (a large marked
area, or an image unlike the localizer's training crops; ``detectlab.localize.reliability``). A set:
[Petrželková 2024] Table 4.8 by area quartile.
"""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

from detectlab import config
from detectlab.errors import DetectLabError
from detectlab.papers import TABLE_4_8_MAP50
from detectlab.progress import CancelToken
from detectlab.ui import first_run, state
from detectlab.ui.common import GradioProgress, error_markdown, refresh_on_open
from detectlab.ui.widgets import api_error, output_path

NO_DETECTOR = "(none)"
TRUST_LABEL = "I trust this .pt file (ultralytics unpickles it: a .pt can run code when loaded)"


def _localizer_choices() -> list[str]:
    from detectlab.catalog import localizer_choices

    return list(localizer_choices())


def _demo_examples() -> dict[str, tuple[Path, Path]]:
    from detectlab.localize.dataset import split_examples

    try:
        return {label: (img, mask) for label, img, mask in split_examples(config.DEMO_INPAINT_DIR)}
    except DetectLabError:
        return {}  # demo not materialized: the upload still works


_EXAMPLES: tuple[tuple, dict[str, tuple[Path, Path]]] | None = None


def _examples_key() -> tuple:
    """What the cached examples were read from: the set's folder and its manifest's version."""
    manifest = config.DEMO_INPAINT_DIR / "manifest.json"
    try:
        return str(config.DEMO_INPAINT_DIR), manifest.stat().st_mtime_ns
    except OSError:
        return str(config.DEMO_INPAINT_DIR), None


def demo_examples() -> dict[str, tuple[Path, Path]]:
    """The demo's manipulated test images by label; re-read when the demo set was (re-)derived."""
    global _EXAMPLES
    key = _examples_key()
    if _EXAMPLES is None or _EXAMPLES[0] != key or not _EXAMPLES[1]:
        _EXAMPLES = (key, _demo_examples())
    return _EXAMPLES[1]


DEMO_LABEL = "Demo manipulated image (test split, with its mask)"


def demo_picker_update(value=None):
    """The demo picker's choices as they are now; says so while the first start derives them."""
    examples = list(demo_examples())
    info = (f"{len(examples)} demo images" if examples else
            "no demo images yet: the first start is deriving them (see the banner); they appear here when done")
    return gr.update(choices=examples, info=info) if value is None else gr.update(choices=examples, info=info,
                                                                                   value=value)


def _load_localizer(label: str, pt_file: str | None, trust: bool):
    """The picked localizer (by name, through the catalogue), or an uploaded .pt (refused without the
    trust tick); cached per file version by the catalogue."""
    from detectlab.catalog import load_localizer_by_name

    return load_localizer_by_name(label, upload=pt_file or None, trust=bool(trust))


def _detector(label: str):
    if not label or label == NO_DETECTOR:
        return None
    from detectlab.catalog import load_detector

    return load_detector(label).detector


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _summary(result, name: str, localizer_name: str, detector_label: str) -> str:
    shown = result.shown()
    confs = ", ".join(f"{r.confidence:.2f}" for r in shown) or "none"
    lines = [f"### `{html.escape(name)}` — {len(shown)} region(s) at confidence ≥ {result.conf:.2f}",
             f"confidences: {confs} · predicted area {result.predicted_area():.1%} of the image · "
             f"{localizer_name} · {1000 * result.seconds:.0f} ms"]
    px = result.pixel()
    if px is not None:
        lines.append(f"**vs ground truth** (true area {result.true_area():.1%}): pixel precision "
                     f"{px.precision:.3f} · recall {px.recall:.3f} · IoU {px.iou:.3f} · dice {px.dice:.3f} — "
                     "yellow TP, red FP, green FN")
    else:
        lines.append("No ground-truth mask: upload one (same size, black/white) for TP/FP/FN and pixel metrics.")
    if result.p_fake is not None:
        iou = result.heatmap_iou()
        lines.append(f"**{html.escape(detector_label)}**: P(fake) {result.p_fake:.3f}"
                     + (f" · Grad-CAM ≥ {result.heatmap_threshold:.2f} vs true mask IoU {iou:.3f}"
                        if iou is not None else "")
                     + ("" if result.heatmap is not None else " · no heatmap (no spatial layer)"))
    return "\n\n".join(lines)


def _warning(kept) -> dict:
    """The reliability warning beside a result (hidden when there is none)."""
    from detectlab.localize.reliability import reliability_warning

    text = reliability_warning(kept["result"], kept["localizer"], kept["imgsz"], kept["measured"]).warning
    return gr.update(value=f"**Unreliable:** {html.escape(text)}" if text else "", visible=bool(text))


def _views(kept):
    result = kept["result"]
    return (_summary(result, kept["name"], kept["localizer"], kept["detector"]), _warning(kept), result.overlay(),
            result.tp_fp_fn(), result.heatmap_overlay())


def no_views() -> tuple:
    """Warning hidden, views and kept result cleared."""
    return gr.update(value="", visible=False), None, None, None, None


def run_localize(image_path, mask_path, localizer_label, detector_label, conf, pt_file, trust, name=None):
    """Localize one image; returns (summary, warning, overlay, TP/FP/FN, heatmap, kept result)."""
    from detectlab.localize import localize_image

    if not image_path:
        return "**Error:** upload an image or pick a demo example", *no_views()
    try:
        localizer = _load_localizer(localizer_label, pt_file, trust)
        shown_name = name or Path(image_path).name
        result = localize_image(localizer, image_path, mask=mask_path or None, conf=float(conf),
                                detector=_detector(detector_label), name=shown_name)
        kept = {"result": result, "name": shown_name, "localizer": localizer.name, "detector": detector_label,
                "imgsz": localizer.imgsz, "measured": _measured(localizer_label, pt_file)}
        return (*_views(kept), kept)
    except Exception as exc:  # noqa: BLE001 - a clear message; the tab keeps working
        return error_markdown(exc), *no_views()


def _measured(label: str, pt_file) -> dict:
    """The measured false-positive areas of a shipped localizer; {} for one trained or uploaded here."""
    from detectlab.catalog import resolve_localizer
    from detectlab.localize.reliability import measured_areas_of_file

    if pt_file:
        return {}
    try:
        return measured_areas_of_file(resolve_localizer(label))
    except DetectLabError:
        return {}


def redraw(kept, conf):
    """Confidence slider released: re-draw from the kept regions (the model does not run again)."""
    if not kept:
        return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
    kept["result"].conf = float(conf)
    return _views(kept)


def api_localize(image_path: str, mask_path: str = "", localizer: str = "", detector: str = "",
                 conf: float = 0.25):
    """API: regions (confidence, area), pixel metrics against ``mask_path`` and overlay PNGs."""
    from detectlab.localize import localize_image
    from detectlab.localize.analyze import write_png

    choices = _localizer_choices()
    label = localizer or (choices[0] if choices else "")
    try:
        loc = _load_localizer(label, None, False)
        result = localize_image(loc, image_path, mask=mask_path or None, conf=float(conf),
                                detector=_detector(detector) if detector else None, name=Path(image_path).name)
    except Exception as exc:  # noqa: BLE001 - the client gets DetectLab's message, no server paths
        raise api_error(exc, image_path, mask_path) from None
    overlay = write_png(result.overlay(), output_path("overlay.png"))
    from detectlab.localize.reliability import reliability_warning

    warning = reliability_warning(result, loc.name, loc.imgsz, _measured(label, None)).warning
    info = {"file": Path(image_path).name, "localizer": loc.name, "conf": float(conf), **result.report(detector),
            "warning": warning or None}
    tpfpfn = None if result.truth is None else write_png(result.tp_fp_fn(), overlay.with_name("tp_fp_fn.png"))
    return info, str(overlay), None if tpfpfn is None else str(tpfpfn)


# --------------------------------------------------------------------------- a whole set


def run_evaluation(choice, folder, split_name, localizer_label, detector_label, conf, pt_file, trust, cancel_box,
                   progress=gr.Progress()):
    """Petrželková 2024 §4.5 metrics on a split: table, bar chart, CSV."""
    from detectlab.catalog import resolve_dataset
    from detectlab.localize.evaluate import evaluate_set
    from detectlab.localize.plots import quartile_figure

    token = CancelToken()
    cancel_box["token"] = token
    prog = GradioProgress(progress)
    try:
        localizer = _load_localizer(localizer_label, pt_file, trust)
        root = resolve_dataset(choice, folder, prog)
        result = evaluate_set(localizer, root, split=split_name, conf=float(conf), detector=_detector(detector_label),
                              detector_name=detector_label, progress=prog, cancel=token)
        rows = result.rows()
        out = result.write_csv(output_path("localization_by_quartile.csv"))
        metrics, heat = result.metrics, result.heatmap
        px = metrics["pixel"]
        head = (f"**{localizer.name} on {html.escape(str(root.name))} / {split_name}** ({metrics['images']} images): "
                f"pixel precision {px['precision']:.3f} · recall {px['recall']:.3f} · IoU {px['iou']:.3f} · "
                f"dice {px['dice']:.3f}")
        if "map50" in metrics:
            head += f" · mAP50 {metrics['map50']:.3f} · mAP50-95 {metrics['map50_95']:.3f} ([Petrželková 2024]: {TABLE_4_8_MAP50['all']:.2f} overall)"
        if heat is not None:
            head += f" · {html.escape(detector_label)} heatmap↔mask IoU {_fmt(heat['mean_iou'])}"
        table = [[_round(v) for v in r.values()] for r in rows]
        return head, gr.update(value=table, headers=list(rows[0])), quartile_figure(metrics), str(out)
    except Exception as exc:  # noqa: BLE001
        return error_markdown(exc), gr.update(), None, None


def _round(v):
    return round(v, 4) if isinstance(v, float) else v


def cancel_evaluation(cancel_box):
    token = cancel_box.get("token") if cancel_box else None
    if token is not None:
        token.cancel()
    return "Cancelling…"


def refresh_localizers(current):
    choices = _localizer_choices()
    return gr.update(choices=choices, value=current if current in choices else (choices[0] if choices else None))


def build() -> dict:
    gr.Markdown("Where was the image manipulated? A YOLOv8-seg localizer (instance masks, one confidence per "
                "region) or the U-Net baseline ([Petrželková 2024] §4.5). With a ground-truth mask: TP/FP/FN pixels. Beside "
                "it, a detector's Grad-CAM and its IoU with the true mask — does the detector look where the "
                "manipulation is?")
    choices = _localizer_choices()
    detectors = [NO_DETECTOR] + list(state.detector_choices())
    with gr.Row():
        localizer = gr.Dropdown(choices=choices, value=choices[0] if choices else None, label="Localizer",
                                elem_id="localize-localizer", scale=3)
        refresh = gr.Button("↻", scale=0, min_width=40)
        detector = gr.Dropdown(choices=detectors, value=detectors[1] if len(detectors) > 1 else NO_DETECTOR,
                               label="Detector for the Grad-CAM comparison", elem_id="localize-detector", scale=3)
        conf = gr.Slider(0.05, 0.95, value=0.25, step=0.05, label="Confidence threshold (re-draws on release)",
                         elem_id="localize-conf", scale=3)
    refresh.click(refresh_localizers, localizer, localizer, api_name=False)
    refresh_on_open(localizer, _localizer_choices)
    refresh_on_open(detector, lambda: [NO_DETECTOR] + list(state.detector_choices()))
    with gr.Accordion("Your own YOLOv8-seg .pt (e.g. official pretrained weights)", open=False):
        gr.Markdown("A `.pt` is a Python pickle: ultralytics' loader unpickles it, which runs any code the file "
                    "carries. Load only files you trust; the upload is refused unless you tick the box.")
        with gr.Row():
            pt_file = gr.File(label=".pt file", file_types=[".pt"], type="filepath", elem_id="localize-pt")
            trust = gr.Checkbox(label=TRUST_LABEL, value=False, elem_id="localize-trust")
    with gr.Accordion("Shipped localizers: test metrics on the demo beside [Petrželková 2024] Table 4.8", open=False):
        from detectlab.localize.defaults import SHIPPED_TABLE_HEADERS, findings, shipped_table

        gr.Dataframe(value=shipped_table(), headers=SHIPPED_TABLE_HEADERS, interactive=False,
                     elem_id="localize-shipped")

        gr.Markdown("\n\n".join(f"- {f}" for f in findings()) or "No shipped localizers.",
                    elem_id="localize-findings")
    kept = gr.State(None)
    with gr.Tab("One image"):
        with gr.Row():
            with gr.Column(scale=1):
                start = demo_picker_update()
                demo = gr.Dropdown(choices=start["choices"], value=None, label=DEMO_LABEL, info=start["info"],
                                   elem_id="localize-demo")
                image = gr.File(label="…or upload an image (PNG, JPEG, WebP, BMP, TIFF)", file_count="single",
                                type="filepath", elem_id="localize-image")
                mask = gr.File(label="Ground-truth mask (optional; binary, same size)", type="filepath",
                               file_types=["image"], elem_id="localize-mask")
                run = gr.Button("Localize", variant="primary", elem_id="localize-run")
            with gr.Column(scale=3):
                summary = gr.Markdown(elem_id="localize-summary")
                warning = gr.Markdown(visible=False, elem_id="localize-warning")
                with gr.Row():
                    overlay = gr.Image(label="Predicted regions (confidence)", type="pil", elem_id="localize-overlay",
                                       interactive=False, height=300)
                    tpfpfn = gr.Image(label="TP yellow / FP red / FN green", type="pil", elem_id="localize-tpfpfn",
                                      interactive=False, height=300)
                    heat = gr.Image(label="Detector Grad-CAM (white: true region's outline)", type="pil",
                                    elem_id="localize-heatmap", interactive=False, height=300)
        outs = [summary, warning, overlay, tpfpfn, heat, kept]
        source = gr.State({})

        def from_demo(label, loc, det, c, pt, tr):
            if not label:
                return tuple(gr.update() for _ in range(len(outs) + 1))
            examples = demo_examples()
            if label not in examples:
                return ("**Error:** pick a demo image", *no_views(), {})
            img, msk = examples[label]
            res = run_localize(str(img), str(msk), loc, det, c, pt, tr, name=img.name)
            return (*res, {"image": str(img), "mask": str(msk), "name": img.name})

        def from_upload(img, msk, loc, det, c, pt, tr):
            res = run_localize(img, msk, loc, det, c, pt, tr)
            return (*res, {"image": img, "mask": msk})

        def clear_for_upload():
            """An upload replaces the demo pick: the picker and the old result leave the screen while it is scored."""
            return (gr.update(value=None), "Localizing the uploaded image…", *no_views(), {})

        def again(src, img, msk, loc, det, c, pt, tr):
            if img:
                return from_upload(img, msk, loc, det, c, pt, tr)
            if src.get("image"):
                return (*run_localize(src["image"], msk or src.get("mask"), loc, det, c, pt, tr,
                                      name=src.get("name")), src)
            return ("**Error:** upload an image or pick a demo example", None, None, None, None, src)

        common = [localizer, detector, conf, pt_file, trust]
        # a demo pick replaces an upload (the Localize button would otherwise re-run the upload)
        demo.input(lambda: None, None, image, api_name=False, queue=False).then(
            from_demo, [demo] + common, outs + [source], api_name=False)
        demo.focus(demo_picker_update, None, demo, api_name=False, show_progress="hidden", queue=False)
        first_run.on_demo_ready(demo_picker_update, demo)  # a page opened during the first start gets them
        image.upload(clear_for_upload, None, [demo] + outs + [source], api_name=False, queue=False).then(
            from_upload, [image, mask] + common, outs + [source], api_name=False)
        mask.upload(again, [source, image, mask] + common, outs + [source], api_name=False)
        run.click(again, [source, image, mask] + common, outs + [source], api_name=False)
        conf.release(redraw, [kept, conf], [summary, warning, overlay, tpfpfn, heat], api_name=False)
    with gr.Tab("Evaluate on a set"):
        from detectlab.catalog import DEMO_INPAINT_LABEL, known_datasets

        with gr.Row():
            ds_choice = gr.Dropdown(choices=list(known_datasets()), value=DEMO_INPAINT_LABEL, label="Data set",
                                    elem_id="localize-eval-dataset")
            refresh_on_open(ds_choice, known_datasets)
            folder = gr.Textbox(label="…or an images/ + masks/ folder inside the data roots",
                                elem_id="localize-eval-folder")
            split_name = gr.Radio(["test", "val", "train"], value="test", label="Split (seed 0, by source group)")
        with gr.Row():
            go_btn = gr.Button("Evaluate", variant="primary", elem_id="localize-eval-run")
            stop = gr.Button("Cancel", elem_id="localize-eval-cancel")
        eval_md = gr.Markdown(elem_id="localize-eval-summary")
        table = gr.Dataframe(interactive=False, label="By manipulated-area quartile ([Petrželková 2024] Table 4.8)",
                             elem_id="localize-eval-table")
        with gr.Row():
            plot = gr.Plot(label="mAP50 / dice / heatmap IoU by quartile")
            csv_file = gr.File(label="CSV download", elem_id="localize-eval-csv")
        cancel_box = gr.State({})
        go_btn.click(run_evaluation, [ds_choice, folder, split_name, localizer, detector, conf, pt_file, trust,
                                      cancel_box], [eval_md, table, plot, csv_file], api_name=False)
        stop.click(cancel_evaluation, cancel_box, eval_md, api_name=False)
    return {"localizer": localizer, "detector": detector, "conf": conf}
