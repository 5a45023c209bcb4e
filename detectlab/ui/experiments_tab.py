"""The Experiments tab: one experiment at a time on the demo or any labelled folder, queued as a run (it
survives a page reload, shows its progress and time left, can be cancelled), with its table, figures and
downloads (the reproducibility card, CSVs, figures as HTML and PNG)."""

from __future__ import annotations

import time

import gradio as gr

from detectlab import catalog, config
from detectlab.data.overview import resolve_in_roots
from detectlab.experiments.job import KIND, load_figures, parse_settings, run_config, settings_text, table_view
from detectlab.experiments.registry import EXPERIMENTS
from detectlab.train.layout import RunLayout
from detectlab.ui import state
from detectlab.ui.common import refresh_on_open
from detectlab.ui.widgets import plain_message

DEFAULT = "cross-generator"
HISTORY_HEADERS = ["run", "experiment", "status", "data set", "created"]


def _choices() -> list[tuple[str, str]]:
    return [(f"{e.title} — {e.reproduces}", e.name) for e in EXPERIMENTS.values()]


def describe(name: str):
    """The settings of the picked experiment (every one with its default)."""
    return settings_text(name)


#: Settings that name a folder: from the page, only folders inside the data roots.
FOLDER_SETTINGS = ("a", "b", "real_folder")


def launch(name: str, data_choice: str, folder: str, settings: str):
    """Queue the experiment; returns the run id and its first status line."""
    try:
        root = catalog.resolve_dataset(data_choice, folder)
        given = {**parse_settings(settings), "data": str(root)}
        for key in FOLDER_SETTINGS:  # a folder typed into the settings is confined as the data set's is
            value = given.get(key)
            if isinstance(value, str) and any(sign in value for sign in ("/", "\\", "~")):
                given[key] = str(resolve_in_roots(value, config.data_roots()))
        record = state.manager().submit(run_config(name, given))
        return record.id, f"Queued **{record.id}** ({name} on `{root.name}`)."
    except Exception as exc:  # noqa: BLE001 - a one-line message; nothing is queued
        return gr.update(), plain_message(exc)


def cancel(run_id: str | None):
    if not run_id:
        return "No experiment selected."
    state.manager().cancel(run_id)
    return f"Cancelling **{run_id}** …"


def _experiment_runs(limit: int = 50) -> list:
    return [r for r in state.manager().store.list(limit=200) if r.config.get("kind") == KIND][:limit]


def history():
    rows = [[r.id, r.config.get("experiment", ""), r.status,
             str(r.config.get("params", {}).get("data", "")).rsplit("/", 1)[-1],
             time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))]
            for r in _experiment_runs()]
    return {"headers": HISTORY_HEADERS, "data": rows}


def _status_line(r) -> str:
    if r.status in ("queued",):
        return f"**{r.id}** queued: it starts when the run before it ends."
    if r.status == "running":
        eta = r.eta_seconds
        left = f", about {eta:.0f} s left" if eta is not None else ""
        frac = f" {r.step}/{r.total}" if r.total else ""
        return f"**{r.id}** running — {r.stage or 'starting'}{frac}{left}."
    if r.status == "finished":
        res = r.result or {}
        models = res.get("models", {})
        return (f"**{r.id}** finished in {res.get('timings', {}).get('total', 0):.1f} s "
                f"(models fitted {models.get('fitted', 0)}, reused {models.get('reused', 0)}).")
    return f"**{r.id}** {r.status}" + (f": {r.error}" if r.error else ".")


def show(run_id: str | None, table_name: str | None, figure_name: str | None, rendered: str | None = None):
    """The selected run: status; once finished its summary, the chosen table and figure, and the downloads
    (sent once per run, table and figure: later ticks refresh the status and history only)."""
    key = f"{run_id}|{table_name}|{figure_name}"
    if run_id and rendered == key:
        return (*[gr.update()] * 7, history(), gr.update(), key)
    out = _show(run_id, table_name, figure_name)
    finished = out[0].startswith(f"**{out[-1]}** finished") if isinstance(out[-1], str) else False
    return (*out, key if finished else None)


