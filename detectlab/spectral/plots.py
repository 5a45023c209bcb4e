"""Figures of the spectral results (plotly): fingerprint panels side by side, radial profiles, removal before/after.

* ``grid_figure``: FP(R, S) panels ([Wimmer 2024], eq. 1) or raw mean spectra on one shared colour axis;
  one uploaded image's panel, far noisier than a mean over many images, gets a colour axis of its own;
* ``profile_figure``: radial (azimuthally averaged) log spectra, one line per set, plus one image's, and
  each one's difference to the real photos' profile (where the sets actually differ);
* ``removal_figure``: a set's fingerprint before and after fingerprint removal ([Wimmer 2024] Fig. 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectlab.spectral.sets import RemovalPreview

#: the colour limit of an automatic scale: this percentile of |values| (a few hot pixels do not wash it out)
AUTO_PERCENTILE = 99.5
#: Line styles of the radial profiles: the real photos first (the reference), then one per set.
#: Okabe-Ito colours (told apart with colour-vision deficiencies too), each with its own dash and marker,
#: so the lines stay distinct in grey print and where they overlap.
REFERENCE_STYLE = {"color": "#000000", "dash": "solid", "symbol": "circle"}
SET_STYLES = (
    {"color": "#E69F00", "dash": "dash", "symbol": "square"},
    {"color": "#0072B2", "dash": "dashdot", "symbol": "diamond"},
    {"color": "#009E73", "dash": "longdash", "symbol": "triangle-up"},
    {"color": "#D55E00", "dash": "longdashdot", "symbol": "cross"},
    {"color": "#CC79A7", "dash": "5px,3px,1px,3px", "symbol": "star"},
    {"color": "#56B4E9", "dash": "1px,4px", "symbol": "triangle-down"},
    {"color": "#F0E442", "dash": "8px,2px,2px,2px,2px,2px", "symbol": "hexagon"},
)
SINGLE_STYLE = {"color": "#7F7F7F", "dash": "dot", "symbol": "x"}
#: Markers on a profile line at most this many times (enough to tell the lines apart, not a clutter).
MARKERS_PER_LINE = 12


def auto_limit(panels: dict[str, np.ndarray]) -> float:
    """A symmetric colour limit shared by ``panels``: the largest of their 99.5th percentiles of |values|."""
    return max(float(np.percentile(np.abs(v), AUTO_PERCENTILE)) for v in panels.values()) if panels else 1.0


def grid_figure(panels: dict[str, np.ndarray], limit: float, raw: bool = False,
                own_scale: Sequence[str] | str | None = None) -> go.Figure:
    """Panels side by side on one colour axis (symmetric ±limit; 0 = ``auto_limit``), centred frequencies.

    Panels named in ``own_scale`` (one uploaded image's spectrum: a single image is far noisier
    than a mean over many) are left out of the shared scale and drawn on a second colour axis with
    its own automatic limit; their titles and colour bar say so, so neither washes the other out.
    """
    own = [own_scale] if isinstance(own_scale, str) else list(own_scale or ())
    own = [n for n in own if n in panels]
    shared = {k: v for k, v in panels.items() if k not in own}
    names = list(panels)
    if limit <= 0:
        limit = auto_limit(shared) if shared else auto_limit(panels)
    own_limit = auto_limit({k: panels[k] for k in own}) if own else None
    titles = [f"{n}<br>(own colour scale ±{own_limit:.2f})" if n in own else n for n in names]
    cols = max(1, min(len(names), 4))
    rows = (len(names) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.03, vertical_spacing=0.08)
    scale = "Viridis" if raw else "RdBu_r"
    unit = "log|F|" if raw else "Δ log|F|"
    for i, (name, v) in enumerate(panels.items()):
        h, w = v.shape
        axis = "coloraxis2" if name in own else "coloraxis"
        fig.add_trace(go.Heatmap(z=v, name=name, x=np.arange(w) - w // 2, y=np.arange(h) - h // 2, coloraxis=axis,
                                 hovertemplate="fx %{x}, fy %{y}: %{z:.3f}<extra>" + name + "</extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(coloraxis=dict(colorscale=scale, cmin=-limit, cmax=limit,
                                     colorbar=dict(title=unit + (" (sets)" if own else ""), x=1.0, len=0.9)),
                      height=320 * rows, margin=dict(l=10, r=10, t=60 if own else 40, b=10))
    if own:
        # the uploaded image's panel is always a difference (its spectrum minus the real mean)
        fig.update_layout(coloraxis2=dict(colorscale="RdBu_r", cmin=-own_limit, cmax=own_limit,
                                          colorbar=dict(title="Δ log|F| (uploaded image, own scale)", x=1.12,
                                                        len=0.9)),
                          margin=dict(r=60))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return fig


def _frequencies(prof: np.ndarray) -> np.ndarray:
    return np.arange(len(prof)) / (2 * len(prof))


def profile_figure(spectra: dict[str, np.ndarray], single: tuple[str, np.ndarray] | None = None) -> go.Figure:
    """Radial profiles against spatial frequency (cycles/pixel, 0 to 0.5), and each minus the real profile.

    Top: mean log|F| per set (``"real"`` in black, each set in its own colour, dash and marker;
    ``single`` (label, profile) grey dotted). Bottom: each profile minus the real photos' one, the
    difference the sets' lines are too close to show on the top scale. One legend entry per line
    toggles it in both rows.
    """
    reference = spectra.get("real")
    lines = list(spectra.items()) + ([single] if single else [])
    styles, k = [], 0
    for name, _ in lines:
        if single and name == single[0]:
            styles.append(SINGLE_STYLE)
        elif name == "real":
            styles.append(REFERENCE_STYLE)
        else:
            styles.append(SET_STYLES[k % len(SET_STYLES)])
            k += 1
    rows = 2 if reference is not None else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.55, 0.45] if rows == 2 else None)
    for (name, prof), st in zip(lines, styles):
        prof = np.asarray(prof, float)
        common = dict(mode="lines+markers", legendgroup=name,
                      line=dict(color=st["color"], dash=st["dash"], width=2.5 if name == "real" else 2),
                      marker=dict(symbol=st["symbol"], size=7, maxdisplayed=MARKERS_PER_LINE, color=st["color"]))
        fig.add_trace(go.Scatter(x=_frequencies(prof), y=prof, name=name, **common), row=1, col=1)
        if rows == 2 and len(prof) == len(reference):
            fig.add_trace(go.Scatter(x=_frequencies(prof), y=prof - reference, name=name, showlegend=False,
                                     hovertemplate="%{x:.3f} cycles/px: %{y:+.3f}<extra>" + name + " − real</extra>",
                                     **common), row=2, col=1)
    fig.update_layout(height=520 if rows == 2 else 340, title="Radial (azimuthally averaged) log spectrum",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(title="set (colour, dash, marker)"))
    fig.update_yaxes(title_text="mean log|F|", row=1, col=1)
    fig.update_xaxes(title_text="spatial frequency (cycles/pixel)", row=rows, col=1)
    if rows == 2:
        fig.update_yaxes(title_text="minus real", zeroline=True, row=2, col=1)
    return fig


def removal_figure(preview: RemovalPreview, generator: str) -> go.Figure:
    """FP(real, generator) before and after removal, on the colour scale of the fingerprint before."""
    limit = float(np.percentile(np.abs(preview.fp_before), AUTO_PERCENTILE)) or 1.0
    return grid_figure({f"FP(real, {generator}) before": preview.fp_before,
                        f"after {preview.method}": preview.fp_after}, limit)


__all__ = ["AUTO_PERCENTILE", "MARKERS_PER_LINE", "REFERENCE_STYLE", "SET_STYLES", "SINGLE_STYLE", "auto_limit",
           "grid_figure", "profile_figure", "removal_figure"]
