"""Attack tab: the FGSM / PGD / L-BFGS playground with an eps slider, and [Petrželková 2024] §4.4's set-level experiments.

Wiring only: every number comes from ``detectlab.attacks`` (playground, experiments, paper), every
figure from ``detectlab.attacks.plots``, the mirror pair's training configs from ``attacks.mirror_configs``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from detectlab import config
from detectlab.attacks import (
    DESCRIPTIONS,
    MIRROR_BASE,
    MIRROR_NAMES,
    PLAYGROUND_OPTIONS,
    SCORINGS,
    attack_file,
    blur_defence,
    cross_sample,
    load_split,
    mirror,
    mirror_configs,
    paper,
    parse_eps_list,
    transfer,
    write_csv,
)
from detectlab.attacks.plots import (
    blur_figure, cross_sample_figure, curves_figure, hardening_figure, matrix_figure, mirror_figure,
)
from detectlab.catalog import DEMO_LABEL, detector_choices, known_datasets, load_detector, resolve_dataset
from detectlab.errors import DetectLabError
from detectlab.progress import Cancelled
from detectlab.ui import state
from detectlab.ui.common import GradioProgress, SessionJobs, error_markdown, refresh_on_open
from detectlab.ui.widgets import api_error, output_path

DEFAULT_DETECTOR = "shipped: cnn-resnet18"
HARDENED_DETECTOR = "shipped: cnn-resnet18-adv"
METHODS = list(DESCRIPTIONS)
#: longest side of the before / after / residual images on the page (the download is full size)
VIEW_SIDE = 1024


# -- detectors ---------------------------------------------------------------------------------
def _labels() -> list[str]:
    return list(detector_choices())


def _default(choices: list[str], preferred: str) -> str | None:
    return preferred if preferred in choices else (choices[0] if choices else None)


def refresh():
    """New runs appear when a picker is opened; only the choices change, so a pick made meanwhile stays."""
    return gr.update(choices=_labels())


# -- playground ----------------------------------------------------------------------------------
def _survival_md(r) -> str:
    """Each survival number beside the same number for the clean image (the control), and what the pair says."""
    lines = [f"- **{c.label}**: clean {c.p_clean:.3f} → attacked {c.p_attacked:.3f} — "
             f"{c.conclusion(r.p_before, r.threshold)}" for c in r.checks]
    return ("**Does the attack survive?** Each step is applied to the clean image too (the control), and both "
            f"are scored on the {r.scoring} path (P(fake), threshold {r.threshold:.2f}):\n\n" + "\n".join(lines))


def _verdict(name: str, label: str, r) -> str:
    flip = "**decision flipped**" if r.flipped else "decision unchanged"
    return (f"### `{name}` · {r.method.upper()} ε = {r.eps:.3f} · {r.scoring}: P(fake) {r.p_before:.3f} → "
            f"{r.p_after:.3f} ({r.decision_before} → {r.decision_after}, {flip})\n"
            f"{label} · threshold {r.threshold:.2f} · {1000 * r.seconds:.0f} ms\n\n"
            f"Scored and attacked on the path Detect uses — {r.describe()}.\n\n"
            f"| change | L∞ | L2 | PSNR |\n|---|---|---|---|\n"
            f"| after − before | {r.size.linf:.4f} | {r.size.l2:.3f} | {r.size.psnr:.1f} dB |\n\n"
            + _survival_md(r))


def run_attack(file: str, detector_label: str, method: str, eps: float, scoring: str = "resize"):
    """Decode ``file`` as Detect does for ``scoring``, attack it there, and return the result and the adversarial
    PNG path (the detector's input size for resize, the upload's size for tiles)."""
    if not file:
        raise DetectLabError("upload or pick an image first")
    if method not in PLAYGROUND_OPTIONS:
        raise DetectLabError(f"unknown attack '{method}' (known: {', '.join(PLAYGROUND_OPTIONS)})")
    if scoring not in SCORINGS:
        raise DetectLabError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    det = load_detector(detector_label)
    r = attack_file(det.detector, file, method, eps, det.threshold, name=det.short_name, scoring=scoring,
                    file_name=Path(file).name, **PLAYGROUND_OPTIONS[method])
    return r, r.write_png(output_path(r.file_name(file)))


def playground(file, detector_label, method, eps, scoring="resize"):
    """UI: before / after / amplified |residual| side by side, the verdict with its controls, the PNG download."""
    return _playground(file, detector_label, method, eps, scoring, with_before=True)


def playground_eps(file, detector_label, method, eps, scoring="resize"):
    """UI, eps released: as ``playground`` without the before image, which eps does not change (not re-encoded,
    not sent again)."""
    return _playground(file, detector_label, method, eps, scoring, with_before=False)


def _playground(file, detector_label, method, eps, scoring, with_before: bool):
    try:
        r, out = run_attack(file, detector_label, method, eps, scoring)
        before, after, residual = r.views(VIEW_SIDE)
        w, h = r.output_size
        shown = "" if max(w, h) <= VIEW_SIDE else f", shown at {before.width}×{before.height}"
        _, gain = r.residual_image()
        res_label = (f"|after − before| ×{gain:.4g}{shown}: black = 0, white = {1 / gain:.4f}" if gain
                     else "|after − before|: none (ε = 0)")
        note = ("the detector's input on the resize path" if r.scoring == "resize" else "the upload's size")
        outs = (_verdict(Path(file).name, detector_label, r),
                gr.update(value=before, label=f"before: what the detector scores ({w}×{h}{shown})"),
                gr.update(value=after, label=f"after: adversarial, ε = {r.eps:.3f} ({w}×{h}{shown})"),
                gr.update(value=residual, label=res_label),
                gr.update(value=str(out), label=f"adversarial image (PNG, lossless, {w}×{h}: {note})"))
    except Exception as exc:  # noqa: BLE001 - a clear message; the tab keeps working
        outs = (error_markdown(exc), None, None, None, None)
    return outs if with_before else (outs[0], *outs[2:])


def api_attack(image: str, detector: str = "", method: str = "fgsm", eps: float = 0.02, scoring: str = "resize"):
    """Attack one image towards "real" on the path the detector scores it; the numbers, each survival check beside
    its clean control, and the adversarial image.

    Args:
        image: the image file (PNG, JPEG, WebP, BMP, TIFF), decoded by DetectLab.
        detector: a differentiable detector: a shipped name as the CLI spells it (cnn-resnet18, univfd-mobilenet_v2, ...), the Attack tab's label (shipped: cnn-resnet18) or a run id; empty: shipped: cnn-resnet18. The spectrum baseline is refused.
        method: fgsm, pgd or lbfgs.
        eps: L-infinity strength in [0, 1] pixel units.
        scoring: resize (the image as Detect's resize path scores it: its centre square at the detector's input size; the adversarial image has that size) or tiles (native resolution, every scored tile attacked; the adversarial image has the upload's size).
    Returns:
        JSON {detector, method, eps, scoring, width, height (of the adversarial image), source_width, source_height, tiles, p_fake_before, p_fake_after, decision_before, decision_after, flipped, linf, l2, psnr, p_fake_png, p_fake_jpeg90 (the adversarial image saved and read back), survival (per check: label, p_fake_clean (the clean image after the same step: the control), p_fake_attacked, conclusion), seconds} and the adversarial image (PNG).
    """
    try:
        r, out = run_attack(image, detector or DEFAULT_DETECTOR, method, eps, scoring)
    except Exception as exc:  # noqa: BLE001 - the client gets DetectLab's message, no server paths
        raise api_error(exc, image) from None
    w, h = r.output_size
    return {"detector": detector or DEFAULT_DETECTOR, "method": r.method, "eps": r.eps, "scoring": r.scoring,
            "width": w, "height": h, "source_width": r.source_size[0], "source_height": r.source_size[1],
            "tiles": r.tiles, "p_fake_before": r.p_before, "p_fake_after": r.p_after,
            "decision_before": r.decision_before, "decision_after": r.decision_after, "flipped": r.flipped,
            "linf": r.size.linf, "l2": r.size.l2, "psnr": r.size.psnr,
            "p_fake_png": r.p_saved["png"], "p_fake_jpeg90": r.p_saved["jpeg90"],
            "survival": {c.name: {"label": c.label, "p_fake_clean": c.p_clean, "p_fake_attacked": c.p_attacked,
                                  "conclusion": c.conclusion(r.p_before, r.threshold)} for c in r.checks},
            "seconds": r.seconds}, str(out)


# -- set-level: shared plumbing ------------------------------------------------------------------
_jobs = SessionJobs()
_cache: dict[tuple, object] = {}
_cache_lock = threading.Lock()


def cancel(request: gr.Request):
    _jobs.cancel(request)
    return "Cancelling after the current batch …"


def _images(choice, folder, split_name, limit, size, progress, token):
    """The picked split, decoded once per (folder, split, limit, size) and kept for the next experiment."""
    root = resolve_dataset(choice, folder or "", progress=progress)
    key = (str(root.resolve()), split_name, int(limit) if limit else None, size)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    images = load_split(root, split_name, size, limit=key[2], progress=progress, cancel=token)
    with _cache_lock:
        _cache.clear()  # one set at a time: bounded memory
        _cache[key] = images
    return images


def _csv(rows: list[dict], name: str) -> str:
    return str(write_csv(rows, output_path(name)))


def _table(rows: list[dict]) -> dict:
    headers = list(dict.fromkeys(k for r in rows for k in r))
    return gr.update(value=[[(round(r.get(k), 4) if isinstance(r.get(k), float) else r.get(k)) for k in headers]
                            for r in rows], headers=headers)


def _findings(lines: list[str], images) -> str:
    head = f"{len(images)} images ({images.n_fake} fake)"
    if images.skipped:
        head += f", {len(images.skipped)} unreadable skipped"
    return f"**{head}.**\n\n" + "\n".join(f"- {line}" for line in lines)


def _fail(exc: BaseException, n_outputs: int):
    msg = "**Cancelled.**" if isinstance(exc, Cancelled) else error_markdown(exc)
    return (msg, *([None] * n_outputs))


# -- set-level: experiments ------------------------------------------------------------------------
def _detectors(labels):
    if not labels:
        raise DetectLabError("pick at least one detector")
    return {d.short_name: d for d in map(load_detector, labels)}


def _experiment(request, progress, n_outputs: int, data: tuple, size_of, work):
    """Run ``work(images, progress, token)`` on the picked split with progress and a per-session Cancel;
    its (findings, rows, figures..., csv name) become the tab's outputs, any failure a message."""
    token, prog = _jobs.start(request), GradioProgress(progress)
    try:
        images = _images(*data, size_of(), prog, token)
        lines, rows, *figures, name = work(images, prog, token)
        return (_findings(lines, images), _table(rows), *figures, _csv(rows, name))
    except Exception as exc:  # noqa: BLE001 - a clear message; the tab keeps working
        return _fail(exc, n_outputs)


def _single(label):
    """One detector, loaded when the experiment starts (inside its error handling): a holder and its input size."""
    det = []

    def size():
        det.append(load_detector(label))
        return det[0].input_size

    return det, size


def _pair_experiment(request, progress, data: tuple, first, second, what: str, run):
    """An experiment on two different detectors, loaded when it starts: ``run(a, da, b, db, images, prog, token)``
    (names and ``LoadedDetector``s) returns its findings, rows, figure and CSV name."""
    dets = {}

    def size():
        dets.update(_detectors([first, second]))
        if len(dets) != 2 or not first or not second:
            raise DetectLabError(f"pick two different detectors: {what}")
        return next(iter(dets.values())).input_size

    def work(images, prog, token):
        (a, da), (b, db) = dets.items()
        return run(a, da, b, db, images, prog, token)

    return _experiment(request, progress, 3, data, size, work)


def run_transfer(choice, folder, split_name, limit, labels, method, eps_text, request: gr.Request,
                 progress=gr.Progress()):
    """Confusion rate against eps for each detector and the transfer matrix ([Petrželková 2024] Table 4.6)."""
    dets = {}

    def size():
        dets.update(_detectors(labels))
        if not any(d.differentiable for d in dets.values()):
            raise DetectLabError(f"gradient attacks do not apply to {', '.join(dets)} (a spectrum baseline): pick a "
                                 "differentiable detector to craft the attack on; the spectrum baseline can judge")
        return next(iter(dets.values())).input_size

    def work(images, prog, token):
        attackers = {n: d.detector for n, d in dets.items() if d.differentiable}
        res = transfer(attackers, {n: d.detector for n, d in dets.items()}, images, parse_eps_list(eps_text), method,
                       thresholds={n: d.threshold for n, d in dets.items()}, progress=prog, cancel=token)
        note = [f"{n} only judges: gradient attacks do not apply to a spectrum baseline."
                for n, d in dets.items() if not d.differentiable]
        lines = note + paper.white_box_findings(res) + paper.class_findings(res) + paper.transfer_findings(res)
        return (lines, res.rows(), curves_figure(res, {(a, a) for a in res.attackers}), matrix_figure(res),
                "attack_transfer.csv")

    return _experiment(request, progress, 4, (choice, folder, split_name, limit), size, work)


def run_hardening(choice, folder, split_name, limit, original, hardened, method, eps_text, request: gr.Request,
                  progress=gr.Progress()):
    """Fig. 4.14: the original and the adversarially trained model, each attacking and judging."""
    def run(o, do, h, dh, images, prog, token):
        models = {o: do.detector, h: dh.detector}
        res = transfer(models, models, images, [0.0, *parse_eps_list(eps_text)], method,
                       thresholds={o: do.threshold, h: dh.threshold}, progress=prog, cancel=token)
        return (paper.hardening_findings(res, o, h) + paper.class_findings(res), res.rows(),
                hardening_figure(res, o, h), "attack_hardening.csv")

    return _pair_experiment(request, progress, (choice, folder, split_name, limit), original, hardened,
                            "the original and the hardened one", run)


def run_cross_sample(choice, folder, split_name, limit, label, method, eps_text, n_sources, request: gr.Request,
                     progress=gr.Progress()):
    """Table 4.4: the residual of one image added to every other image."""
    det, size = _single(label)

    def work(images, prog, token):
        res = cross_sample(det[0].detector, images, parse_eps_list(eps_text), method, name=det[0].short_name,
                           n_sources=int(n_sources), threshold=det[0].threshold, progress=prog, cancel=token)
        return paper.cross_sample_findings(res), res.rows(), cross_sample_figure(res), "attack_cross_sample.csv"

    return _experiment(request, progress, 3, (choice, folder, split_name, limit), size, work)


def run_blur(choice, folder, split_name, limit, label, method, eps, sigma, request: gr.Request,
             progress=gr.Progress()):
    """Table 4.7: Gaussian blur before the detector as a defence the attacker does not know about."""
    det, size = _single(label)

    def work(images, prog, token):
        res = blur_defence(det[0].detector, images, float(eps), float(sigma), method, name=det[0].short_name,
                           threshold=det[0].threshold, progress=prog, cancel=token)
        return paper.blur_findings(res), res.rows(), blur_figure(res), "attack_blur_defence.csv"

    return _experiment(request, progress, 3, (choice, folder, split_name, limit), size, work)


def queue_mirror(choice, folder):
    """Queue the mirror pair through the run queue; the status line and both pickers get the two run ids."""
    try:
        root = resolve_dataset(choice, folder or "")
        ids = [state.manager().submit(cfg, name=name).id for name, cfg in mirror_configs(str(root))]
    except Exception as exc:  # noqa: BLE001 - a clear message; the tab keeps working
        return error_markdown(exc), gr.update(), gr.update()
    text = (f"Queued **{MIRROR_NAMES[0]}** run `{ids[0]}` (part 1/2) and **{MIRROR_NAMES[1]}** run `{ids[1]}` "
            f"(part 2/2) of `{root.name}`'s train split, with {MIRROR_BASE}'s settings. Follow them in the Train "
            "tab; when both have finished, press *Run mirror experiment* (the pickers hold their run ids).")
    return text, gr.update(value=ids[0]), gr.update(value=ids[1])


def run_mirror(choice, folder, split_name, limit, label_a, label_b, method, eps_text, request: gr.Request,
               progress=gr.Progress()):
    """Table 4.5: two detectors trained on disjoint halves, each attacking itself and the other."""
    def run(a, da, b, db, images, prog, token):
        res = mirror(da.detector, db.detector, images, parse_eps_list(eps_text), method, names=(a, b),
                     thresholds={a: da.threshold, b: db.threshold}, progress=prog, cancel=token)
        lines = paper.mirror_findings(res) + paper.class_findings(res)
        return lines, res.rows(), mirror_figure(res), "attack_mirror.csv"

    return _pair_experiment(request, progress, (choice, folder, split_name, limit), label_a, label_b,
                            "the models trained on parts 1/2 (A) and 2/2 (B)", run)


# -- layout --------------------------------------------------------------------------------------------
def build() -> dict:
    """Build the tab inside the current gr.Tab; returns its components by name."""
    choices = _labels()
    gr.Markdown(
        "### Adversarial attacks ([Petrželková 2024] §3.2, §4.4)\n"
        "Move ε and release: the image is attacked towards **real** (P(fake) down) on the path the detector scores "
        "it, as in Detect: **resize** (its centre square at the detector's input size; the download has that size) "
        "or **tiles** (native resolution, every scored tile; the download has the upload's size). Each survival "
        "number (PNG, JPEG 90, blur) stands beside the same step on the clean image. "
        + " · ".join(f"**{k}**: {v}" for k, v in DESCRIPTIONS.items())
        + ". The spectrum baseline is not differentiated: gradient attacks do not apply to it (it can still judge "
          "transferred residuals below).")
    with gr.Row():
        detector = gr.Dropdown(choices=choices, value=_default(choices, DEFAULT_DETECTOR), label="Detector", scale=3,
                               elem_id="attack-detector")
        method = gr.Radio(METHODS, value="fgsm", label="Attack", scale=2, elem_id="attack-method")
        eps = gr.Slider(0, 0.1, value=0.01, step=0.001, label="ε (L∞ strength, [0, 1] pixel units)", scale=3,
                        elem_id="attack-eps")
        scoring = gr.Radio([(v, k) for k, v in SCORINGS.items()], value="resize", label="Scoring (as in Detect)",
                           scale=2, elem_id="attack-scoring")
    detector.focus(refresh, None, detector, api_name=False)
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="Image (PNG, JPEG, WebP, BMP, TIFF)", file_count="single", type="filepath",
                             elem_id="attack-upload")
            example = gr.Dropdown(choices=_example_choices(), value=None, label="…or a demo image",
                                  elem_id="attack-example")
            example.input(lambda p: p, example, upload, api_name=False)
            refresh_on_open(example, _example_choices)  # and when the first start's derivation ends
            download = gr.File(label="adversarial image (PNG, lossless)", elem_id="attack-download")
        with gr.Column(scale=3):
            verdict = gr.Markdown("Upload or pick an image, then move ε.", elem_id="attack-verdict")
            with gr.Row():
                before_img = gr.Image(label="before: what the detector scores", format="png", interactive=False,
                                      height=256, elem_id="attack-before")
                adv_img = gr.Image(label="after: adversarial", format="png", interactive=False, height=256,
                                   elem_id="attack-adversarial")
                res_img = gr.Image(label="|after − before| (amplified)", format="png", interactive=False, height=256,
                                   elem_id="attack-residual")
    outs = [verdict, before_img, adv_img, res_img, download]
    inputs = [upload, detector, method, eps, scoring]
    # sub-second work, so no queue (Gradio's queue round trip alone is ~60 ms more: bench/bench_sliders.py),
    # no progress overlay, and no before image: eps does not change it
    eps.release(playground_eps, inputs, [verdict, adv_img, res_img, download], api_name=False, queue=False,
                show_progress="hidden", trigger_mode="always_last")
    upload.change(playground, inputs, outs, api_name=False)
    method.change(playground, inputs, outs, api_name=False)
    scoring.change(playground, inputs, outs, api_name=False)
    detector.input(playground, inputs, outs, api_name=False)
    _build_sets(choices)
    return {"detector": detector, "eps": eps, "scoring": scoring, "verdict": verdict}


