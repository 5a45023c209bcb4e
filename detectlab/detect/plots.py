"""Figures of detection results: the confusion matrix of a scored, labelled set."""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["confusion_figure"]


def confusion_figure(conf) -> go.Figure:
    """The 2 × 2 confusion matrix ``[[real→real, real→fake], [fake→real, fake→fake]]`` as a heatmap with
    its counts."""
    fig = go.Figure(go.Heatmap(z=conf, x=["pred real", "pred fake"], y=["real", "fake"], text=conf,
                               texttemplate="%{text}", colorscale="Blues", showscale=False))
    fig.update_layout(height=260, width=320, margin=dict(l=10, r=10, t=30, b=10), title="confusion matrix",
                      yaxis=dict(autorange="reversed"))
    return fig
