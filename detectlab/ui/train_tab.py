"""Train tab: launch detector or localizer runs in a worker process, watch live curves, cancel,
browse and prune the history."""

from __future__ import annotations

import datetime as dt
import json

import gradio as gr

from detectlab import catalog, config
from detectlab.catalog import (
    DEMO_INPAINT_LABEL,
    DEMO_LABEL,
    cli_name,
    dataset_generators,
    default_generators,
    demo_generators,
    known_datasets,
    resolve_dataset,
)
from detectlab.localize import LocalizerConfig
from detectlab.localize.plots import training_curves_figure
from detectlab.localize.registry import localizer_archs
from detectlab.models import list_detectors
from detectlab.train import PRESETS, TrainConfig
from detectlab.train.assess import (calibrate_run, checkpoint_path, describe_calibration, describe_heldout,
                                    heldout_run, small_sample_warning)
from detectlab.train.config import AUGMENT_KINDS, preset_choices, preset_time_label
from detectlab.train.layout import runs_db
from detectlab.train.plots import curves_figure as detector_curves_figure
from detectlab.train.plots import smoothed  # noqa: F401 - tests/test_runs.py imports it from here
from detectlab.ui import first_run, state
from detectlab.ui.common import GradioProgress, error_markdown, refresh_on_open

RUN_HEADERS = ["run", "name", "kind", "arch", "status", "epochs", "best val", "test", "test AP", "started"]
_DEFAULT_DATA = DEMO_LABEL
KINDS = ("detector", "localizer")


def generators_of(choice: str, folder: str):
    try:
        root = resolve_dataset(choice, folder)
        gens = dataset_generators(root)
        return gr.update(choices=gens, value=default_generators(root, gens)), ""
    except Exception as exc:  # noqa: BLE001
        return gr.update(choices=[], value=[]), error_markdown(exc)


def apply_preset(name: str | None):
    """The form's values for a preset: architecture, schedule, augmentation, adversarial training, and its note."""
    if not name:
        return [gr.update()] * (len(_PRESET_OUTPUTS) - 1) + [""]
    cfg = TrainConfig().with_preset(name)
    a = cfg.augment
    ps = {k: getattr(a, f"{k}_p") for k in AUGMENT_KINDS}
    kinds = [k for k, p in ps.items() if p > 0]
    note = PRESETS[name].get("note", "")
    return (cfg.arch, cfg.input_size, cfg.epochs, cfg.iterations or 0, cfg.lr, cfg.weight_decay, cfg.batch_size,
            cfg.weighted_sampling, cfg.hflip, a.enabled, max(ps.values()) if kinds else 0.3,
            kinds or list(AUGMENT_KINDS), a.blur_sigma[1], a.jpeg_quality[0], a.downsize_scale[0], a.patch_size[0],
            ", ".join(f"{e:g}" for e in cfg.adv_eps), cfg.init_from,
            f"*{name}* ({preset_time_label(name)}) — {note}")


#: What ``apply_preset`` fills, in order (names of the form's widgets).
_PRESET_OUTPUTS = ("arch", "input_size", "epochs", "iterations", "lr", "wd", "batch", "weighted", "hflip", "augment",
                   "aug_p", "aug_kinds", "blur_max", "jpeg_min", "scale_min", "patch_min", "adv_eps", "init_from",
                   "preset_note")


def init_choices() -> list[tuple[str, str]]:
    """What a detector run can start from: the architecture's default initialisation, a shipped detector
    or a run with a checkpoint (screen label, the name ``init_from`` takes)."""
    return [("none: the architecture's default initialisation", "")] + [
        (label, cli_name(label)) for label in state.detector_choices()]


def curves_figure(epochs: list[dict], title: str = "", kind: str = "detector", steps=()):
    """The run's curves: a detector's (``train.plots``) or a localizer's (``localize.plots``)."""
    if kind == "localizer":
        return training_curves_figure(epochs, title)
    return detector_curves_figure(epochs, title, steps)


