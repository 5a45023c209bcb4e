"""Detect tab: P(fake) with heatmaps for one image; a sortable table, CSV and metrics for many."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr

from detectlab import config
from detectlab.data.decode import to_pil
from detectlab.data.overview import resolve_in_roots
from detectlab.catalog import LoadedDetector, cli_name, load_detector, pick_detector
from detectlab.errors import DatasetError, DetectLabError
from detectlab.detect.plots import confusion_figure
from detectlab.detect.predict import (SPLITS, default_split, is_demo_set, score_files, score_folder, scoring_options,
                                      write_csv)
from detectlab.detect.report import verdict_image, write_metrics_json, write_png
from detectlab.detect.samples import sample_images
from detectlab.detect.verdict import Judgement, decide, judge_file
from detectlab.explain import CAM_METHODS, colour_bar, overlay
from detectlab.ui import state
from detectlab.ui.common import GradioProgress, refresh_on_open
from detectlab.ui.widgets import ImageInput, api_error, message, output_path, scrub

#: The batch table: P(fake) and its decision are the resize path's (what the metrics use); the verdict is
#: ``detect.verdict``'s, as the one-image verdict, the CSV and ``detectlab predict`` give it.
TABLE_HEADERS = ["file", "P(fake)", "calibrated P(fake)", "P(fake) tiles", "decision", "verdict", "unlike training",
                 "detector", "label", "generator", "error"]


def _detector_dropdown(**kw) -> gr.Dropdown:
    choices = list(state.detector_choices())
    return gr.Dropdown(choices=choices, value=choices[0] if choices else None, label="Detector", **kw)


def refresh_detectors(current: str | None):
    choices = list(state.detector_choices())
    return gr.update(choices=choices, value=current if current in choices else (choices[0] if choices else None))


def _verdict_md(a, loaded: LoadedDetector, label: str, file_name: str = "", opacity: float = 0.5,
                verdict=None, tiled=None) -> str:
    """The verdict on one image: the scores of the paths that ran, the verdict (UNCERTAIN with its reasons
    when they disagree or the image is unlike the training data), then how far to trust the detector."""
    verdict = verdict or decide(a.p_fake, None, a.threshold, assessment=a.assessment)
    weights = loaded.weights
    frozen = loaded.kind in ("frozen", "ensemble")
    if verdict.scoring == "tiles":
        where = tiled.score.describe() if tiled is not None else ""
    else:
        where = (f"heatmap: {a.method} on {', '.join(n for n, _ in a.maps)} at opacity {opacity:.2f}" if a.maps else
                 "no heatmap: this detector has no spatial layer (a 1-D spectral feature)")
    # the file and the detector lead the verdict, so a reader (or a test) knows which inputs it answers
    evidence = (f"\n*{loaded.heldout.evidence_line(verdict.scoring)}*\n" if loaded.heldout is not None else
                "\n*not measured on generator designs or real photos it never saw*\n")
    return (f"### {'`' + file_name + '` — ' if file_name else ''}{_headline(verdict)}\n"
            + evidence
            + f"detector **{label}** · threshold {verdict.threshold:.2f} · {where}"
            + ("" if verdict.scoring == "tiles" else f" · {1000 * a.seconds:.0f} ms")
            + _paths_md(verdict)
            + f"\n\n{'Resized image: ' if verdict.scoring == 'tiles' else ''}"
              f"{_trust_md(a.assessment, cli_name(loaded.short_name))}"
            + f"\n\n{_heldout_md(loaded, verdict.scoring)}"
            + (f"\n\n{'frozen backbone weights' if frozen else 'weights'}: {weights}" if weights else ""))


def _headline(verdict) -> str:
    """``P(fake) = 0.988 (resize) · 0.034 (tiles) → **UNCERTAIN**``: the asked-for path's score first."""
    scores, label = verdict.headline().rsplit(" → ", 1)
    return f"{scores} → **{label}**"


def _paths_md(verdict) -> str:
    """Why the verdict is uncertain, or that both scoring paths agree."""
    if verdict.reasons:
        return "\n\n" + "\n".join(f"- ⚠ **{r}**" for r in verdict.reasons) + \
            ("\n\nNeither path's label is a finding for this image." if verdict.paths_disagree else "")
    if verdict.both_ways:
        return (f"\n\nScored both ways (the image is much larger than the detector's input): resize and tiles "
                f"agree on {verdict.label.upper()}.")
    return ""


