"""Figures of ``embeddings``: the t-SNE map (one trace per class, each point carrying its file name and
thumbnail) and the separability bars (cross-validated linear-probe balanced accuracy and silhouette)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

REAL_COLOUR = "#4d4d4d"
_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def class_colours(classes: list[str]) -> dict[str, str]:
    """Grey for real, a distinct colour for each generator in order."""
    out, n = {}, 0
    for c in classes:
        if c == "real":
            out[c] = REAL_COLOUR
        else:
            out[c] = _COLOURS[n % len(_COLOURS)]
            n += 1
    return out


def tsne_figure(points: list[dict], thumbs: list[str], classes: list[str], title: str) -> go.Figure:
    """One scatter trace per class (in ``classes`` order). Each point's ``customdata`` is
    ``[file, class, thumbnail data URI or "", index]``; hovering shows the class and file name."""
    colours = class_colours(classes)
    fig = go.Figure()
    for c in classes:
        pts = [q for q in points if q["class"] == c]
        fig.add_trace(go.Scatter(
            x=[q["x"] for q in pts], y=[q["y"] for q in pts], mode="markers", name=f"{c} ({len(pts)})",
            marker=dict(color=colours[c], size=7, opacity=0.75, line=dict(width=0.5, color="white"),
                        symbol="circle" if c == "real" else "diamond"),
            customdata=[[q["file"], c, thumbs[q["index"]], q["index"]] for q in pts],
            hovertemplate="<b>%{customdata[1]}</b><br>%{customdata[0]}<extra></extra>"))
    fig.update_xaxes(title_text="t-SNE 1", showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text="t-SNE 2", showticklabels=False, zeroline=False)
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=560, hovermode="closest",
                      legend=dict(title="class (points)", itemsizing="constant"),
                      margin=dict(l=40, r=40, t=60, b=40))
    return fig


def separability_figure(table: list[dict]) -> go.Figure:
    """Left: cross-validated linear-probe balanced accuracy (%) per pair, ± the folds' std of accuracy, with
    chance (50%) dotted. Right: silhouette of real vs fake per pair (-1 to 1)."""
    names = [f"real vs {r['b']}" for r in table]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("linear probe, balanced accuracy (%)",
                                                        "silhouette, real vs fake"), horizontal_spacing=0.14)
    bal = [100 * (r["probe_balanced_accuracy"] or 0.0) for r in table]
    fig.add_trace(go.Bar(x=names, y=bal, marker_color="#1f77b4", text=[f"{v:.1f}" for v in bal],
                         textposition="outside", showlegend=False,
                         error_y=dict(type="data", array=[100 * (r["probe_accuracy_std"] or 0.0) for r in table])),
                  row=1, col=1)
    fig.add_hline(y=50, line=dict(color="grey", dash="dot", width=1), row=1, col=1)
    sil = [r["silhouette"] for r in table]
    fig.add_trace(go.Bar(x=names, y=sil, marker_color="#9467bd", text=[f"{v:.2f}" for v in sil],
                         textposition="outside", showlegend=False), row=1, col=2)
    fig.update_yaxes(range=[0, 110], row=1, col=1)
    fig.update_yaxes(range=[min(-0.1, min(sil) - 0.1), max(0.5, max(sil) + 0.15)], row=1, col=2)
    fig.update_xaxes(tickangle=-25 if len(table) > 3 else 0, automargin=True)
    fig.update_layout(height=420, margin=dict(l=40, r=40, t=60, b=40))
    return fig
