"""Data tab: what a data set holds (counts per class, generator and split, examples); import and delete."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from detectlab import config
from detectlab.catalog import DEMO_LABEL, UPLOADED_PREFIX, known_datasets, resolve_dataset
from detectlab.data.overview import delete_dataset, import_dataset_zip, overview, resolve_in_roots
from detectlab.errors import DatasetError
from detectlab.ui.common import GradioProgress, refresh_on_open
from detectlab.ui.widgets import plain_message, plain_text, relative_to_roots, scrub

HEADERS = ["class", "generator", "images", "train", "val", "test"]
#: Gallery captions ("generator: file") wrap inside their thumbnail instead of being cut off with an ellipsis.
GALLERY_CSS = ("<style>#data-gallery .caption-label, #data-fingerprints .caption-label {white-space: normal; "
               "overflow-wrap: anywhere; text-overflow: clip; max-width: calc(100% - 8px); opacity: 0.85}</style>")


def _reason(path: Path, reason: str) -> str:
    """A skipped file's reason without the file's own path in front (the table names it), in plain text."""
    for form in (str(path), str(path.resolve())):
        if reason.startswith(form + ": "):
            reason = reason[len(form) + 2:]
            break
    return plain_text(relative_to_roots(scrub(reason)))


def _render(path: Path, progress: gr.Progress, not_stored: list[tuple[str, str]] = ()):
    # listed, not probed (no file opened): a 100k-image folder opens in seconds; the step that reads an
    # unreadable file reports it then
    ov = overview(path, progress=GradioProgress(progress), validate=False)
    gallery = [(str(p), f"{name}: {p.name}") for name, files in ov.examples.items() for p in files]
    skipped = [[str(p.relative_to(ov.root)) if ov.root in p.parents else p.name, _reason(p, reason)]
               for p, reason in ov.skipped]
    skipped += [[plain_text(name), plain_text(reason)] for name, reason in not_stored]
    status = (f"**{ov.root.name}** — layout `{ov.layout}`, {ov.total} images"
              + (f", {len(skipped)} files skipped (listed below"
                 + (f"; {len(not_stored)} not images, not stored" if not_stored else "") + ")"
                 if skipped else "")
              + ". Splits are 80/10/10 by source group, seed 0."
              + (f"\n\n**Note:** {ov.note}." if ov.note else ""))
    return status, ov.rows, gallery, skipped


def _empty(message: str):
    return message, [], [], []


def show_dataset(label: str, progress=gr.Progress()):
    """What a known data set holds: layout, counts per class, generator and split, examples, skipped files.

    Args:
        label: the data set's name, as the Data tab lists it (the demo, or "uploaded: NAME").
    """
    try:
        return _render(resolve_dataset(label, progress=GradioProgress(progress)), progress)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message, the app keeps serving
        return _empty(plain_message(exc))


def open_folder(text: str, progress=gr.Progress()):
    """What a folder inside the data roots holds: layout, counts per class, generator and split, examples.

    Args:
        text: the folder, absolute or relative to a data root (e.g. demo).
    """
    try:
        return _render(resolve_in_roots(text, config.data_roots()), progress)
    except Exception as exc:  # noqa: BLE001
        return _empty(plain_message(exc))


def upload_zip(file: str | None, progress=gr.Progress()):
    """Import a data set from a .zip (real/ + generator folders, 0_real/ + 1_fake/, or images/ + masks/).

    Only images (and manifest.json) are stored: other files, and files named like images that do
    not decode as one, are listed as skipped. A zip that is not a data set is not kept.

    Args:
        file: the .zip archive.
    """
    if not file:
        return (*_empty("**Error:** choose a .zip file first"), gr.update())
    try:
        if Path(file).suffix.lower() != ".zip":
            raise DatasetError(f"{Path(file).name}: not a .zip file; upload the data set as one .zip archive")
        not_stored: list[tuple[str, str]] = []
        root = import_dataset_zip(Path(file), skipped=not_stored)
        label = f"{UPLOADED_PREFIX}{root.relative_to(config.datasets_dir()).parts[0]}"
        return (*_render(root, progress, not_stored), gr.update(choices=list(known_datasets()), value=label))
    except Exception as exc:  # noqa: BLE001
        return (*_empty(plain_message(exc, file)), gr.update())


def delete(label: str | None, confirmed: bool):
    """Delete an imported data set; its files cannot be recovered.

    Args:
        label: the imported data set, as listed ("uploaded: NAME"); the demo sets cannot be deleted.
        confirmed: must be true, as the tab's confirmation box.
    Returns:
        status text, the data set picker, the confirmation box (cleared).
    """
    try:
        if not label or not label.startswith(UPLOADED_PREFIX):
            raise DatasetError(f"'{label or ''}' is not an imported data set: only data sets imported into "
                               "DetectLab (listed as 'uploaded: …') can be deleted here")
        if not confirmed:
            raise DatasetError(f"tick 'yes, delete {label}' to confirm; the files cannot be recovered")
        gone = delete_dataset(label[len(UPLOADED_PREFIX):])
        return (f"Deleted **{gone.name}** and its files.", gr.update(choices=list(known_datasets()), value=DEMO_LABEL),
                gr.update(value=False))
    except Exception as exc:  # noqa: BLE001
        return plain_message(exc), gr.update(), gr.update(value=False)


def feature_cache_row() -> str:
    """The Data tab's "Feature cache: N MB — Clear" line (``data.featcache``)."""
    from detectlab.data import featcache

    return (f"**Feature cache:** {featcache.describe()} — frozen-backbone features kept for training, "
            "embeddings and experiments (extracted again after Clear)")


