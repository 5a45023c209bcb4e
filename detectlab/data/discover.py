"""Find the images of a data set folder and recognise its layout.

Accepted layouts (SPEC "Data sets"), detected automatically:

* ``real+generators``: ``ROOT/real/*`` and ``ROOT/<generator>/*``, one folder per generator;
* ``binary``: CNNDetection/UnivFD ``ROOT/0_real/*`` and ``ROOT/1_fake/*`` (generator "fake");
* ``binary+generators``: ``ROOT/<generator>/0_real`` and ``ROOT/<generator>/1_fake``, also
  with one category level between (``ROOT/<generator>/<category>/0_real``), as in the
  CNNDetection and UnivFD releases. Real images of every generator folder are pooled into
  the real class;
* ``images+masks``: ``ROOT/images/*`` with ``ROOT/masks/*`` (same relative path and stem).

Class folders are searched recursively. Hidden files and folders (and macOS
``__MACOSX`` archives) and files without an image extension are ignored silently; a
file with an image extension that fails validation, a symbolic link pointing outside the
data set, and folders that fit no role are listed in ``skipped`` with the reason, so a
run never crashes on one bad file and the user sees what was left out.

Listing opens no file (``os.scandir``, one ``stat`` per image for the index key), so a 100k-image
folder opens in seconds; ``validate=True`` probes each file's header, once per file and pixel limit:
results are kept in the folder's index (``detectlab.data.index``), and a re-open of an unchanged
folder reads the index instead of discovering again.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from detectlab import config
from detectlab.data import index
from detectlab.data.decode import IMAGE_EXTENSIONS, is_image_file, probe_image
from detectlab.errors import DatasetError, ImageDecodeError
from detectlab.progress import Progress, null_progress

__all__ = [
    "LAYOUTS",
    "DetectionDataset",
    "MaskedDataset",
    "PathList",
    "Sample",
    "discover",
]

REAL = "real"
BINARY_REAL, BINARY_FAKE = "0_real", "1_fake"
IMAGES_DIR, MASKS_DIR = "images", "masks"
MANIFEST = "manifest.json"

LAYOUTS = {
    "real+generators": "ROOT/real/* and ROOT/<generator>/* (one folder per generator)",
    "binary": "ROOT/0_real/* and ROOT/1_fake/* (CNNDetection/UnivFD)",
    "binary+generators": "ROOT/<generator>/0_real/* and ROOT/<generator>/1_fake/*",
    "images+masks": "ROOT/images/* and ROOT/masks/* (masks with the same stem)",
}

_MAX_SUMMARY_SKIPPED = 20


def _accepted_layouts() -> str:
    return "Accepted layouts:\n" + "\n".join(f"  - {text}" for text in LAYOUTS.values())


def _stem(file: str) -> str:
    """``Path(file).stem`` without building the Path."""
    name = file.rpartition(os.sep)[2]
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


class Sample:
    """One image of a detection data set (immutable, hashable).

    Attributes:
        path: the image file (a ``Path``, built on each access from ``file``).
        file: the same file as a string.
        label: 0 real, 1 fake (synthetic).
        generator: the generator's name, "real" for real images.
        group: source group; all samples of a group go to the same split, so an image and
            the fakes derived from it never straddle train and test. The file stem unless a
            manifest names another.

    A 100k-image listing holds 100k of these: the path is kept as one string (a ``Path`` holds its
    parts as a list of strings besides, ~4x the memory) and the group only where it is not the stem.
    """

    __slots__ = ("file", "label", "generator", "_group")

    def __init__(self, path: str | Path, label: int, generator: str, group: str | None = None) -> None:
        file = os.fspath(path) if isinstance(path, Path) else str(Path(path))
        self._set(file, int(label), generator, group)

    @classmethod
    def _listed(cls, file: str, label: int, generator: str, group: str | None) -> "Sample":
        """A sample from a path string that is already normal (a folder's string + "/" + a plain name)."""
        s = cls.__new__(cls)
        s._set(file, label, generator, group)
        return s

    def _set(self, file: str, label: int, generator: str, group: str | None) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "file", file)
        setattr_(self, "label", label)
        setattr_(self, "generator", generator)
        setattr_(self, "_group", None if group is None or group == _stem(file) else group)

    @property
    def path(self) -> Path:
        return Path(self.file)

    @property
    def group(self) -> str:
        return _stem(self.file) if self._group is None else self._group

    def _key(self) -> tuple:
        return self.file, self.label, self.generator, self._group

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"Sample is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sample) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self):
        return Sample._listed, self._key()

    def __repr__(self) -> str:
        return f"Sample(path={self.path!r}, label={self.label}, generator={self.generator!r}, group={self.group!r})"


