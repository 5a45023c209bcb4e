"""What a data set holds, for the Data tab and ``detectlab data info``; and data-root confinement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detectlab import config
from detectlab.data.discover import DetectionDataset, MaskedDataset, discover
from detectlab.data.splits import split
from detectlab.errors import DatasetError
from detectlab.progress import Progress, null_progress


#: Longest folder name (one path component) and whole path a typed folder may have, in bytes (Linux's limits).
MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 4096


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else f"{text[:limit]}…")


def check_path_text(text: str, what: str = "folder") -> str:
    """``text`` if it can name a file at all; a ``DatasetError`` for a NUL byte or an over-long name.

    The operating system refuses both with a raw ``ValueError`` / ``OSError`` deep inside a
    ``Path`` call; this says what is wrong before any file-system call is made.
    """
    if "\0" in text:
        raise DatasetError(f"the {what} name {_shown(text.replace(chr(0), '␀'))} contains a NUL byte; "
                           "type a plain path")
    longest = max((len(part.encode("utf-8", "surrogateescape")) for part in Path(text).parts), default=0)
    if longest > MAX_NAME_BYTES or len(text.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise DatasetError(f"the {what} name {_shown(text)} is too long ({len(text):,} characters; a folder "
                           f"name may have at most {MAX_NAME_BYTES} bytes, a path {MAX_PATH_BYTES})")
    return text


def resolve_in_roots(path: str | Path, roots: list[Path]) -> Path:
    """Resolve a user-typed path and refuse it unless it lies inside one of ``roots``.

    Relative paths are taken relative to the project folder (so the README's ``assets/demo``
    works), then to each root in turn. Symlinks are resolved first,
    so a link inside a root that points outside is refused too. A name no file can have
    (a NUL byte, over-long) is refused with a ``DatasetError`` before any file-system call.
    """
    text = str(path).strip()
    if not text:
        raise DatasetError("no folder given")
    check_path_text(text)
    typed = Path(text).expanduser()
    candidates = [typed] if typed.is_absolute() else [config.REPO_ROOT / text] + [r / text for r in roots]
    for cand in candidates:
        try:
            resolved = cand.resolve()
            exists = resolved.exists()
        except (OSError, ValueError) as exc:  # e.g. a symlink loop, a path the OS cannot take
            raise DatasetError(f"'{text[:200]}': cannot be opened ({getattr(exc, 'strerror', None) or exc})") from None
        for root in roots:
            if resolved == root or root in resolved.parents:
                if not exists:
                    continue
                return resolved
    allowed = ", ".join(str(r) for r in roots)
    raise DatasetError(f"'{text}' is not an existing folder inside the configured data roots ({allowed}); "
                       "give it absolute, relative to the project folder or to one of the roots (e.g. "
                       "'assets/demo' or 'demo'), or set DETECTLAB_DATA_ROOTS to allow more")


@dataclass
class DatasetOverview:
    """Counts and examples of one data set."""

    root: Path
    layout: str
    rows: list[list]                          # [class, generator/kind, total, train, val, test]
    examples: dict[str, list[Path]]           # class or generator -> a few files
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    summary: str = ""
    note: str = ""                            # e.g. only one class: what that rules out

    @property
    def total(self) -> int:
        return sum(r[2] for r in self.rows)


def overview(path: Path, *, examples: int = 6, seed: int = 0, progress: Progress = null_progress,
             validate: bool = True) -> DatasetOverview:
    """Discover ``path`` and count it per class/generator and per split ([Petrželková 2024]'s 80/10/10);
    ``validate`` as ``discover``'s (False: listed only, no file opened)."""
    ds = discover(path, validate=validate, progress=progress)
    if isinstance(ds, DetectionDataset):
        parts = split(ds.samples, seed=seed)
        rows = []
        for gen in ["real", *ds.generators]:
            members = [s for s in ds.samples if s.generator == gen]
            per_split = [sum(1 for s in parts[k] if s.generator == gen) for k in ("train", "val", "test")]
            rows.append(["real" if gen == "real" else "fake", gen, len(members), *per_split])
        ex = {gen: [s.path for s in ds.samples if s.generator == gen][:examples] for gen in ["real", *ds.generators]}
    elif isinstance(ds, MaskedDataset):
        parts = split(ds.pairs, seed=seed, group=ds.group_of, stratify=None)
        rows = [["manipulated", "images+masks", len(ds.pairs), *(len(parts[k]) for k in ("train", "val", "test"))]]
        ex = {"images": [p[0] for p in ds.pairs[:examples]], "masks": [p[1] for p in ds.pairs[:examples]]}
    else:  # pragma: no cover - discover returns one of the two
        raise DatasetError(f"{path}: unknown data set type")
    return DatasetOverview(ds.root, ds.layout, rows, ex, list(ds.skipped), ds.summary(), one_class_note(ds))


def one_class_note(ds) -> str:
    """What a real/fake data set with only one class cannot give ("" when both classes are there)."""
    if not isinstance(ds, DetectionDataset) or not ds.samples:
        return ""
    classes = ds.class_counts()
    missing = [c for c in ("real", "fake") if not classes.get(c)]
    if not missing:
        return ""
    have = "fake" if missing == ["real"] else "real"
    return (f"only one class ({have} images, no {missing[0]} class): training, balanced accuracy, AP and ROC AUC "
            f"need both; add a {'real/' if missing == ['real'] else 'generator'} folder")


def new_dataset_dir(name: str) -> Path:
    """A fresh folder under DetectLab's data sets for ``name`` (sanitised; ``-2``, ``-3``... if taken)."""
    import re

    from detectlab import config

    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._") or "dataset"
    target = config.datasets_dir() / base
    k = 1
    while target.exists():
        k += 1
        target = config.datasets_dir() / f"{base}-{k}"
    return target


def stored_bytes() -> int:
    """Bytes of every file under DetectLab's data sets folder (imports and derived sets)."""
    from detectlab import config

    total = 0
    for p in config.datasets_dir().rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def check_import_quota(incoming: int) -> int:
    """Refuse (``DatasetError``) an import of ``incoming`` bytes that would exceed the import quota.

    Returns the bytes still free under the quota (``DETECTLAB_IMPORT_MAX_MB``, all data sets together).
    """
    from detectlab import config

    quota = config.import_quota_bytes()
    used = stored_bytes()
    free = quota - used
    if incoming > free:
        mb = 1024 * 1024
        raise DatasetError(
            f"importing would store {incoming / mb:,.1f} MB, but DetectLab's data sets already hold "
            f"{used / mb:,.1f} MB of the {quota / mb:,.0f} MB import quota; delete a data set in the Data tab "
            "or raise DETECTLAB_IMPORT_MAX_MB")
    return free


def _zip_declared_bytes(zip_path: Path) -> int:
    """Uncompressed bytes the archive's directory declares (0 when it is not a readable zip:
    ``extract_zip`` then says what is wrong with it)."""
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as z:
            return sum(i.file_size for i in z.infolist() if not i.is_dir())
    except Exception:  # noqa: BLE001 - not a zip / corrupt: reported by extract_zip
        return 0


def import_dataset_zip(zip_path: Path, name: str | None = None,
                       skipped: list[tuple[str, str]] | None = None) -> Path:
    """Extract an uploaded .zip into DetectLab's data sets folder and check it is a data set.

    The archive is extracted safely (``extract_zip``; only files that are images, and
    ``manifest.json``, are stored); if the result is in no accepted layout, or checking it
    fails in any way, the extracted copy is removed again and the error is raised, so nothing
    half-made is left among the user's data sets. The import quota (``check_import_quota``) is
    checked against the size the archive declares before anything is written, and extraction
    stops at the quota whatever the archive declared.

    Messages name the archive and the new data set's folder by name, never by a server path.
    ``skipped`` (when given) receives (name in the archive, reason) for every file not stored.
    """
    import shutil

    from detectlab import config
    from detectlab.data.archive import extract_zip

    zip_path = Path(zip_path)
    free = check_import_quota(_zip_declared_bytes(zip_path))
    target = new_dataset_dir(name or zip_path.stem)
    reasons: dict[str, str] = {}
    try:
        root = extract_zip(zip_path, target, max_total_bytes=max(0, min(config.MAX_UPLOAD_BYTES, free)),
                           reasons=reasons)
    except DatasetError as exc:
        raise DatasetError(_relative(str(exc), target)) from None
    try:
        discover(root, validate=False)
    except BaseException as exc:  # any failure, even an unexpected one: the import is not kept
        shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, DatasetError):
            raise DatasetError(_relative(str(exc), target)) from None
        raise
    if skipped is not None:
        skipped.extend(reasons.items())
    return root


def _relative(text: str, target: Path) -> str:
    """``text`` with the data set folder's path (as given and resolved) replaced by its name."""
    for form in sorted({str(target), str(target.resolve())}, key=len, reverse=True):
        text = text.replace(form, target.name)
    return text


def delete_dataset(name: str) -> Path:
    """Delete the imported (or derived) data set ``name`` from DetectLab's data sets folder.

    Only a folder directly inside ``DETECTLAB_HOME/datasets`` may be deleted: never the demo,
    a folder in another data root, a symbolic link's target, or anything a ``..`` reaches.
    """
    import shutil

    from detectlab import config

    text = str(name).strip()
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("."):
        raise DatasetError(f"{_shown(text)} is not one of the imported data sets")
    check_path_text(text, "data set")
    base = config.datasets_dir().resolve()
    target = base / text
    if target.is_symlink() or not target.is_dir() or target.resolve().parent != base:
        raise DatasetError(f"{_shown(text)} is not one of the imported data sets in {base.name}/")
    shutil.rmtree(target)
    return target
