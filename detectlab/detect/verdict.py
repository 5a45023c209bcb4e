"""One verdict per image, the same at every entry point (Detect tab, ``/detect``, ``detectlab predict``).

A detector can score a photo two ways: shrunk to its input (``resize``: the whole picture, but the
high-frequency trace is averaged away) or tile by tile at the photo's own resolution (``tiles``,
``detect.tiling``). On a photo several times the input size the two look at different pixels and
can disagree — one says FAKE, the other REAL. Neither is then a finding, so the verdict is
``uncertain`` with the reason, never the one path's label. Likewise when the image's features lie
outside the training data's range (``detect.trust``): the detector was never validated on such
images, so its label is not reported as a verdict either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectlab.data.decode import load_fitted
from detectlab.detect.analyze import Analysis, analyze
from detectlab.detect.report import TiledView, tiled_view
from detectlab.models import Detector

__all__ = ["LABELS", "TWO_WAY_FACTOR", "Judgement", "Verdict", "decide", "judge_file",
           "scores_both_ways"]

#: What a verdict can say.
LABELS = ("fake", "real", "uncertain")

#: An image whose shorter side is at least this many times the detector's input is scored both ways:
#: below it the resize path barely changes the scale, and the two paths see nearly the same pixels.
TWO_WAY_FACTOR = 1.5


def scores_both_ways(height: int, width: int, input_size: int) -> bool:
    """Whether an image of ``height`` × ``width`` is scored by resize and by tiles (see ``TWO_WAY_FACTOR``)."""
    return min(height, width) >= TWO_WAY_FACTOR * input_size


def _path_name(scoring: str) -> str:
    return "tiles" if scoring == "tiles" else "resize"


@dataclass(frozen=True)
class Verdict:
    """The verdict on one image and why.

    ``label`` is ``fake`` or ``real`` only when every scoring path that ran agrees at the threshold
    and the image is within the training data's range; otherwise ``uncertain``, with ``reasons``.
    """

    label: str                          # one of LABELS
    p_fake: float                       # P(fake) of the scoring path asked for
    threshold: float
    scoring: str                        # "resize" or "tiles": the path asked for
    p_fake_resize: float | None = None  # None: that path did not run
    p_fake_tiles: float | None = None
    unlike_training: bool | None = None  # None: the checkpoint has no trust statistics
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def decision(self) -> str:
        """The asked-for path's own decision at the threshold (``fake`` or ``real``), whatever the verdict."""
        return "fake" if self.p_fake > self.threshold else "real"

    @property
    def paths_disagree(self) -> bool:
        r, t = self.p_fake_resize, self.p_fake_tiles
        return r is not None and t is not None and (r > self.threshold) != (t > self.threshold)

    @property
    def both_ways(self) -> bool:
        return self.p_fake_resize is not None and self.p_fake_tiles is not None

    def headline(self) -> str:
        """E.g. ``P(fake) = 0.988 (resize) · 0.034 (tiles) → UNCERTAIN``."""
        if self.both_ways:
            paths = [("resize", self.p_fake_resize), ("tiles", self.p_fake_tiles)]
            if self.scoring == "tiles":
                paths.reverse()  # the path asked for first
            scores = "P(fake) = " + " · ".join(f"{v:.3f} ({n})" for n, v in paths)
        else:
            scores = f"P(fake) = {self.p_fake:.3f}"
        return f"{scores} → {self.label.upper()}"

    def to_dict(self) -> dict:
        """The fields every entry point reports (``/detect``'s JSON, the predictions CSV)."""
        return {"verdict": self.label, "verdict_reasons": list(self.reasons), "p_fake_resize": self.p_fake_resize,
                "p_fake_tiles": self.p_fake_tiles}


def decide(p_fake_resize: float | None, p_fake_tiles: float | None, threshold: float, *, scoring: str = "resize",
           assessment=None) -> Verdict:
    """The verdict from the scores of the paths that ran and the trust assessment (``detect.trust.Assessment``
    of the resized image, or None when the checkpoint has none).

    FAKE or REAL when the paths agree at ``threshold`` and the image is like the training data;
    UNCERTAIN, with one reason per cause, when they disagree or it is not.
    """
    scoring = _path_name(scoring)
    if p_fake_resize is None and p_fake_tiles is None:
        raise ValueError("a verdict needs the score of at least one scoring path")
    p = p_fake_tiles if scoring == "tiles" and p_fake_tiles is not None else p_fake_resize
    if p is None:
        p = p_fake_tiles
    reasons = []
    if p_fake_resize is not None and p_fake_tiles is not None and \
            (p_fake_resize > threshold) != (p_fake_tiles > threshold):
        def says(v):
            return "FAKE" if v > threshold else "REAL"

        reasons.append(f"resize says {says(p_fake_resize)} {p_fake_resize:.3f}, tiles say {says(p_fake_tiles)} "
                       f"{p_fake_tiles:.3f}: the two scoring paths disagree")
    unlike = None if assessment is None else bool(assessment.unlike_training)
    if unlike:
        reasons.append(f"the image is unlike the training data (feature distance {assessment.ood_distance:.1f} > "
                       f"{assessment.ood_threshold:.1f}, the validation 99th percentile): the detector was not "
                       "validated on images like it")
    label = "uncertain" if reasons else ("fake" if p > threshold else "real")
    return Verdict(label, float(p), float(threshold), scoring,
                   None if p_fake_resize is None else float(p_fake_resize),
                   None if p_fake_tiles is None else float(p_fake_tiles), unlike, tuple(reasons))


@dataclass
class Judgement:
    """One image scored: the verdict, the resize path's analysis (heatmaps, trust assessment) and, when the
    tiles path ran, its view (score, preview, tile map)."""

    verdict: Verdict
    analysis: Analysis
    tiled: TiledView | None
    image_size: tuple[int, int]         # (height, width) in the file, EXIF orientation applied


def judge_file(detector: Detector, source, threshold: float = 0.5, *, scoring: str = "resize", trust=None,
               method: str = "gradcam", name: str | None = None, heatmap: bool = True) -> Judgement:
    """Score one file the way ``scoring`` asks, and the other way too when the two can disagree.

    The resize path always runs (it carries the calibrated P(fake) and the out-of-distribution check,
    and the heatmap when ``scoring`` is resize); the tiles path runs when asked for, or when the image
    is ``TWO_WAY_FACTOR`` times the input size or more. Decoded as ``analyze_file`` decodes, so the
    numbers equal ``predict_files``'.
    """
    scoring = _path_name(scoring)
    x, (w, h) = load_fitted(source, detector.preprocess.input_size, name=name)
    a = analyze(detector, x, threshold, method, with_heatmap=heatmap and scoring == "resize", trust=trust)
    view = None
    if scoring == "tiles" or scores_both_ways(h, w, detector.preprocess.input_size):
        view = tiled_view(detector, source, threshold, name=name)
    # an image too small for tiles is scored whole by the tiles path too: one score, not two
    p_tiles = view.score.p_fake if view is not None and view.score.mode == "tiles" else None
    verdict = decide(a.p_fake, p_tiles, threshold, scoring=scoring, assessment=a.assessment)
    return Judgement(verdict, a, view, (h, w))

