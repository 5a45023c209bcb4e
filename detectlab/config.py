"""Paths, limits and the offline environment shared by the app, CLI and tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"
DEMO_DIR = ASSETS / "demo"                      # detection set: real/ + one folder per generator
DEMO_INPAINT_DIR = ASSETS / "demo-inpainted"     # localization set: images/ + masks/
GENERATOR_DIR = ASSETS / "generators"            # trained demo generator weights
HELDOUT_DIR = ASSETS / "heldout"                 # held-out real photos (detectlab heldout build)
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"

# Decompression-bomb guard: images with more pixels than this are refused.
MAX_IMAGE_PIXELS = int(os.environ.get("DETECTLAB_MAX_PIXELS", 50_000_000))
# Largest upload (zip archives, images) accepted by the app, in bytes.
MAX_UPLOAD_BYTES = int(os.environ.get("DETECTLAB_MAX_UPLOAD_MB", 512)) * 1024 * 1024
# Gradio's upload cache: files older than this are deleted (checked as often).
UPLOAD_CACHE_SECONDS = 3600


def import_quota_bytes() -> int:
    """How many bytes all imported and derived data sets together may hold (``DETECTLAB_IMPORT_MAX_MB``, 2048).

    Read at each import, so a running app follows a changed environment in tests and scripts.
    """
    return int(float(os.environ.get("DETECTLAB_IMPORT_MAX_MB", 2048)) * 1024 * 1024)


def login() -> tuple[str, str] | None:
    """(user, password) from ``DETECTLAB_USER`` / ``DETECTLAB_PASSWORD`` when both are set: the app then asks for them."""
    user, password = os.environ.get("DETECTLAB_USER", ""), os.environ.get("DETECTLAB_PASSWORD", "")
    return (user, password) if user and password else None


def home() -> Path:
    """DetectLab's writable state (runs, uploads, caches); created on first use."""
    path = Path(os.environ.get("DETECTLAB_HOME", Path.home() / ".detectlab")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir() -> Path:
    """Where uploaded and derived (e.g. fingerprint-cleaned) data sets go; created on first use."""
    path = home() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_roots() -> list[Path]:
    """Folders a user may point the UI at (os.pathsep-separated DETECTLAB_DATA_ROOTS).

    The shipped assets and DetectLab's own upload folder are always included.
    """
    roots = [ASSETS.resolve(), datasets_dir().resolve()]
    extra = os.environ.get("DETECTLAB_DATA_ROOTS", "")
    roots += [Path(p).expanduser().resolve() for p in extra.split(os.pathsep) if p.strip()]
    return list(dict.fromkeys(roots))


#: What ``--device`` (and ``DETECTLAB_DEVICE``) accepts: ``auto`` takes CUDA when a GPU is visible, else the CPU.
DEVICES = ("auto", "cpu", "cuda")


def device(name: str | None = None):
    """The ``torch.device`` models run on: ``name`` (``--device``), else ``DETECTLAB_DEVICE``, else ``auto``.

    ``auto`` is CUDA when PyTorch sees a GPU and the CPU otherwise; asking for ``cuda`` on a machine
    without one is an error that says so, not a silent fall back to the CPU. A ``cuda:N`` index is kept.

    Raises:
        DetectLabError: an unknown name, or ``cuda`` where PyTorch sees no GPU.
    """
    import torch

    from detectlab.errors import DetectLabError

    name = (name or os.environ.get("DETECTLAB_DEVICE") or "auto").strip().lower()
    kind = name.split(":", 1)[0]
    if kind not in DEVICES or (kind != "cuda" and ":" in name):
        raise DetectLabError(f"unknown device '{name}': choose one of {', '.join(DEVICES)} (or cuda:N)")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DetectLabError(f"--device {name}: PyTorch sees no CUDA GPU on this machine; use --device cpu or auto")
    return torch.device(name)


def set_offline_env() -> None:
    """Set the variables that keep hubs and telemetry from stalling offline runs.

    Without them timm retries the hub for ~47 s, gradio contacts hosts in the background and
    ultralytics asks GitHub for a font. Gradio's upload cache goes under DetectLab's home
    (``uploads/``), where the app deletes what is older than an hour, instead of a shared
    ``/tmp/gradio`` that grows for ever. Values already set by the user win.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(home() / "uploads"))
    yolo_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(home() / "ultralytics")))
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    target = yolo_dir / "Ultralytics" / "Arial.ttf"
    if font.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(font, target)