def _fmt(v):
    return None if v is None else round(v, 4)


def training_runs() -> list:
    """The run history's training runs (detectors and localizers; experiments have their own tab)."""
    return [r for r in state.manager().store.list() if not r.config.get("runner")]


def runs_table(runs=None) -> list[list]:
    """One row per run; refreshed every second, so two queries whatever the history's length."""
    store = state.manager().store
    runs = training_runs() if runs is None else runs
    epochs = store.epoch_summaries()
    rows = []
    for r in runs:
        n_epochs, best = epochs.get(r.id, (0, None))
        test = r.result.get("test") or {}
        started = dt.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M:%S")
        rows.append([r.id, r.name, r.kind, r.config.get("arch"), r.status, n_epochs, _fmt(best), _fmt(r.headline[1]),
                     _fmt(test.get("ap")), started])
    return rows


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _progress_md(r, runs=()) -> str:
    if r.status == "running":
        if not r.stage:
            text = f"**Run {r.id}: running** — starting (loading the libraries and checking the data)"
        else:
            pct = 100 * r.step / r.total if r.total else 0
            eta = r.eta_seconds
            when = f", about {_duration(eta)} left in this phase" if eta is not None else \
                (", measuring its speed" if r.total and r.step < r.total else "")
            text = f"**Run {r.id}: running** — {r.stage}: {r.step}/{r.total} ({pct:.0f} %){when}"
        return text + (" — cancel requested: stopping" if r.cancel else "")
    if r.status == "queued":
        ahead = [x for x in runs if x.status == "running"]
        if ahead:
            return f"**Run {r.id}: queued** — waits for run {ahead[0].id} to end"
        older = [x for x in runs if x.status == "queued" and x.created < r.created]
        if older:
            return f"**Run {r.id}: queued** — waits for run {min(older, key=lambda x: x.created).id}, queued before it"
        if r.from_terminal:
            return f"**Run {r.id}: queued** — its `detectlab train` (pid {r.owner_pid}) starts it now"
        return f"**Run {r.id}: queued** — its worker process is starting"
    text = f"**Run {r.id}: {r.status}**"
    if r.started and r.finished:
        text += f" after {_duration(r.finished - r.started)}"
    test = r.result.get("test") or {}
    if test and r.kind == "localizer":
        metric, value = r.headline
        text += f" — test {metric} {value:.3f}" if isinstance(value, float) else ""
        pixel = test.get("pixel") or {}
        if pixel:
            text += f", pixel precision {pixel['precision']:.3f}, recall {pixel['recall']:.3f}, dice {pixel['dice']:.3f}"
    elif test:
        text += (f" — test accuracy {test.get('accuracy', 0):.3f}, balanced accuracy "
                 f"{test.get('balanced_accuracy') or 0:.3f}, AP {test.get('ap') or 0:.3f}")
        warning = small_sample_warning(test)
        text += f"\n\n**{warning}**" if warning else ""
    if r.error:
        text += f"\n\n**Reason:** {r.error}"
    if r.checkpoint:
        where = "the Localize tab's localizer picker" if r.kind == "localizer" else "every detector picker"
        text += f"\n\ncheckpoint: `{r.checkpoint}` (listed in {where})"
    for note in r.result.get("notes") or []:
        text += f"\n\n*note:* {note}"
    phases = r.result.get("phase_seconds") or {}
    if phases:
        text += "\n\ntime per phase: " + ", ".join(f"{k} {_duration(v)}" for k, v in phases.items())
    return text


RESULT_HEADERS = ["group", "images", "accuracy", "balanced acc.", "AP", "ROC-AUC"]
LOCALIZER_RESULT_HEADERS = ["quartile", "area", "images", "mAP50", "precision", "recall", "dice"]


