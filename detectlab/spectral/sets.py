"""Fingerprints and fingerprint removal over image folders (what the tab and the CLI call).

``compare_sets`` and ``export_comparison``: what the Fingerprints view shows and its ``.npz``;
``removal_preview``: fingerprint removal on a sample; ``clean_set`` / ``save_clean_set``: a
cleaned copy of a set written as a new data set. The figures are in ``detectlab.spectral.plots``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detectlab.data import DetectionDataset, PathList, discover, load_tensor
from detectlab.data.overview import check_import_quota, new_dataset_dir
from detectlab.errors import DatasetError, DetectLabError
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress
from detectlab.spectral.fingerprint import (
    Fingerprint,
    RunningMean,
    full_centred,
    half_log_amplitude,
    log_spectrum,
    radial_profile,
    residual,
)
from detectlab.spectral.removal import REMOVALS


def batches_of(files: list[Path], size: int, batch: int = 64, progress: Progress = null_progress, desc: str = "",
               cancel: CancelToken = NEVER_CANCEL, workers: int | None = None) -> Iterator[torch.Tensor]:
    """Decode files to ``[B, 3, size, size]`` batches, in order; unreadable files are skipped.

    A DataLoader's worker processes decode (``data.torchdata.fitted_batches``; ``workers`` as its) while the
    caller computes spectra of the previous batch; memory holds a few batches whatever the number of files.
    """
    from detectlab.data.torchdata import fitted_batches

    done = 0
    for b in fitted_batches(files, size, batch, workers):
        cancel.check()
        done += len(b.positions)
        progress(done, len(files), desc)
        if b.images is not None:
            yield b.images


@dataclass
class SetSpectra:
    """Per-set mean log-spectrum (grayscale), radial profile and count."""

    name: str
    mean: np.ndarray
    profile: np.ndarray
    n: int


#: Images whose spectra are computed at once: the temporaries (grey, complex, amplitude, log, float64) of a
#: whole 64-image batch made the process's memory swing by ~70 MB from batch to batch, and a 10x longer
#: stream met a 10x rarer high point; 16 at a time keeps the swing small at no cost in speed.
SPECTRUM_CHUNK = 16


def set_spectrum(name: str, files: list[Path], size: int = 128, limit: int | None = None, use_residual: bool = False,
                 grayscale: bool = True, progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> SetSpectra:
    """Streamed mean log-spectrum of up to ``limit`` files: memory stays flat as n grows."""
    files = files[:limit] if limit else files
    acc, width = RunningMean(), 0
    for x in batches_of(files, size, progress=progress, desc=f"spectrum of {name}", cancel=cancel):
        for part in x.split(SPECTRUM_CHUNK):   # a quarter of a batch's temporaries at a time
            acc.update(half_log_amplitude(residual(part) if use_residual else part, grayscale=grayscale))
        width = x.shape[-1]
    if acc.count == 0:
        raise DatasetError(f"{name}: no readable images")
    mean = full_centred(torch.from_numpy(acc.mean), width)
    # the radial profile is linear, so the profile of the mean is the mean of the profiles
    profile = radial_profile(mean if grayscale else mean.mean(0))
    return SetSpectra(name, mean.numpy(), profile.numpy(), acc.count)


def files_by_class(root: str | Path) -> dict[str, PathList]:
    """'real' and each generator of a detection data set -> its files (path strings read as ``Path``s)."""
    ds = discover(root, validate=False)
    if not isinstance(ds, DetectionDataset):
        raise DatasetError(f"{root}: fingerprints need a real/fake data set, not {ds.layout}")
    out: dict[str, list[str]] = {}
    for s in ds.samples:
        out.setdefault(s.generator, []).append(s.file)
    return {name: PathList(files) for name, files in out.items()}


def fingerprints(real: SetSpectra, synthetic: list[SetSpectra]) -> dict[str, Fingerprint]:
    """FP(R, S) for each synthetic set ([Wimmer 2024], eq. 1) from precomputed mean spectra."""
    return {s.name: Fingerprint(s.mean - real.mean, real.n, s.n) for s in synthetic}


def clean_set(real_files: list[Path], synth_files: list[Path], method: str, out_root: Path, name: str,
              strength: float = 1.0, threshold: float = 3.0, size: int = 128, limit: int | None = None,
              progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> Path:
    """Write a new data set ``out_root``: ``real/`` (the real files) and ``<name>-<method>/`` cleaned.

    The per-channel fingerprint is measured on up to ``limit`` images of each set, then every
    synthetic image is cleaned with it ([Wimmer 2024] §5, Table 3) and saved losslessly (PNG).
    """
    if method not in REMOVALS:
        raise ValueError(f"unknown removal {method!r}; choose one of {sorted(REMOVALS)}")
    if out_root.exists():
        raise DatasetError(f"{out_root} exists already; choose a new name")
    r = set_spectrum("real", real_files, size, limit, grayscale=False, progress=progress, cancel=cancel)
    s = set_spectrum(name, synth_files, size, limit, grayscale=False, progress=progress, cancel=cancel)
    fp = s.mean - r.mean
    tmp = out_root.with_name(out_root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "real").mkdir(parents=True)
    target = tmp / f"{name}-{method}"
    target.mkdir()
    for i, f in enumerate(real_files):
        dest = tmp / "real" / f.name
        try:
            os.link(f, dest)
        except OSError:
            shutil.copy2(f, dest)
        progress(i + 1, len(real_files), "copy real images")
    done = 0
    readable: list[tuple[Path, torch.Tensor]] = []

    def flush() -> None:
        nonlocal done, readable
        if not readable:
            return
        cancel.check()
        cleaned = REMOVALS[method](torch.stack([t for _, t in readable]), fp, strength, threshold)
        for (src, _), img in zip(readable, cleaned):
            arr = (img.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            Image.fromarray(arr).save(target / f"{src.stem}.png")
        done += len(readable)
        readable = []
        progress(done, len(synth_files), f"clean {name} ({method})")

    for f in synth_files:
        try:
            readable.append((f, load_tensor(f, size)))
        except DetectLabError:
            continue
        if len(readable) == 64:
            flush()
    flush()
    tmp.rename(out_root)
    return out_root


def save_clean_set(by_class: dict[str, list[Path]], generator: str, method: str, name: str = "",
                   strength: float = 1.0, threshold: float = 3.0, progress: Progress = null_progress,
                   cancel: CancelToken = NEVER_CANCEL) -> Path:
    """``clean_set`` of ``generator`` (against ``real``) as a new data set among DetectLab's data sets.

    The folder is named ``name`` (default ``<generator>-<method>``, made unique); the copy is
    about as big as its sources, so it is refused before anything is written when it would
    exceed the import quota. Returns the new data set's folder.
    """
    missing = [c for c in ("real", generator) if c not in by_class]
    if missing:
        raise DatasetError(f"fingerprint removal needs the real and the {generator} images; the data set has no "
                           f"{' and no '.join(missing)} class")
    check_import_quota(sum(p.stat().st_size for p in [*by_class["real"], *by_class[generator]]))
    out = new_dataset_dir(name or f"{generator}-{method}")
    return clean_set(by_class["real"], by_class[generator], method, out, generator, strength, threshold,
                     progress=progress, cancel=cancel)


@dataclass
class RemovalPreview:
    method: str
    strength: float
    before: torch.Tensor            # [3, S, S] one synthetic image
    after: torch.Tensor             # the same image cleaned
    psnr_db: float                  # mean PSNR of the change over the previewed images
    fp_before: np.ndarray           # grayscale FP(R, S)
    fp_after: np.ndarray            # grayscale FP(R, cleaned S)
    p_fake_before: float | None     # mean P(fake) of the previewed images
    p_fake_after: float | None
    n: int


def removal_preview(real_files: list[Path], synth_files: list[Path], method: str, strength: float = 1.0,
                    threshold: float = 3.0, detector=None, size: int = 128, limit: int = 256,
                    progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> RemovalPreview:
    """Wimmer 2024 Fig. 6 on a sample: clean up to ``limit`` synthetic images and compare."""
    r = set_spectrum("real", real_files, size, limit, grayscale=False, progress=progress, cancel=cancel)
    s_batches = list(batches_of(synth_files[:limit], size, progress=progress, desc="load synthetic", cancel=cancel))
    synth = torch.cat(s_batches)
    acc = RunningMean()
    for b in s_batches:
        acc.update(log_spectrum(b, grayscale=False))
    fp = acc.mean - r.mean
    cleaned = torch.cat([REMOVALS[method](synth[lo : lo + 64], fp, strength, threshold) for lo in range(0, len(synth), 64)])
    real_gray = r.mean.mean(0)  # channel-mean of per-channel log spectra, as for the grayscale view
    fp_before = fp.mean(0)
    fp_after = log_spectrum(cleaned, grayscale=False).mean(0).mean(0).numpy() - real_gray
    mse = ((cleaned - synth) ** 2).flatten(1).mean(1).clamp(min=1e-12)
    psnr = float((10 * torch.log10(1.0 / mse)).mean())
    p_b = p_a = None
    if detector is not None:
        with torch.no_grad():
            detector.eval()
            k = min(len(synth), 64)
            p_b = float(torch.sigmoid(detector(synth[:k])).mean())
            p_a = float(torch.sigmoid(detector(cleaned[:k])).mean())
    return RemovalPreview(method, strength, synth[0], cleaned[0], psnr, fp_before, fp_after, p_b, p_a, len(synth))


@dataclass
class SetComparison:
    """What the Fingerprints view shows: named 2-D panels, radial profiles, counts."""

    panels: dict[str, np.ndarray]          # title -> [H, W] (FP(R, S), or mean log|F| when ``raw``)
    profiles: dict[str, np.ndarray]        # set name -> radial profile of its mean log spectrum
    counts: dict[str, int]
    raw: bool                              # panels are mean spectra, not differences
    single: tuple[str, np.ndarray] | None = None   # (label, radial profile) of one uploaded image
    single_panel: str | None = None                  # the key of that image's panel (its own colour scale)


def compare_sets(by_class: dict[str, list[Path]], generators: list[str], limit: int | None = None,
                 use_residual: bool = False, raw: bool = False, image: str | Path | None = None, size: int = 128,
                 progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                 name: str = "the data set") -> SetComparison:
    """FP(R, S) for each generator ([Wimmer 2024], eq. 1), or the raw mean spectra, plus radial
    profiles; with ``image``, that image's own spectrum minus the real mean, computed the same
    way (residual or not) so the panels compare like with like. ``name`` (the data set's) is
    for messages."""
    if "real" not in by_class or not [g for g in by_class if g != "real"]:
        raise DatasetError(f"{name}: fingerprints compare a real/ folder with at least one generator folder; "
                           f"this data set has only {', '.join(by_class) or 'no images'}")
    if not generators:
        raise DatasetError("pick at least one synthetic set")
    missing = [g for g in generators if g not in by_class]
    if missing:
        raise DatasetError(f"synthetic sets {missing} are not in the data set")
    real = set_spectrum("real", by_class["real"], size, limit, use_residual, progress=progress, cancel=cancel)
    synth = [set_spectrum(g, by_class[g], size, limit, use_residual, progress=progress, cancel=cancel)
             for g in generators]
    if raw:
        panels = {"real (mean log|F|)": real.mean, **{f"{s.name} (mean log|F|)": s.mean for s in synth}}
    else:
        panels = {f"FP(real, {k})": v.values for k, v in fingerprints(real, synth).items()}
    single = single_panel = None
    if image is not None:
        x = load_tensor(image, size)[None]
        spec = log_spectrum(residual(x) if use_residual else x)[0]
        name = Path(image).name
        single = (f"uploaded: {name}", radial_profile(spec[None])[0].numpy())
        single_panel = f"{name} − mean real"
        panels[single_panel] = spec.numpy() - real.mean
    return SetComparison(panels, {"real": real.profile, **{s.name: s.profile for s in synth}},
                         {"real": real.n, **{s.name: s.n for s in synth}}, raw, single, single_panel)


def export_comparison(cmp: SetComparison, path: str | Path, settings: dict | None = None) -> Path:
    """Everything the Fingerprints view shows, in one ``.npz``: each panel (``panel/<title>``, float32
    [H, W]), each radial profile (``profile/<set>``, and ``profile/<uploaded: name>`` for a single
    image), and ``meta``: a JSON string with the image counts per set, whether the panels are raw
    spectra, and ``settings`` (what was asked: sets, images per set, residual, ...)."""
    import json

    path = Path(path)
    arrays = {f"panel/{k}": v.astype(np.float32) for k, v in cmp.panels.items()}
    arrays.update({f"profile/{k}": np.asarray(v, np.float32) for k, v in cmp.profiles.items()})
    if cmp.single is not None:
        arrays[f"profile/{cmp.single[0]}"] = np.asarray(cmp.single[1], np.float32)
    meta = {"counts": cmp.counts, "raw": cmp.raw, "settings": settings or {},
            "definition": "FP(R, S) = mean log|F(S)| - mean log|F(R)| ([Wimmer 2024], eq. 1), centred spectra"}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
    return path