def _trust_md(assessment, name: str) -> str:
    """How far to trust the verdict: calibrated P(fake) and whether the image is like the training data."""
    if assessment is None:
        return (f"*Uncalibrated:* no calibration statistics for this checkpoint (`detectlab calibrate {name}`); "
                "read P(fake) as a score, not a probability.")
    caution = "⚠ **" + assessment.describe() + "**" if assessment.unlike_training else assessment.describe()
    return (f"calibrated P(fake) = {assessment.p_calibrated:.3f} (temperature scaling on the validation split) · "
            f"{caution}")


def _heldout_md(loaded: LoadedDetector, scoring: str) -> str:
    """How often this detector called real photos it never saw fake: a rate over other photos, not a check
    of this one."""
    record = loaded.heldout
    if record is None:
        return (f"*No held-out measurement* for this detector: `detectlab heldout eval {cli_name(loaded.short_name)} "
                "--no-manifest` measures how often it calls unseen real photos fake.")
    return record.describe(scoring)


#: Widths of the detector table's columns (``catalog.SHIPPED_TABLE_HEADERS``): name and arch wrap, the six
#: false-positive columns get room for their two-word lines.
SHIPPED_COLUMN_WIDTHS = ["14%", "12%", "6%", "6%", "5%", "7%", "6%", "8%", "8%", "7%", "7%", "7%", "7%"]


#: How one image is scored: shrunk to the detector's input (with a Grad-CAM heatmap), or tile by tile
#: at its own resolution (``detect.tiling``: the high-frequency trace a detector looks for survives).
SCORING = {"resize": "resize to the detector's input (with heatmap)",
           "tiles": "native-resolution tiles (large photos; tile map)"}


@dataclass(frozen=True)
class Shown:
    """One verdict on the page and what it was drawn from: enough to re-blend the heatmaps at another opacity
    without the model (``reblend``)."""

    judgement: Judgement
    loaded: LoadedDetector
    label: str
    file_name: str
    scoring: str
    opacity: float

    def verdict_md(self) -> str:
        j = self.judgement
        return _verdict_md(j.analysis, self.loaded, self.label, self.file_name, self.opacity, j.verdict, j.tiled)

    def gallery(self) -> list:
        return _shown_tiled(self.judgement) if self.scoring == "tiles" else _shown(self.judgement.analysis,
                                                                                    self.opacity)


def detect_one(file: str | None, detector_label: str, method: str, opacity: float, scoring: str = "resize"):
    """Score one uploaded image; returns (verdict markdown, overlays, analysis).

    The image is scored the way ``scoring`` asks, and the other way too when it is large enough for
    the two to disagree (``detect.verdict.judge_file``)."""
    md, items, shown = _judge(file, detector_label, method, opacity, scoring)
    return md, items, None if shown is None else shown.judgement.analysis


def _judge(file: str | None, detector_label: str, method: str, opacity: float, scoring: str = "resize"):
    """``detect_one`` for the page: (verdict markdown, overlays, ``Shown`` or None on an error)."""
    if not file:
        return "**Error:** upload an image first", [], None
    try:
        loaded = load_detector(detector_label)
        j = judge_file(loaded.detector, file, loaded.threshold, scoring=scoring, trust=loaded.trust, method=method,
                       name=Path(file).name)
        shown = Shown(j, loaded, detector_label, Path(file).name, scoring, float(opacity))
        return shown.verdict_md(), shown.gallery(), shown
    except Exception as exc:  # noqa: BLE001 - a clear message; the tab keeps working
        return message(exc, file), [], None


def reblend(shown: Shown | None, opacity: float):
    """The opacity slider: the cached heatmaps blended again at ``opacity``, no model call; (verdict, gallery,
    state). Nothing to re-blend (no verdict on the page, tiles scoring, the opacity already shown): every
    output is skipped, so nothing is re-sent or re-drawn."""
    if shown is None or shown.scoring == "tiles" or float(opacity) == shown.opacity:
        return gr.skip(), gr.skip(), gr.skip()
    shown = replace(shown, opacity=float(opacity))
    return shown.verdict_md(), shown.gallery(), shown


