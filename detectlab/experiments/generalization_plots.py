"""Figures of the generalization experiments: heatmap-coloured matrices ([Petrželková 2024] Tables 4.1, 4.2)
and few-shot learning curves on a log axis (Fig. 4.2). Numbers are shown in percent, as the paper prints them.
"""

from __future__ import annotations

import plotly.graph_objects as go

#: A metric's name as the figures print it.
METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "ap": "average precision"}
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
            "#bcbd22")


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100.0 * v, 1)


def matrix_figure(rows: list[str], cols: list[str], values: list[list[float | None]],
                  stds: list[list[float | None]] | None, metric: str, row_title: str, col_title: str,
                  title: str, highlight_diagonal: bool = True) -> go.Figure:
    """One metric's matrix as a heatmap with the numbers (%, ``mean ± std`` when ``stds`` holds any) in the cells.

    Rows top to bottom in the given order; column names below, tilted when there are many or long ones; the
    left margin grows to fit the row names. The diagonal (same generator trained and tested, or the left-out
    one) is outlined when ``highlight_diagonal``.
    """
    z = [[_pct(v) for v in row] for row in values]
    text = []
    for i, row in enumerate(z):
        cells = []
        for j, v in enumerate(row):
            s = None if stds is None else stds[i][j]
            cells.append("–" if v is None else (f"{v:.1f} ± {100 * s:.1f}" if s is not None else f"{v:.1f}"))
        text.append(cells)
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=rows, text=text, texttemplate="%{text}", zmin=0, zmax=100, colorscale="RdYlGn",
        colorbar=dict(title="%", thickness=12),
        hovertemplate=f"{row_title}: %{{y}}<br>{col_title}: %{{x}}<br>{METRIC_LABELS.get(metric, metric)}: "
                      "%{text} %<extra></extra>"))
    if highlight_diagonal:
        for k, name in enumerate(rows):
            if k < len(cols):
                fig.add_shape(type="rect", x0=k - 0.5, x1=k + 0.5, y0=k - 0.5, y1=k + 0.5,
                              line=dict(color="black", width=2), xref="x", yref="y")
    long_names = max((len(c) for c in cols), default=0) > 10 or len(cols) > 6
    fig.update_xaxes(title_text=col_title, side="bottom", tickangle=-30 if long_names else 0, automargin=True,
                     type="category")
    fig.update_yaxes(title_text=row_title, autorange="reversed", automargin=True, type="category")
    side = max(len(rows), len(cols))
    fig.update_layout(title=title, height=260 + 48 * side, margin=dict(l=40, r=40, t=60, b=40))
    return fig


def few_shot_figure(rows: list[dict], backbone: str) -> go.Figure:
    """Accuracy on the left-out generator (solid) and on the other generators (dashed, their mean) against the
    number k of its training images added, mean ± std over repeats as error bars.

    The x axis is logarithmic; k = 0 cannot sit on a log axis, so every point is plotted at k + 1 and the
    ticks are labelled with k itself (the axis title says so).
    """
    fig = go.Figure()
    targets = list(dict.fromkeys(r["target"] for r in rows))
    shots = sorted({int(r["shots"]) for r in rows})
    for n, target in enumerate(targets):
        pts = sorted((r for r in rows if r["target"] == target), key=lambda r: r["shots"])
        colour = _COLOURS[n % len(_COLOURS)]
        x = [int(r["shots"]) + 1 for r in pts]
        for key, dash, what in (("accuracy_target", "solid", "left out"),
                                ("accuracy_others", "dash", "other generators")):
            y = [_pct(r[key]) for r in pts]
            err = [0.0 if r[f"{key}_std"] is None else 100.0 * r[f"{key}_std"] for r in pts]
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines+markers", name=f"{target}: {what}", line=dict(color=colour, dash=dash),
                error_y=dict(type="data", array=err, visible=True, thickness=1),
                customdata=[[int(r["shots"])] for r in pts],
                hovertemplate=f"{target}, {what}<br>k = %{{customdata[0]}}<br>accuracy %{{y:.1f}} %<extra></extra>"))
    fig.add_hline(y=50, line=dict(color="grey", dash="dot", width=1))
    fig.update_xaxes(type="log", tickvals=[k + 1 for k in shots], ticktext=[str(k) for k in shots],
                     title_text="training images of the left-out generator, k (log axis, plotted at k + 1)")
    fig.update_yaxes(title_text="test accuracy [%]", range=[0, 102])
    fig.update_layout(title=f"few-shot: a leave-one-out probe ({backbone}) refitted with k images of the "
                            "left-out generator", height=440, margin=dict(l=40, r=40, t=60, b=40),
                      legend_title="generator: tested on")
    return fig