def _show(run_id: str | None, table_name: str | None, figure_name: str | None):
    if not run_id:
        runs = _experiment_runs(1)
        if not runs:
            return ("Pick an experiment and a data set, then **Run**.", "", gr.update(), gr.update(choices=[]),
                    gr.update(), gr.update(choices=[]), None, history(), gr.update())
        run_id = runs[0].id
    try:
        r = state.manager().store.get(run_id)
    except Exception as exc:  # noqa: BLE001
        return (plain_message(exc), "", gr.update(), gr.update(), gr.update(), gr.update(), None, history(), None)
    if r.status != "finished":
        return (_status_line(r), "", gr.update(), gr.update(), gr.update(), gr.update(), None, history(), run_id)
    res = r.result or {}
    tables = res.get("tables", {})
    tname = table_name if table_name in tables else next(iter(tables), None)
    figures = load_figures(RunLayout.default().run_dir(run_id))
    fname = figure_name if figure_name in figures else next(iter(figures), None)
    summary = res.get("summary", "") + "".join(f"\n\n*{n}*" for n in res.get("notes", []))
    view = table_view(tables.get(tname, [])) if tname else None
    return (_status_line(r), summary,
            gr.update(value=view["data"], headers=view["headers"]) if view else gr.update(),
            gr.update(choices=list(tables), value=tname), figures.get(fname) if fname else None,
            gr.update(choices=list(figures), value=fname), res.get("files") or None, history(), run_id)


def _select(evt: gr.SelectData):
    row = evt.row_value if hasattr(evt, "row_value") else None
    return row[0] if row else gr.update()


def page_head() -> str:
    """A script for the page's head: every map shown in the tab's plot shows a point's image on hover
    (``embeddings.HOVER_ATTACH_JS``; the points carry their thumbnails)."""
    from detectlab.experiments.embeddings import HOVER_ATTACH_JS

    return ("<script>" + HOVER_ATTACH_JS + """
(function () {
  function scan() { document.querySelectorAll('#exp-plot .js-plotly-plot').forEach(detectlabAttachHover); }
  function start() { new MutationObserver(scan).observe(document.body, {childList: true, subtree: true}); scan(); }
  if (document.body) { start(); } else { document.addEventListener('DOMContentLoaded', start); }
})();
</script>""")


def build() -> None:
    gr.Markdown("Each experiment trains linear probes on a frozen backbone's features (extracted once per data "
                "set, then seconds per model; models are reused when the same settings and data were fitted "
                "before). The cross-generator matrix and leave-one-out also take `\"preset\": \"fidelity\"`: a "
                "ResNet-18 trained end to end per cell, minutes per model. It runs as a queued job: reload the page "
                "and pick it from the history. Every result comes with a reproducibility card: `detectlab "
                "experiment rerun card.json` gets the same tables. On the t-SNE map, hover a point to see its "
                "image.")
    with gr.Row():
        name = gr.Dropdown(_choices(), value=DEFAULT, label="Experiment", scale=3, elem_id="exp-name")
        data_choice = gr.Dropdown(list(catalog.known_datasets()), value=catalog.DEMO_LABEL, label="Data set",
                                  scale=2, elem_id="exp-data")
        folder = gr.Textbox(label="…or a folder inside the data roots", scale=2, elem_id="exp-folder")
    settings = gr.Code(describe(DEFAULT), language="json", label="Settings (JSON; the data set is picked above)",
                       elem_id="exp-settings")
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id="exp-run")
        stop = gr.Button("Cancel", variant="stop", elem_id="exp-cancel")
        selected = gr.Textbox(label="Run", interactive=False, elem_id="exp-selected", scale=2)
    status = gr.Markdown(elem_id="exp-status")
    summary = gr.Markdown(elem_id="exp-summary")
    with gr.Row():
        with gr.Column(scale=2):
            table_pick = gr.Dropdown([], label="Table", elem_id="exp-table-pick")
            table = gr.Dataframe(interactive=False, wrap=True, elem_id="exp-table")
        with gr.Column(scale=3):
            figure_pick = gr.Dropdown([], label="Figure", elem_id="exp-figure-pick")
            plot = gr.Plot(elem_id="exp-plot")
    files = gr.File(label="Downloads: card (JSON, HTML), tables (CSV), figures (HTML, PNG)", file_count="multiple",
                    elem_id="exp-files")
    hist = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, label="Experiment runs", elem_id="exp-history")
    timer = gr.Timer(1.0)
    rendered = gr.State(None)

    shown = [status, summary, table, table_pick, plot, figure_pick, files, hist, selected, rendered]
    watched = [selected, table_pick, figure_pick, rendered]
    name.change(describe, name, settings, api_name=False)
    refresh_on_open(data_choice, catalog.known_datasets)
    run.click(launch, [name, data_choice, folder, settings], [selected, status], api_name=False)
    stop.click(cancel, selected, status, api_name=False)
    timer.tick(show, watched, shown, api_name=False, show_progress="hidden")
    table_pick.input(show, watched, shown, api_name=False)
    figure_pick.input(show, watched, shown, api_name=False)
    hist.select(_select, None, selected, api_name=False)