def _shown_tiled(j: Judgement) -> list:
    """The input preview, the per-tile P(fake) as a map and its colour scale."""
    t = j.tiled.score
    items = [(j.tiled.preview, f"input ({t.image_size[1]}×{t.image_size[0]} px)")]
    if j.tiled.tile_map is not None:
        items += [(j.tiled.tile_map, f"P(fake) per tile ({t.tiles_scored} of {t.tiles_total} scored"
                   + ("; black = not sampled)" if t.tiles_scored < t.tiles_total else ")")),
                  (colour_bar(), "colour scale: blue 0 → red 1 = P(fake) of the tile")]
    return items


def pick_sample(path: str | None):
    """A picked sample image as the upload's value (only the paths ``sample_images`` lists)."""
    return path if path in {p for _, p in sample_images()} else None


def detect_sample(path: str | None, detector_label: str, method: str, opacity: float, scoring: str = "resize"):
    """A picked sample, in one event: the upload shows it (so re-scoring and the verdict name it) and
    it is scored, as an upload is."""
    file = pick_sample(path)
    if file is None:
        return gr.update(), "**Error:** pick one of the listed sample images", [], None
    return (file, *_judge(file, detector_label, method, opacity, scoring))


def rescore(file: str | None, detector_label: str, method: str, opacity: float, scoring: str = "resize"):
    """A changed detector, heatmap method or scoring re-scores the current image (the model is cached), so
    the verdict on screen always belongs to the inputs shown. (Opacity only re-blends: ``reblend``.)"""
    if not file:
        return f"Detector **{detector_label}** picked: upload an image to score it.", [], None
    return _judge(file, detector_label, method, opacity, scoring)


def _shown(a, opacity: float) -> list:
    """The detector's input, one overlay per heatmap target (captioned with the decision it explains), and
    the colour scale."""
    items = [(to_pil(a.image), f"input ({a.image.shape[-1]} px)")]
    items += [(overlay(a.image, m, opacity), f"{a.method} on {name}: evidence for '{a.decision}'")
              for name, m in a.maps]
    if a.maps:
        items.append((colour_bar(), f"colour scale: blue 0 → red 1 = strongest evidence for '{a.decision}'"))
    return items


def api_detect(image_path: str, detector: str = "cnn-resnet18", method: str = "gradcam", opacity: float = 0.5,
               scoring: str = "resize"):
    """P(fake), decision and heatmap overlay of one image, scored by one detector.

    Args:
        image_path: the image file (PNG, JPEG, WebP, BMP, TIFF), decoded by DetectLab.
        detector: a shipped name as the CLI spells it (cnn-resnet18, spectrum-durrall, ...), the Detect tab's label (shipped: cnn-resnet18) or a run id; empty: the first shipped detector.
        method: heatmap method, gradcam or gradcam++.
        opacity: heatmap opacity over the image, 0 to 1.
        scoring: resize (the image shrunk to the detector's input, with a heatmap) or tiles (native resolution, tile by tile; for large photos).
    Returns:
        JSON {p_fake, decision (this scoring path's, at the threshold), threshold, detector, scoring, verdict (fake, real, or uncertain when resize and tiles disagree or the image is unlike the training data), verdict_reasons, p_fake_resize, p_fake_tiles (large images are scored both ways; null when tiles did not run), heldout_fp (share of held-out real photos this detector calls fake on this scoring path; null when not measured), heldout_warning (the trust targets it misses; empty when it meets them), heldout_designs_caught (share of fakes from the demo's held-out generator designs, which it never trained on, called fake; null when not measured), heldout_designs (that share per design); and, when the checkpoint is calibrated, p_fake_calibrated, unlike_training, ood_distance, ood_threshold; for tiles, p_fake_max_tile, tiles_scored, tiles_total} and the heatmap overlay (PNG; the image itself for a detector without a spatial layer; the tile map for tiles).
    """
    try:
        if not image_path:
            raise DetectLabError("no image: send one image file")
        if scoring not in SCORING:
            raise DetectLabError(f"scoring must be one of {', '.join(SCORING)}, got {scoring!r}")
        label = pick_detector(detector)
        loaded = load_detector(label)
        j = judge_file(loaded.detector, image_path, loaded.threshold, scoring=scoring, trust=loaded.trust,
                       method=method, name=Path(image_path).name)
    except Exception as exc:  # noqa: BLE001 - the client gets DetectLab's message, no server paths
        raise api_error(exc, image_path) from None
    v, a = j.verdict, j.analysis
    result = {"p_fake": v.p_fake, "decision": v.decision, "threshold": v.threshold, "detector": label,
              "scoring": j.tiled.score.mode if scoring == "tiles" else "resize", **v.to_dict(),
              **loaded.heldout_fields(scoring)}
    if a.assessment is not None:
        result.update(p_fake_calibrated=a.assessment.p_calibrated, unlike_training=a.assessment.unlike_training,
                      ood_distance=a.assessment.ood_distance, ood_threshold=a.assessment.ood_threshold)
    if scoring == "tiles":
        t = j.tiled.score
        result.update(p_fake_max_tile=t.p_fake_max, tiles_scored=t.tiles_scored, tiles_total=t.tiles_total)
        out = write_png(j.tiled.tile_map or j.tiled.preview, output_path("tiles.png"))
    else:
        out = write_png(verdict_image(a, opacity), output_path("heatmap.png"))
    return result, str(out)


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


