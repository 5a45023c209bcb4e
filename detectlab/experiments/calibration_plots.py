"""Figures of the calibration experiment (``experiments.calibration``).

* ``reliability_figure``: the reliability diagram — per equal-width bin of P(fake), the share of fakes as a
  bar, the bin's mean P(fake) as a marker and the diagonal of perfect calibration; the counts per bin below;
* ``thresholds_figure``: P(fake) of real and fake images with the checkpoint's threshold and the oracle
  threshold (marked optimistic);
* ``audit_figure``: the format audit's mean change in P(fake) and share of flipped decisions per re-save,
  grouped by class.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_MARGIN = dict(l=50, r=10, t=60, b=40)
_COLOURS = {"real": "#1f77b4", "fake": "#d62728"}


def reliability_figure(reliabilities: dict, title: str = "reliability diagram") -> go.Figure:
    """One bar trace per score (raw, calibrated) of ``{name: calibration.Reliability}``; empty bins left out."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    palette = ("#636efa", "#00a67e", "#ef553b")
    for k, (name, rel) in enumerate(reliabilities.items()):
        colour = palette[k % len(palette)]
        full = [b for b in rel.bins if b["n"]]
        centres = [(b["lo"] + b["hi"]) / 2 for b in full]
        label = f"{name}: ECE {rel.ece:.3f}"
        fig.add_trace(go.Bar(x=centres, y=[b["fraction_fake"] for b in full], name=label, marker_color=colour,
                             opacity=0.75, legendgroup=name, offsetgroup=str(k),
                             customdata=[[b["lo"], b["hi"], b["n"], b["mean_p_fake"]] for b in full],
                             hovertemplate="P(fake) %{customdata[0]:.1f}–%{customdata[1]:.1f}<br>"
                                           "share fake %{y:.3f}<br>mean P(fake) %{customdata[3]:.3f}<br>"
                                           "n = %{customdata[2]}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=centres, y=[b["mean_p_fake"] for b in full], mode="markers",
                                 marker=dict(symbol="line-ew-open", size=14, color=colour, line=dict(width=3)),
                                 name=f"{name}: mean P(fake) in bin", legendgroup=name, showlegend=False,
                                 hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Bar(x=centres, y=[b["n"] for b in full], marker_color=colour, opacity=0.75,
                             legendgroup=name, showlegend=False, offsetgroup=str(k), text=[b["n"] for b in full],
                             textposition="outside", hovertemplate="n = %{y}<extra></extra>"), row=2, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="grey", dash="dash"),
                             name="perfect calibration"), row=1, col=1)
    fig.update_xaxes(range=[0, 1], dtick=0.1, row=1, col=1)
    fig.update_xaxes(range=[0, 1], dtick=0.1, title_text="P(fake) (bin)", row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text="share of fakes", row=1, col=1)
    fig.update_yaxes(title_text="images", rangemode="tozero", row=2, col=1)
    fig.update_layout(title=title, barmode="group", bargap=0.1, height=520, margin=_MARGIN,
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    return fig


def thresholds_figure(labels, p_fake, rows: list[dict], title: str = "P(fake) by class and the two thresholds"
                      ) -> go.Figure:
    """Histograms of P(fake) for real and fake images with a line at each threshold of ``rows``
    (``calibration.threshold_rows``); the oracle's line is dotted and labelled optimistic."""
    y, p = np.asarray(labels), np.asarray(p_fake, dtype=float)
    fig = go.Figure()
    for cls, label in (("real", 0), ("fake", 1)):
        fig.add_trace(go.Histogram(x=p[y == label], name=f"{cls} ({int((y == label).sum())})",
                                   xbins=dict(start=0, end=1.0001, size=0.025), marker_color=_COLOURS[cls],
                                   opacity=0.6))
    for k, row in enumerate(rows):
        oracle = row.get("optimistic")
        text = (f"{'oracle (optimistic)' if oracle else 'checkpoint'} {row['threshold']:.3f}: "
                f"acc {100 * row['accuracy']:.1f} %")
        fig.add_vline(x=row["threshold"], line=dict(color="black", dash="dot" if oracle else "solid", width=2),
                      annotation_text=text, annotation_position="top left" if k == 0 else "top right",
                      annotation_yshift=-18 * k)
    fig.update_layout(title=title, barmode="overlay", xaxis_title="P(fake)", yaxis_title="images",
                      xaxis_range=[0, 1], height=380, margin=_MARGIN)
    return fig


def audit_figure(rows: list[dict], title: str = "format audit") -> go.Figure:
    """Grouped bars per re-save (x) and class (colour): mean change in P(fake) (left) and the share of
    decisions flipped in % (right), from ``calibration.audit_rows``."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["mean change in P(fake)", "decisions flipped [%]"],
                        horizontal_spacing=0.12)
    formats = list(dict.fromkeys(r["format"] for r in rows))
    for cls in ("real", "fake"):
        mine = {r["format"]: r for r in rows if r["class"] == cls}
        if not mine:
            continue
        xs = [f for f in formats if f in mine]
        change = [mine[f]["mean_change"] for f in xs]
        flipped = [100 * mine[f]["flipped"] for f in xs]
        fig.add_trace(go.Bar(x=xs, y=change, name=cls, marker_color=_COLOURS[cls], legendgroup=cls,
                             text=[f"{v:+.3f}" for v in change], textposition="outside",
                             hovertemplate="%{x}<br>" + cls + ": mean change %{y:+.4f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(x=xs, y=flipped, name=cls, marker_color=_COLOURS[cls], legendgroup=cls,
                             showlegend=False, text=[f"{v:.1f}" for v in flipped], textposition="outside",
                             hovertemplate="%{x}<br>" + cls + ": %{y:.1f} % flipped<extra></extra>"), row=1, col=2)
    fig.add_hline(y=0, line=dict(color="grey", width=1), row=1, col=1)
    fig.update_xaxes(tickangle=-20, automargin=True)
    fig.update_yaxes(title_text="Δ P(fake) (after − before)", zeroline=True, row=1, col=1)
    fig.update_yaxes(title_text="% of the class", rangemode="tozero", row=1, col=2)
    fig.update_layout(title=title, barmode="group", height=420, margin=dict(l=60, r=10, t=70, b=80),
                      legend_title="class")
    return fig
