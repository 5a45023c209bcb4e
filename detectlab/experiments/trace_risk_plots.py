"""The trace-risk figure: per-class and balanced accuracy on real test images per training composition."""

from __future__ import annotations

import plotly.graph_objects as go


def _tick(composition: str) -> str:
    a, b = composition.split("/")
    return f"A: {a}<br>B: {b}"


def trace_risk_figure(rows: list[dict], groups: list[str], generator: str) -> go.Figure:
    """Grouped bars (class A, class B, balanced accuracy) per composition with ± std error bars and the
    chance line; one two-line tick label per composition ("A: source" over "B: source"), so none overlap."""
    x = [_tick(r["composition"]) for r in rows]
    series = [(f"class A ({groups[0]})", "class_a_accuracy", "class_a_std", "#4C78A8"),
              (f"class B ({groups[1]})", "class_b_accuracy", "class_b_std", "#F58518"),
              ("balanced", "balanced_accuracy", "std", "#54A24B")]
    fig = go.Figure()
    for name, key, err, colour in series:
        fig.add_bar(name=name, x=x, y=[r[key] for r in rows], marker_color=colour,
                    error_y={"type": "data", "array": [r.get(err, 0.0) for r in rows], "visible": True},
                    customdata=[r["composition"] for r in rows],
                    hovertemplate="%{customdata}<br>" + name + ": %{y:.3f}<extra></extra>")
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey", annotation_text="chance",
                  annotation_position="top left")
    fig.update_layout(barmode="group", title=f"Accuracy on real test images by training composition "
                      f"(synthetic = {generator})", yaxis={"title": "accuracy", "range": [0, 1.05]},
                      xaxis={"title": "training images of class A / class B", "tickfont": {"size": 10}},
                      legend={"orientation": "h", "y": -0.3}, margin={"b": 140}, height=480,
                      width=max(700, 110 * len(rows)))
    return fig