class PathList(Sequence[Path]):
    """A list of file paths kept as strings, read as ``Path``s: the files of one class of a 100k-image folder
    without 100k ``Path`` objects. ``names`` is the string list itself (``fitted_batches`` packs it as is)."""

    __slots__ = ("names",)

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return PathList(self.names[i])
        return Path(self.names[i])

    def __iter__(self) -> Iterator[Path]:
        return map(Path, self.names)

    def __add__(self, other) -> list[Path]:
        return [*self, *other]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, PathList)) else NotImplemented

    def __repr__(self) -> str:
        return f"PathList({len(self.names)} files)"


def _skipped_lines(root: Path, skipped: list[tuple[Path, str]]) -> list[str]:
    if not skipped:
        return []
    lines = [f"{len(skipped)} skipped:"]
    for path, reason in skipped[:_MAX_SUMMARY_SKIPPED]:
        try:
            shown = path.relative_to(root)
        except ValueError:
            shown = path
        # ImageDecodeError messages start with the file; do not print it twice.
        reason = reason.split(": ", 1)[1] if reason.startswith(str(path) + ": ") else reason
        lines.append(f"  {shown}: {reason}")
    if len(skipped) > _MAX_SUMMARY_SKIPPED:
        lines.append(f"  ... and {len(skipped) - _MAX_SUMMARY_SKIPPED} more")
    return lines


@dataclass
class DetectionDataset:
    """Real and synthetic images of a folder, with what was left out and why."""

    root: Path
    layout: str
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def generators(self) -> list[str]:
        """Sorted names of the fake generators present."""
        return sorted({s.generator for s in self.samples if s.label == 1})

    def counts(self) -> dict[str, int]:
        """Images per class folder: ``{"real": n, "<generator>": n, ...}`` (real first)."""
        per = Counter(s.generator for s in self.samples)
        return {REAL: per.get(REAL, 0), **{g: per[g] for g in self.generators}}

    def class_counts(self) -> dict[str, int]:
        """Images per class: ``{"real": n, "fake": n}``."""
        fake = sum(s.label for s in self.samples)
        return {"real": len(self.samples) - fake, "fake": fake}

    def subset(self, generators: list[str] | None) -> "DetectionDataset":
        """Real images plus the fakes of ``generators`` (all of them for None).

        Raises:
            DatasetError: a generator name that the data set does not have.
        """
        if generators is None:
            return DetectionDataset(self.root, self.layout, list(self.samples), list(self.skipped))
        unknown = sorted(set(generators) - set(self.generators))
        if unknown:
            raise DatasetError(
                f"{self.root}: no generator {', '.join(map(repr, unknown))}; "
                f"this data set has: {', '.join(self.generators) or 'none'}"
            )
        keep = set(generators)
        samples = [s for s in self.samples if s.label == 0 or s.generator in keep]
        return DetectionDataset(self.root, self.layout, samples, list(self.skipped))

    def summary(self) -> str:
        """Human-readable counts per class and generator, and the skipped files."""
        classes = self.class_counts()
        counts = self.counts()
        width = max(len(k) for k in counts)
        lines = [
            f"Data set {self.root} (layout: {self.layout})",
            f"{len(self.samples)} images: {classes['real']} real, {classes['fake']} fake "
            f"from {len(self.generators)} generator(s)",
        ]
        lines += [f"  {name:<{width}}  {n:>7}" for name, n in counts.items()]
        lines += _skipped_lines(self.root, self.skipped)
        return "\n".join(lines)