def _demo_examples() -> list[tuple[str, str]]:
    """(class folder, file): one demo image of each generator and two reals, once the demo is materialized."""
    from detectlab.catalog import demo_generators

    root = config.DEMO_DIR
    out = []
    for sub, n in [*((g, 1) for g in demo_generators()), ("real", 2)]:
        files = sorted((root / sub).glob("*.png"))[:n] if (root / sub).is_dir() else []
        out += [(sub, str(f)) for f in files]
    return out


def _example_choices() -> list[tuple[str, str]]:
    return [(f"{g}: {Path(p).name}", p) for g, p in _demo_examples()]


def _outputs(name: str) -> list:
    """Findings, table, chart and CSV of one experiment, in the order its runner returns them."""
    md = gr.Markdown(elem_id=f"attack-{name}-findings")
    fig = gr.Plot()
    table = gr.Dataframe(interactive=False)
    return [md, table, fig, gr.File(label="CSV")]


def _build_sets(choices: list[str]) -> None:
    gr.Markdown("### On a data set (progress and Cancel; table, chart and CSV each)\n"
                "Each image is attacked away from its true class: fakes towards real (the confusion rate counts "
                "them), reals towards fake. The findings and the table give each class separately "
                "(`fakes_called_real_after`, `reals_called_fake_after`, `reals_turned_fake`).")
    with gr.Row():
        datasets = list(known_datasets())
        data = gr.Dropdown(datasets, value=DEMO_LABEL if DEMO_LABEL in datasets else None, label="Data set", scale=2)
        refresh_on_open(data, known_datasets)
        folder = gr.Textbox(label="…or a labelled folder inside the data roots", scale=2, elem_id="attack-folder")
        split_name = gr.Radio(["test", "val", "train", "all"], value="test", label="Split (80/10/10, seed 0)", scale=2,
                              elem_id="attack-split")
        limit = gr.Number(value=0, precision=0, label="At most N images (0 = all)", scale=1, elem_id="attack-limit")
        set_method = gr.Radio(METHODS, value="fgsm", label="Attack", scale=2)
        stop = gr.Button("Cancel", scale=1, elem_id="attack-cancel")
    status = gr.Markdown(visible=True)
    data_in = [data, folder, split_name, limit]
    with gr.Tab("Confusion rate & transfer"):
        with gr.Row():
            dets = gr.Dropdown(choices, value=[c for c in (DEFAULT_DETECTOR, "shipped: univfd-mobilenet_v2")
                                               if c in choices], multiselect=True, scale=3,
                               label="Detectors (each crafts residuals and judges every other's)",
                               elem_id="attack-transfer-detectors")
            eps_list = gr.Textbox("0.01,0.02,0.05", label="ε list", scale=1, elem_id="attack-transfer-eps")
            go_t = gr.Button("Run", variant="primary", scale=1, elem_id="attack-transfer-run")
        t_md = gr.Markdown(elem_id="attack-transfer-findings")
        with gr.Row():
            t_curve = gr.Plot(label="white-box confusion against ε")
            t_matrix = gr.Plot(label="transfer matrix", elem_id="attack-transfer-matrix")
        t_table = gr.Dataframe(interactive=False, label="every (crafted on, judged by, ε) cell",
                               elem_id="attack-transfer-table")
        t_csv = gr.File(label="CSV")
        dets.focus(refresh, None, dets, api_name=False)
        go_t.click(run_transfer, [*data_in, dets, set_method, eps_list], [t_md, t_table, t_curve, t_matrix, t_csv],
                   api_name=False)
    with gr.Tab("Adversarial training"):
        gr.Markdown("The original detector and its adversarially trained twin (`detectlab train --adv-eps …`; shipped: "
                    "`cnn-resnet18-adv`), each crafting residuals and each judging them ([Petrželková 2024] Fig. 4.14).")
        with gr.Row():
            orig = gr.Dropdown(choices, value=_default(choices, DEFAULT_DETECTOR), label="original", scale=2)
            hard = gr.Dropdown(choices, value=_default(choices, HARDENED_DETECTOR), label="hardened", scale=2)
            eps_h = gr.Textbox("0.005,0.01,0.02,0.05,0.1", label="ε list", scale=1)
            go_h = gr.Button("Run", variant="primary", scale=1, elem_id="attack-hardening-run")
        go_h.click(run_hardening, [*data_in, orig, hard, set_method, eps_h], _outputs("hardening"), api_name=False)
    with gr.Tab("Mirror models"):
        gr.Markdown("Two detectors of one architecture trained on disjoint halves of the training split, each "
                    "attacking the other ([Petrželková 2024] Table 4.5: two ResNet-50, FGSM ε 0.025, 100 % white box, "
                    f"80–84 % across). *Train the mirror pair* queues {MIRROR_NAMES[0]} and {MIRROR_NAMES[1]} with "
                    f"`{MIRROR_BASE}`'s settings on parts 1/2 and 2/2 of the picked data set's train split "
                    "(`detectlab train --part 1/2`); validation and test splits stay the whole set's.")
        with gr.Row():
            go_q = gr.Button("Train the mirror pair", scale=1, elem_id="attack-mirror-train")
            q_status = gr.Markdown(elem_id="attack-mirror-status")
        with gr.Row():
            det_ma = gr.Dropdown(choices, value=None, allow_custom_value=True, scale=2, elem_id="attack-mirror-a",
                                 label="A: trained on part 1/2 (run id or label)")
            det_mb = gr.Dropdown(choices, value=None, allow_custom_value=True, scale=2, elem_id="attack-mirror-b",
                                 label="B: trained on part 2/2 (run id or label)")
            eps_m = gr.Textbox("0.01,0.02,0.025,0.05", label="ε list", scale=1, elem_id="attack-mirror-eps")
            go_m = gr.Button("Run mirror experiment", variant="primary", scale=1, elem_id="attack-mirror-run")
        go_q.click(queue_mirror, [data, folder], [q_status, det_ma, det_mb], api_name=False)
        go_m.click(run_mirror, [*data_in, det_ma, det_mb, set_method, eps_m], _outputs("mirror"), api_name=False)
    with gr.Tab("Cross-sample"):
        with gr.Row():
            det_c = gr.Dropdown(choices, value=_default(choices, DEFAULT_DETECTOR), label="Detector", scale=3)
            eps_c = gr.Textbox("0.01,0.02,0.05", label="ε list", scale=1)
            n_src = gr.Slider(1, 20, value=5, step=1, label="source images", scale=1)
            go_c = gr.Button("Run", variant="primary", scale=1, elem_id="attack-cross-sample-run")
        go_c.click(run_cross_sample, [*data_in, det_c, set_method, eps_c, n_src], _outputs("cross-sample"),
                   api_name=False)
    with gr.Tab("Blur defence"):
        with gr.Row():
            det_b = gr.Dropdown(choices, value=_default(choices, DEFAULT_DETECTOR), label="Detector", scale=3)
            eps_b = gr.Slider(0, 0.1, value=0.05, step=0.001, label="ε", scale=2)
            sigma = gr.Slider(0, 10, value=5, step=0.25, label="blur σ (px)", scale=2)
            go_b = gr.Button("Run", variant="primary", scale=1, elem_id="attack-blur-run")
        go_b.click(run_blur, [*data_in, det_b, set_method, eps_b, sigma], _outputs("blur"), api_name=False)
    stop.click(cancel, None, status, api_name=False)
    for widget in (orig, hard, det_ma, det_mb, det_c, det_b):
        widget.focus(refresh, None, widget, api_name=False)
