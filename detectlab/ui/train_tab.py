"""Train tab: launch runs in a worker process, watch live curves, cancel, browse the history."""

from __future__ import annotations

import datetime as dt
import json

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectlab import config
from detectlab.data import DetectionDataset, discover
from detectlab.catalog import DEMO_LABEL, known_datasets, resolve_dataset
from detectlab.models import list_detectors
from detectlab.train import PRESETS, TrainConfig
from detectlab.ui import state
from detectlab.ui.common import error_markdown

RUN_HEADERS = ["run", "name", "arch", "status", "epochs", "best val bal.acc", "test acc", "test AP", "started"]
_DEFAULT_DATA = DEMO_LABEL


def generators_of(choice: str, folder: str):
    try:
        ds = discover(resolve_dataset(choice, folder), validate=False)
        gens = ds.generators if isinstance(ds, DetectionDataset) else []
        return gr.update(choices=gens, value=gens), ""
    except Exception as exc:  # noqa: BLE001
        return gr.update(choices=[], value=[]), error_markdown(exc)


def apply_preset(name: str):
    p = PRESETS[name]
    base = TrainConfig()
    get = lambda k: p.get(k, getattr(base, k))  # noqa: E731
    return (get("arch"), get("epochs"), get("iterations") or 0, get("lr"), get("weight_decay"), get("batch_size"),
            get("weighted_sampling"), get("hflip"), f"*{name}* — {p.get('note', '')}")


def curves_figure(epochs: list[dict], title: str = "") -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [e["epoch"] for e in epochs]
    fig.add_scatter(x=x, y=[e.get("train_loss") for e in epochs], name="train loss", mode="lines+markers")
    fig.add_scatter(x=x, y=[e.get("val_loss") for e in epochs], name="val loss", mode="lines+markers")
    fig.add_scatter(x=x, y=[e.get("val_accuracy") for e in epochs], name="val accuracy", mode="lines+markers",
                    secondary_y=True)
    fig.add_scatter(x=x, y=[e.get("val_balanced_accuracy") for e in epochs], name="val balanced acc.",
                    mode="lines+markers", line=dict(dash="dot"), secondary_y=True)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), title=title or "curves",
                      xaxis_title="epoch", legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text="BCE loss", secondary_y=False)
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], secondary_y=True)
    return fig


def _fmt(v):
    return None if v is None else round(v, 4)


def runs_table(runs=None) -> list[list]:
    """One row per run; refreshed every second, so two queries whatever the history's length."""
    store = state.manager().store
    runs = store.list() if runs is None else runs
    epochs = store.epoch_summaries()
    rows = []
    for r in runs:
        n_epochs, best = epochs.get(r.id, (0, None))
        test = r.result.get("test") or {}
        started = dt.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M:%S")
        rows.append([r.id, r.name, r.config.get("arch"), r.status, n_epochs, _fmt(best), _fmt(test.get("accuracy")),
                     _fmt(test.get("ap")), started])
    return rows


def _progress_md(r) -> str:
    if r.status == "running":
        eta = r.eta_seconds
        pct = 100 * r.step / r.total if r.total else 0
        return (f"**Run {r.id}: running** — {r.stage or 'starting'}: {r.step}/{r.total} ({pct:.0f} %)"
                + (f", ETA {eta:.0f} s" if eta is not None else ""))
    if r.status == "queued":
        return f"**Run {r.id}: queued** — waits for the running run to end"
    text = f"**Run {r.id}: {r.status}**"
    test = r.result.get("test") or {}
    if test:
        text += (f" — test accuracy {test.get('accuracy', 0):.3f}, balanced accuracy "
                 f"{test.get('balanced_accuracy') or 0:.3f}, AP {test.get('ap') or 0:.3f}")
    if r.error:
        text += f"\n\n**Reason:** {r.error}"
    if r.checkpoint:
        text += f"\n\ncheckpoint: `{r.checkpoint}` (listed in every detector picker)"
    for note in r.result.get("notes") or []:
        text += f"\n\n*note:* {note}"
    return text


def show_run(run_id: str | None):
    """Progress line, curves and config of one run (the latest if none is selected)."""
    store = state.manager().store
    runs = store.list()
    if not runs:
        return "No runs yet.", curves_figure([]), {}, []
    r = next((x for x in runs if x.id == run_id), runs[0])
    return (_progress_md(r), curves_figure(store.epochs(r.id), f"run {r.id} ({r.config.get('arch')})"), r.config,
            runs_table(runs))