def results_panel(r) -> tuple[str, dict]:
    """The selected run's test results: headline numbers and a per-generator (or per-quartile) table."""
    test = r.result.get("test") or {} if isinstance(r.result, dict) else {}
    if not test:
        return "", gr.update(value=[], headers=RESULT_HEADERS)
    if r.kind == "localizer":
        from detectlab.localize.metrics import quartile_label

        rows = []
        for q, v in (test.get("quartiles") or {}).items():
            px = v.get("pixel") or {}
            rows.append([q, quartile_label(q), v.get("images"),
                         _fmt(v.get("map50")), _fmt(px.get("precision")), _fmt(px.get("recall")), _fmt(px.get("dice"))])
        text = f"**Test split of run {r.id}** ({test.get('images')} images, confidence ≥ {test.get('conf')})"
        if "map50" in test:
            text += f": mask mAP50 {test['map50']:.3f}, mAP50-95 {test.get('map50_95', float('nan')):.3f}"
        return text, gr.update(value=rows, headers=LOCALIZER_RESULT_HEADERS)
    rows = [[g, m.get("n"), _fmt(m.get("accuracy")), _fmt(m.get("balanced_accuracy")), _fmt(m.get("ap")),
             _fmt(m.get("roc_auc"))] for g, m in (test.get("per_group") or {}).items()]
    rows.append(["all", test.get("n"), _fmt(test.get("accuracy")), _fmt(test.get("balanced_accuracy")),
                 _fmt(test.get("ap")), _fmt(test.get("roc_auc"))])
    (tn, fp), (fn, tp) = test.get("confusion") or ((0, 0), (0, 0))
    text = (f"**Test split of run {r.id}** ({test.get('n_real')} real, {test.get('n_fake')} synthetic) at threshold "
            f"{test.get('threshold', 0.5):g}: accuracy {test.get('accuracy', 0):.3f}, ROC-AUC "
            f"{test.get('roc_auc') or float('nan'):.3f}. Confusion: real→real {tn}, real→fake {fp}, fake→real {fn}, "
            f"fake→fake {tp}. The best threshold on this split would be {test.get('best_threshold', float('nan')):.3f} "
            f"(accuracy {test.get('accuracy_at_best', float('nan')):.3f}) — chosen on test, so optimistic. "
            "Per generator, each row holds that generator's images and the real ones.")
    warning = small_sample_warning(test)
    if warning:
        text += f"\n\n**{warning}**"
    return text + checks_text(r), gr.update(value=rows, headers=RESULT_HEADERS)


def checks_text(r) -> str:
    """What calibration and the held-out evaluation measured on run ``r`` (empty before they ran)."""
    text = ""
    if r.result.get("calibration"):
        text += f"\n\n**Calibration:** {describe_calibration(r.result['calibration'])}"
    if r.result.get("heldout"):
        text += f"\n\n**Held-out evaluation:** {describe_heldout(r.result['heldout'])}"
    return text


def default_run(runs):
    """The run a page shows when none is selected: the running one, else the newest queued, else the newest."""
    for status in ("running", "queued"):
        active = [x for x in runs if x.status == status]
        if active:
            return max(active, key=lambda x: x.created)
    return runs[0] if runs else None


def show_run(run_id: str | None):
    """Progress line, curves, results and config of one run (``default_run`` if none is selected)."""
    store = state.manager().store
    runs = training_runs()
    if not runs:
        return "No runs yet.", curves_figure([]), {}, [], "", gr.update(value=[], headers=RESULT_HEADERS)
    r = next((x for x in runs if x.id == run_id), None) or default_run(runs)
    steps = store.steps(r.id) if r.kind == "detector" else []
    epochs = store.epochs(r.id)
    title = f"run {r.id} ({r.config.get('arch')})"
    if r.status in ("queued", "running") and not epochs and not steps:
        title += f" — curves start with the first training step; now: {r.stage or r.status}"
    figure = curves_figure(epochs, title, r.kind, steps)
    return _progress_md(r, runs), figure, r.config, runs_table(runs), *results_panel(r)


