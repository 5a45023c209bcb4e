"""Figures of a detector training run: losses and validation scores against (fractional) epochs.

A localizer run's curves are drawn by ``detectlab.localize.plots.training_curves_figure`` (its
kinds name their own losses and scores).
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["curves_figure", "smoothed"]


def smoothed(values: list[float], alpha: float = 0.3) -> list[float]:
    """Exponential moving average (the first value as it is)."""
    out: list[float] = []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


def curves_figure(epochs: list[dict], title: str = "", steps: list[tuple[int, float, float]] = ()) -> go.Figure:
    """Losses (left axis) and validation scores (right axis) of a detector run against (fractional) epochs.

    ``steps``: (step, fractional epoch, loss) rows of the training loss as it comes, drawn
    smoothed so a run shows a curve long before its first epoch ends."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if steps:
        fig.add_scatter(x=[s[1] for s in steps], y=smoothed([s[2] for s in steps]),
                        name="train loss (per step, smoothed)", mode="lines",
                        line=dict(width=1, color="rgba(99,110,250,0.55)"))
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
