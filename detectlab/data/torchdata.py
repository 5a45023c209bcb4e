"""PyTorch datasets over discovered samples: decoded RGB tensors in [0, 1], fixed size.

Normalisation (ImageNet mean/std, CLIP's) belongs to the model wrapper, not here, so
attacks, degradations and spectra all see the same [0, 1] images (STYLE.md).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from detectlab.data.decode import load_fitted, load_mask, load_tensor, resize_center_crop
from detectlab.data.discover import Sample
from detectlab.errors import DetectLabError

__all__ = ["FittedBatch", "FittedFiles", "ImageFolderDataset", "MaskedImageDataset", "fitted_batches",
           "loader_workers"]

Transform = Callable[[torch.Tensor], torch.Tensor]
PairTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class ImageFolderDataset(Dataset):
    """Real/fake images as (image [3, size, size] in [0, 1], label float tensor, index).

    Each image is decoded with ``load_image`` (EXIF orientation, any mode to RGB), its
    shorter side resized to ``size`` and center-cropped (``resize_center_crop``); then
    ``transform`` (tensor -> tensor, e.g. flips, blur or JPEG augmentation) is applied.
    The index lets training code map a prediction back to its ``Sample``.

    A file that fails to decode raises ``ImageDecodeError`` naming it; ``discover`` with
    ``validate=True`` has normally removed such files already.

    Args:
        samples: the samples to serve, e.g. one split of ``split``.
        size: output height and width.
        transform: optional augmentation applied to the [3, size, size] tensor.
        max_pixels: pixel limit per image (default ``config.MAX_IMAGE_PIXELS``).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: int,
        transform: Transform | None = None,
        *,
        max_pixels: int | None = None,
    ) -> None:
        self.samples = list(samples)
        self.size = int(size)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        sample = self.samples[index]
        image = load_tensor(sample.path, self.size, max_pixels=self.max_pixels)
        if self.transform is not None:
            image = self.transform(image)
        return image, torch.tensor(float(sample.label)), index

    @property
    def labels(self) -> torch.Tensor:
        """Labels of all samples (0 real, 1 fake) as a long tensor, without decoding."""
        return torch.tensor([s.label for s in self.samples], dtype=torch.long)

    def sample_weights(self) -> torch.Tensor:
        """Per-sample weights 1 / (count of its class), for ``WeightedRandomSampler``.

        Class-weighted sampling, as in [Wimmer 2024]'s classifier training, so an unbalanced
        real/fake data set is drawn balanced.
        """
        counts = Counter(s.label for s in self.samples)
        return torch.tensor([1.0 / counts[s.label] for s in self.samples], dtype=torch.double)