def detector_config(preset, data_choice, folder, generators, arch, input_size, epochs, iterations, lr, wd, batch,
                    weighted, hflip, augment, aug_p, aug_kinds, blur_max, jpeg_min, scale_min, patch_min, adv_eps, runs,
                    seed, name, init_from=None, processes=None) -> dict:
    """The run config the detector form describes: the preset's settings (those the form does not show
    included), then the form's values; validated, as JSON. ``processes`` > 1: the worker trains
    data-parallel in that many local processes (torchrun + DDP)."""
    cfg = TrainConfig(data=str(resolve_dataset(data_choice, folder)))
    if preset:
        cfg = cfg.with_preset(preset)
    aug = dict(augment_p=float(aug_p), augment_kinds=list(aug_kinds), blur_max=float(blur_max),
               jpeg_min=int(jpeg_min), scale_min=float(scale_min), patch_min=int(patch_min)) if augment else \
        dict(augment_p=0.0)
    cfg = cfg.with_overrides(
        generators=list(generators), arch=arch, input_size=int(input_size), epochs=int(epochs),
        iterations=int(iterations), lr=float(lr), weight_decay=float(wd), batch_size=int(batch),
        weighted_sampling=bool(weighted), hflip=bool(hflip), adv_eps=str(adv_eps), runs=int(runs),
        seed=int(seed), name=name or "", init_from=init_from,
        processes=None if processes is None else int(processes), **aug)
    return json.loads(json.dumps(cfg.to_dict()))


def launch(preset, data_choice, folder, generators, arch, input_size, epochs, iterations, lr, wd, batch, weighted,
           hflip, augment, aug_p, aug_kinds, blur_max, jpeg_min, scale_min, patch_min, adv_eps, runs, seed, name,
           init_from=None, processes=None):
    """Queue a detector training run: the preset's settings (those the form does not show included), then the form's values.

    Returns the run id, its status line, curves, config, the run history, and its results once it ends.
    """
    try:
        cfg = detector_config(preset, data_choice, folder, generators, arch, input_size, epochs, iterations, lr, wd,
                              batch, weighted, hflip, augment, aug_p, aug_kinds, blur_max, jpeg_min, scale_min,
                              patch_min, adv_eps, runs, seed, name, init_from, processes)
        record = state.manager().submit(cfg, name=name or "")
        return record.id, *show_run(record.id)
    except Exception as exc:  # noqa: BLE001
        return gr.update(), error_markdown(exc), *[gr.update()] * 5


def config_key(config: dict) -> str:
    """What makes two launches the same run (every setting but the name), as one string."""
    return json.dumps({k: v for k, v in config.items() if k != "name"}, sort_keys=True)


def submit_unless_identical(config: dict, name: str, again: str):
    """Queue ``config`` unless an identical run is queued, running or finished and this launch is not the
    confirming second one (``again`` holds the key the first one returned).

    Returns (the key to confirm with, the message above the status panel, the run to select, what
    ``show_run`` shows for it)."""
    key = config_key(config)
    twin = state.manager().identical(config)
    if twin is not None and again != key:
        called = f" ({twin.name})" if twin.name else ""
        return (key, f"**An identical run {twin.id}{called} is already {twin.status}** — the same settings on the "
                f"same data set with the same seed. Press *Launch* again to queue another one anyway, or change "
                "a setting (the seed, for a repeat that differs).", twin.id, *show_run(twin.id))
    record = state.manager().submit(config, name=name)
    return "", "", record.id, *show_run(record.id)


def launch_from_form(again, *form):
    """The Launch button: ``launch``, but an identical run already queued, running or finished is named first
    and queued again only on a second click."""
    try:
        cfg = detector_config(*form)
        return submit_unless_identical(cfg, form[23] or "", again)
    except Exception as exc:  # noqa: BLE001
        return "", "", gr.update(), error_markdown(exc), *[gr.update()] * 5


