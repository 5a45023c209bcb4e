"""Petrželková 2024's attack numbers (Tables 4.4-4.7, Fig. 4.14) and what a measured result says against them.

The statements are computed from the measured numbers each time; nothing is tuned to agree.
[Petrželková 2024]'s detectors are ResNet-50, Xception and ViT-tiny on 224 px faces of Realistic
Vision 5.1; the demo's are smaller models on 128 px crops of three toy generators, so the
comparison is of tendencies (who is fooled, how fast with eps), not of exact values.
"""

from __future__ import annotations

from detectlab.attacks.experiments import BlurDefenceResult, CrossSampleResult, MirrorResult, TransferResult
from detectlab.papers import TABLE_4_4, TABLE_4_5, TABLE_4_5_EPS, TABLE_4_6, TABLE_4_6_ARCHS, TABLE_4_7  # noqa: F401


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def white_box_findings(result: TransferResult) -> list[str]:
    """Each detector attacked on itself (the diagonal) against Table 4.6's diagonal (ResNet-50: 100 % from eps 0.01)."""
    out = []
    for name in result.attackers:
        if name not in result.judges:
            continue
        curve = result.curve(name)
        text = ", ".join(f"eps {e:g}: {_pct(r)}" for e, r in curve)
        paper = ", ".join(f"{e:g}: {TABLE_4_6[e][0][0]:.0f} %" for e, _ in curve if e in TABLE_4_6)
        full = [r for e, r in curve if r is not None and e >= 0.01]
        verdict = ("agrees with [Petrželková 2024] (Table 4.6: a white-box FGSM fools ResNet-50 and Xception on every fake "
                   "from eps 0.01)") if full and min(full) >= 0.9 else \
            "is less fooled than [Petrželková 2024]'s CNNs (Table 4.6: 100 % from eps 0.01)"
        out.append(f"{name} attacked on itself ({result.method}): {text}"
                   + (f" — [Petrželková 2024] ResNet-50 {paper}" if paper else "") + f"; the demo {verdict}.")
    return out


def _pairs(cells: list[tuple[str, str, float]]) -> str:
    return ", ".join(f"{a}→{j}" for a, j, _ in cells)


def transfer_findings(result: TransferResult) -> list[str]:
    """Off-diagonal cells against Table 4.6: between CNNs transfer is strong, to and from ViT-tiny weak.

    The strongest and the weakest pair are named only when they differ: with one pair, or with every pair
    at the same rate, the line says so instead; tied pairs are named together.
    """
    out = []
    for e in result.eps:
        cells = [(c.attacker, c.judge, c.result.rate) for c in result.cells
                 if c.eps == e and c.attacker != c.judge and c.result.rate is not None]
        if not cells:
            continue
        paper = ""
        if e in TABLE_4_6:
            t = TABLE_4_6[e]
            paper = (f"; [Petrželková 2024] at eps {e:g}: ResNet-50→Xception {t[0][1]:.1f} %, Xception→ResNet-50 "
                     f"{t[1][0]:.1f} %, ResNet-50→ViT-tiny {t[0][2]:.1f} %, ViT-tiny→ResNet-50 {t[2][0]:.1f} %")
        hi, lo = max(c[2] for c in cells), min(c[2] for c in cells)
        if len(cells) == 1:
            what = f"one pair only, {_pairs(cells)} {_pct(hi)}"
        elif hi == lo:
            what = f"all {len(cells)} pairs equal, {_pct(hi)} ({_pairs(cells)})"
        else:
            what = (f"strongest {_pairs([c for c in cells if c[2] == hi])} {_pct(hi)}, weakest "
                    f"{_pairs([c for c in cells if c[2] == lo])} {_pct(lo)}")
        out.append(f"Transfer at eps {e:g}: {what}{paper}.")
    return out


