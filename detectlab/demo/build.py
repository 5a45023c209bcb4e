"""Build and materialize the embedded demo data set.

What is committed: the real 128 px crops (``assets/demo/real``, with their provenance in
``real_manifest.json``), the trained generator weights (``assets/generators``) and the
fingerprint images. What is derived, deterministically, from those on first use (tens of
seconds on 2 cores) and kept out of git: one synthetic image per real crop and generator
(``assets/demo/<generator>/``) and the partially manipulated set with masks
(``assets/demo-inpainted/``).

``build_demo`` redoes everything: optionally re-collects the real crops from the unpacked
registry packages, trains the three generators, materializes and renders fingerprints.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detectlab import config
from detectlab.data.decode import load_image
from detectlab.demo.inpaint import area_quartile, blend, ellipse_mask
from detectlab.generators import GeneratorTrainConfig, degrade_condition, load_generator, save_generator, train_generator
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

#: The demo generators, one per up-sampling design (folder name = generator name).
GENERATORS = ("transposed-conv", "resize-conv", "pixel-shuffle")
#: Extra downscale factors of the real crops (2x, 4x, 8x; see ``make_real_crops``): reals at
#: several scales, so image scale is no shortcut between the classes.
REAL_EXTRA_SCALES = (0.5, 0.25, 0.125)
_STAMP = ".materialized.json"
_BATCH = 64


@dataclass
class DemoBuildConfig:
    steps: int = 1800
    width: int = 24
    seed: int = 0


def _png(path: Path, array: np.ndarray, level: int = 1) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=level)


def real_crops(real_dir: Path | None = None) -> tuple[list[str], torch.Tensor]:
    """The committed real crops, sorted by name: (stems, uint8 tensor ``[N, 3, H, W]``)."""
    real_dir = real_dir or config.DEMO_DIR / "real"
    files = sorted(real_dir.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no real crops in {real_dir}; run `detectlab demo build --sources DIR`")
    arrays = [np.asarray(load_image(f)) for f in files]
    return [f.stem for f in files], torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _weights_digest(generator_dir: Path) -> str:
    h = hashlib.sha256()
    for name in GENERATORS:
        h.update((generator_dir / f"{name}.safetensors").read_bytes())
    for f in sorted((config.DEMO_DIR / "real").glob("*.png")):
        h.update(f.name.encode())
    return h.hexdigest()


@contextmanager
def _lock(path: Path):
    """Serialize materialization across processes (the app and a test run may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_materialized(demo_dir: Path | None = None, generator_dir: Path | None = None) -> bool:
    demo_dir = demo_dir or config.DEMO_DIR
    stamp = demo_dir / _STAMP
    if not stamp.exists():
        return False
    try:
        return json.loads(stamp.read_text()).get("digest") == _weights_digest(generator_dir or config.GENERATOR_DIR)
    except (OSError, ValueError):
        return False


def ensure_demo(progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL) -> Path:
    """Return the demo detection set's root, materializing synthetic images first if needed."""
    if not is_materialized():
        with _lock(config.ASSETS / ".demo.lock"):
            if not is_materialized():
                materialize(progress=progress, cancel=cancel)
    return config.DEMO_DIR


def materialize(
    demo_dir: Path | None = None,
    inpaint_dir: Path | None = None,
    generator_dir: Path | None = None,
    progress: Progress = null_progress,
    cancel: CancelToken = NEVER_CANCEL,
) -> dict:
    """Write one synthetic image per real crop and generator, and the manipulated set.

    Every random draw comes from generators seeded by name and index, and images are
    processed in fixed-size batches in a fixed order, so the output is reproducible.
    Folders are written to a temporary name and renamed, so an interrupted run leaves
    no half-filled folder behind.
    """
    demo_dir = demo_dir or config.DEMO_DIR
    inpaint_dir = inpaint_dir or config.DEMO_INPAINT_DIR
    generator_dir = generator_dir or config.GENERATOR_DIR
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    start = time.perf_counter()
    stems, real = real_crops(demo_dir / "real")
    n = len(stems)
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
                y = model(degrade_condition(x, rng, sigma))
                arr = (y * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
                outs.append(arr)
                for k, a in enumerate(arr):
                    _png(tmp / f"{stems[lo + k]}.png", a)
                progress(min(lo + _BATCH, n), n, f"synthesize {name}")
        fakes[name] = np.concatenate(outs)
        final = demo_dir / name
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)

    # Manipulated set: each real crop gets one generator's output of itself pasted under an
    # ellipse; generators rotate so each contributes a third.
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
        name = GENERATORS[i % len(GENERATORS)]
        mask = ellipse_mask(*real_np[i].shape[:2], rng)
        _png(tmp / "images" / f"{stem}.png", blend(real_np[i], fakes[name][i], mask))
        _png(tmp / "masks" / f"{stem}.png", (mask * 255).astype(np.uint8))
        frac = float(mask.mean())
        records[stem] = {"generator": name, "area": round(frac, 5), "quartile": area_quartile(frac)}
        progress(i + 1, n, "manipulated images")
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
        gcfg = GeneratorTrainConfig(upsampler=name, width=cfg.width, steps=cfg.steps, seed=cfg.seed)
        model, summary = train_generator(real, gcfg, progress=progress, cancel=cancel)
        save_generator(model, config.GENERATOR_DIR / f"{name}.safetensors", gcfg, summary)
        info["generators"][name] = summary
    info["materialize"] = materialize(progress=progress, cancel=cancel)
    render_fingerprints()
    info["seconds"] = round(time.perf_counter() - start, 1)
    write_manifest(build=info)
    return info
