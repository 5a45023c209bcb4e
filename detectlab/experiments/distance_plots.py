"""Figures of ``set-distance``: FID and KID over every pair of classes as two heatmaps (the split-half floors
on the diagonal), or, for one pair, its distance as bars beside the two floors."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _matrix(table: list[dict], classes: list[str], key: str) -> list[list[float | None]]:
    """Symmetric ``classes`` x ``classes`` matrix of ``key``: pairs off the diagonal, split-half floors on it."""
    pos = {c: k for k, c in enumerate(classes)}
    z: list[list[float | None]] = [[None] * len(classes) for _ in classes]
    for r in table:
        i, j = pos.get(r["a"]), pos.get(r["b"])
        if i is None or j is None:
            continue
        if r["kind"] == "split-half" or i != j:
            z[i][j] = z[j][i] = r[key]
    return z


def _short(name: str) -> str:
    """A folder path's last part (class names pass unchanged)."""
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def _text(z: list[list[float | None]], fmt: str) -> list[list[str]]:
    return [["–" if v is None else format(v, fmt) for v in row] for row in z]


def distance_figure(table: list[dict], classes: list[str], label: str) -> go.Figure:
    """Heatmaps of FID and KID (mean) over ``classes`` when the table has more than one pair; bars otherwise.

    Colours run from light (close) to dark (far), each panel on its own scale; cells show the numbers. The
    title carries ``label`` (which backbone's features; not comparable with published FID).
    """
    pairs = [r for r in table if r["kind"] == "pair"]
    if len(pairs) > 1:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("FID", "KID (mean over subsets)"),
                            horizontal_spacing=0.16)
        for col, (key, fmt) in enumerate((("fid", ".2f"), ("kid_mean", ".4f")), start=1):
            z = _matrix(table, classes, key)
            fig.add_trace(go.Heatmap(
                z=z, x=classes, y=classes, text=_text(z, fmt), texttemplate="%{text}", colorscale="Blues",
                showscale=True, colorbar=dict(thickness=10, x=0.43 if col == 1 else 1.0, len=0.9),
                hovertemplate=f"%{{y}} vs %{{x}}<br>{key}: %{{text}}<extra></extra>"), row=1, col=col)
            fig.update_xaxes(type="category", tickangle=-30 if max(map(len, classes)) > 8 else 0,
                             automargin=True, row=1, col=col)
            fig.update_yaxes(type="category", autorange="reversed", automargin=True, row=1, col=col)
        side = len(classes)
        fig.update_layout(title=dict(text=f"Set distances: diagonal = split-half floor<br><sup>{label}</sup>"),
                          height=300 + 52 * side, margin=dict(l=40, r=40, t=90, b=40))
        return fig
    names, fids, kids, errs = [], [], [], []
    for r in table:
        a, b = _short(r["a"]), _short(r["b"])
        names.append(f"{a} vs {b}" if r["kind"] == "pair" else f"{a}: split halves")
        fids.append(r["fid"])
        kids.append(r["kid_mean"])
        errs.append(r["kid_std"])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("FID", "KID (mean ± std over subsets)"),
                        horizontal_spacing=0.12)
    colours = ["#1f77b4" if r["kind"] == "pair" else "#9e9e9e" for r in table]
    fig.add_trace(go.Bar(x=names, y=fids, marker_color=colours, text=[f"{v:.2f}" for v in fids],
                         textposition="outside", showlegend=False), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=kids, marker_color=colours, error_y=dict(type="data", array=errs),
                         text=[f"{v:.4f}" for v in kids], textposition="outside", showlegend=False), row=1, col=2)
    fig.update_xaxes(tickangle=-20, automargin=True)
    fig.update_layout(title=dict(text=f"Set distance (grey: split-half floors)<br><sup>{label}</sup>"),
                      height=440, margin=dict(l=40, r=40, t=90, b=40))
    return fig
