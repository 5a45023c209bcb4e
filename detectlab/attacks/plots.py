"""Figures of the set-level attack experiments ([Petrželková 2024] §4.4), from their results and the papers' numbers.

* ``curves_figure``: confusion rate against eps, one line per (crafted on, judged by) pair (Fig. 4.14's axes);
* ``matrix_figure``: the transfer matrix at each eps (Table 4.6), rows crafted on, columns judged by;
* ``mirror_figure``: the mirror models' curves with [Petrželková 2024]'s Table 4.5 marked;
* ``hardening_figure``: the original and the adversarially trained model, each attacking (Fig. 4.14);
* ``cross_sample_figure``: one image's residual on every other image, per source and mean (Table 4.4);
* ``blur_figure``: accuracy with and without the blur defence beside [Petrželková 2024]'s (Table 4.7).

Confusion rates are shown in percent; a cell with nothing eligible (None) is left blank.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from detectlab.attacks.experiments import BlurDefenceResult, CrossSampleResult, MirrorResult, TransferResult
from detectlab.papers import TABLE_4_4, TABLE_4_5, TABLE_4_5_EPS, TABLE_4_7

_MARGIN = dict(l=40, r=10, t=40, b=40)


def _pct(rate: float | None) -> float | None:
    return None if rate is None else 100 * rate


def curves_figure(result: TransferResult, pairs: set[tuple[str, str]] | None = None,
                  title: str = "confusion rate against ε") -> go.Figure:
    """Confusion rate against eps for each (attacker, judge) pair (only ``pairs`` when given); white box solid."""
    fig = go.Figure()
    for a in result.attackers:
        for j in result.judges:
            if pairs is not None and (a, j) not in pairs:
                continue
            pts = result.curve(j, a)
            if not pts:
                continue
            fig.add_trace(go.Scatter(x=[e for e, _ in pts], y=[_pct(r) for _, r in pts],
                                     mode="lines+markers", name=f"{a} → {j}",
                                     line=dict(dash="solid" if a == j else "dash")))
    fig.update_layout(title=title, xaxis_title="ε", yaxis_title="confusion rate [%]", yaxis_range=[0, 102],
                      height=380, margin=_MARGIN, legend_title="crafted on → judged by")
    return fig


def matrix_figure(result: TransferResult) -> go.Figure:
    """Table 4.6's transfer matrix, one heatmap per eps: rows crafted on, columns judged by.

    The panels share their rows, so only the first carries the row names, in the left margin that
    grows to fit them (``automargin``); column names sit below each panel, tilted; the colour bar is
    placed right of the last panel. No tick label lands on another panel's cells.
    """
    n = len(result.eps)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"ε = {e:g}" for e in result.eps], shared_yaxes=True,
                        horizontal_spacing=0.03 if n > 1 else 0.2)
    for k, e in enumerate(result.eps, start=1):
        z = [[None if v is None else round(100 * v, 1) for v in row] for row in result.matrix(e)]
        fig.add_trace(go.Heatmap(z=z, x=result.judges, y=result.attackers, zmin=0, zmax=100, colorscale="Reds",
                                 text=z, texttemplate="%{text}", showscale=k == n,
                                 colorbar=dict(title="%", x=1.02, xanchor="left", thickness=12)), 1, k)
        fig.update_yaxes(autorange="reversed", automargin=True, showticklabels=k == 1, row=1, col=k)
        fig.update_xaxes(tickangle=-30, automargin=True, title_text="judged by" if k == (n + 1) // 2 else None,
                         row=1, col=k)
    fig.update_yaxes(title_text="crafted on", row=1, col=1)
    fig.update_layout(title="transfer matrix: rows crafted on, columns judged by (confusion rate %)",
                      height=380 + 12 * max(len(result.attackers) - 3, 0), margin=dict(l=40, r=60, t=60, b=40))
    return fig


def mirror_figure(result: MirrorResult) -> go.Figure:
    """The mirror pair's four curves (A→A, A→B, B→A, B→B) and [Petrželková 2024]'s Table 4.5 at its eps (0.025)."""
    fig = curves_figure(result, title="mirror models: confusion rate against ε (Table 4.5)")
    t, e = TABLE_4_5, TABLE_4_5_EPS
    for y, symbol, what in (([t["ResNet-50+"]["ResNet-50+"], t["ResNet-50-"]["ResNet-50-"]], "star", "white box"),
                            ([t["ResNet-50-"]["ResNet-50+"], t["ResNet-50+"]["ResNet-50-"]], "x", "across halves")):
        fig.add_trace(go.Scatter(x=[e, e], y=y, mode="markers", marker=dict(symbol=symbol, size=12),
                                 name=f"Petrželková 2024 {what}"))
    return fig


def hardening_figure(result: TransferResult, original: str, hardened: str) -> go.Figure:
    """Fig. 4.14: (a) residuals crafted on the original, (b) on the hardened model, each judged by both."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"(a) crafted on {original}", f"(b) crafted on {hardened}"])
    for k, attacker in enumerate((original, hardened), start=1):
        for judge, dash in ((original, "solid"), (hardened, "dash")):
            pts = result.curve(judge, attacker)
            fig.add_trace(go.Scatter(x=[e for e, _ in pts], y=[_pct(r) for _, r in pts],
                                     mode="lines+markers", name=f"judged by {judge}", line=dict(dash=dash),
                                     showlegend=k == 1), 1, k)
    fig.update_yaxes(range=[0, 102], title_text="confusion rate [%]", row=1, col=1)
    fig.update_layout(height=380, margin=dict(l=40, r=10, t=60, b=40), title="adversarial training (Fig. 4.14)")
    return fig