#: What ticking *trust* means, in words, next to the checkbox and above the form.
TRUST_LABEL = "I trust this .pt: ticking lets the file run code as the server's user (the training worker unpickles it)"
TRUST_NOTE = ("A `.pt` is a pickle: ticking *trust* lets the file run any code it carries, as the user this server "
              "runs as, when the training worker loads it (the server itself only checks the file's structure, "
              "without loading it). Only tick it for files you made or fully trust.")


def launch_localizer(arch, data_choice, folder, epochs, imgsz, batch, seed, threads, weights, trust, name):
    """Queue a localizer training run (YOLOv8-seg or the U-Net) on an images/ + masks/ data set.

    Every setting is checked (``LocalizerConfig``) before the data set or the upload is touched. An
    uploaded ``.pt`` is never unpickled here: with *trust* ticked, ``store_uploaded_weights`` reads its
    pickle's opcodes (``inspect_ultralytics_pt``) and keeps a copy; the training worker process loads it.

    Returns the run id, its status line, curves, config, the run history, and its results once it ends.
    """
    try:
        cfg, name = localizer_config(arch, data_choice, folder, epochs, imgsz, batch, seed, threads, weights, trust, name)
        record = state.manager().submit(cfg, name=name)
        return record.id, *show_run(record.id)
    except Exception as exc:  # noqa: BLE001
        return gr.update(), error_markdown(exc), *[gr.update()] * 5


def localizer_config(arch, data_choice, folder, epochs, imgsz, batch, seed, threads, weights, trust, name):
    """The localizer run config the form describes and its run name (see ``launch_localizer``)."""
    from detectlab.localize.train import localizer_run_config, store_uploaded_weights
    from detectlab.runs.manager import validate_run_config
    from detectlab.train.config import check_name

    cfg = localizer_run_config(arch=arch, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed, threads=threads,
                               trust_weights=bool(trust))  # a bad number is refused now, whatever the data set
    name = check_name(name or "", "run name")
    cfg["data"] = str(resolve_dataset(data_choice, folder))
    if weights:
        cfg["weights"] = str(store_uploaded_weights(weights, trusted=bool(trust)))
    return validate_run_config(cfg), name


def launch_localizer_from_form(again, *form):
    """The localizer's Launch button: ``launch_localizer``, with the identical-run check of ``launch_from_form``."""
    try:
        cfg, name = localizer_config(*form)
        return submit_unless_identical(cfg, name, again)
    except Exception as exc:  # noqa: BLE001
        return "", "", gr.update(), error_markdown(exc), *[gr.update()] * 5


def _checked_run(run_id: str | None):
    """The run the results panel shows (the selected one, else ``default_run``)."""
    runs = training_runs()
    return next((x for x in runs if x.id == run_id), None) or default_run(runs)


def _assess_selected(run_id: str | None, progress, check, key: str, title: str, describe) -> str:
    """Run ``check`` on the shown detector run's checkpoint, keep its numbers with the run under ``key``."""
    r = _checked_run(run_id)
    if r is None or checkpoint_path(r) is None:
        return "Select a detector run that ended with a checkpoint first."
    try:
        numbers = check(r, catalog.load_detector(r.id), GradioProgress(progress))
        state.manager().store.update_result(r.id, {key: numbers})
        return f"**{title} {r.id}:** {describe(numbers)}"
    except Exception as exc:  # noqa: BLE001
        return error_markdown(exc)


def calibrate_selected(run_id: str | None, progress=gr.Progress()):
    """Calibrate the shown detector run's checkpoint (as ``detectlab calibrate``) and keep the numbers with the run."""
    return _assess_selected(run_id, progress, calibrate_run, "calibration", "Calibrated run", describe_calibration)


def heldout_selected(run_id: str | None, progress=gr.Progress()):
    """False-positive rates of the shown detector run on the held-out real photos (as ``detectlab heldout eval``),
    kept with the run."""
    return _assess_selected(run_id, progress, heldout_run, "heldout", "Held-out evaluation of run", describe_heldout)