class MaskedImageDataset(Dataset):
    """Partially manipulated images as (image [3, s, s], mask [1, s, s] float in {0, 1}, index).

    The same resize and center crop is applied to image and mask (the mask with nearest
    neighbour, so it stays binary). ``transform`` receives and returns both, so that
    geometric augmentations stay aligned.

    Args:
        pairs: (image path, mask path) pairs, e.g. ``MaskedDataset.pairs`` or one split.
        size: output height and width.
        transform: optional (image, mask) -> (image, mask) augmentation.
        max_pixels: pixel limit per image (default ``config.MAX_IMAGE_PIXELS``).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Path, Path]],
        size: int,
        transform: PairTransform | None = None,
        *,
        max_pixels: int | None = None,
    ) -> None:
        self.pairs = list(pairs)
        self.size = int(size)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image_path, mask_path = self.pairs[index]
        image = load_tensor(image_path, max_pixels=self.max_pixels)
        mask = load_mask(mask_path, max_pixels=self.max_pixels).unsqueeze(0).float()
        if mask.shape[-2:] != image.shape[-2:]:
            # A mask drawn at another resolution still marks the same region.
            mask = resize_center_crop(mask, tuple(image.shape[-2:]), mode="nearest")
        image = resize_center_crop(image, self.size)
        mask = resize_center_crop(mask, self.size, mode="nearest")
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image, mask, index


# --------------------------------------------------------------------------- streaming many files


class FittedFiles(Dataset):
    """Files decoded as Detect decodes them (``load_fitted`` at ``size``): item ``i`` is
    ``(i, image [3, size, size] or None, (width, height) in the file, error text)``.

    An unreadable file is an item with its reason, never an exception, so one bad file among 100k
    costs one row of the result, not the run.
    """

    def __init__(self, files: Sequence[str | Path], size: int | tuple[int, int] | None,
                 max_pixels: int | None = None) -> None:
        # one NumPy array of names, not a list of objects: a forked worker reading a list bumps each item's
        # reference count and so copies the pages they sit on; an array item is made fresh on each read
        # (file-like objects, e.g. an in-memory re-save, stay a list: there are no names to pack)
        # (names as bytes, one per character: a str array takes four, ~400 bytes a 100-character path)
        names = getattr(files, "names", None)   # a PathList: its strings, without making a Path of each
        if names is None and files and all(isinstance(f, (str, os.PathLike)) for f in files):
            names = [os.fspath(f) for f in files]
        self.files = np.array([os.fsencode(f) for f in names], dtype=bytes) if names else list(files)
        self.size = size
        self.max_pixels = max_pixels
        self._served = 0   # items decoded by this copy (each worker process has its own)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        self._served += 1
        if self._served % TRIM_ITEMS == 0 and torch.utils.data.get_worker_info() is not None:
            release_free_memory()   # a decoding worker's own heap: the main process trims its own in fitted_batches
        try:
            f = self.files[i]
            x, wh = load_fitted(os.fsdecode(f) if isinstance(f, np.bytes_) else f, self.size,
                                max_pixels=self.max_pixels)
            return i, x, wh, ""
        except DetectLabError as exc:
            return i, None, (0, 0), str(exc)


@dataclass
class FittedBatch:
    """Consecutive files ``positions`` of a list: the readable ones stacked in ``images`` (row k is file
    ``ok[k]``, of ``sizes[k]`` (width, height) in the file), the others in ``errors`` with the reason."""

    positions: list[int]
    images: torch.Tensor | None
    ok: list[int] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def _collate(items) -> FittedBatch:
    ok = [(i, x, wh) for i, x, wh, err in items if x is not None]
    return FittedBatch([i for i, *_ in items], torch.stack([x for _, x, _ in ok]) if ok else None,
                       [i for i, _, _ in ok], [wh for _, _, wh in ok],
                       {i: err for i, x, _, err in items if x is None})


def _fresh_worker(_: int) -> None:
    # A worker is forked from a process whose other threads may hold the decode budget's lock at that
    # instant; a fresh budget (same limit) keeps the worker from waiting on a lock nobody will release.
    from detectlab.data import decode

    decode.DECODE_BUDGET = decode.DecodeBudget(decode.DECODE_BUDGET.total)


def loader_workers(n_files: int, batch_size: int) -> int:
    """Decoding worker processes for ``n_files``: none for a handful (starting workers costs more than
    decoding a few files), else one per core but one (left to the model), at least 1 and at most 4
    (``DETECTLAB_LOADER_WORKERS`` overrides)."""
    import multiprocessing

    if multiprocessing.current_process().daemon:  # a daemonic process may not start children
        return 0
    if "DETECTLAB_LOADER_WORKERS" in os.environ:
        return max(0, int(os.environ["DETECTLAB_LOADER_WORKERS"]))
    if n_files < 2 * batch_size:
        return 0
    return max(1, min(4, (os.cpu_count() or 1) - 1))


_THREADS_LOCK = threading.Lock()
_THREADS_USERS = [0, 0]   # streams running, torch's thread count before the first


@contextmanager
def threads_beside(workers: int) -> Iterator[None]:
    """Where OpenMP threads busy-wait (``detectlab.OMP_PASSIVE`` false: torch was imported before DetectLab
    set ``OMP_WAIT_POLICY=PASSIVE``), limit torch's intra-op threads in this process to the cores the
    ``workers`` leave free, while a stream runs. Measured on 2 busy cores: a cheap detector's 600 files took
    3.4 s with 2 spinning threads beside 2 decoding workers, 0.94 s with 1 thread beside 1. With passive
    threads no limit is needed, and a ResNet-18 keeps both cores (640 files: 5.0 s with 2 threads, 8.1 s with
    1). Counted, so overlapping streams (two app requests) restore the original count once, when the last
    one ends."""
    import detectlab

    if not workers or detectlab.OMP_PASSIVE:  # sleeping threads leave the workers their cores: keep them all
        yield
        return
    with _THREADS_LOCK:
        if _THREADS_USERS[0] == 0:
            _THREADS_USERS[1] = torch.get_num_threads()
            torch.set_num_threads(max(1, min(_THREADS_USERS[1], (os.cpu_count() or 1) - workers)))
        _THREADS_USERS[0] += 1
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _THREADS_USERS[0] -= 1
            if _THREADS_USERS[0] == 0:
                torch.set_num_threads(_THREADS_USERS[1])


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere: musl, macOS)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


#: Batches between two hand-backs of freed heap memory in a long stream (``release_free_memory``).
TRIM_EVERY = 8
#: Files a decoding worker decodes between two hand-backs of its own freed heap memory. Without them a worker
#: of a 100k-file predict held 263-396 MB of private memory at its peak; with one every 256 files, 85 MB.
TRIM_ITEMS = 256


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim(0)``; a no-op elsewhere).

    A stream allocates and frees the same few-MB tensors for every batch; glibc raises its mmap threshold
    after the first large free, so later ones come from the heap, where a stream sometimes kept them:
    the mean spectrum of 12,500 files grew the process by ~400 MB in 2 of 6 runs (flat in 8 of 8 with a trim
    every 8 batches). Fixing the threshold instead (``mallopt``) cost a ResNet-18 training step 35 %.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def fitted_batches(files: Sequence[str | Path], size: int | tuple[int, int] | None, batch_size: int = 32,
                   workers: int | None = None, pin_memory: bool = False,
                   max_pixels: int | None = None) -> Iterator[FittedBatch]:
    """``FittedBatch``es of ``files`` in order, decoded by a ``torch.utils.data.DataLoader``'s worker
    processes while the caller works on the previous batch.

    Memory holds a few batches whatever the number of files (workers x 2 prefetched): nothing keeps a
    decoded image once its batch is dropped. ``workers`` defaults to ``loader_workers``.
    """
    workers = loader_workers(len(files), batch_size) if workers is None else workers
    kw = dict(num_workers=workers, worker_init_fn=_fresh_worker, prefetch_factor=2) if workers else {}
    loader = DataLoader(FittedFiles(files, size, max_pixels), batch_size=batch_size, shuffle=False,
                        collate_fn=_collate, pin_memory=pin_memory, **kw)
    with threads_beside(workers):
        # The workers are forked when the iterator starts. Objects frozen out of the collector are never
        # traversed by a worker's garbage collection, which would otherwise touch (and so copy) every page of
        # this process's heap: a 100k-file listing's worth.
        gc.freeze()
        try:
            batches = iter(loader)
        finally:
            gc.unfreeze()
        for k, batch in enumerate(batches, 1):
            yield batch
            if k % TRIM_EVERY == 0:
                release_free_memory()