@dataclass
class MaskedDataset:
    """Partially manipulated images with their masks (same relative path and stem)."""

    root: Path
    pairs: list[tuple[Path, Path]]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    groups: dict[Path, str] = field(default_factory=dict)  # image path -> split group
    layout: str = "images+masks"

    def __len__(self) -> int:
        return len(self.pairs)

    def group_of(self, pair: tuple[Path, Path]) -> str:
        """The split group of ``pair`` (manifest.json, else the image stem); for ``split``."""
        return self.groups.get(pair[0], pair[0].stem)

    def summary(self) -> str:
        """Human-readable number of pairs and the skipped files."""
        lines = [
            f"Data set {self.root} (layout: {self.layout})",
            f"{len(self.pairs)} image/mask pairs",
        ]
        lines += _skipped_lines(self.root, self.skipped)
        return "\n".join(lines)


# --------------------------------------------------------------------------- walking


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


_CHILD = getattr(Path, "_make_child_relpath", None)


def _join(folder: Path, name: str) -> Path:
    """``folder / name`` for one plain file name; CPython's own helper for this (what ``glob`` uses) skips
    re-parsing the whole path, 4× faster, which is most of listing 100k files. ``/`` where it is missing."""
    return _CHILD(folder, name) if _CHILD is not None else folder / name


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except (ValueError, OSError, RuntimeError):  # RuntimeError: symlink loop
        return False


