"""An experiment as a queued run: the run queue's worker executes it in its own process (progress, cancel,
history and a page reload work as for training), and its downloads land in the run's folder.

A run's config says which module runs it (``runner``), so the queue stays generic: ``validate(config)``
checks the settings before anything is queued, ``execute(config, out_dir, progress, cancel)`` runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from detectlab.experiments.core import ProbeCache
from detectlab.experiments.export import export_result
from detectlab.experiments.registry import experiment, run_experiment
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

RUNNER = "detectlab.experiments.job"
KIND = "experiment"
FIGURES = "figures.json"


def run_config(name: str, given: dict | None = None) -> dict:
    """The queued run's settings: the experiment, every setting (defaults filled in), checked now; a data set or
    setting it cannot use is refused in one line before anything is queued."""
    exp = experiment(name)
    params = exp.params(given)
    exp.check(params)
    return {"kind": KIND, "runner": RUNNER, "experiment": name, "params": json.loads(json.dumps(params))}


def validate(config: dict) -> dict:
    """``config`` as ``run_config`` makes it (what the run queue calls before queueing)."""
    return run_config(str(config.get("experiment", "")), dict(config.get("params") or {}))


def execute(config: dict, out_dir: str | Path, progress: Progress = null_progress,
            cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Run the experiment; write its card, tables (CSV) and figures (HTML, PNG, and all of them as plotly JSON
    for the app) into ``out_dir``; return the run's result record."""
    out_dir = Path(out_dir)
    cache = ProbeCache()
    result = run_experiment(config["experiment"], config["params"], progress=progress, cancel=cancel, cache=cache)
    files = export_result(result, out_dir)
    (out_dir / FIGURES).write_text(json.dumps({k: f.to_json() for k, f in result.figures.items()}))
    return {"kind": KIND, "experiment": result.name, "summary": result.summary, "notes": result.notes,
            "tables": result.tables, "timings": result.timings, "models": result.models,
            "data_fingerprint": result.data_fingerprint, "files": [str(p) for p in files]}


def load_figures(out_dir: str | Path) -> dict:
    """The figures a finished experiment run wrote (name -> plotly figure); {} when there are none."""
    import plotly.io as pio

    path = Path(out_dir) / FIGURES
    if not path.exists():
        return {}
    return {k: pio.from_json(v) for k, v in json.loads(path.read_text()).items()}


def table_view(rows: list[dict], digits: int = 4) -> dict:
    """Rows of a result table as a data frame's value (headers + data, floats rounded)."""
    if not rows:
        return {"headers": ["(empty)"], "data": []}
    headers = list(rows[0])
    data = [[round(v, digits) if isinstance(v, float) else ("" if v is None else v) for v in (r.get(h) for h in headers)]
            for r in rows]
    return {"headers": headers, "data": data}


def settings_text(name: str) -> str:
    """An experiment's settings but the data set, as the JSON the Experiments tab shows for editing."""
    params = experiment(name).defaults()
    params.pop("data", None)
    return json.dumps(params, indent=1)


def parse_settings(text: str) -> dict:
    """The tab's settings box: a JSON object; anything else is refused in one line."""
    from detectlab.experiments.registry import ExperimentError

    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ExperimentError(f"settings: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(value, dict):
        raise ExperimentError("settings: a JSON object of name: value pairs, e.g. {\"runs\": 3}")
    return value