GROUP_HEADERS = ["split", "generator", "images (its fakes + all reals)", "accuracy", "fake accuracy", "AP"]


def _metrics_md(m: dict, selection) -> str:
    on = (f"all {m['n']} labelled images" if selection.split == "all" else
          f"the {selection.split} split: {m['n']} of {selection.n_folder} labelled images")
    return (f"**Metrics on {on}**\n\naccuracy {_fmt(m['accuracy'])} · balanced "
            f"accuracy {_fmt(m['balanced_accuracy'])} · AP {_fmt(m['ap'])} · ROC AUC {_fmt(m['roc_auc'])}")


def group_rows(m: dict, split: str) -> list[list]:
    """The per-generator table: each generator's fakes against all real images (as UnivFD reports), the reals alone."""
    rows = [[split, "all images", m["n"], m["accuracy"], m["fake_accuracy"], m["ap"]]]
    for g, v in (m.get("per_group") or {}).items():
        rows.append([split, g, v.get("n"), v.get("accuracy"), v.get("fake_accuracy"), v.get("ap")])
    return [[c if not isinstance(c, float) else round(c, 4) for c in r] for r in rows]


def split_for_folder(folder: str | None):
    """The split a typed folder defaults to: test for a demo set, all for any other folder."""
    try:
        root = resolve_in_roots(folder, config.data_roots()) if folder and folder.strip() else None
    except DetectLabError:
        root = None
    return default_split(root)


def detect_batch(files: list[str] | None, folder: str, detector_label: str, split_name: str = "all",
                 progress=gr.Progress()):
    """(status, rows, predictions CSV, metrics markdown, confusion figure): ``score_batch`` without the
    per-generator table and the metrics JSON."""
    return score_batch(files, folder, detector_label, split_name, progress)[:5]