def delete_run(run_id: str | None, confirmed: bool):
    """Remove an ended run, its files and (for a localizer) its checkpoint; asks for confirmation first."""
    if not run_id:
        return "Select a run in the history first.", gr.update(), gr.update()
    if not confirmed:
        return f"Tick *confirm* to delete run {run_id} and its files.", gr.update(), gr.update()
    try:
        record = state.manager().delete(run_id)
    except (KeyError, ValueError) as exc:
        return error_markdown(exc), gr.update(), gr.update()
    return f"Deleted run {record.id} ({record.name or record.config.get('arch')}) and its files.", "", runs_table()


def show_kind(kind: str):
    return gr.update(visible=kind == "detector"), gr.update(visible=kind == "localizer")


def cancel(run_id: str | None):
    """Cancel the selected run (the running one, else the newest queued, when none is selected); selects it,
    so the status panel follows it to its end. Returns the message and the selection."""
    store = state.manager().store
    runs = [r for r in training_runs() if r.status in ("running", "queued")]
    target = run_id or (default_run(runs).id if runs else None)
    if not target:
        return "Nothing to cancel.", gr.update()
    try:
        state.manager().cancel(target)
        return (f"Cancel requested for run {target}; it stops within a few seconds, whatever it is doing, and "
                "keeps its best epoch so far."), target
    except KeyError as exc:
        return error_markdown(exc), gr.update()


def build() -> None:
    gr.Markdown("Runs execute in a separate worker process, one at a time (others queue); the history lives in "
                f"`{runs_db()}` and survives restarts. Finished detector runs appear in every detector picker, "
                "localizer runs in the Localize tab.")
    kind = gr.Radio(list(KINDS), value="detector", label="What to train", elem_id="train-kind")
    with gr.Group(visible=True) as detector_form:
        _detector_form = _build_detector_form()
    with gr.Group(visible=False) as localizer_form:
        loc = _build_localizer_form()
    kind.change(show_kind, kind, [detector_form, localizer_form], api_name=False)
    _build_runs(_detector_form, loc)


def _build_localizer_form() -> dict:
    gr.Markdown("Manipulation localization ([Petrželková 2024] §4.5): ultralytics YOLOv8-seg (instance masks) or the U-Net "
                "baseline, on a folder with `images/` and `masks/`. Defaults: the shipped localizer's settings "
                "(CPU-sized). " + TRUST_NOTE)
    d = LocalizerConfig()
    with gr.Row():
        arch = gr.Dropdown(list(localizer_archs()), value=d.arch, label="Localizer", elem_id="train-loc-arch")
        data_choice = gr.Dropdown(list(known_datasets()), value=DEMO_INPAINT_LABEL, label="Data set (images + masks)",
                                  elem_id="train-loc-data")
        folder = gr.Textbox(label="…or an images/ + masks/ folder inside the data roots", elem_id="train-loc-folder")
    refresh_on_open(data_choice, known_datasets)
    with gr.Row():
        epochs = gr.Number(d.epochs, label="Localizer epochs", precision=0, elem_id="train-loc-epochs")
        imgsz = gr.Number(d.imgsz, label="Image size (multiple of 32)", precision=0, elem_id="train-loc-imgsz")
        batch = gr.Number(d.batch, label="Localizer batch size", precision=0, elem_id="train-loc-batch")
        seed = gr.Number(d.seed, label="Localizer seed", precision=0)
        threads = gr.Number(1, label="CPU threads", precision=0)
    with gr.Row():
        weights = gr.File(label="Start from an ultralytics .pt (optional)", file_types=[".pt"], type="filepath")
        trust = gr.Checkbox(False, label=TRUST_LABEL, elem_id="train-loc-trust")
        name = gr.Textbox("", label="Run name", elem_id="train-loc-name")
    button = gr.Button("Launch localizer training", variant="primary", elem_id="train-loc-launch")
    return dict(inputs=[arch, data_choice, folder, epochs, imgsz, batch, seed, threads, weights, trust, name],
                button=button)