def class_findings(result: TransferResult) -> list[str]:
    """Per class, for each detector attacked on itself: fakes called real and reals called fake, clean and after.

    The attack is crafted against the true labels, so it pushes every image away from its class: fakes
    towards "real" (the confusion rate) and reals towards "fake". The accuracy after the attack mixes the
    two; these lines keep them apart.
    """
    out = []
    for name in result.attackers:
        cells = [c.result for c in result.cells if c.attacker == name and c.judge == name]
        if not cells or cells[0].n_fake is None:
            continue
        first = cells[0]
        fakes = "; ".join(f"eps {r.eps:g}: {_pct(r.fakes_called_real_after)}" for r in cells)
        line = (f"{name} attacked on itself ({result.method}), per class: fakes called real "
                f"{_pct(first.fakes_called_real_before)} clean → {fakes} (of {first.n_fake} fakes)")
        if first.n_real:
            reals = "; ".join(f"eps {r.eps:g}: {_pct(r.reals_called_fake_after)} ({r.reals_turned_fake} turned "
                              "fake)" for r in cells)
            line += (f"; reals called fake {_pct(first.reals_called_fake_before)} clean → {reals} (of "
                     f"{first.n_real} reals). The attack pushes each image away from its true class, so reals are "
                     "pushed towards fake: the accuracy after the attack counts both")
        else:
            line += "; no real images in the set, so none can be turned fake"
        out.append(line + ".")
    return out


def mirror_findings(result: MirrorResult) -> list[str]:
    """Table 4.5: residuals of one mirror model against the other ([Petrželková 2024]: 100 % white box, 80-84 % across)."""
    a, b = result.a, result.b
    t = TABLE_4_5
    paper_cross = (t["ResNet-50-"]["ResNet-50+"], t["ResNet-50+"]["ResNet-50-"])  # +→−, −→+
    out = []
    for e in result.eps:
        aa, ab, bb, ba = (result.rate(a, a, e), result.rate(a, b, e), result.rate(b, b, e), result.rate(b, a, e))
        line = (f"Mirror models at {result.method} eps {e:g}: white box A→A {_pct(aa)}, B→B {_pct(bb)}; "
                f"across the halves A→B {_pct(ab)}, B→A {_pct(ba)}")
        cross = [r for r in (ab, ba) if r is not None]
        white = [r for r in (aa, bb) if r is not None]
        if cross and white:
            kept = sum(cross) / max(sum(white), 1e-9)
            line += f" (the mirror keeps {100 * kept:.0f} % of the white-box rate)"
        out.append(line + ".")
    near = min(result.eps, key=lambda e: abs(e - TABLE_4_5_EPS))
    cross = [r for r in (result.rate(a, b, near), result.rate(b, a, near)) if r is not None]
    ref = (f"Petrželková 2024 (two ResNet-50 on disjoint halves, FGSM eps {TABLE_4_5_EPS:g}): white box 100 / 100 %, across "
           f"the halves {paper_cross[0]:.0f} % and {paper_cross[1]:.0f} %")
    if not cross:
        out.append(f"A = {a}, B = {b}; {ref}. No fake was eligible across the halves here.")
        return out
    mean = 100 * sum(cross) / len(cross)
    paper_mean = sum(paper_cross) / 2
    verdict = ("agrees with [Petrželková 2024]: a mirror model trained on other data is nearly as good a stand-in as the "
               "target itself" if abs(mean - paper_mean) <= 15 else
               "transfers more strongly than in [Petrželková 2024]" if mean > paper_mean else
               "transfers less than in [Petrželková 2024]: the black-box attack through a mirror model works only in part"
               if mean >= 30 else "unlike [Petrželková 2024], residuals barely transfer between the halves")
    out.append(f"A = {a}, B = {b}. At eps {near:g} the residuals fool the other half {mean:.1f} % of the time on "
               f"average; {ref} — the demo {verdict}.")
    return out


