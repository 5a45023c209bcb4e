"""Figures of the robustness results: sweep curves (plotly, with PNG/HTML export) and live P(fake) bars.

The sweep figure is [Petrželková 2024]'s Figs 4.4/4.6/4.8/4.10 for any detectors: accuracy (and
balanced accuracy, AP) against strength, one line per detector, error bars = std over
repeated runs. The PNG is drawn with matplotlib from the same numbers, because plotly's
static export needs kaleido and a Chrome of its own, which this install does not carry.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectlab.robustness.sweep import METRICS, SweepResult

_TITLES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "ap": "AP"}
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _x(levels: list) -> tuple[list, str]:
    """x values and axis type: numbers on a linear axis; 'off' (no JPEG) forces a category axis."""
    if any(v is None for v in levels):
        return ["off" if v is None else format(v, "g") for v in levels], "category"
    return list(levels), "linear"


def _descending(levels: list) -> bool:
    nums = [v for v in levels if v is not None]
    return len(nums) > 1 and nums[0] > nums[-1]


def sweep_figure(result: SweepResult, metrics: tuple[str, ...] = METRICS) -> go.Figure:
    """One panel per metric, one line per detector group, error bars (std) for repeated runs."""
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[_TITLES[m] for m in metrics],
                        horizontal_spacing=0.07)
    for gi, g in enumerate(result.groups):
        color = _COLORS[gi % len(_COLORS)]
        for mi, m in enumerate(metrics):
            levels, mean, std = result.curve(g, m)
            x, _ = _x(levels)
            repeated = any(s for s in std if s)
            fig.add_trace(go.Scatter(
                x=x, y=mean, mode="lines+markers", name=g, legendgroup=g, showlegend=mi == 0,
                line=dict(color=color), error_y=dict(type="data", array=std, visible=repeated),
                hovertemplate=f"{g}<br>{result.spec.strength_name} %{{x}}<br>{_TITLES[m]} %{{y:.3f}}<extra></extra>"),
                row=1, col=mi + 1)
    levels = list(result.spec.levels)
    _, axis_type = _x(levels)
    fig.update_xaxes(title_text=result.spec.label, type=axis_type,
                     autorange="reversed" if axis_type == "linear" and _descending(levels) else True)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(height=380, margin=dict(l=40, r=10, t=60, b=50), legend=dict(orientation="h", y=-0.25),
                      title=f"{result.spec.label}: {result.n_images} images" + (f" of {result.data}" if result.data else ""))
    return fig


def write_html(fig: go.Figure, path: str | Path) -> Path:
    """A self-contained interactive HTML file (plotly.js inlined: opens offline)."""
    path = Path(path)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def write_png(result: SweepResult, path: str | Path, metrics: tuple[str, ...] = METRICS) -> Path:
    """The sweep figure as a PNG (matplotlib, the same numbers as ``sweep_figure``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    levels = list(result.spec.levels)
    for mi, m in enumerate(metrics):
        ax = axes[0][mi]
        for gi, g in enumerate(result.groups):
            lv, mean, std = result.curve(g, m)
            x, _ = _x(lv)
            y = [float("nan") if v is None else v for v in mean]
            ax.errorbar(x, y, yerr=[s or 0 for s in std] if any(std) else None, marker="o", capsize=3,
                        color=_COLORS[gi % len(_COLORS)], label=g)
        ax.set_title(_TITLES[m])
        ax.set_xlabel(result.spec.label)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if _x(levels)[1] == "linear" and _descending(levels):
            ax.invert_xaxis()
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def export_sweep(result: SweepResult, folder: str | Path, stem: str, fig: go.Figure | None = None) -> list[Path]:
    """The sweep's downloads in ``folder``: ``<stem>.csv`` (the table), ``<stem>.png`` and ``<stem>.html``
    (``fig``, default ``sweep_figure(result)``)."""
    folder = Path(folder)
    return [result.write_csv(folder / f"{stem}.csv"), write_png(result, folder / f"{stem}.png"),
            write_html(sweep_figure(result) if fig is None else fig, folder / f"{stem}.html")]


def pfake_figure(names: list[str], p_fake: list[float], thresholds: list[float]) -> go.Figure:
    """Horizontal bars of P(fake) per detector with each detector's decision threshold marked."""
    colors = ["#d62728" if p > t else "#1f77b4" for p, t in zip(p_fake, thresholds)]
    fig = go.Figure(go.Bar(x=p_fake, y=names, orientation="h", marker_color=colors,
                           text=[f"{p:.3f}" for p in p_fake], textposition="auto",
                           hovertemplate="%{y}: P(fake) %{x:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=thresholds, y=names, mode="markers", name="threshold",
                             marker=dict(symbol="line-ns-open", size=26, line=dict(width=3, color="black")),
                             hovertemplate="%{y}: threshold %{x:.2f}<extra></extra>"))
    fig.update_layout(height=90 + 45 * len(names), margin=dict(l=10, r=10, t=30, b=30), showlegend=False,
                      xaxis=dict(range=[0, 1], title="P(fake) (red: decided fake; | = threshold)"),
                      yaxis=dict(autorange="reversed"))
    return fig