def _build_detector_form() -> dict:
    with gr.Row():
        preset = gr.Dropdown(preset_choices(), value=None, label="Preset (papers' settings, scaled for the CPU; "
                             "times: the demo, every phase counted)", scale=3, elem_id="train-preset")
        preset_note = gr.Markdown()
    with gr.Row():
        data_choice = gr.Dropdown(list(known_datasets()), value=_DEFAULT_DATA, label="Data set", elem_id="train-data")
        folder = gr.Textbox(label="…or a folder inside the data roots")
        gens = demo_generators()  # the demo's own generator folders; any other data set's when picked
        generators = gr.CheckboxGroup(gens, value=default_generators(config.DEMO_DIR, gens),
                                      label="Generators forming the fake class (none = all; on the demo its train group "
                                            "is ticked, so its held-out designs stay unseen, as for the shipped detectors)",
                                      elem_id="train-generators")
    data_msg = gr.Markdown()
    with gr.Row():
        arch = gr.Dropdown(list(list_detectors()), value="resnet18", label="Architecture", elem_id="train-arch")
        input_size = gr.Number(128, label="Input size (px)", precision=0)
        epochs = gr.Number(5, label="Epochs", precision=0, elem_id="train-epochs")
        iterations = gr.Number(0, label="Iterations (0 = use epochs)", precision=0, elem_id="train-iterations")
        batch = gr.Number(32, label="Batch size", precision=0, elem_id="train-batch")
    with gr.Row():
        lr = gr.Number(1e-3, label="Learning rate (Adam)")
        wd = gr.Number(1e-4, label="Weight decay")
        weighted = gr.Checkbox(True, label="Class-balanced weighted sampling ([Wimmer 2024])")
        hflip = gr.Checkbox(True, label="Horizontal flip ([Petrželková 2024])")
    with gr.Accordion("Degradation augmentation and adversarial training ([Petrželková 2024])", open=False):
        with gr.Row():
            augment = gr.Checkbox(False, label="Degradation augmentation", elem_id="train-augment")
            aug_p = gr.Slider(0, 1, 0.3, step=0.05, label="Probability of each degradation", elem_id="train-aug-p")
            aug_kinds = gr.CheckboxGroup(list(AUGMENT_KINDS), value=list(AUGMENT_KINDS), label="Degradations",
                                         elem_id="train-aug-kinds")
        with gr.Row():
            blur_max = gr.Slider(0, 5, 3, step=0.1, label="Blur σ up to")
            jpeg_min = gr.Slider(5, 100, 30, step=1, label="JPEG quality from")
            scale_min = gr.Slider(0.1, 1, 0.25, step=0.05, label="Downsize scale from")
            patch_min = gr.Slider(8, 128, 32, step=4, label="Visible patch from (px)")
        adv_eps = gr.Textbox("", label="FGSM adversarial training ε list (e.g. 0.002,0.005,0.01); empty = off",
                             elem_id="train-adv-eps")
    init_from = gr.Dropdown(init_choices(), value="", label="Start from a detector's weights (same architecture "
                            "and input size; train on the split it was trained with)", elem_id="train-init-from")
    refresh_on_open(init_from, init_choices)
    with gr.Row():
        runs = gr.Number(1, label="Repeated runs (mean ± std)", precision=0)
        processes = gr.Number(1, label="Processes (data-parallel: torchrun + DDP; a network detector's global "
                              "batch is processes x batch size)", precision=0, minimum=1, elem_id="train-processes")
        seed = gr.Number(0, label="Seed", precision=0)
        name = gr.Textbox("", label="Run name", elem_id="train-name")
    launch_btn = gr.Button("Launch training", variant="primary", elem_id="train-launch")
    form = dict(arch=arch, input_size=input_size, epochs=epochs, iterations=iterations, lr=lr, wd=wd, batch=batch,
                weighted=weighted, hflip=hflip, augment=augment, aug_p=aug_p, aug_kinds=aug_kinds, blur_max=blur_max,
                jpeg_min=jpeg_min, scale_min=scale_min, patch_min=patch_min, adv_eps=adv_eps, init_from=init_from,
                preset_note=preset_note)
    preset.change(apply_preset, preset, [form[k] for k in _PRESET_OUTPUTS], api_name=False)
    refresh_on_open(data_choice, known_datasets)
    data_choice.change(generators_of, [data_choice, folder], [generators, data_msg], api_name=False)
    first_run.on_demo_ready(generators_of, [generators, data_msg], [data_choice, folder])
    folder.submit(generators_of, [data_choice, folder], [generators, data_msg], api_name=False)
    return dict(inputs=[preset, data_choice, folder, generators, arch, input_size, epochs, iterations, lr, wd, batch,
                        weighted, hflip, augment, aug_p, aug_kinds, blur_max, jpeg_min, scale_min, patch_min, adv_eps,
                        runs, seed, name, init_from, processes], button=launch_btn)


