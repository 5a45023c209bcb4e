"""Figures of localization: scores by manipulated-area quartile beside [Petrželková 2024] Table 4.8, and
a localizer run's training curves."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectlab.localize.metrics import QUARTILE_EDGES, QUARTILES
from detectlab.localize.registry import localizer_kinds
from detectlab.papers import TABLE_4_8_MAP50

__all__ = ["quartile_figure", "training_curves_figure"]


def _quartile_axis_title() -> str:
    """The x axis title, ``manipulated area quartile (Q1 0–0.08 · Q2 –0.16 · …)``, from Table 4.8's edges."""
    parts = [f"{QUARTILES[0]} {QUARTILE_EDGES[0]:g}–{QUARTILE_EDGES[1]:g}"]
    parts += [f"{q} –{QUARTILE_EDGES[k + 1]:g}" for k, q in enumerate(QUARTILES) if k]
    return f"manipulated area quartile ({' · '.join(parts)})"


def quartile_figure(metrics: dict) -> go.Figure:
    """mAP50 (with [Petrželková 2024] Table 4.8's beside it), pixel dice and heatmap↔mask IoU, overall and by area
    quartile, from ``evaluate_set``'s metrics."""
    qs = list(metrics["quartiles"])
    x = ["all"] + qs
    fig = go.Figure()
    if "map50" in metrics:
        fig.add_bar(name="mAP50 (this localizer)", x=x,
                    y=[metrics["map50"]] + [metrics["quartiles"][q].get("map50") for q in qs])
        fig.add_bar(name="mAP50, [Petrželková 2024] Table 4.8", x=x, y=[TABLE_4_8_MAP50[k] for k in x],
                    marker_color="lightgrey")
    fig.add_bar(name="pixel dice", x=x,
                y=[metrics["pixel"]["dice"]] + [metrics["quartiles"][q]["pixel"]["dice"] for q in qs])
    if "heatmap_iou" in metrics:
        h = metrics["heatmap_iou"]
        fig.add_bar(name=f"heatmap↔mask IoU ({h['detector']})", x=x,
                    y=[h["mean_iou"]] + [h["quartiles"][q] for q in qs])
    fig.update_layout(barmode="group", height=340, yaxis=dict(range=[0, 1], title="score"),
                      xaxis_title=_quartile_axis_title(),
                      margin=dict(l=40, r=10, t=30, b=40), legend=dict(orientation="h", y=1.15))
    return fig


def training_curves_figure(epochs: list[dict], title: str = "") -> go.Figure:
    """Training losses (left axis) and validation scores (right axis) of a localizer run, per epoch: the curves
    each registered kind names (YOLO: box/mask/class loss, mask mAP; U-Net: dice + BCE loss, pixel dice/IoU)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [e["epoch"] for e in epochs]
    for kind in localizer_kinds().values():
        for key, name, metric in kind.curves:
            if any(key in e for e in epochs):
                fig.add_scatter(x=x, y=[e.get(key) for e in epochs], name=name, mode="lines+markers",
                                line=dict(dash="dot") if metric else None, secondary_y=metric)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), title=title or "curves",
                      xaxis_title="epoch", legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(title_text="training loss", secondary_y=False)
    fig.update_yaxes(title_text="validation score", range=[0, 1.02], secondary_y=True)
    return fig