def score_batch(files: list[str] | None, folder: str, detector_label: str, split_name: str = "all",
                progress=gr.Progress()):
    """Score many images; with a labelled folder (one split, or all) also AP, accuracy, balanced accuracy,
    confusion and a per-generator table; the predictions CSV and a metrics JSON to download."""
    empty = ([], None, "", None, gr.update(value=[], label="Per generator"), None)
    try:
        loaded = load_detector(detector_label)
        prog = GradioProgress(progress)
        metrics_md, fig, groups, metrics_file, where = "", None, gr.update(value=[], label="Per generator"), None, ""
        if folder and folder.strip():
            root = resolve_in_roots(folder, config.data_roots())
            reason = ("the demo's test split by default: the shipped detectors trained on its train and val splits"
                      if is_demo_set(root) and split_name == "test" else "")
            # scored as ``detectlab predict`` / ``eval`` score: calibrated, out-of-distribution flag, both ways
            preds, metrics, selection = score_folder(loaded.detector, root, progress=prog, split_name=split_name,
                                                     reason=reason, **scoring_options(loaded))
            if not preds:
                raise DatasetError(f"{root.name}: no image files (PNG, JPEG, WebP, BMP, TIFF) in this folder")
            where = f" · `{root.name}`, {selection.describe()}"
            labels = {p.label for p in preds if p.p_fake is not None}
            if metrics is None:
                metrics_md = "No labels found (not in a real/fake layout): scores only."
            else:
                d = metrics.to_dict()
                metrics_md, fig = _metrics_md(d, selection), confusion_figure(metrics.confusion)
                groups = gr.update(value=group_rows(d, selection.split),
                                   label=f"Per generator — {selection.split} split, {selection.n_selected} of "
                                         f"{selection.n_folder} images")
                metrics_file = write_metrics_json(output_path("detectlab_metrics.json"), detector=detector_label,
                                                  folder=root.name, selection=selection, metrics=d)
                if len(labels) == 1:
                    metrics_md = (f"**Note:** only one class ({'fake' if labels == {1} else 'real'} images): balanced "
                                  "accuracy, AP and ROC AUC need both, so they read n/a.\n\n" + metrics_md)
        else:
            if not files:
                return ("**Error:** upload images or give a folder inside the data roots", *empty)
            preds = score_files(loaded, [Path(f) for f in files], progress=prog)
            for p in preds:  # uploads: their own names, never the upload cache's paths (rows and CSV)
                p.file, p.error = Path(p.file).name, scrub(p.error, *files)
            where = " · uploads" + ("" if split_name in ("all", None) else " (splits apply to a labelled folder: "
                                                                           "every upload scored)")
        rows = [_batch_row(p, p.file if folder else Path(p.file).name, detector_label) for p in preds]
        out = output_path("detectlab_predictions.csv")
        write_csv(preds, out, detector_label)
        bad = sum(p.decision == "error" for p in preds)
        status = (f"Scored {len(preds) - bad} images with {detector_label}{where}"
                  + (f"; {bad} could not be read (see the error column)" if bad else ""))
        return status, rows, str(out), metrics_md, fig, groups, None if metrics_file is None else str(metrics_file)
    except Exception as exc:  # noqa: BLE001
        return (message(exc, *(files or [])), *empty)


def _batch_row(p, file: str, detector_label: str) -> list:
    """One row of the batch table (``TABLE_HEADERS``)."""
    def r4(v):
        return None if v is None else round(v, 4)

    unlike = "" if p.unlike_training is None else ("yes" if p.unlike_training else "no")
    verdict = p.verdict + (f" ({'; '.join(p.reasons)})" if p.reasons else "")
    return [file, r4(p.p_fake), r4(p.p_calibrated), r4(p.p_fake_tiles), p.decision, verdict, unlike, detector_label,
            p.label, p.generator or "", p.error]


