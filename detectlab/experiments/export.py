"""An experiment's downloads: each table as CSV, each figure as interactive HTML and as PNG, and the card.

PNGs are drawn with matplotlib from the plotly figure's own data (heatmaps with their numbers, bars and
lines with error bars): no browser engine is needed, and the PNG shows the same numbers as the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from detectlab.eval.tables import write_rows_csv
from detectlab.experiments.card import write_card
from detectlab.experiments.core import ExperimentResult


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "figure"


def _array(v):
    return None if v is None else list(v)


def figure_png(fig, path: str | Path) -> Path:
    """``fig`` (plotly) as a PNG: Heatmap, Bar and Scatter traces (one axis each), title and axis titles."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    plotted = [t for t in fig.data if t.type in ("heatmap", "bar", "scatter", "scattergl")]
    axes_of: dict[str, list] = {}
    for t in plotted:
        axes_of.setdefault(getattr(t, "xaxis", None) or "x", []).append(t)
    n = max(1, len(axes_of))
    fig_m, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    layout = fig.layout
    for ax, (axis, traces) in zip(axes[0], axes_of.items()):
        bars = [t for t in traces if t.type == "bar"]
        width = 0.8 / max(1, len(bars))
        for t in traces:
            if t.type == "heatmap":
                z = np.asarray(t.z, dtype=float)
                im = ax.imshow(z, cmap="viridis", aspect="auto", vmin=t.zmin, vmax=t.zmax)
                xs, ys = _array(t.x) or list(range(z.shape[1])), _array(t.y) or list(range(z.shape[0]))
                ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=35, ha="right", fontsize=8)
                ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=8)
                text = t.text if t.text is not None else None
                for i in range(z.shape[0]):
                    for j in range(z.shape[1]):
                        label = (text[i][j] if text is not None else
                                 ("" if np.isnan(z[i, j]) else f"{z[i, j]:.2f}"))
                        ax.text(j, i, str(label), ha="center", va="center", fontsize=7,
                                color="white" if not np.isnan(z[i, j]) and z[i, j] < np.nanmean(z) else "black")
                fig_m.colorbar(im, ax=ax, fraction=0.046)
            elif t.type == "bar":
                xs = [str(x) for x in _array(t.x) or []]
                k = bars.index(t)
                pos = np.arange(len(xs)) + (k - (len(bars) - 1) / 2) * width
                err = _array(t.error_y.array) if t.error_y is not None and t.error_y.array is not None else None
                ax.bar(pos, [np.nan if v is None else v for v in t.y], width, yerr=err, capsize=3, label=t.name)
                ax.set_xticks(np.arange(len(xs)), xs, rotation=30, ha="right", fontsize=8)
            else:
                xs = _array(t.x) or list(range(len(t.y)))
                ys = [np.nan if v is None else v for v in t.y]
                err = _array(t.error_y.array) if t.error_y is not None and t.error_y.array is not None else None
                markers = t.mode is not None and "markers" in t.mode and "lines" not in t.mode
                if err is not None:
                    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=t.name,
                                linestyle="none" if markers else "-")
                else:
                    ax.plot(xs, ys, "o" if markers else "-o", ms=3 if markers else 4, label=t.name)
        xaxis = layout[f"xaxis{axis[1:]}"] if axis != "x" else layout.xaxis
        yaxis = layout[f"yaxis{axis[1:]}"] if axis != "x" else layout.yaxis
        if xaxis is not None and xaxis.title is not None and xaxis.title.text:
            ax.set_xlabel(xaxis.title.text)
        if yaxis is not None and yaxis.title is not None and yaxis.title.text:
            ax.set_ylabel(yaxis.title.text)
        if xaxis is not None and xaxis.type == "log":
            ax.set_xscale("log")
        if any(t.name for t in traces if t.type != "heatmap"):
            ax.legend(fontsize=7)
        ax.grid(alpha=0.25)
    if layout.title is not None and layout.title.text:
        fig_m.suptitle(re.sub(r"<[^>]+>", " ", layout.title.text), fontsize=10)
    fig_m.tight_layout()
    fig_m.savefig(path, dpi=110)
    plt.close(fig_m)
    return path


def export_result(result: ExperimentResult, folder: str | Path) -> list[Path]:
    """Every download of ``result`` in ``folder``: the card (JSON, HTML), one CSV per table, and each figure as
    HTML (plotly.js inline: opens offline) and PNG. Returns the paths, the card first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = write_card(result, folder, stem=f"{result.name}-card")
    out = [json_path, html_path]
    for name, rows in result.tables.items():
        if rows:
            out.append(write_rows_csv(rows, folder / f"{result.name}-{_slug(name)}.csv"))
    for name, fig in result.figures.items():
        stem = f"{result.name}-{_slug(name)}"
        html = folder / f"{stem}.html"
        fig.write_html(str(html), include_plotlyjs=True, full_html=True)
        out += [html, figure_png(fig, folder / f"{stem}.png")]
    return out
