"""Every experiment by name: where its code lives, what it reproduces, and one way to run any of them.

Each experiment module follows one convention: ``defaults_<key>()`` (every setting with its default),
``check_<key>(params)`` (a fast one-line refusal of data or settings it cannot use, before anything is
queued) and ``run_<key>(params, progress, cancel, cache)`` returning an ``ExperimentResult``.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable

from detectlab.errors import DetectLabError
from detectlab.experiments.core import ExperimentResult, ProbeCache
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress


@dataclass(frozen=True)
class Experiment:
    """One experiment: its name, module and function key, title and the paper's table or figure."""

    name: str
    module: str
    key: str
    title: str
    reproduces: str

    def _fn(self, prefix: str) -> Callable:
        return getattr(importlib.import_module(f"detectlab.experiments.{self.module}"), f"{prefix}_{self.key}")

    def defaults(self) -> dict:
        return dict(self._fn("defaults")())

    def params(self, given: dict | None = None) -> dict:
        """The defaults with ``given`` on top; an unknown setting is refused by name."""
        return over_defaults(self.name, self.defaults(), given)

    def check(self, params: dict) -> None:
        self._fn("check")(params)

    def run(self, params: dict, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
            cache: ProbeCache | None = None) -> ExperimentResult:
        return self._fn("run")(params, progress=progress, cancel=cancel, cache=cache)


class ExperimentError(DetectLabError, ValueError):
    """An experiment that cannot run as asked: the message names what is missing."""


def over_defaults(name: str, defaults: dict, given: dict | None) -> dict:
    """``given`` over experiment ``name``'s ``defaults``; a setting it does not take is refused in one line."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ExperimentError(f"{name}: unknown setting {', '.join(unknown)}; it takes {', '.join(sorted(defaults))}")
    return {**defaults, **given}


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("cross-generator", "generalization", "cross_generator", "Cross-generator matrix",
               "[Petrželková 2024] Table 4.1"),
    Experiment("leave-one-out", "generalization", "leave_one_out", "Leave one generator out",
               "[Petrželková 2024] Table 4.2"),
    Experiment("few-shot", "generalization", "few_shot", "Few-shot curves", "[Petrželková 2024] Fig. 4.2"),
    Experiment("trace-risk", "trace_risk", "trace_risk", "Trace-risk compositions", "[Wimmer 2024] Tables 2, 3"),
    Experiment("embeddings", "embeddings", "embeddings", "Embeddings (t-SNE) and separability", "[DFwF]"),
    Experiment("set-distance", "distance", "set_distance", "Set distance (FID, KID on backbone features)",
               "FID (Heusel 2017), KID (Bińkowski 2018)"),
    Experiment("calibration", "calibration", "calibration", "Calibration and format audit",
               "UnivFD's oracle threshold; reliability and ECE"),
)}


def experiment(name: str) -> Experiment:
    """The experiment called ``name``; an unknown name is refused with the list of known ones."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"no experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def run_experiment(name: str, given: dict | None = None, progress: Progress = null_progress,
                   cancel: CancelToken = NEVER_CANCEL, cache: ProbeCache | None = None) -> ExperimentResult:
    """Fill in the defaults, check, run and time one experiment; probes are reused through ``cache``
    (a fresh on-disk cache by default)."""
    exp = experiment(name)
    params = exp.params(given)
    exp.check(params)
    cache = cache if cache is not None else ProbeCache()
    start = time.perf_counter()
    result = exp.run(params, progress=progress, cancel=cancel, cache=cache)
    result.timings.setdefault("total", round(time.perf_counter() - start, 3))
    result.models = result.models or {"fitted": cache.fits, "reused": cache.hits}
    return result