def build() -> dict:
    with gr.Row():
        detector = _detector_dropdown(elem_id="detect-detector", scale=3)
        refresh = gr.Button("↻ refresh detectors", scale=1, elem_id="detect-refresh")
        method = gr.Radio(list(CAM_METHODS), value="gradcam", label="Heatmap", scale=2)
        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heatmap opacity", scale=2, elem_id="detect-opacity")
    refresh.click(refresh_detectors, detector, detector, api_name=False)
    refresh_on_open(detector, state.detector_choices)  # choices only: a pick made meanwhile is kept
    with gr.Accordion("Shipped detectors: test metrics on the demo, false positives on real photos it never saw, "
                      "and what they say against the papers", open=False):
        from detectlab.catalog import SHIPPED_TABLE_HEADERS, findings, shipped_table

        gr.Markdown("FP = share of real photos called fake. *Held-out* photos come from packages the demo never "
                    "used (`detectlab heldout eval`): on a user's own photos, expect the held-out rate, not the "
                    "demo's.")
        # wrapped, in widths that fit the panel: the held-out columns are on screen, not past a scroll bar
        gr.Dataframe(value=shipped_table(), headers=SHIPPED_TABLE_HEADERS, interactive=False, wrap=True,
                     column_widths=SHIPPED_COLUMN_WIDTHS, elem_id="detect-shipped")
        gr.Markdown("\n\n".join(f"- {f}" for f in findings()) or "No shipped checkpoints.", elem_id="detect-findings")
    with gr.Tab("One image"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image (PNG, JPEG, WebP, BMP, TIFF)", file_count="single", type="filepath",
                                 elem_id="detect-upload")
                sample = gr.Dropdown(choices=sample_images(), value=None, label="…or a sample image (demo test split, "
                                     "held-out photos)", elem_id="detect-sample")
                scoring = gr.Radio([(v, k) for k, v in SCORING.items()], value="resize", label="Scoring",
                                   elem_id="detect-scoring")
                run = gr.Button("Detect", variant="primary", elem_id="detect-run")
            with gr.Column(scale=2):
                verdict = gr.Markdown(elem_id="detect-verdict")
                gallery = gr.Gallery(label="Input and heatmap (one per backbone for ensembles)", columns=3, height=300,
                                     object_fit="contain", elem_id="detect-heatmaps")
        shown = gr.State(None)   # a ``Shown``: what the verdict on the page was drawn from
        one_in, one_out = [upload, detector, method, opacity, scoring], [verdict, gallery, shown]
        # opacity only re-blends the heatmaps kept in ``shown``: no model call, no queue (its round trip alone
        # is ~60 ms more: bench/bench_sliders.py), no progress overlay; dragged, or typed and Enter
        fast = dict(api_name=False, queue=False, show_progress="hidden", trigger_mode="always_last")
        opacity.change(reblend, [shown, opacity], one_out, **fast)
        # one queue for every trigger, so answers arrive in the order the inputs changed; each answer is then
        # re-blended at the opacity on screen now, in case it moved while the image was being scored
        run.click(_judge, one_in, one_out, api_name=False, concurrency_id="detect-one").then(
            reblend, [shown, opacity], one_out, **fast)
        upload.upload(_judge, one_in, one_out, api_name=False, concurrency_id="detect-one").then(
            reblend, [shown, opacity], one_out, **fast)
        # a picked sample becomes the upload and is scored, in one event (one round trip, nothing chained)
        sample.input(detect_sample, [sample, *one_in[1:]], [upload, *one_out], api_name=False,
                     concurrency_id="detect-one", trigger_mode="always_last").then(
            reblend, [shown, opacity], one_out, **fast)
        refresh_on_open(sample, sample_images)  # the demo's samples appear once it is materialized
        for changed in (detector, method, scoring):
            changed.change(rescore, one_in, one_out, api_name=False, concurrency_id="detect-one",
                           trigger_mode="always_last").then(reblend, [shown, opacity], one_out, **fast)
    with gr.Tab("Batch"):
        with gr.Row():
            files = gr.File(label="Images", file_count="multiple", type="filepath", elem_id="detect-batch-files")
            folder = gr.Textbox(label="…or a folder inside the data roots (labelled layouts give metrics)",
                                placeholder="e.g. demo", elem_id="detect-batch-folder")
        with gr.Row():
            split = gr.Radio(list(SPLITS), value="all", label="Split of a labelled folder (the 80/10/10 split by "
                             "source group that training uses; test is the default for the demo)",
                             elem_id="detect-batch-split", scale=3)
            go_btn = gr.Button("Score batch", variant="primary", elem_id="detect-batch-run", scale=1)
        folder.change(split_for_folder, folder, split, api_name=False, trigger_mode="always_last")
        status = gr.Markdown(elem_id="detect-batch-status")
        with gr.Row():
            metrics = gr.Markdown(elem_id="detect-batch-metrics")
            conf = gr.Plot(label="Confusion matrix")
        groups = gr.Dataframe(headers=GROUP_HEADERS, interactive=False, label="Per generator",
                              elem_id="detect-batch-groups")
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Predictions (click a header to sort)",
                             elem_id="detect-batch-table", max_height=420, wrap=True)
        with gr.Row():
            csv_file = gr.File(label="Predictions (CSV)", elem_id="detect-batch-csv")
            metrics_file = gr.File(label="Metrics (JSON: split, counts, per generator)", elem_id="detect-batch-json")
        go_btn.click(score_batch, [files, folder, detector, split],
                     [status, table, csv_file, metrics, conf, groups, metrics_file], api_name=False)
    return {"detector": detector}
