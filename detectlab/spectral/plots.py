"""Figures of the spectral results (plotly): fingerprint panels side by side, radial profiles, removal before/after.

* ``grid_figure``: FP(R, S) panels ([Wimmer 2024], eq. 1) or raw mean spectra on one shared colour axis;
* ``profile_figure``: radial (azimuthally averaged) log spectra, one line per set, plus one image's;
* ``removal_figure``: a set's fingerprint before and after fingerprint removal ([Wimmer 2024] Fig. 6).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectlab.spectral.sets import RemovalPreview

#: the colour limit of an automatic scale: this percentile of |values| (a few hot pixels do not wash it out)
AUTO_PERCENTILE = 99.5


def auto_limit(panels: dict[str, np.ndarray]) -> float:
    """A symmetric colour limit shared by ``panels``: the largest of their 99.5th percentiles of |values|."""
    return max(float(np.percentile(np.abs(v), AUTO_PERCENTILE)) for v in panels.values()) if panels else 1.0


def grid_figure(panels: dict[str, np.ndarray], limit: float, raw: bool = False) -> go.Figure:
    """Panels side by side on one colour axis (symmetric ±limit; 0 = ``auto_limit``), centred frequencies."""
    names = list(panels)
    cols = max(1, min(len(names), 4))
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.03, vertical_spacing=0.08)
    if limit <= 0:
        limit = auto_limit(panels)
    cmin, cmax, scale = -limit, limit, ("Viridis" if raw else "RdBu_r")
    for i, (name, v) in enumerate(panels.items()):
        h, w = v.shape
        fig.add_trace(go.Heatmap(z=v, x=np.arange(w) - w // 2, y=np.arange(h) - h // 2, coloraxis="coloraxis",
                                 hovertemplate="fx %{x}, fy %{y}: %{z:.3f}<extra>" + name + "</extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(coloraxis=dict(colorscale=scale, cmin=cmin, cmax=cmax,
                                     colorbar=dict(title="log|F|" if raw else "Δ log|F|")),
                      height=320 * rows, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return fig


def profile_figure(spectra: dict[str, np.ndarray], single: tuple[str, np.ndarray] | None = None) -> go.Figure:
    """Radial profiles against spatial frequency (cycles/pixel, 0 to 0.5); ``single`` (label, profile) dotted."""
    fig = go.Figure()
    for name, prof in spectra.items():
        fig.add_scatter(y=prof, x=np.arange(len(prof)) / (2 * len(prof)), name=name, mode="lines")
    if single:
        fig.add_scatter(y=single[1], x=np.arange(len(single[1])) / (2 * len(single[1])), name=single[0],
                        mode="lines", line=dict(dash="dot", color="black"))
    fig.update_layout(height=340, title="Radial (azimuthally averaged) log spectrum",
                      xaxis_title="spatial frequency (cycles/pixel)", yaxis_title="mean log|F|",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def removal_figure(preview: RemovalPreview, generator: str) -> go.Figure:
    """FP(real, generator) before and after removal, on the colour scale of the fingerprint before."""
    limit = float(np.percentile(np.abs(preview.fp_before), AUTO_PERCENTILE)) or 1.0
    return grid_figure({f"FP(real, {generator}) before": preview.fp_before,
                        f"after {preview.method}": preview.fp_after}, limit)


__all__ = ["AUTO_PERCENTILE", "auto_limit", "grid_figure", "profile_figure", "removal_figure"]