def clear_feature_cache() -> str:
    """Delete the cached frozen-backbone features; returns the row's new text, saying what was freed."""
    from detectlab.data import featcache

    try:
        nbytes, files = featcache.clear()
    except Exception as exc:  # noqa: BLE001
        return plain_message(exc)
    return feature_cache_row() + f" · cleared {nbytes / 1e6:,.1f} MB in {files} file{'s' if files != 1 else ''}"


def fingerprint_gallery() -> list[tuple[str, str]]:
    """The demo generators' rendered fingerprints, one per design the build wrote, in the demo's order, each
    captioned with its design and group."""
    from detectlab.generators.designs import DESIGNS

    pngs = {png.stem: png for png in (config.ASSETS / "fingerprints").glob("*.png")}
    order = [n for n in DESIGNS if n in pngs] + sorted(set(pngs) - set(DESIGNS))
    out = []
    for name in order:
        about = f" — {DESIGNS[name].summary}" if name in DESIGNS else ""
        out.append((str(pngs[name]), f"FP(real, {name}){about}"))
    return out


def build() -> tuple:
    """Lay out the Data tab (inside an open ``gr.Tab``); returns the data set picker, the outputs
    ``show_dataset`` fills and the feature-cache row, for the app's page-load events."""
    gr.Markdown(
        "Pick a data set, type a folder inside the data roots, or upload a .zip. Accepted layouts: "
        "`real/` + one folder per generator; `0_real/` + `1_fake/` (optionally under generator folders); "
        "`images/` + `masks/` for partially manipulated images."
    )
    with gr.Row():
        choice = gr.Dropdown(choices=list(known_datasets()), value=DEMO_LABEL,
                             label="Data set", elem_id="data-choice", scale=2)
        refresh_on_open(choice, known_datasets)
        folder = gr.Textbox(label="…or a folder inside the data roots", placeholder="e.g. demo or /data/mine",
                            elem_id="data-folder", scale=2)
        open_btn = gr.Button("Open folder", elem_id="data-open", scale=1)
    with gr.Row():
        upload = gr.File(label="…or upload a data set (.zip)", file_types=[".zip"], elem_id="data-zip")
        upload_btn = gr.Button("Import .zip", elem_id="data-import")
    status = gr.Markdown(elem_id="data-status", label="status")
    counts = gr.Dataframe(headers=HEADERS, label="Images per class, generator and split", interactive=False,
                          elem_id="data-counts")
    gr.HTML(GALLERY_CSS, padding=False, elem_id="data-gallery-style")
    gallery = gr.Gallery(label="Examples per class / generator", columns=6, height=320, object_fit="contain",
                         elem_id="data-gallery")
    skipped = gr.Dataframe(headers=["file", "reason"], label="Skipped files", interactive=False)
    gr.Gallery(value=fingerprint_gallery(), label="Demo generator fingerprints FP(R, S) ([Wimmer 2024], eq. 1; shared colour scale, red = more energy than real)",
               columns=4, height=420, elem_id="data-fingerprints")
    outputs = [status, counts, gallery, skipped]
    choice.change(show_dataset, choice, outputs, api_name=False)
    open_btn.click(open_folder, folder, outputs, api_name=False)
    folder.submit(open_folder, folder, outputs, api_name=False)  # the same as the button
    upload_btn.click(upload_zip, upload, [*outputs, choice], api_name=False)
    with gr.Row():
        confirm = gr.Checkbox(False, label="yes, delete the selected imported data set (its files cannot be recovered)",
                              elem_id="data-delete-confirm")
        delete_btn = gr.Button("Delete data set", variant="stop", elem_id="data-delete")
    delete_btn.click(delete, [choice, confirm], [status, choice, confirm], api_name=False)
    with gr.Row():
        cache_row = gr.Markdown(elem_id="data-featcache")  # filled at each page load (the app's load events)
        clear_btn = gr.Button("Clear", elem_id="data-featcache-clear", scale=0, min_width=80)
    clear_btn.click(clear_feature_cache, None, cache_row, api_name=False)
    return choice, outputs, cache_row
