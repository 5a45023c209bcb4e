"""What a user can pick, by name: detectors (shipped + every run's checkpoint) and data sets.

One catalogue below the UI and the CLI, so a tab, an API endpoint and a command resolve the
same name to the same file: ``cnn-resnet18``, ``shipped: cnn-resnet18``, a run id or a run's
screen label work everywhere. A file path is a name only inside ``paths_allowed()``, which the
command line sets around each command: a web client can never make the server open, or say
whether there is, a file of its choosing (every tab and endpoint resolves through here, so
none can forget the rule). ``load_detector`` returns a ``LoadedDetector`` that carries its
decision threshold, kind and weights description, so no caller re-reads checkpoint metadata.
Localizers resolve the same way (``resolve_localizer``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from dataclasses import dataclass, field
from pathlib import Path

from detectlab import config
from detectlab.errors import CheckpointError, DatasetError
from detectlab.models.manifest import (  # noqa: F401
    SHIPPED_PREFIX, read_manifest, shipped_checkpoints, shipped_name, update_manifest,
)
from detectlab.progress import Progress, null_progress

DEMO_LABEL = "demo (real + 3 generators)"
DEMO_INPAINT_LABEL = "demo-inpainted (images + masks)"
UPLOADED_PREFIX = "uploaded: "


# -- detectors ---------------------------------------------------------------------------------
def run_checkpoints() -> dict[str, Path]:
    """Every run with a checkpoint on disk (finished, cancelled or failed with a best model): label -> file."""
    from detectlab.runs.store import RunStore
    from detectlab.train.layout import runs_db

    db = runs_db()
    return RunStore(db).checkpoints() if db.exists() else {}


def detector_choices() -> dict[str, Path]:
    """Screen label -> checkpoint: the shipped defaults first, then every run's checkpoint."""
    out = {f"{SHIPPED_PREFIX}{name}": path for name, path in shipped_checkpoints().items()}
    out.update(run_checkpoints())
    return out


def cli_name(label: str) -> str:
    """The name a command takes for a picker's label: a shipped detector's name, a run's id
    (``RunRecord.label`` starts "run <id> "), or the text itself."""
    if label.startswith(SHIPPED_PREFIX):
        return shipped_name(label)
    if label.startswith("run "):
        return label.split(" ")[1]
    return label


_PATHS: contextvars.ContextVar[bool] = contextvars.ContextVar("detectlab_paths_allowed", default=False)
_PATH_SIGNS = ("/", "\\", "~")
_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".pkl", ".onnx", ".json")


@contextlib.contextmanager
def paths_allowed():
    """Within this block (one CLI command), a name may also be a file path on this machine."""
    token = _PATHS.set(True)
    try:
        yield
    finally:
        _PATHS.reset(token)


def _named_file(text: str, what: str) -> Path | None:
    """``text`` as a file, when paths are allowed; elsewhere a path-like name is refused in words,
    without looking at the file system (whether a file exists is not for a web client to learn)."""
    if not _PATHS.get():
        if any(sign in text for sign in _PATH_SIGNS) or text.lower().endswith(_FILE_SUFFIXES):
            raise CheckpointError(f"the app takes a {what}'s name (a shipped name, a run id or a picker's label), "
                                  "not a file path on the server; files are for the command line")
        return None
    path = Path(text).expanduser()
    return path if path.is_file() else None


def resolve_detector(name: str | Path) -> Path:
    """A checkpoint file from any name a user may type or pick.

    Accepted: a shipped name (``cnn-resnet18``), its screen label (``shipped: cnn-resnet18``),
    a run id (``20261127-031500-ab12cd``) or a run's screen label; a checkpoint path only inside
    ``paths_allowed()`` (the command line).
    """
    text = str(name).strip()
    if not text:
        raise CheckpointError("no detector given")
    shipped = shipped_checkpoints()
    text = shipped_name(text)
    if text in shipped:
        return shipped[text]
    runs = run_checkpoints()
    if text in runs:
        return runs[text]
    by_id = [p for label, p in runs.items() if cli_name(label) == text]
    if len(by_id) == 1:
        return by_id[0]
    path = _named_file(text, "detector")
    if path is not None:
        return path
    hint = "; or give a checkpoint file" if _PATHS.get() else ""
    raise CheckpointError(f"'{text}': no such detector. Shipped: {', '.join(shipped) or 'none'}; "
                          f"runs with a checkpoint: {len(runs)} (see `detectlab runs list`){hint}")