def cross_sample_figure(result: CrossSampleResult) -> go.Figure:
    """Table 4.4: each source image's rate, their mean, and [Petrželková 2024]'s ResNet-50 against eps."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[e for e in result.eps for _ in result.sources],
                             y=[_pct(r) for e in result.eps for r in result.rates[e]],
                             mode="markers", name="one source image", marker=dict(opacity=0.5)))
    fig.add_trace(go.Scatter(x=result.eps, y=[_pct(result.mean(e)) for e in result.eps],
                             mode="lines+markers", name=f"{result.detector}: mean"))
    ref = TABLE_4_4["ResNet-50"]
    fig.add_trace(go.Scatter(x=list(ref), y=list(ref.values()), mode="lines+markers", name="Petrželková 2024 ResNet-50",
                             line=dict(dash="dot")))
    fig.update_layout(title="cross-sample: one image's residual on every other image", xaxis_title="ε",
                      yaxis_title="confusion rate [%]", yaxis_range=[0, 102], height=380, margin=_MARGIN)
    return fig


def blur_figure(result: BlurDefenceResult) -> go.Figure:
    """Table 4.7: accuracy on fakes and reals in each case (clean, blurred, adversarial, both) beside [Petrželková 2024]'s."""
    cases = list(result.CASES)
    fig = go.Figure([go.Bar(x=cases, y=[100 * result.fake_accuracy[c] for c in cases],
                            name=f"{result.detector}, fakes"),
                     go.Bar(x=cases, y=[_pct(result.real_accuracy[c]) for c in cases],
                            name=f"{result.detector}, reals"),
                     go.Bar(x=cases, y=[TABLE_4_7["accuracy"][c] for c in cases],
                            name="Petrželková 2024 ResNet-50, fakes (ε 0.05, σ 5)")])
    fig.update_layout(barmode="group", yaxis_title="accuracy [%]", yaxis_range=[0, 102], height=380,
                      title=f"blur defence: ε {result.eps:g}, σ {result.sigma:g}", margin=_MARGIN)
    return fig


__all__ = ["blur_figure", "cross_sample_figure", "curves_figure", "hardening_figure", "matrix_figure",
           "mirror_figure"]