def hardening_findings(result: TransferResult, original: str, hardened: str) -> list[str]:
    """Fig. 4.14: does adversarial training lower the confusion rate, (a) on the original's and (b) on its own residuals?"""
    def at(attacker, judge):
        return {e: r for e, r in result.curve(judge, attacker)}

    out = []
    for scenario, attacker in (("(a) residuals crafted on the original", original),
                               ("(b) residuals crafted on the hardened model", hardened)):
        o, h = at(attacker, original), at(attacker, hardened)
        pairs = [(e, o.get(e), h.get(e)) for e in result.eps]
        text = "; ".join(f"eps {e:g}: original {_pct(a)}, hardened {_pct(b)}" for e, a, b in pairs)
        lower = [b < a for _, a, b in pairs if a is not None and b is not None]
        verdict = ("the hardened model is fooled less at every eps, as in [Petrželková 2024] Fig. 4.14" if lower and all(lower)
                   else "the hardened model is fooled less at some eps only" if any(lower)
                   else "unlike [Petrželková 2024] Fig. 4.14, adversarial training does not lower the confusion rate here")
        out.append(f"{scenario}: {text} — {verdict}.")
    return out


def cross_sample_findings(result: CrossSampleResult) -> list[str]:
    """Table 4.4: one image's residual on every other image (ResNet-50: 2 / 67 / 100 % at eps 0.01 / 0.02 / 0.05)."""
    out = []
    for e in result.eps:
        m = result.mean(e)
        ref = TABLE_4_4["ResNet-50"].get(e)
        line = f"{result.detector} cross-sample at eps {e:g}: mean {_pct(m)} over {len(result.sources)} source images"
        if ref is not None and m is not None:
            close = abs(100 * m - ref) <= 10
            line += f" — [Petrželková 2024] ResNet-50 {ref:.1f} % ({'similar' if close else 'different'})"
        out.append(line + ".")
    return out


#: Fake accuracy (0-1) a blur defence must restore over the attacked images to be said to undo the attack.
DEFENCE_MIN_GAIN = 0.10


def blur_findings(result: BlurDefenceResult) -> list[str]:
    """Table 4.7: blur (sigma 5) restores accuracy on FGSM eps 0.05 images (3.2 % -> 78 %; confusion 96 % -> 18 %)."""
    a, c, real = result.fake_accuracy, result.confusion, result.real_accuracy
    t = TABLE_4_7
    # a defence must give back a real share of the fakes the attack took ([Petrželková 2024]: 3.2 % -> 78 %), not
    # a rounding's worth: at least DEFENCE_MIN_GAIN of fake accuracy over the undefended attack
    helped = a["blurred adversarial"] - a["adversarial"] >= DEFENCE_MIN_GAIN
    cost = a["clean"] - a["blurred clean"]
    return [
        f"{result.detector}, {result.method} eps {result.eps:g}, blur sigma {result.sigma:g}, {result.n_fake} fakes: "
        f"fake accuracy clean {_pct(a['clean'])} → blurred {_pct(a['blurred clean'])} → adversarial "
        f"{_pct(a['adversarial'])} → blurred adversarial {_pct(a['blurred adversarial'])}; confusion "
        f"{_pct(c['adversarial'])} → {_pct(c['blurred adversarial'])}. [Petrželková 2024] (eps 0.05, sigma 5): "
        f"{t['accuracy']['clean']:.0f} → {t['accuracy']['blurred clean']:.0f} → {t['accuracy']['adversarial']:.1f} → "
        f"{t['accuracy']['blurred adversarial']:.0f} %, confusion {t['confusion']['adversarial']:.0f} → "
        f"{t['confusion']['blurred adversarial']:.0f} %.",
        ("As in [Petrželková 2024], blurring undoes much of the attack" if helped else
         "Unlike [Petrželková 2024], blurring does not undo the attack here")
        + (f", but costs {100 * cost:.0f} points on clean fakes — the demo's trace is high-frequency, and blur "
           "removes it with the residual" if cost > 0.1 else "")
        + (f". Caution: blurred, only {_pct(real['blurred clean'])} of the real images stay real (clean: "
           f"{_pct(real['clean'])}) — this detector takes missing detail for a generator's trace, so blur makes "
           "real photos look synthetic and the 'defence' partly works by calling everything fake"
           if real.get("blurred clean") is not None and real["clean"] is not None
           and real["blurred clean"] < real["clean"] - 0.2 else "") + ".",
    ]