def pick_detector(name: str | None) -> str:
    """The detector a request names, or the catalogue's first (a shipped default) when it names none."""
    text = (name or "").strip()
    if text:
        return text
    choices = detector_choices()
    if not choices:
        raise CheckpointError("no detector available: build the defaults (detectlab checkpoints build) or train one")
    return next(iter(choices))


@dataclass
class LoadedDetector:
    """A detector ready to score, with what its checkpoint says about it."""

    name: str            # what the user picked (shipped name, run label or file)
    path: Path
    detector: object     # detectlab.models.Detector, in eval mode
    meta: dict = field(repr=False, default_factory=dict)

    @property
    def threshold(self) -> float:
        """The decision threshold on P(fake) stored with the checkpoint (0.5 when none was stored)."""
        return float(self.meta.get("threshold", 0.5))

    @property
    def kind(self) -> str:
        """``cnn`` | ``frozen`` | ``ensemble`` | ``spectrum``."""
        return self.meta["detector"]["kind"]

    @property
    def arch(self) -> str:
        return self.meta["detector"]["arch"]

    @property
    def input_size(self) -> int:
        return int(self.meta["detector"]["preprocess"]["input_size"])

    @property
    def differentiable(self) -> bool:
        """Whether gradients reach the input (gradient attacks and Grad-CAM apply)."""
        return self.kind != "spectrum"

    @property
    def weights(self) -> str:
        """Where the weights came from, in words."""
        return getattr(getattr(self.detector, "weights_info", None), "source", "") or ""

    @property
    def short_name(self) -> str:
        return shipped_name(self.name)

    @property
    def heldout(self) -> HeldoutRecord | None:
        """False-positive rates on held-out real photos, for a shipped checkpoint that was measured."""
        return heldout_record(self.path)

    def heldout_fields(self, scoring: str) -> dict:
        """The held-out evidence every verdict carries (the Gradio ``/detect``'s and the REST route's fields):
        the false-positive rate on unseen photos for ``scoring``, the targets it misses, the unseen designs."""
        record = self.heldout
        return {"heldout_fp": None if record is None else record.photo_rate(scoring),
                "heldout_warning": "" if record is None else "; ".join(record.misses(scoring)),
                "heldout_designs_caught": None if record is None else record.designs_caught,
                "heldout_designs": {} if record is None else dict(record.designs)}

    @property
    def trust(self):
        """Calibration and out-of-distribution statistics fitted for exactly this checkpoint
        (``detectlab calibrate``), or None; read once per file version."""
        from detectlab.detect.trust import trust_path

        stats = trust_path(self.path)  # a calibration written later (the Train tab's button) is read anew
        return _load_trust(str(self.path.resolve()), self.path.stat().st_mtime,
                           stats.stat().st_mtime_ns if stats.exists() else 0)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float, device: str = "cpu") -> tuple:
    from detectlab.models.checkpoint import load_checkpoint

    detector, meta = load_checkpoint(path)
    return detector.to(device), meta


@functools.lru_cache(maxsize=8)
def _load_trust(path: str, mtime: float, trust_mtime: int = 0):
    from detectlab.detect.trust import load_trust

    return load_trust(path)


def load_detector(name: str | Path) -> LoadedDetector:
    """Resolve ``name`` (see ``resolve_detector``) and load it; cached per file and modification time.

    The cached model is shared between callers: treat it as read-only, and do not attach
    hooks to it without the heatmap module's per-model lock. It sits on ``config.device()``
    (``--device`` / ``DETECTLAB_DEVICE``); it takes and returns tensors on any device.
    """
    path = resolve_detector(name)
    detector, meta = _load_cached(str(path.resolve()), path.stat().st_mtime, str(config.device()))
    return LoadedDetector(str(name), path, detector, meta)


# -- localizers --------------------------------------------------------------------------------
def localizer_choices() -> dict[str, Path]:
    """Screen label -> file: the shipped localizers, then those trained into DetectLab's home."""
    from detectlab.localize.localizer import localizer_choices as choices

    return choices()


def resolve_localizer(name: str | Path) -> Path:
    """A localizer file from a shipped name (``unet-small``), a picker's label (``shipped: unet-small``,
    ``trained: run-…``); a file path only inside ``paths_allowed()`` (the command line)."""
    from detectlab.localize.localizer import shipped_localizers

    text = str(name).strip()
    shipped = shipped_localizers()
    if not text:
        raise CheckpointError("no localizer: build the default (detectlab checkpoints build --only "
                              "localizer-yolov8n-seg) or train one (detectlab localize train)")
    if text in shipped:
        return shipped[text]
    choices = localizer_choices()
    if text in choices:
        return choices[text]
    by_run = [p for label, p in choices.items() if label == f"trained: run-{text}"]  # a localizer run's id
    if by_run:
        return by_run[0]
    path = _named_file(text, "localizer")
    if path is not None:
        return path
    raise CheckpointError(f"{text!r}: no such localizer; known: {', '.join(choices) or 'none'}")