def launch(data_choice, folder, generators, arch, input_size, epochs, iterations, lr, wd, batch, weighted, hflip,
           augment, aug_p, blur_max, jpeg_min, scale_min, patch_min, adv_eps, runs, seed, name):
    try:
        eps = [float(e) for e in str(adv_eps).replace(" ", "").split(",") if e]
        cfg = TrainConfig(
            data=str(resolve_dataset(data_choice, folder)), generators=list(generators) or None, arch=arch,
            input_size=int(input_size), epochs=int(epochs), iterations=int(iterations) or None, lr=float(lr),
            weight_decay=float(wd), batch_size=int(batch), weighted_sampling=bool(weighted), hflip=bool(hflip),
            adv_eps=eps, runs=int(runs), seed=int(seed), name=name or "")
        if augment:
            p = float(aug_p)
            cfg.augment.blur_p = cfg.augment.jpeg_p = cfg.augment.downsize_p = cfg.augment.patch_p = p
            cfg.augment.blur_sigma = (0.0, float(blur_max))
            cfg.augment.jpeg_quality = (int(jpeg_min), 100)
            cfg.augment.downsize_scale = (float(scale_min), 1.0)
            cfg.augment.patch_size = (int(patch_min), int(input_size))
        record = state.manager().submit(json.loads(json.dumps(cfg.to_dict())), name=name or "")
        return record.id, *show_run(record.id)
    except Exception as exc:  # noqa: BLE001
        return gr.update(), error_markdown(exc), gr.update(), gr.update(), gr.update()


def cancel(run_id: str | None):
    store = state.manager().store
    runs = [r for r in store.list() if r.status in ("running", "queued")]
    target = run_id or (runs[0].id if runs else None)
    if not target:
        return "Nothing to cancel."
    try:
        state.manager().cancel(target)
        return f"Cancel requested for run {target}; it stops at its next step and keeps what it finished."
    except KeyError as exc:
        return error_markdown(exc)


def build() -> None:
    gr.Markdown("Runs execute in a separate worker process, one at a time (others queue); the history lives in "
                f"`{config.home() / 'runs.sqlite'}` and survives restarts. Finished runs' checkpoints appear in "
                "every detector picker.")
    with gr.Row():
        preset = gr.Dropdown(list(PRESETS), value=None, label="Preset (seed papers' settings, scaled for the CPU)",
                             scale=3, elem_id="train-preset")
        preset_note = gr.Markdown()
    with gr.Row():
        data_choice = gr.Dropdown(list(known_datasets()), value=_DEFAULT_DATA, label="Data set", elem_id="train-data")
        folder = gr.Textbox(label="…or a folder inside the data roots")
        generators = gr.CheckboxGroup(["transposed-conv", "resize-conv", "pixel-shuffle"],
                                      value=["transposed-conv", "resize-conv", "pixel-shuffle"],
                                      label="Generators forming the fake class", elem_id="train-generators")
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
        weighted = gr.Checkbox(True, label="Class-balanced weighted sampling (seed 000)")
        hflip = gr.Checkbox(True, label="Horizontal flip (seed 001)")
    with gr.Accordion("Degradation augmentation and adversarial training (seed 001)", open=False):
        with gr.Row():
            augment = gr.Checkbox(False, label="Degradation augmentation")
            aug_p = gr.Slider(0, 1, 0.3, step=0.05, label="Probability of each degradation")
            blur_max = gr.Slider(0, 5, 3, step=0.1, label="Blur σ up to")
            jpeg_min = gr.Slider(5, 100, 30, step=1, label="JPEG quality from")
            scale_min = gr.Slider(0.1, 1, 0.25, step=0.05, label="Downsize scale from")
            patch_min = gr.Slider(8, 128, 32, step=4, label="Visible patch from (px)")
        adv_eps = gr.Textbox("", label="FGSM adversarial training ε list (e.g. 0.002,0.005,0.01); empty = off")
    with gr.Row():
        runs = gr.Number(1, label="Repeated runs (mean ± std)", precision=0)
        seed = gr.Number(0, label="Seed", precision=0)
        name = gr.Textbox("", label="Run name", elem_id="train-name")
    with gr.Row():
        launch_btn = gr.Button("Launch training", variant="primary", elem_id="train-launch")
        cancel_btn = gr.Button("Cancel run", variant="stop", elem_id="train-cancel")
    selected = gr.Textbox(label="Selected run (click a row below)", elem_id="train-selected", interactive=True)
    progress_md = gr.Markdown(elem_id="train-progress")
    curves = gr.Plot(label="Loss and validation accuracy", elem_id="train-curves")
    history = gr.Dataframe(headers=RUN_HEADERS, interactive=False, label="Run history (click a row to select it)",
                           elem_id="train-history", max_height=300)
    with gr.Accordion("Config of the selected run", open=False):
        cfg_view = gr.JSON()
    timer = gr.Timer(1.0)

    preset.change(apply_preset, preset, [arch, epochs, iterations, lr, wd, batch, weighted, hflip, preset_note])
    data_choice.change(generators_of, [data_choice, folder], [generators, data_msg])
    folder.submit(generators_of, [data_choice, folder], [generators, data_msg])
    launch_btn.click(launch, [data_choice, folder, generators, arch, input_size, epochs, iterations, lr, wd, batch,
                              weighted, hflip, augment, aug_p, blur_max, jpeg_min, scale_min, patch_min, adv_eps, runs,
                              seed, name], [selected, progress_md, curves, cfg_view, history], api_name="train")
    cancel_btn.click(cancel, selected, progress_md, api_name=False)
    timer.tick(show_run, selected, [progress_md, curves, cfg_view, history], api_name=False, show_progress="hidden")
    history.select(_select_row, None, selected, api_name=False)


def _select_row(evt: gr.SelectData):
    return evt.row_value[0] if getattr(evt, "row_value", None) else gr.update()