class _Walker:
    """Lists images below class folders; collects what it refuses in ``skipped``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.skipped: list[tuple[Path, str]] = []

    def subdirs(self, folder: Path) -> list[Path]:
        """Visible subfolders of ``folder``, sorted; symlinks are followed only inside root."""
        out = []
        for entry in self._entries(folder):
            if entry.is_dir() and self._allowed_link(entry):
                out.append(entry)
        return out

    def images(self, folder: Path) -> Iterator[Path]:
        """Image files below ``folder`` (recursive, sorted, links out of root refused).

        ``os.scandir`` gives each entry's type without a ``stat``, and no file is opened: listing a
        100k-image folder costs the directory reads and one ``Path`` per image.
        """
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not _hidden(e.name)), key=lambda e: e.name)
        except OSError as exc:
            self.skipped.append((folder, f"cannot list folder ({exc.strerror or exc})"))
            return
        for e in entries:
            image = "." + e.name.rpartition(".")[2].lower() in IMAGE_EXTENSIONS
            if e.is_symlink():
                path = folder / e.name
                if not self._allowed_link(path):
                    continue
                if e.is_dir():
                    self.skipped.append((path, "symbolic link to a folder (not followed)"))
                elif e.is_file() and image:
                    yield path
                elif image:
                    self.skipped.append((path, "broken symbolic link"))
            elif e.is_dir(follow_symlinks=False):
                yield from self.images(_join(folder, e.name))
            elif image and e.is_file(follow_symlinks=False):
                yield _join(folder, e.name)

    def stray_images(self, folder: Path, reason: str) -> None:
        """Report image files directly in ``folder`` that belong to no class."""
        for entry in self._entries(folder):
            if entry.is_file() and is_image_file(entry):
                self.skipped.append((entry, reason))

    def _entries(self, folder: Path) -> list[Path]:
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            self.skipped.append((folder, f"cannot list folder ({exc.strerror or exc})"))
            return []
        return [folder / n for n in names if not _hidden(n)]

    def _allowed_link(self, path: Path) -> bool:
        # Data roots are the UI's sandbox; a link out of it could expose any file.
        if path.is_symlink() and not _inside(path, self.root):
            self.skipped.append((path, "symbolic link pointing outside the data set (not followed)"))
            return False
        return True


#: Largest manifest.json read (bytes) and deepest nesting accepted: a split manifest is a flat
#: ``{"groups": {stem: group}}`` (plus optional records); anything far bigger or deeper is not one.
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_MANIFEST_DEPTH = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (strings ignored); cheap, no recursion."""
    depth = deepest = 0
    for m in re.finditer(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_MANIFEST_DEPTH:
                    return deepest
        else:
            depth -= 1
    return deepest


def _load_manifest_groups(root: Path) -> dict[str, str]:
    """Split groups from ``root/manifest.json``; a ``DatasetError`` (naming the file relative to the
    data set) for a manifest that is unreadable, too big, too deeply nested or not a group map."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    shown = f"{root.name}/{MANIFEST}"
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise DatasetError(f"{shown}: {size:,} bytes is over the limit of {MAX_MANIFEST_BYTES:,} bytes "
                               "for a split manifest")
        text = path.read_text(encoding="utf-8")
        depth = _json_depth(text)
        if depth > MAX_MANIFEST_DEPTH:
            raise DatasetError(f"{shown}: nests more than {MAX_MANIFEST_DEPTH} levels deep; a split manifest maps file "
                               'stems to groups: {"groups": {"img001": "photo1"}}')
        data = json.loads(text)
    except DatasetError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
        # ValueError: JSONDecodeError, and Python's limit on digits in one number
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("\n")[0][:200]
        raise DatasetError(f"{shown}: cannot read the manifest ({type(exc).__name__}: {detail})") from None
    groups = data.get("groups", {}) if isinstance(data, dict) else {}
    if not isinstance(groups, dict):
        raise DatasetError(f"{shown}: 'groups' must map file stems to group ids")
    bad = next((stem for stem, group in groups.items() if not isinstance(group, (str, int, float))), None)
    if bad is not None:
        raise DatasetError(f"{shown}: the group of {str(bad)[:60]!r} is not text or a number")
    return {str(stem): str(group) for stem, group in groups.items()}


# --------------------------------------------------------------------------- validation


def _validate(
    paths: list[Path],
    *,
    max_pixels: int,
    progress: Progress,
    known: dict[Path, str | tuple[int, int]] | None = None,
) -> dict[Path, str | tuple[int, int]]:
    """Check every file cheaply; map each path to its (width, height) or a failure reason.

    ``known`` holds results of earlier runs (the index's probes of unchanged files): those files are
    not opened again, and new results are added to it. Threads overlap file I/O (PIL releases the
    GIL while decoding), which matters on network disks more than the CPU work does.
    """
    def check(path: Path) -> str | tuple[int, int]:
        try:
            info = probe_image(path, max_pixels=max_pixels)
            return info.width, info.height
        except ImageDecodeError as exc:
            return str(exc)

    known = {} if known is None else known
    results: dict[Path, str | tuple[int, int]] = {p: known[p] for p in paths if p in known}
    todo = [p for p in paths if p not in results]
    total = len(paths)
    progress(len(results), total, "Checking images")
    step = max(1, total // 100)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        for i, (path, result) in enumerate(zip(todo, pool.map(check, todo)), start=len(results) + 1):
            results[path] = known[path] = result
            if i % step == 0 or i == total:
                progress(i, total, "Checking images")
    return results


# --------------------------------------------------------------------------- layouts


def _describe_found(walker: _Walker, root: Path) -> str:
    dirs = [d.name for d in walker.subdirs(root)]
    n_images = sum(1 for p in walker._entries(root) if p.is_file() and is_image_file(p))
    found = []
    if dirs:
        shown = ", ".join(dirs[:12]) + (", ..." if len(dirs) > 12 else "")
        found.append(f"folders: {shown}")
    else:
        found.append("no folders")
    if n_images:
        found.append(f"{n_images} image(s) directly in the folder (they need class folders)")
    return "; ".join(found)


def _binary_folders(walker: _Walker, folder: Path) -> list[tuple[Path, int]]:
    """(folder, label) for the 0_real / 1_fake folders directly inside ``folder``."""
    names = {d.name: d for d in walker.subdirs(folder)}
    return [(names[n], label) for n, label in ((BINARY_REAL, 0), (BINARY_FAKE, 1)) if n in names]


def _has_binary(walker: _Walker, folder: Path, depth: int) -> bool:
    names = {d.name for d in walker.subdirs(folder)}
    if names & {BINARY_REAL, BINARY_FAKE}:
        return True
    return depth > 0 and any(_has_binary(walker, d, depth - 1) for d in walker.subdirs(folder))


def _detection_sources(walker: _Walker, root: Path) -> tuple[str, list[tuple[Path, int, str]]]:
    """Pick the detection layout; return it and (folder, label, generator) class folders."""
    # ``probe`` looks ahead without reporting; ``walker`` reports each refused link once.
    probe = _Walker(root)
    dirs = {d.name: d for d in walker.subdirs(root)}

    if BINARY_REAL in dirs or BINARY_FAKE in dirs:
        sources = [(d, label, REAL if label == 0 else "fake")
                   for d, label in _binary_folders(walker, root)]
        for name, d in dirs.items():
            if name not in (BINARY_REAL, BINARY_FAKE):
                walker.skipped.append((d, "folder is not 0_real or 1_fake (binary layout)"))
        walker.stray_images(root, "image outside the 0_real/1_fake folders")
        return "binary", sources

    if REAL in dirs:
        sources = [(dirs[REAL], 0, REAL)]
        sources += [(d, 1, name) for name, d in dirs.items() if name != REAL]
        walker.stray_images(root, "image outside the class folders")
        return "real+generators", sources

    generator_dirs = [d for d in dirs.values() if _has_binary(probe, d, depth=1)]
    if generator_dirs:
        sources = []
        for gen_dir in generator_dirs:
            # ROOT/<gen>/0_real, or one category level deeper (CNNDetection's progan/airplane).
            inner = _binary_folders(walker, gen_dir)
            if not inner:
                for category in walker.subdirs(gen_dir):
                    found = _binary_folders(walker, category)
                    if found:
                        inner += found
                    else:
                        walker.skipped.append((category, "folder has no 0_real or 1_fake inside"))
            sources += [(d, label, REAL if label == 0 else gen_dir.name) for d, label in inner]
        for d in dirs.values():
            if d not in generator_dirs:
                walker.skipped.append((d, "folder has no 0_real or 1_fake inside"))
        walker.stray_images(root, "image outside the <generator>/0_real|1_fake folders")
        return "binary+generators", sources

    hints = []
    if IMAGES_DIR in dirs or MASKS_DIR in dirs:
        present, missing = ((IMAGES_DIR, MASKS_DIR) if IMAGES_DIR in dirs
                            else (MASKS_DIR, IMAGES_DIR))
        hints.append(f"has '{present}' but no '{missing}' folder")
    hints.append(f"no '{REAL}' folder, no '{BINARY_REAL}'/'{BINARY_FAKE}' folders")
    raise DatasetError(
        f"{root} is not a data set: {'; '.join(hints)} ({_describe_found(probe, root)}).\n"
        + _accepted_layouts()
    )


def _discover_detection(
    walker: _Walker,
    root: Path,
    *,
    validate: bool,
    max_pixels: int,
    progress: Progress,
    known: dict | None = None,
) -> DetectionDataset:
    layout, sources = _detection_sources(walker, root)
    groups = _load_manifest_groups(root)
    candidates: list[tuple[Path, int, str]] = []
    for folder, label, generator in sources:
        candidates += [(p, label, generator) for p in walker.images(folder)]
    if not candidates:
        raise DatasetError(
            f"{root}: no images found in the class folders "
            f"({', '.join(sorted({str(f.relative_to(root)) for f, _, _ in sources})) or 'none'}); "
            f"supported extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    checked = (_validate([p for p, _, _ in candidates], max_pixels=max_pixels, progress=progress, known=known)
               if validate else {})
    samples = []
    for path, label, generator in candidates:
        result = checked.get(path)
        if isinstance(result, str):
            walker.skipped.append((path, result))
            continue
        samples.append(Sample(path, label, generator, groups.get(path.stem)))
    if not samples:
        raise DatasetError(_nothing_readable(root, walker.skipped))
    samples.sort(key=lambda s: s.file)
    return DetectionDataset(root, layout, samples, _sorted_skipped(walker.skipped))


def _discover_masked(
    walker: _Walker,
    root: Path,
    *,
    validate: bool,
    max_pixels: int,
    progress: Progress,
    known: dict | None = None,
) -> MaskedDataset:
    image_dir, mask_dir = root / IMAGES_DIR, root / MASKS_DIR
    for d in walker.subdirs(root):
        if d.name not in (IMAGES_DIR, MASKS_DIR):
            walker.skipped.append((d, "folder is not images or masks (images+masks layout)"))
    walker.stray_images(root, "image outside the images/masks folders")

    def by_key(folder: Path, role: str) -> dict[Path, Path]:
        # Key: path relative to its folder without suffix, so images/a/x.png <-> masks/a/x.png.
        out: dict[Path, Path] = {}
        for path in walker.images(folder):
            key = path.relative_to(folder).with_suffix("")
            if key in out:
                walker.skipped.append((path, f"another {role} has the same stem: {out[key].name}"))
            else:
                out[key] = path
        return out

    images, masks = by_key(image_dir, "image"), by_key(mask_dir, "mask")
    if not images:
        raise DatasetError(f"{root}: no images found in '{IMAGES_DIR}' "
                           f"(supported extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    for key in sorted(set(masks) - set(images)):
        walker.skipped.append((masks[key], "mask has no image with the same stem"))
    keys = []
    for key in sorted(images):
        if key in masks:
            keys.append(key)
        else:
            walker.skipped.append((images[key], "image has no mask with the same stem"))

    checked = {}
    if validate:
        files = [images[k] for k in keys] + [masks[k] for k in keys]
        checked = _validate(files, max_pixels=max_pixels, progress=progress, known=known)
    groups = _load_manifest_groups(root)
    pairs: list[tuple[Path, Path]] = []
    pair_groups: dict[Path, str] = {}
    for key in keys:
        image, mask = images[key], masks[key]
        image_result, mask_result = checked.get(image), checked.get(mask)
        if isinstance(image_result, str):
            walker.skipped.append((image, image_result))
            continue
        if isinstance(mask_result, str):
            walker.skipped.append((image, f"its mask is unreadable: {mask_result}"))
            continue
        if image_result is not None and image_result != mask_result:
            walker.skipped.append((image, "mask is {}×{} but image is {}×{}".format(
                *mask_result, *image_result)))
            continue
        pairs.append((image, mask))
        pair_groups[image] = groups.get(image.stem, image.stem)
    if not pairs:
        raise DatasetError(_nothing_readable(root, walker.skipped))
    return MaskedDataset(root, pairs, _sorted_skipped(walker.skipped), pair_groups)


def _sorted_skipped(skipped: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    return sorted(dict.fromkeys(skipped), key=lambda item: str(item[0]))


def _nothing_readable(root: Path, skipped: list[tuple[Path, str]]) -> str:
    examples = "; ".join(reason for _, reason in skipped[:3])
    return f"{root}: no readable images ({len(skipped)} skipped, e.g. {examples})"


def discover(
    root: str | Path,
    *,
    validate: bool = True,
    max_pixels: int | None = None,
    progress: Progress = null_progress,
) -> DetectionDataset | MaskedDataset:
    """Recognise the layout of the data set folder ``root`` and list its images.

    Args:
        root: the data set folder.
        validate: check every image cheaply (header, pixel limit, ``verify()``, JPEGs at
            1/8 scale) and move failures to ``skipped``; without it files are only listed.
        max_pixels: pixel limit per image (default ``config.MAX_IMAGE_PIXELS``).
        progress: receives (done, total, "Checking images") while validating.

    The result is kept in the folder's index (``detectlab.data.index``): a re-open of the
    unchanged folder reads it back; a file added, removed or touched re-indexes the folder,
    probing only new or changed files.

    Returns:
        A ``DetectionDataset`` (real+generators, binary, binary+generators layouts) or a
        ``MaskedDataset`` (images+masks). Samples are sorted by path. Split groups come
        from ``ROOT/manifest.json`` ``{"groups": {stem: group}}`` where present, otherwise
        the file stem, so real/x.png and gen/x.png derived from one source share a split.

    Raises:
        DatasetError: the folder is missing, not a folder, in no accepted layout, or has
            no readable image; the message says what was found and what is accepted.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a folder.\n{_accepted_layouts()}")
    limit = config.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    listing = index.scan(root, keep_stats=validate)   # per-file stats serve only the probes
    variant = f"validated@{limit}" if validate else "listed"
    record, stored_probes = index.load(listing, variant)
    if record is not None:
        try:
            return _from_record(root, record)
        except (KeyError, TypeError, ValueError, IndexError):  # a damaged index file: discover again
            pass
    known = _known_probes(root, listing, stored_probes) if validate else None
    walker = _Walker(root)
    names = {d.name for d in _Walker(root).subdirs(root)}
    kwargs = dict(validate=validate, max_pixels=limit, progress=progress, known=known)
    if IMAGES_DIR in names and MASKS_DIR in names:
        ds = _discover_masked(walker, root, **kwargs)
    else:
        ds = _discover_detection(walker, root, **kwargs)
    index.store(listing, variant, _to_record(root, ds), _probes_to_store(root, listing, known))
    return ds


# --------------------------------------------------------------------------- the index's records


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _to_record(root: Path, ds: DetectionDataset | MaskedDataset) -> dict:
    """``ds`` as plain JSON values, folders relative to ``root`` (as the caller named it).

    Samples are stored in columns (folder number, file name, label, generator number; a group only where a
    manifest gave one that is not the stem): reading 100k of them back parses a file name each and a few small
    integers, not 100k row lists, and joins each path as a string, not as a ``Path``.
    """
    skipped = [[_rel(root, p), reason] for p, reason in ds.skipped]
    if isinstance(ds, MaskedDataset):
        refs: dict[Path, int] = {}

        def ref(path: Path) -> list:
            return [refs.setdefault(path.parent, len(refs)), path.name]

        rows = [[*ref(i), *ref(m), ds.groups.get(i, i.stem)] for i, m in ds.pairs]
        return {"kind": "masked", "layout": ds.layout, "skipped": skipped, "pairs": rows,
                "folders": [_rel(root, f) for f in refs]}
    generators = sorted({s.generator for s in ds.samples})
    gen_index = {g: k for k, g in enumerate(generators)}
    folders: dict[str, int] = {}
    folder_of, names = [], []
    for s in ds.samples:
        folder, _, name = s.file.rpartition(os.sep)
        folder_of.append(folders.setdefault(folder, len(folders)))
        names.append(name)
    return {"kind": "detection", "layout": ds.layout, "skipped": skipped,
            "folders": [_rel(root, Path(f)) for f in folders], "generators": generators,
            "folder": folder_of, "name": names, "label": [s.label for s in ds.samples],
            "generator": [gen_index[s.generator] for s in ds.samples],
            "groups": {str(k): s._group for k, s in enumerate(ds.samples) if s._group is not None}}


def _from_record(root: Path, record: dict) -> DetectionDataset | MaskedDataset:
    folders = [root / f for f in record["folders"]]
    skipped = [(root / rel, reason) for rel, reason in record["skipped"]]
    if record["kind"] == "masked":
        pairs, groups = [], {}
        for fi, ni, fm, nm, group in record["pairs"]:
            image = _join(folders[fi], ni)
            pairs.append((image, _join(folders[fm], nm)))
            groups[image] = group
        return MaskedDataset(root, pairs, skipped, groups, record["layout"])
    generators, columns = record["generators"], (record["folder"], record["name"], record["label"], record["generator"])
    if len({len(c) for c in columns}) != 1:
        raise ValueError("index columns of unequal length")
    # strings, not Paths: a folder's string and a plain name join to a normal path (re-open 100k: 0.4 s less)
    dirs = [os.path.join(f, "") for f in folders]
    samples = [Sample._listed(dirs[f] + name, int(label), generators[g], None) for f, name, label, g in zip(*columns)]
    for k, group in record["groups"].items():
        s = samples[int(k)]
        samples[int(k)] = Sample._listed(s.file, s.label, s.generator, str(group))
    return DetectionDataset(root, record["layout"], samples, skipped)


def _known_probes(root: Path, listing: index.Listing, stored: dict) -> dict[Path, str | tuple[int, int]]:
    """The stored probe results of files whose size and modification time are what they were."""
    known: dict[Path, str | tuple[int, int]] = {}
    for rel, item in stored.items():
        if isinstance(item, list) and len(item) == 3 and listing.stats.get(rel) == (item[0], item[1]):
            result = item[2]
            known[root / rel] = tuple(result) if isinstance(result, list) else str(result)
    return known


def _probes_to_store(root: Path, listing: index.Listing, known: dict | None) -> dict | None:
    if known is None:
        return None
    out = {}
    for path, result in known.items():
        rel = _rel(root, path)
        if rel in listing.stats:
            out[rel] = [*listing.stats[rel], list(result) if isinstance(result, tuple) else result]
    return out