@functools.lru_cache(maxsize=4)
def _load_localizer_cached(path: str, mtime: float, allow_pickle: bool, uploaded: bool):
    from detectlab.localize.localizer import load_localizer

    return load_localizer(path, allow_pickle=allow_pickle, uploaded=uploaded)


def load_localizer_by_name(name: str | Path, *, upload: str | Path | None = None, trust: bool = False):
    """The localizer a user picked (see ``resolve_localizer``), loaded; cached per file and modification time.

    ``upload``: a file the user uploaded instead (the app's upload widget), which takes the name's
    place; an uploaded ``.pt`` (a pickle) loads only with ``trust``. A picked name never loads a
    pickle from outside DetectLab's own folders. The cached model is shared: treat it as read-only.
    """
    if upload:
        path, allow, uploaded = Path(upload), bool(trust), True
    else:
        path, allow, uploaded = resolve_localizer(name), False, False
    return _load_localizer_cached(str(path), path.stat().st_mtime if path.exists() else 0.0, allow, uploaded)


# -- data sets ---------------------------------------------------------------------------------
def known_datasets() -> dict[str, Path]:
    """Data sets a user can pick without typing a path: the demo sets and uploaded ones (read now)."""
    found = {DEMO_LABEL: config.DEMO_DIR, DEMO_INPAINT_LABEL: config.DEMO_INPAINT_DIR}
    for d in sorted(p for p in config.datasets_dir().iterdir() if p.is_dir() and not p.name.startswith(".")):
        found[f"{UPLOADED_PREFIX}{d.name}"] = d
    return found


def resolve_dataset(choice: str, folder: str = "", progress: Progress = null_progress) -> Path:
    """The data set a user picked: a typed folder (confined to the data roots) wins over the
    dropdown choice; the demo is materialized first if it is picked and not yet derived."""
    from detectlab.data.overview import resolve_in_roots

    if folder and folder.strip():
        path = resolve_in_roots(folder, config.data_roots())
    else:
        datasets = known_datasets()
        if choice not in datasets:
            raise DatasetError(f"unknown data set '{choice}' (known: {', '.join(datasets)})")
        path = datasets[choice]
    return materialize_if_demo(path, progress)


def materialize_if_demo(path: str | Path, progress: Progress = null_progress) -> Path:
    """``path``, after deriving the demo's images if it is one of the demo sets and they are not there yet."""
    path = Path(path)
    if path.resolve() in (config.DEMO_DIR.resolve(), config.DEMO_INPAINT_DIR.resolve()):
        from detectlab.demo.build import ensure_demo

        ensure_demo(progress=progress)
    return path


def dataset_generators(path: str | Path) -> list[str]:
    """The generators (fake classes) of a data set folder, as the data set names them; [] for images/masks sets."""
    from detectlab.data import DetectionDataset, discover

    ds = discover(path, validate=False)
    return list(ds.generators) if isinstance(ds, DetectionDataset) else []


def demo_generators() -> list[str]:
    """The demo's generators when it is materialized (cheap: pickers fill in at build), else []."""
    from detectlab.demo.build import is_materialized

    return dataset_generators(config.DEMO_DIR) if is_materialized() else []


def default_generators(data: str | Path | None, generators: list[str]) -> list[str]:
    """The generators a training form ticks first: for the demo, its *train* group (``generators.designs``), so a
    run is comparable with the shipped detectors and the held-out designs stay unseen; for any other set, all."""
    if data is None or Path(data).resolve() != config.DEMO_DIR.resolve():
        return list(generators)
    from detectlab.generators.designs import TRAIN, designs_in

    train = set(designs_in(TRAIN))
    return [g for g in generators if g in train] or list(generators)


# -- what the shipped detectors measured -------------------------------------------------------
#: Columns of ``shipped_table``: in-distribution numbers, then false-positive rates on real photos.
SHIPPED_TABLE_HEADERS = ["name", "arch", "test acc", "balanced acc", "AP", "caught of unseen designs", "FP demo reals",
                         "FP held-out photos (full, resized)", "FP held-out photos (full, tiled)", "FP held-out crops",
                         "FP demo reals after blur σ 1", "FP demo reals after 2× down-up", "backbone weights"]
