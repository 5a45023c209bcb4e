"""Build and materialize the embedded demo data set.

What is committed: the real 128 px crops (``assets/demo/real``, with their provenance in
``real_manifest.json``), the trained generator weights (``assets/generators``) and the
fingerprint images. What is derived, deterministically, from those on first use (minutes on
2 cores; see ``STEP_COST``) and kept out of git: one synthetic image per real crop and generator
design (``assets/demo/<generator>/``, the designs of ``generators.designs``) and the partially
manipulated set with masks (``assets/demo-inpainted/``).

``build_demo`` redoes everything: optionally re-collects the real crops from the unpacked
registry packages, trains the generators, materializes and renders fingerprints.

Derivation is serialized by one lock (``demo_lock``: a ``flock`` on ``assets/.demo.lock`` across
processes, a re-entrant lock across threads) that ``materialize`` itself takes, so every entry
point (``ensure_demo``, ``detectlab demo materialize``, ``demo build``, the app's first start)
is covered: a second caller says that it waits and waits (cancellably), never interleaves.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from detectlab import config
from detectlab.data.decode import load_image
from detectlab.demo.inpaint import area_quartile, blend, ellipse_mask
from detectlab.generators import GeneratorTrainConfig, degrade_condition, load_generator, save_generator, train_generator
from detectlab.generators.designs import DESIGNS, RESIDUAL
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

#: The demo generators, one per design (``generators.designs.DESIGNS``: style x up-sampler x loss, each in the
#: train or the held-out group); folder name = generator name.
GENERATORS = tuple(DESIGNS)
#: The generators whose outputs are pasted into the manipulated set (the localizers' data): the demo's first
#: three, all in the train group, so the localizers' data did not change when the demo grew.
INPAINT_GENERATORS = RESIDUAL
#: Extra downscale factors of the real crops (2x, 4x, 8x; see ``make_real_crops``): reals at
#: several scales, so image scale is no shortcut between the classes.
REAL_EXTRA_SCALES = (0.5, 0.25, 0.125)
_STAMP = ".materialized.json"
_BATCH = 64
#: Relative cost of one image in each step of ``materialize`` (decode a real crop, synthesize one image,
#: write one manipulated image and its mask), measured on 2 cores: about 2, 100 and 11 ms. Progress is
#: reported as one overall count in these units, so the fraction done is also the fraction of the time
#: spent and a rate measured so far extrapolates to the time left.
STEP_COST = {"decode": 0.02, "synthesize": 1.0, "manipulate": 0.1}
#: Synthesis cost of each generator style relative to ``STEP_COST["synthesize"]`` (a denoiser runs its
#: network once per sampling step).
STYLE_COST = {"residual": 1.0, "latent": 1.0, "denoiser": 3.0}


def synthesis_cost(name: str) -> float:
    """Relative cost of one image of generator ``name`` (``STEP_COST`` units)."""
    return STEP_COST["synthesize"] * STYLE_COST[DESIGNS[name].style]


@dataclass
class DemoBuildConfig:
    steps: int = 1800
    width: int = 24
    seed: int = 0


def _png(path: Path, array: np.ndarray, level: int = 1) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=level)


def real_crops(real_dir: Path | None = None, cancel: CancelToken = NEVER_CANCEL,
               on_image: Callable[[int, int], None] | None = None) -> tuple[list[str], torch.Tensor]:
    """The committed real crops, sorted by name: (stems, uint8 tensor ``[N, 3, H, W]``).

    ``on_image(done, n)`` is called every 100 images and at the end (for progress)."""
    real_dir = real_dir or config.DEMO_DIR / "real"
    files = sorted(real_dir.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no real crops in {real_dir}; run `detectlab demo build --sources DIR`")
    arrays = []
    for i, f in enumerate(files):
        if i % 100 == 0:
            cancel.check()
            if on_image is not None and i:
                on_image(i, len(files))
        arrays.append(np.asarray(load_image(f)))
    if on_image is not None:
        on_image(len(files), len(files))
    return [f.stem for f in files], torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _weights_digest(generator_dir: Path) -> str:
    h = hashlib.sha256()
    for name in GENERATORS:
        h.update((generator_dir / f"{name}.safetensors").read_bytes())
    for f in sorted((config.DEMO_DIR / "real").glob("*.png")):
        h.update(f.name.encode())
    return h.hexdigest()


#: Threads of this process take this first; the thread holding it takes the file lock once (re-entrant).
_THREAD_LOCK = threading.RLock()
_held: dict[str, int] = {}   # lock file -> nesting depth in this process (only its owner thread touches it)
_POLL = 0.2


def lock_path(demo_dir: Path | None = None) -> Path:
    """The file whose ``flock`` serializes deriving ``demo_dir`` (default: ``assets/.demo.lock``)."""
    return (demo_dir or config.DEMO_DIR).parent / ".demo.lock"


def _say_waiting(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def demo_lock(demo_dir: Path | None = None, on_wait: Callable[[str], None] | None = None,
              cancel: CancelToken = NEVER_CANCEL):
    """Hold the demo derivation lock (re-entrant in one thread; other threads and processes wait).

    When the lock is busy, ``on_wait`` (default: a line on stderr) is told once who holds it, and
    the wait polls ``cancel`` (``Cancelled`` ends it). The holder's pid is written into the lock
    file for that message.
    """
    on_wait = on_wait or _say_waiting
    path = lock_path(demo_dir)
    told = False
    while not _THREAD_LOCK.acquire(timeout=_POLL):
        if not told:
            on_wait("another thread of this process is deriving the demo images; waiting for it to finish")
            told = True
        cancel.check()
    key = str(path)
    fh = None
    try:
        if not _held.get(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path, "a+")
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        fh.seek(0)
                        holder = fh.read().strip()[:20]
                        who = f"process {holder}" if holder.isdigit() else "another process"
                        on_wait(f"{who} is deriving the demo images ({path.name} is locked); waiting for it to "
                                "finish")
                        told = True
                    cancel.check()
                    time.sleep(_POLL)
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
    finally:
        if fh is not None:
            try:
                fcntl.flock(fh, fcntl.LOCK_UN)
            finally:
                fh.close()
        _THREAD_LOCK.release()


def is_materialized(demo_dir: Path | None = None, generator_dir: Path | None = None) -> bool:
    demo_dir = demo_dir or config.DEMO_DIR
    stamp = demo_dir / _STAMP
    if not stamp.exists():
        return False
    try:
        return json.loads(stamp.read_text()).get("digest") == _weights_digest(generator_dir or config.GENERATOR_DIR)
    except (OSError, ValueError):
        return False


def ensure_demo(progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                on_wait: Callable[[str], None] | None = None) -> Path:
    """Return the demo detection set's root, materializing synthetic images first if needed.

    While another thread or process derives them, this waits for it (``on_wait`` is told so,
    default a line on stderr) and then uses its result.
    """
    if not is_materialized():
        with demo_lock(config.DEMO_DIR, on_wait=on_wait, cancel=cancel):
            if not is_materialized():
                materialize(progress=progress, cancel=cancel)
    return config.DEMO_DIR


def materialize(
    demo_dir: Path | None = None,
    inpaint_dir: Path | None = None,
    generator_dir: Path | None = None,
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
    on_wait: Callable[[str], None] | None = None,
) -> dict:
    """Write one synthetic image per real crop and generator, and the manipulated set.

    Every random draw comes from generators seeded by name and index, and images are
    processed in fixed-size batches in a fixed order, so the output is reproducible.
    Folders are written to a temporary name and renamed, so an interrupted (or cancelled)
    run leaves no half-filled folder behind. The whole derivation holds ``demo_lock``: a
    second caller waits (``on_wait`` is told) and then derives again, never interleaved.
    The stamp is removed first, so while it runs ``is_materialized()`` is false and
    ``ensure_demo`` callers wait for the lock instead of reading half-replaced folders.
    """
    demo_dir = demo_dir or config.DEMO_DIR
    inpaint_dir = inpaint_dir or config.DEMO_INPAINT_DIR
    generator_dir = generator_dir or config.GENERATOR_DIR
    with demo_lock(demo_dir, on_wait=on_wait, cancel=cancel):
        (demo_dir / _STAMP).unlink(missing_ok=True)
        tmps = [demo_dir / f".{name}.tmp" for name in GENERATORS] + [inpaint_dir.parent / f".{inpaint_dir.name}.tmp"]
        try:
            return _materialize(demo_dir, inpaint_dir, generator_dir, progress, cancel)
        finally:
            for tmp in tmps:  # renamed into place on success; a failed or cancelled run leaves none
                shutil.rmtree(tmp, ignore_errors=True)


def _materialize(demo_dir: Path, inpaint_dir: Path, generator_dir: Path, progress: Progress,
                 cancel: CancelToken) -> dict:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.perf_counter()
    n_files = len(list((demo_dir / "real").glob("*.png")))
    # one overall count over every step and generator (units: STEP_COST), never restarting per step
    synth = [synthesis_cost(name) for name in GENERATORS]
    total = n_files * (STEP_COST["decode"] + sum(synth) + STEP_COST["manipulate"])

    def report(done: float, desc: str) -> None:
        progress(min(done, total), total, desc)

    stems, real = real_crops(demo_dir / "real", cancel,
                             on_image=lambda i, _: report(i * STEP_COST["decode"], "decode the real crops"))
    n = len(stems)
    base = n * STEP_COST["decode"]
    fakes: dict[str, np.ndarray] = {}
    for gi, name in enumerate(GENERATORS):
        model, meta = load_generator(generator_dir / f"{name}.safetensors")
        sigma = tuple(meta["config"]["condition_sigma"])
        rng = torch.Generator().manual_seed(1000 + gi)
        tmp = demo_dir / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        outs = []
        with torch.inference_mode():
            for lo in range(0, n, _BATCH):
                cancel.check()
                x = real[lo : lo + _BATCH].float() / 255.0
                y = model.generate(degrade_condition(x, rng, sigma), rng)  # a denoiser's noise from rng too
                arr = (y * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                outs.append(arr)
                for k, a in enumerate(arr):
                    _png(tmp / f"{stems[lo + k]}.png", a)
                report(base + n * sum(synth[:gi]) + min(lo + _BATCH, n) * synth[gi],
                       f"synthesize {name} (generator {gi + 1} of {len(GENERATORS)})")
        fakes[name] = np.concatenate(outs)
        final = demo_dir / name
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)

    # Manipulated set: each real crop gets one generator's output of itself pasted under an
    # ellipse; the INPAINT_GENERATORS rotate so each contributes a third.
    tmp = inpaint_dir.parent / f".{inpaint_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    (tmp / "masks").mkdir(parents=True)
    real_np = real.permute(0, 2, 3, 1).numpy()
    records = {}
    for i, stem in enumerate(stems):
        if i % 50 == 0:
            cancel.check()
        rng = np.random.default_rng([7, i])
        name = INPAINT_GENERATORS[i % len(INPAINT_GENERATORS)]
        mask = ellipse_mask(*real_np[i].shape[:2], rng)
        _png(tmp / "images" / f"{stem}.png", blend(real_np[i], fakes[name][i], mask))
        _png(tmp / "masks" / f"{stem}.png", (mask * 255).astype(np.uint8))
        frac = float(mask.mean())
        records[stem] = {"generator": name, "area": round(frac, 5), "quartile": area_quartile(frac)}
        if (i + 1) % 16 == 0 or i + 1 == n:
            report(base + n * sum(synth) + (i + 1) * STEP_COST["manipulate"],
                   "manipulated images and their masks")
    groups = _groups(stems)
    (tmp / "manifest.json").write_text(json.dumps({"groups": groups, "images": records}, indent=1))
    shutil.rmtree(inpaint_dir, ignore_errors=True)
    tmp.rename(inpaint_dir)

    summary = {
        "digest": _weights_digest(generator_dir),
        "real": n,
        "synthetic_per_generator": n,
        "manipulated": n,
        "seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    (demo_dir / _STAMP).write_text(json.dumps(summary, indent=1))
    return summary


def _groups(stems: list[str]) -> dict[str, str]:
    """Crops are named ``p<photo>_c<k>``: every crop of one photo shares a split group."""
    return {s: s.split("_c")[0] for s in stems}


def write_manifest(demo_dir: Path | None = None, generator_dir: Path | None = None, build: dict | None = None) -> dict:
    """The demo set's manifest: split groups (by source photo), generators, provenance."""
    demo_dir = demo_dir or config.DEMO_DIR
    generator_dir = generator_dir or config.GENERATOR_DIR
    stems = sorted(p.stem for p in (demo_dir / "real").glob("*.png"))
    provenance = json.loads((demo_dir / "real_manifest.json").read_text()) if (demo_dir / "real_manifest.json").exists() else {}
    licences: dict[str, dict] = {}
    for photo in provenance.get("photos", []):
        entry = licences.setdefault(photo["package"], {"registry": photo.get("registry"), "licence": photo.get("licence"), "photos": 0})
        entry["photos"] += 1
    generators = {}
    for name in GENERATORS:
        path = generator_dir / f"{name}.safetensors"
        if path.exists():
            _, meta = load_generator(path)
            generators[name] = meta
    manifest = {
        "description": "DetectLab embedded demo: real photo crops and DetectLab's own generators' outputs.",
        "classes": {"real": "real photographs (crops, downscaled >= 2x with antialiasing)", **{g: "synthetic" for g in GENERATORS}},
        "designs": {g: {"style": d.style, "upsampler": d.upsampler, "loss": d.loss, "group": d.group, "about": d.about}
                    for g, d in DESIGNS.items()},
        "groups": _groups(stems),
        "sources": licences,
        "generators": generators,
        "build": build or {},
    }
    (demo_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def render_fingerprints(demo_dir: Path | None = None, out_dir: Path | None = None) -> dict[str, Path]:
    """Save FP(real, generator) for each demo generator on one shared colour scale."""
    from detectlab.spectral import fingerprint, render_spectrum

    demo_dir = demo_dir or config.DEMO_DIR
    out_dir = out_dir or config.ASSETS / "fingerprints"
    out_dir.mkdir(parents=True, exist_ok=True)
    _, real = real_crops(demo_dir / "real")

    def batches(t: torch.Tensor):
        for lo in range(0, len(t), 256):
            yield t[lo : lo + 256].float() / 255.0

    fps = {}
    for name in GENERATORS:
        _, synth = real_crops(demo_dir / name)
        fps[name] = fingerprint(batches(real), batches(synth)).values
    lim = max(float(np.percentile(np.abs(v), 99.5)) for v in fps.values())
    paths = {}
    for name, values in fps.items():
        path = out_dir / f"{name}.png"
        render_spectrum(values, -lim, lim).resize((256, 256), Image.NEAREST).save(path)
        np.save(out_dir / f"{name}.npy", values.astype(np.float32))
        paths[name] = path
    return paths


def train_design(name: str, cfg: DemoBuildConfig | None = None, real: torch.Tensor | None = None,
                 progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Train generator design ``name`` (``generators.designs.DESIGNS``) on the real crops and write its weights
    to ``assets/generators/<name>.safetensors``; returns the training summary."""
    from detectlab.generators.designs import DESIGNS, RESIDUAL

    if name not in DESIGNS:
        raise ValueError(f"no generator design {name!r}; known: {', '.join(DESIGNS)}")
    cfg = cfg or DemoBuildConfig()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if real is None:
        _, real = real_crops()
    gcfg = DESIGNS[name].train_config(steps=cfg.steps, width=cfg.width, seed=cfg.seed)
    model, summary = train_generator(real, gcfg, progress=progress, cancel=cancel)
    save_generator(model, config.GENERATOR_DIR / f"{name}.safetensors", gcfg, summary)
    return summary


def build_demo(
    cfg: DemoBuildConfig | None = None,
    sources: Path | None = None,
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
    fetch: bool = False,
) -> dict:
    """Rebuild the demo: [fetch and re-collect real crops], train generators, materialize, fingerprints."""
    cfg = cfg or DemoBuildConfig()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.perf_counter()
    info: dict = {"config": asdict(cfg)}
    if sources is not None:
        from detectlab.demo.crops import make_real_crops
        from detectlab.demo.crops import write_manifest as write_real_manifest
        from detectlab.demo.sources import collect_sources, fetch_sources

        if fetch:
            fetch_sources(Path(sources), progress=progress)
        photos = collect_sources(Path(sources), progress=progress)
        real_dir = config.DEMO_DIR / "real"
        records = make_real_crops(photos, real_dir, seed=cfg.seed, extra_scales=REAL_EXTRA_SCALES, progress=progress)
        write_real_manifest(photos, records, config.DEMO_DIR / "real_manifest.json")
        info["real_crops"] = len(records)
    _, real = real_crops()
    info["generators"] = {}
    for name in GENERATORS:
        info["generators"][name] = train_design(name, cfg, real, progress=progress, cancel=cancel)
    info["materialize"] = materialize(progress=progress, cancel=cancel)
    render_fingerprints()
    info["seconds"] = round(time.perf_counter() - start, 1)
    write_manifest(build=info)
    return info
