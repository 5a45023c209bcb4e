"""Fingerprints tab: FP(R, S) side by side, radial profiles, one image's spectrum, fingerprint removal.

Wiring only: the spectra, the removal and the files come from ``detectlab.spectral.sets``, the
figures from ``detectlab.spectral.plots``.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from detectlab.catalog import DEMO_LABEL, demo_generators, known_datasets, load_detector, resolve_dataset
from detectlab.data.decode import to_pil
from detectlab.spectral.plots import grid_figure, profile_figure, removal_figure
from detectlab.spectral.sets import compare_sets, export_comparison, files_by_class, removal_preview, save_clean_set
from detectlab.ui import first_run, state
from detectlab.ui.common import GradioProgress, refresh_on_open
from detectlab.ui.widgets import message, output_path

_DEMO = DEMO_LABEL


def list_sets(choice: str, folder: str):
    try:
        gens = [g for g in files_by_class(resolve_dataset(choice, folder)) if g != "real"]
        return gr.update(choices=gens, value=gens), gr.update(choices=gens, value=gens[0] if gens else None), ""
    except Exception as exc:  # noqa: BLE001
        return gr.update(choices=[], value=[]), gr.update(choices=[], value=None), message(exc)


def compute(choice, folder, gens, n, use_residual, limit, single_file, raw=False, progress=gr.Progress()):
    """Generator fingerprints FP(real, generator) of a data set ([Wimmer 2024], eq. 1): panels, radial profiles, arrays.

    Args:
        choice: a data set by name (the demo, or an imported one as "uploaded: NAME").
        folder: a folder inside the data roots instead (wins over choice when given).
        gens: the generators (fake folders) to compare with real (at least one).
        n: images per class averaged (0: all).
        use_residual: average the spectra of denoising residuals instead of the images.
        limit: colour-scale limit of the panels (0: automatic).
        single_file: an optional image whose own spectrum is shown beside the fingerprints.
        raw: show each class's mean spectrum instead of the difference to real.
    Returns:
        status text, the panels side by side, the radial spectrum profiles, and the panels as arrays (.npz).
    """
    try:
        root = resolve_dataset(choice, folder)
        cmp = compare_sets(files_by_class(root), list(gens or []), int(n) or None, bool(use_residual), bool(raw),
                           single_file, progress=GradioProgress(progress), name=root.name)
        status = f"{cmp.counts['real']} real images; " + ", ".join(f"{k}: {v}" for k, v in cmp.counts.items() if k != "real")
        settings = {"data set": root.name, "synthetic sets": list(gens), "images per set": int(n) or "all",
                    "high-pass residual": bool(use_residual), "raw spectra": bool(raw),
                    "single image": Path(single_file).name if single_file else None}
        export = export_comparison(cmp, output_path("fingerprints.npz"), settings)
        grid = grid_figure(cmp.panels, float(limit), cmp.raw, cmp.single_panel)
        return status, grid, profile_figure(cmp.profiles, cmp.single), cmp, str(export)
    except Exception as exc:  # noqa: BLE001
        return message(exc, single_file), None, None, None, None


def recolor(cmp, limit):
    """The colour scale changes without recomputing the spectra."""
    if not cmp:
        return gr.update()
    return grid_figure(cmp.panels, float(limit), cmp.raw, cmp.single_panel)


def preview(choice, folder, gen, method, strength, threshold, n, detector_label, progress=gr.Progress()):
    try:
        by_class = files_by_class(resolve_dataset(choice, folder))
        det = load_detector(detector_label).detector if detector_label else None
        p = removal_preview(by_class["real"], by_class[gen], method, float(strength), float(threshold), det,
                            limit=int(n) or 256, progress=GradioProgress(progress))
        text = (f"**{method.upper()}** strength {p.strength:g} on {p.n} {gen} images — change PSNR {p.psnr_db:.1f} dB")
        if p.p_fake_before is not None:
            text += f"; mean P(fake) {p.p_fake_before:.3f} → {p.p_fake_after:.3f} ({detector_label})"
        return text, [(to_pil(p.before), "before"), (to_pil(p.after), f"after {method}")], removal_figure(p, gen)
    except Exception as exc:  # noqa: BLE001
        return message(exc), [], None


def save_clean(choice, folder, gen, method, strength, threshold, name, progress=gr.Progress()):
    try:
        out = save_clean_set(files_by_class(resolve_dataset(choice, folder)), gen, method, name, float(strength),
                             float(threshold), progress=GradioProgress(progress))
        return f"Saved `{out}` (real + {gen}-{method}); pick **uploaded: {out.name}** in the Train or Data tab."
    except Exception as exc:  # noqa: BLE001
        return message(exc)


def build() -> None:
    gr.Markdown("Wimmer 2024, eq. 1: FP(R, S) = mean log|F(S)| − mean log|F(R)| (centred spectra, grayscale). "
                "Red: the synthetic set has more energy at that frequency than the real photos.")
    with gr.Row():
        choice = gr.Dropdown(list(known_datasets()), value=_DEMO, label="Data set", elem_id="fp-data")
        refresh_on_open(choice, known_datasets)
        folder = gr.Textbox(label="…or a folder inside the data roots")
        synthetic = demo_generators()  # the demo's own generator folders; any other data set's when picked
        gens = gr.CheckboxGroup(synthetic, value=synthetic, label="Synthetic sets", elem_id="fp-gens")
    msg = gr.Markdown()
    with gr.Row():
        n = gr.Number(0, label="Images per set (0 = all; the paper uses 5000)", precision=0)
        use_residual = gr.Checkbox(False, label="High-pass residual first",
                                   info="the image minus its 3×3 box blur before the FFT, so scene content weighs less")
        raw = gr.Checkbox(False, label="Raw mean spectra (not differences)",
                          info="each set's mean log spectrum instead of its difference to the real photos")
        limit = gr.Slider(0, 6, 0, step=0.1, label="Colour scale ± of the sets (0 = auto)", elem_id="fp-scale",
                          info="shared by the set panels; an uploaded image's panel has its own automatic scale")
        single = gr.File(label="Optional: one image to compare", type="filepath", elem_id="fp-single")
    run = gr.Button("Compute fingerprints", variant="primary", elem_id="fp-run")
    status = gr.Markdown(elem_id="fp-status", label="status")
    grid = gr.Plot(label="Fingerprints, side by side", elem_id="fp-grid")
    profiles = gr.Plot(label="Radial spectrum profiles", elem_id="fp-profiles")
    export = gr.File(label="Panels, radial profiles, counts and settings (.npz)")
    kept = gr.State(None)
    gr.Markdown("### Fingerprint removal ([Wimmer 2024] §5: Mean-Spectrum and Frequency-Peaks attacks)")
    with gr.Row():
        gen = gr.Dropdown(synthetic, value=synthetic[0] if synthetic else None, label="Synthetic set to clean")
        method = gr.Radio(["msa", "fpa"], value="msa", label="Method",
                          info="MSA (Mean-Spectrum Attack): subtract the set's mean fingerprint from every image's "
                               "spectrum; FPA (Frequency-Peaks Attack): damp only the frequencies where the "
                               "fingerprint peaks")
        strength = gr.Slider(0, 2, 1, step=0.05, label="Strength",
                             info="how much of the fingerprint is subtracted from the log-amplitude: 1 = all of it, "
                                  "0 = nothing, 2 = twice")
        threshold = gr.Slider(1, 8, 3, step=0.5, label="FPA peak threshold (std above mean)",
                              info="FPA only: a frequency counts as a peak this many standard deviations above "
                                   "the fingerprint's mean")
        detector = gr.Dropdown(list(state.detector_choices()), value=None, label="Detector for P(fake) before/after")
    with gr.Row():
        n_prev = gr.Number(256, label="Images in the preview", precision=0)
        prev_btn = gr.Button("Preview removal", elem_id="fp-preview")
        name = gr.Textbox("", label="Name of the cleaned data set")
        save_btn = gr.Button("Save cleaned set as a new data set")
    prev_text = gr.Markdown(elem_id="fp-preview-text")
    with gr.Row():
        pair = gr.Gallery(label="Before / after", columns=2, height=260, object_fit="contain")
        prev_fig = gr.Plot(label="Fingerprint before / after")
    saved = gr.Markdown()

    choice.change(list_sets, [choice, folder], [gens, gen, msg], api_name=False)
    first_run.on_demo_ready(list_sets, [gens, gen, msg], [choice, folder])
    folder.submit(list_sets, [choice, folder], [gens, gen, msg], api_name=False)
    refresh_on_open(detector, state.detector_choices)
    run.click(compute, [choice, folder, gens, n, use_residual, limit, single, raw], [status, grid, profiles, kept, export],
              api_name=False)
    limit.release(recolor, [kept, limit], grid, api_name=False)
    prev_btn.click(preview, [choice, folder, gen, method, strength, threshold, n_prev, detector],
                   [prev_text, pair, prev_fig], api_name=False)
    save_btn.click(save_clean, [choice, folder, gen, method, strength, threshold, name], saved, api_name=False)