_TABLE_FP_KEYS = ("demo_test_reals", "full_resized", "full_tiled", "crops", "demo_blur_sigma1", "demo_downup_2x")

#: What a verdict has to meet on real photos to be trusted: at most this share of held-out photos
#: (full size and as crops) called fake ...
HELDOUT_FP_TARGET = 0.10
#: ... and at most this share of the demo's test reals after a sigma 1 blur or a 2x down-and-up ...
DEGRADED_FP_TARGET = 0.15
#: ... while catching at least this share of the fakes of every generator design it never saw (the demo's
#: held-out group, ``generators.designs``).
HELDOUT_DESIGN_TARGET = 0.90


@dataclass(frozen=True)
class HeldoutRecord:
    """A shipped detector's false-positive rates on real photos it never saw (``detectlab heldout eval``)."""

    name: str
    rates: dict            # manifest keys (full_resized, full_tiled, crops, demo_blur_sigma1, ...) -> rate
    photos: int
    packages: int
    designs: dict = field(default_factory=dict)  # held-out generator design -> share of its test fakes called fake
    designs_uncertain: dict = field(default_factory=dict)  # ... -> share called real but flagged unlike training

    @property
    def designs_caught(self) -> float | None:
        """The share of held-out-design fakes called fake, over all held-out designs (None: not measured)."""
        return None if not self.designs else sum(self.designs.values()) / len(self.designs)

    def designs_line(self) -> str:
        """``on generator designs it never saw: 54 % caught (latent-bilinear 91 %, denoiser-pixel-shuffle 17 %)``."""
        if not self.designs:
            return "on generator designs it never saw: not measured (`detectlab heldout eval`)"
        each = ", ".join(f"{k} {100 * v:.0f} %" for k, v in self.designs.items())
        line = f"on generator designs it never saw: {100 * self.designs_caught:.0f} % caught ({each})"
        if self.designs_uncertain:
            flagged = sum(self.designs_uncertain.values()) / len(self.designs_uncertain)
            line += f"; {100 * flagged:.0f} % more were flagged unlike the training data, so reported uncertain"
        return line

    def photo_rate(self, scoring: str) -> float | None:
        """The held-out full-size rate of the scoring path that ran (``resize`` or ``tiles``)."""
        return self.rates.get("full_tiled" if scoring == "tiles" else "full_resized")

    def evidence_line(self, scoring: str) -> str:
        """The two held-out numbers a verdict is shown beside: ``on generator designs it never saw: 54 % caught ·
        on real photos it never saw: 5 % called fake``."""
        rate = self.photo_rate(scoring)
        photos = "not measured" if rate is None else f"{100 * rate:.0f} % called fake"
        return f"{self.designs_line().split(' (')[0]} · on real photos it never saw: {photos}"

    def misses(self, scoring: str) -> list[str]:
        """The trust targets this detector misses, in words (empty: it meets them all)."""
        out = []
        for what, rate, target in (("held-out photos", self.photo_rate(scoring), HELDOUT_FP_TARGET),
                                   ("held-out crops", self.rates.get("crops"), HELDOUT_FP_TARGET),
                                   ("blurred demo reals", self.rates.get("demo_blur_sigma1"), DEGRADED_FP_TARGET),
                                   ("down-and-up demo reals", self.rates.get("demo_downup_2x"), DEGRADED_FP_TARGET)):
            if rate is not None and rate > target:
                out.append(f"{what} {100 * rate:.0f} % (target ≤ {100 * target:.0f} %)")
        for design, rate in self.designs.items():
            if rate < HELDOUT_DESIGN_TARGET:
                out.append(f"unseen design {design} {100 * rate:.0f} % caught (target ≥ {100 * HELDOUT_DESIGN_TARGET:.0f} %)")
        return out

    def describe(self, scoring: str) -> str:
        """What the held-out measurement says, as what it is: a false-positive rate over other photos,
        measured once for the detector, not a check of the image on screen."""
        def pct(v):
            return "n/a" if v is None else f"{100 * v:.0f} %"

        mode = "tiled" if scoring == "tiles" else "resized"
        text = (f"on {self.photos} held-out real photos (from {self.packages} packages it never saw) this detector "
                f"called {pct(self.photo_rate(scoring))} fake ({mode}, as now) and {pct(self.rates.get('crops'))} of "
                f"their 128 px crops — a rate over other photos, not a check of this one")
        missed = self.misses(scoring)
        targets = (f"targets ≤ {100 * HELDOUT_FP_TARGET:.0f} % on photos, ≤ {100 * DEGRADED_FP_TARGET:.0f} % on "
                   f"blurred or down-up demo reals, ≥ {100 * HELDOUT_DESIGN_TARGET:.0f} % caught of each unseen design")
        if missed:
            on_designs = [m for m in missed if m.startswith("unseen design")]
            on_photos = [m for m in missed if m not in on_designs]
            where = " and ".join(w for w, m in (("on real photos", on_photos), ("on designs it never saw", on_designs))
                                 if m)
            advice = "; ".join(a for a, m in (("read a FAKE verdict from it as a hint, not a finding", on_photos),
                                               ("a REAL verdict from it may be a fake from a design it never saw",
                                                on_designs)) if m)
            return (f"⚠ **Weak evidence {where}:** {text}; {self.designs_line()}. It misses the trust targets "
                    f"({targets}) on {'; '.join(missed)}: {advice}.")
        return f"Held-out rates: {text}; {self.designs_line()} ({targets})."


