"""Extract an uploaded data set archive, refusing anything that could escape or explode.

Uploads come from a browser, so a zip is untrusted: entries may try to write outside the
target (``../``, absolute paths, drive letters, symbolic links) or decompress to far more
than they declare. Every entry is checked before anything is written, bytes are counted
while streaming, and the archive is extracted into a temporary folder next to the target
that is renamed into place only when everything succeeded: a refused archive leaves
nothing behind.

Only images that decode are stored: an entry with an image extension whose first bytes are
no image signature is never written, and one that is written but fails DetectLab's image
check (``probe_image``: corrupt, truncated, over the pixel limit) is deleted again; both are
listed as skipped with the reason. Messages name the archive and its entries, never a
server path.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from detectlab import config
from detectlab.errors import DatasetError
from detectlab.progress import Progress, null_progress

__all__ = ["extract_zip"]

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_JUNK_TOP = {"__MACOSX"}  # macOS resource forks: never data
_JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini"}
# What an imported data set may hold: raster images (and masks) and the optional split
# manifest. Anything else (html, svg, scripts) is never stored, so nothing from an upload
# can be served back to a browser as an active document.
_KEEP_NAMES = {"manifest.json"}


#: The first bytes of every format DetectLab decodes (``decode.DECODE_FORMATS``); an entry named like
#: an image whose content starts with none of them is not stored.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM",
               b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _keep(parts: tuple[str, ...]) -> bool:
    from detectlab.data.decode import is_image_file

    name = parts[-1]
    if name.lower() in _JUNK_FILES or name.startswith("._"):
        return False
    return is_image_file(name) or name in _KEEP_NAMES


def _member_parts(info: zipfile.ZipInfo, archive: str) -> tuple[str, ...]:
    """The safe relative path parts of ``info``; raise DatasetError for a dangerous entry.

    ``archive`` is the archive's name as messages show it (its base name, not a server path).
    """
    name = info.filename
    # Zips written on Windows sometimes use backslashes; treat them as separators so
    # "..\\evil" cannot slip past the check.
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or _DRIVE.match(normalised):
        raise DatasetError(f"{archive}: entry {name!r} has an absolute path; refusing the archive")
    parts = tuple(p for p in PurePosixPath(normalised).parts if p not in ("", "."))
    if ".." in parts:
        raise DatasetError(f"{archive}: entry {name!r} points outside the archive ('..'); "
                           "refusing the archive")
    if info.flag_bits & 0x1:
        raise DatasetError(f"{archive}: entry {name!r} is encrypted; upload an unencrypted zip")
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # Unix attributes present
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise DatasetError(f"{archive}: entry {name!r} is a symbolic link; refusing the archive")
        if kind and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DatasetError(f"{archive}: entry {name!r} is not a regular file; "
                               "refusing the archive")
    return parts


def _dataset_root(folder: Path) -> Path:
    """``folder``, or its single top-level subfolder when the zip wrapped everything in one."""
    entries = [e for e in folder.iterdir() if not e.name.startswith(".") and e.name not in _JUNK_TOP]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


def extract_zip(
    zip_path: str | Path,
    target_dir: str | Path,
    *,
    max_total_bytes: int = config.MAX_UPLOAD_BYTES,
    max_files: int = 50_000,
    progress: Progress = null_progress,
    skipped: list[str] | None = None,
    reasons: dict[str, str] | None = None,
    check_images: bool = True,
) -> Path:
    """Safely extract ``zip_path`` into the new folder ``target_dir``; return the data set root.

    Refused with ``DatasetError`` (and nothing written to ``target_dir``): a target that
    exists already; a file that is not a zip or is corrupt; entries with absolute paths,
    drive letters, ``..`` components, symbolic links or other special files, encryption;
    more than ``max_files`` entries; more than ``max_total_bytes`` uncompressed, both as
    declared in the directory and as actually produced while streaming (zip bombs).
    ``__MACOSX`` folders, ``.DS_Store``/``Thumbs.db`` and every file that is not an image
    (or ``manifest.json``) are not stored; their names are appended to ``skipped``. With
    ``check_images`` an image-named entry is stored only if it is an image: its first bytes
    must be an image signature (else it is never written) and the written file must pass
    ``probe_image`` (else it is deleted again); those are skipped too, and ``reasons`` (when
    given) maps each skipped name to why. Names are as in the archive. A single
    top-level wrapper folder (``zip -r mydata.zip mydata/``) is removed, so ``target_dir``
    itself is the data set.

    Returns:
        ``target_dir``.
    """
    zip_path = Path(zip_path)
    target = Path(target_dir)
    shown = zip_path.name
    if target.exists() or target.is_symlink():
        raise DatasetError(f"{target.name}: already exists; choose a new folder for the data set")
    if not zip_path.is_file():
        raise DatasetError(f"{shown}: file does not exist")
    try:
        is_zip = zipfile.is_zipfile(zip_path)
    except OSError as exc:
        raise DatasetError(f"{shown}: cannot read the archive ({exc.strerror or exc})") from None
    if not is_zip:
        raise DatasetError(f"{shown}: not a zip archive")

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        dropped = _extract_into(zip_path, staging, max_total_bytes=max_total_bytes,
                                max_files=max_files, progress=progress, check_images=check_images)
        if skipped is not None:
            skipped.extend(dropped)
        if reasons is not None:
            reasons.update(dropped)
        _unwrap(staging)
        if target.exists() or target.is_symlink():  # appeared while we were extracting
            raise DatasetError(f"{target.name}: already exists; choose a new folder for the data set")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _unwrap(folder: Path) -> None:
    """Move the contents of a single wrapper folder up into ``folder`` (repeatedly)."""
    while (inner := _dataset_root(folder)) != folder:
        tmp = folder / f".unwrap-{os.getpid()}"
        inner.rename(tmp)
        for child in tmp.iterdir():
            child.rename(folder / child.name)
        tmp.rmdir()


def _extract_into(
    zip_path: Path,
    staging: Path,
    *,
    max_total_bytes: int,
    max_files: int,
    progress: Progress,
    check_images: bool = True,
) -> dict[str, str]:
    """Extract the kept entries into ``staging``; return {name in the archive: why it was not stored}."""
    from detectlab.data.decode import is_image_file, probe_image
    from detectlab.errors import ImageDecodeError

    dropped: dict[str, str] = {}
    shown = zip_path.name
    try:
        with zipfile.ZipFile(zip_path) as archive:
            infos = archive.infolist()
            if len(infos) > max_files:
                raise DatasetError(f"{shown}: {len(infos):,} entries is over the limit of "
                                   f"{max_files:,} files")
            # Check every entry before writing a byte.
            members = [(info, _member_parts(info, shown)) for info in infos]
            declared = sum(info.file_size for info in infos)
            if declared > max_total_bytes:
                raise DatasetError(f"{shown}: {declared:,} bytes uncompressed is over the "
                                   f"limit of {max_total_bytes:,} bytes")
            root = staging.resolve()
            written = 0
            for i, (info, parts) in enumerate(members, start=1):
                if not parts or parts[0] in _JUNK_TOP:
                    continue
                dest = staging.joinpath(*parts)
                if not dest.resolve().is_relative_to(root):  # belt and braces
                    raise DatasetError(f"{shown}: entry {info.filename!r} escapes the target")
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                rel = "/".join(parts)
                if not _keep(parts):
                    dropped[rel] = "not an image (only images and manifest.json are stored)"
                    continue
                image = check_images and is_image_file(parts[-1])
                with archive.open(info) as src:
                    chunk = src.read(_CHUNK)
                    if image and not _looks_like_image(chunk):
                        dropped[rel] = ("file is empty (0 bytes)" if not chunk else
                                        "not an image, or not a supported format (PNG, JPEG, WebP, BMP, TIFF, "
                                        "GIF); not stored")
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with open(dest, "xb") as out:
                        while chunk:
                            written += len(chunk)
                            if written > max_total_bytes:  # sizes in the directory can lie
                                raise DatasetError(
                                    f"{shown}: decompresses to more than {max_total_bytes:,} "
                                    "bytes; refusing the archive")
                            out.write(chunk)
                            chunk = src.read(_CHUNK)
                if image:
                    try:
                        probe_image(dest, name=rel)
                    except ImageDecodeError as exc:
                        dest.unlink()
                        reason = str(exc)
                        dropped[rel] = (reason[len(rel) + 2:] if reason.startswith(rel + ": ") else reason) \
                            + "; not stored"
                progress(i, len(members), "Extracting")
        return dropped
    except DatasetError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise DatasetError(f"{shown}: corrupt or unsupported zip archive ({exc})") from exc
    except FileExistsError as exc:
        raise DatasetError(f"{shown}: entry {_inside(exc.filename, staging)} appears twice or clashes "
                           "with a folder of the same name") from exc
    except OSError as exc:
        raise DatasetError(f"{shown}: cannot extract ({exc.strerror or exc})") from exc


def _inside(path: str | os.PathLike | None, staging: Path) -> str:
    """``path`` relative to the staging folder (a name inside the archive), never a server path."""
    try:
        return Path(path or "").relative_to(staging).as_posix()
    except ValueError:
        return Path(path or "").name