def _build_runs(detector: dict, localizer: dict) -> None:
    with gr.Row():
        cancel_btn = gr.Button("Cancel run", variant="stop", elem_id="train-cancel")
        delete_btn = gr.Button("Delete selected run", elem_id="train-delete")
        confirm = gr.Checkbox(False, label="confirm: delete the run and its files", elem_id="train-delete-confirm")
    action_md = gr.Markdown(elem_id="train-action")
    selected = gr.Textbox(label="Selected run (click a row below)", elem_id="train-selected", interactive=True)
    progress_md = gr.Markdown(elem_id="train-progress", label="run status")
    curves = gr.Plot(label="Losses and validation scores", elem_id="train-curves")
    with gr.Accordion("Test results of the selected run", open=True):
        results_md = gr.Markdown(elem_id="train-results", label="test results")
        results = gr.Dataframe(headers=RESULT_HEADERS, interactive=False, elem_id="train-results-table",
                               label="test results by generator or area quartile")
        with gr.Row():
            calibrate_btn = gr.Button("Calibrate (temperature scaling + out-of-distribution statistics)",
                                      elem_id="train-calibrate", size="sm")
            heldout_btn = gr.Button("Held-out evaluation (false positives on real photos the demo never uses)",
                                    elem_id="train-heldout", size="sm")
        checks_md = gr.Markdown("Checks of a finished detector run, as `detectlab calibrate` and `detectlab heldout "
                                "eval` make them; their numbers stay with the run.", elem_id="train-checks")
    history = gr.Dataframe(headers=RUN_HEADERS, interactive=False,
                           label="Run history (click a row to select it). best val / test: balanced accuracy / "
                                 "accuracy for detectors, mask mAP50 for YOLO localizers, pixel dice for the U-Net",
                           elem_id="train-history", max_height=300)
    with gr.Accordion("Config of the selected run", open=False):
        cfg_view = gr.JSON(label="run config")
    timer = gr.Timer(1.0)

    shown = [progress_md, curves, cfg_view, history, results_md, results]
    again = gr.State("")  # the launch an identical run was named for: a second click queues it
    detector["button"].click(launch_from_form, [again, *detector["inputs"]], [again, action_md, selected, *shown],
                             api_name=False)
    localizer["button"].click(launch_localizer_from_form, [again, *localizer["inputs"]],
                              [again, action_md, selected, *shown], api_name=False)
    calibrate_btn.click(calibrate_selected, selected, checks_md, api_name=False)
    heldout_btn.click(heldout_selected, selected, checks_md, api_name=False)
    delete_btn.click(delete_run, [selected, confirm], [action_md, selected, history], api_name=False)
    cancel_btn.click(cancel, selected, [action_md, selected], api_name=False)
    timer.tick(show_run, selected, shown, api_name=False, show_progress="hidden")
    history.select(_select_row, None, selected, api_name=False)


def _select_row(evt: gr.SelectData):
    return evt.row_value[0] if getattr(evt, "row_value", None) else gr.update()