def heldout_record(path: str | Path) -> HeldoutRecord | None:
    """The held-out measurement of the shipped checkpoint at ``path`` (None for runs and unmeasured files)."""
    path = Path(path)
    if path.resolve().parent != config.CHECKPOINT_DIR.resolve():
        return None
    h = read_manifest().get("heldout", {}).get(path.stem)
    if not h:
        return None
    counts = h.get("counts") or {}
    return HeldoutRecord(path.stem, {k: h.get(k) for k in (*_TABLE_FP_KEYS, "ood_share")},
                         int(counts.get("heldout_photos") or 0), len(h.get("full_tiled_by_package") or {}),
                         dict(h.get("designs") or {}), dict(h.get("designs_uncertain") or {}))


def shipped_table() -> list[list]:
    """Rows (``SHIPPED_TABLE_HEADERS``) of the shipped detectors: demo test metrics (the train group's designs), the
    share of the held-out designs' fakes caught (the mean over designs), beside the share of real photos called fake — the demo's test reals, real photos from packages the demo never used
    (``detectlab heldout eval``; None where not measured) and the demo reals after a mild blur."""
    manifest = read_manifest()
    heldout = manifest.get("heldout", {})
    rows = []
    for name, e in manifest["checkpoints"].items():
        t = e.get("test") or {}
        if "accuracy" not in t:
            continue
        h = heldout.get(name) or {}
        designs = h.get("designs") or {}
        caught = round(sum(designs.values()) / len(designs), 3) if designs else None
        rows.append([name, e["arch"], round(t["accuracy"], 4), round(t["balanced_accuracy"], 4), round(t["ap"], 4),
                     caught, *(None if h.get(k) is None else round(h[k], 3) for k in _TABLE_FP_KEYS),
                     e.get("backbone_weights", "")])
    return rows


def findings() -> list[str]:
    """What the shipped detectors' measured test metrics say against the papers' claims.

    Computed from the manifest each time, so a rebuilt checkpoint changes the statement with
    its numbers; nothing here is tuned to agree with a paper.
    """
    ck = read_manifest()["checkpoints"]
    acc = {k: v["test"]["accuracy"] for k, v in ck.items() if "accuracy" in (v.get("test") or {})}
    out = []
    if "spectrum-durrall" in acc and "cnn-resnet18" in acc:
        s, c = acc["spectrum-durrall"], acc["cnn-resnet18"]
        verdict = ("contradicts [Petrželková 2024] Table 4.3, where the spectrum baseline (87.7 %) falls well below the "
                   "CNN: the demo generators' main trace is then spectral, which a 1-D radial spectrum "
                   "captures") if s >= c else \
            "agrees with [Petrželková 2024] Table 4.3: the spectrum baseline falls below the CNN"
        out.append(f"Durrall spectrum baseline {100 * s:.1f} % vs ResNet-18 CNN {100 * c:.1f} % test accuracy on "
                   f"the demo — this {verdict}.")
    ens = "ensemble-mobilenet_v2+efficientnet_lite0"
    if ens in acc and "univfd-mobilenet_v2" in acc:
        e, m = acc[ens], acc["univfd-mobilenet_v2"]
        out.append(f"Two-backbone ensemble {100 * e:.1f} % vs MobileNetV2 linear probe alone {100 * m:.1f} % — "
                   + ("as [DFwF] §4.3 reports, concatenating backbones helps." if e > m else
                      "unlike [DFwF] §4.3, concatenating backbones does not help here."))
    return out
