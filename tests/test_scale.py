"""Large folders: the cached folder index, discovery that opens no file, streaming scoring through a
DataLoader with the old per-file path's numbers, flat memory, and the shared frozen-feature cache
(``detectlab data cache``, the Data tab's row). The 100k-file numbers are ``bench/bench_scale.py``'s."""

from __future__ import annotations

import importlib
import os
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detectlab.data import discover, featcache, index

discover_mod = importlib.import_module("detectlab.data.discover")  # the module: the package exports the function

OLD = time.time() - 3600  # an hour ago: older than the index's "racy" window, so a listing is stored


def _age(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        os.utime(p, (OLD, OLD))


def _photo(seed: int, size=(40, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def make_set(root: Path, n_per_class: int = 6, generators=("gan",), bad: bool = False) -> Path:
    for c, cls in enumerate(("real", *generators)):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            _photo(100 * c + i).save(root / cls / f"{i:03d}.png")
    if bad:
        (root / "real" / "zz_cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    _age(root)
    return root


# --------------------------------------------------------------------------- the folder index

def test_a_reopen_reads_the_index_and_a_changed_folder_is_reindexed(tmp_path, monkeypatch):
    root = make_set(tmp_path / "ds")
    first = discover(root, validate=False)
    assert len(first) == 12 and index._file(root).is_file()
    walks = []
    real_detection = discover_mod._discover_detection
    monkeypatch.setattr(discover_mod, "_discover_detection", lambda *a, **k: walks.append(1) or real_detection(*a, **k))
    again = discover(root, validate=False)
    assert walks == [] and [s.path for s in again.samples] == [s.path for s in first.samples]  # hit: no discovery
    assert [(s.label, s.generator, s.group) for s in again.samples] == [(s.label, s.generator, s.group)
                                                                         for s in first.samples]
    # added, removed, touched: each is a new listing, discovered again, with what changed
    _photo(99).save(root / "gan" / "new.png")
    _age(root)
    assert len(discover(root, validate=False)) == 13 and walks == [1]
    (root / "real" / "000.png").unlink()
    _age(root)
    assert len(discover(root, validate=False)) == 12 and walks == [1, 1]
    os.utime(root / "real" / "001.png", (OLD + 5, OLD + 5))
    discover(root, validate=False)
    assert walks == [1, 1, 1]
    discover(root, validate=False)
    assert walks == [1, 1, 1]  # unchanged since: a hit again


def test_a_file_changed_just_now_is_not_trusted_to_the_index(tmp_path, monkeypatch):
    """A file written within the timestamp granularity could change again with the same (size, mtime):
    such a listing is not stored (git's racy rule), so a re-open discovers again."""
    root = make_set(tmp_path / "ds")
    _photo(7).save(root / "real" / "fresh.png")  # mtime: now
    discover(root, validate=False)
    assert not index._file(root).exists()


def test_discovery_opens_no_file(tmp_path, monkeypatch):
    root = make_set(tmp_path / "ds", bad=True)

    def refuse(*a, **k):
        raise AssertionError("discovery opened an image")

    monkeypatch.setattr(Image, "open", refuse)
    monkeypatch.setattr(discover_mod, "probe_image", refuse)
    ds = discover(root, validate=False)
    assert ds.counts() == {"real": 7, "gan": 6}  # the bad file is listed; the step reading it reports it
    from detectlab.detect.predict import expand_inputs

    assert len(expand_inputs([root])) == 13


def test_validation_probes_each_file_once_and_only_new_ones_after_a_change(tmp_path, monkeypatch):
    root = make_set(tmp_path / "ds", bad=True)
    probed = []
    real_probe = discover_mod.probe_image
    monkeypatch.setattr(discover_mod, "probe_image", lambda p, **k: probed.append(Path(p).name) or real_probe(p, **k))
    ds = discover(root)
    assert len(probed) == 13 and "zz_cut.png" in {p.name for p, _ in ds.skipped} and len(ds) == 12
    probed.clear()
    assert [s.path for s in discover(root).samples] == [s.path for s in ds.samples] and probed == []
    _photo(5).save(root / "gan" / "later.png")
    _age(root)
    ds2 = discover(root)
    assert probed == ["later.png"] and len(ds2) == 13 and "zz_cut.png" in {p.name for p, _ in ds2.skipped}


def test_a_damaged_index_file_is_a_miss_not_a_crash(tmp_path):
    root = make_set(tmp_path / "ds")
    discover(root, validate=False)
    index._file(root).write_text('{"version": 1, "key": "x", "results": ')
    assert len(discover(root, validate=False)) == 12


# --------------------------------------------------------------------------- streaming scoring

def _old_path(detector, files, batch_size=32):
    """The per-file loop predict_files ran before the DataLoader: decode, batch the readable ones, score."""
    from detectlab.data.decode import load_fitted
    from detectlab.errors import DetectLabError

    out, batch, where = {}, [], []

    def flush():
        if batch:
            for i, s in zip(where, torch.sigmoid(detector(torch.stack(batch)).reshape(-1)).tolist()):
                out[i] = s
            batch.clear()
            where.clear()

    for i, f in enumerate(files):
        try:
            batch.append(load_fitted(f, detector.preprocess.input_size)[0])
            where.append(i)
        except DetectLabError:
            out[i] = None
        if len(batch) == batch_size:
            flush()
    flush()
    return [out[i] for i in range(len(files))]


@pytest.mark.parametrize("name", ["spectrum-durrall", "cnn-resnet18"])
def test_streaming_predict_equals_the_old_per_file_path(name, demo_root, tmp_path):
    from detectlab.catalog import load_detector
    from detectlab.detect.predict import predict_files

    files = sorted((demo_root / "real").glob("*.png"))[:40] + sorted((demo_root / "transposed-conv").glob("*.png"))[:30]
    bad = tmp_path / "cut.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    files.insert(33, bad)
    from detectlab.data.torchdata import threads_beside

    det = load_detector(name).detector
    # the old path at the intra-op thread count the stream gives the model beside 2 workers: float32 reductions
    # in another order move spectrum-durrall's P(fake) by up to ~2e-6 (1 thread vs 2), which is not the stream's
    with torch.no_grad(), threads_beside(2):
        old = _old_path(det, files)
    preds = predict_files(det, files, workers=2)  # worker processes, batches of 32 straddling the bad file
    assert [p.file for p in preds] == [str(f) for f in files]
    assert preds[33].decision == "error" and "cut.png" in preds[33].error and preds[33].p_fake is None
    got = np.array([p.p_fake for k, p in enumerate(preds) if k != 33])
    want = np.array([s for k, s in enumerate(old) if k != 33])
    np.testing.assert_allclose(got, want, atol=1e-6)
    with threads_beside(2):
        inline = predict_files(det, files, workers=0)  # the same decoded in this process
    np.testing.assert_allclose([p.p_fake or 0 for p in inline], [p.p_fake or 0 for p in preds], atol=1e-6)


def test_streaming_keeps_a_few_batches_never_the_decoded_set(tmp_path, monkeypatch):
    """400 files through iter_predictions: at most 2 decoded batches alive at any time (the one scored and the
    one being collated), and each batch is at most batch_size images: memory does not grow with N."""
    from detectlab.catalog import load_detector
    from detectlab.data import torchdata
    from detectlab.detect.predict import iter_predictions

    src = tmp_path / "one.png"
    _photo(1, (64, 64)).save(src)
    files = []
    for i in range(400):
        f = tmp_path / "many" / f"{i:04d}.png"
        f.parent.mkdir(exist_ok=True)
        os.link(src, f)
        files.append(f)
    alive, peak, rows = set(), [0], []
    real_collate = torchdata._collate

    def tracked(items):
        batch = real_collate(items)
        key = id(batch.images)
        alive.add(key)
        weakref.finalize(batch.images, alive.discard, key)
        peak[0] = max(peak[0], len(alive))
        rows.append(batch.images.shape[0])
        return batch

    monkeypatch.setattr(torchdata, "_collate", tracked)
    det = load_detector("spectrum-durrall").detector
    n = 0
    for p in iter_predictions(det, files, batch_size=16, workers=0):
        n += p.p_fake is not None
    assert n == 400 and max(rows) == 16 and len(rows) == 25
    assert peak[0] <= 2, f"{peak[0]} decoded batches alive at once"


# --------------------------------------------------------------------------- the frozen-feature cache

def test_feature_cache_key_follows_the_files_and_size_and_clear_report(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    a = tmp_path / "a.png"
    _photo(3).save(a)
    k1 = featcache.key("resnet50|imagenet", [a], size=224)
    assert featcache.key("resnet50|imagenet", [a], size=224) == k1
    assert featcache.key("resnet50|imagenet", [a], size=128) != k1
    assert featcache.key("vit|clip", [a], size=224) != k1
    assert featcache.load(k1, 1) is None
    featcache.save(k1, torch.ones(1, 256))
    assert torch.equal(featcache.load(k1, 1), torch.ones(1, 256)) and featcache.load(k1, 2) is None
    os.utime(a, (OLD, OLD))  # the same name rewritten: another key
    assert featcache.key("resnet50|imagenet", [a], size=224) != k1
    nbytes, files = featcache.size()
    assert files == 1 and 1024 < nbytes < 4096  # 256 float32 and torch.save's framing
    legacy = tmp_path / "home" / "cache" / "experiments" / "features"
    legacy.mkdir(parents=True)
    (legacy / "old.pt").write_bytes(b"\0" * 5000)
    assert featcache.size() == (nbytes + 5000, 2)
    assert featcache.clear() == (nbytes + 5000, 2) and featcache.size() == (0, 0)


def test_data_cache_command_prints_the_size_and_clears(tmp_path, monkeypatch, capsys):
    from detectlab.cli import main

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    featcache.save("a" * 24, torch.zeros(1000, 250))  # 1,000,000 bytes of values
    assert main(["data", "cache"]) == 0
    out = capsys.readouterr().out
    assert "feature cache: 1.0 MB in 1 file in " in out and str(featcache.cache_dir()) in out
    assert main(["data", "cache", "--clear"]) == 0
    assert "cleared: 1.0 MB in 1 file deleted" in capsys.readouterr().out
    assert featcache.size() == (0, 0)
    assert main(["data", "cache"]) == 0 and "0.0 MB in 0 files" in capsys.readouterr().out


def test_experiments_features_land_in_the_shared_cache(tmp_path, monkeypatch):
    from detectlab.experiments.core import features_on_disk, load_set

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    data = load_set(make_set(tmp_path / "ds"))
    key = featcache.key("mean|test", [i.path for i in data.items], size=16)
    made = []

    def make():
        made.append(1)
        return lambda x: x.mean(dim=(2, 3))

    values, cached = features_on_disk(key, data.items, 16, make, "features")
    assert values.shape == (12, 3) and not cached and featcache.path_for(key).is_file()
    again, cached = features_on_disk(key, data.items, 16, make, "features")
    assert cached and made == [1] and torch.equal(again, values)


def test_predict_and_eval_take_device(tmp_path, demo_root, capsys):
    from detectlab.cli import main

    files = sorted((demo_root / "real").glob("*.png"))[:3]
    assert main(["predict", "spectrum-durrall", *map(str, files), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.count("\n") == 3
    if not torch.cuda.is_available():
        assert main(["predict", "spectrum-durrall", str(files[0]), "--device", "cuda"]) != 0
        assert "PyTorch sees no CUDA GPU" in capsys.readouterr().err
        assert main(["eval", "spectrum-durrall", str(demo_root), "--split", "test", "--device", "cuda"]) != 0
        assert "PyTorch sees no CUDA GPU" in capsys.readouterr().err
    assert main(["predict", "spectrum-durrall", str(files[0]), "--device", "tpu"]) != 0
    assert "unknown device 'tpu'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the Data tab

def test_data_tab_shows_the_feature_cache_and_clear_empties_it(page):
    from playwright.sync_api import expect

    featcache.save("b" * 24, torch.zeros(2000, 250))  # 2 MB in the app's (this session's) home
    page.reload()
    page.get_by_role("tab", name="Data").click()
    row = page.locator("#data-featcache")
    expect(row).to_contain_text("Feature cache:", timeout=60_000)
    expect(row).not_to_contain_text("0.0 MB in 0 files")
    page.locator("#data-featcache-clear").click()
    expect(row).to_contain_text("cleared", timeout=60_000)
    expect(row).to_contain_text("0.0 MB in 0 files")
    assert featcache.size() == (0, 0)


def test_a_split_is_chosen_from_the_files_training_reads_and_all_is_only_listed(tmp_path):
    """A folder with an unreadable file: its test split is ``detectlab train``'s (validated) test split, so no
    training image is scored as test; ``all`` still reports the unreadable file as a per-file error."""
    from detectlab.data import split
    from detectlab.detect.predict import evaluate_dataset, score_folder
    from detectlab.models import create_detector

    root = make_set(tmp_path / "ds", n_per_class=10, bad=True)
    trained_on = split(discover(root).samples)          # what training uses: validated, the cut file left out
    det = create_detector("spectrum:durrall")
    preds, _, sel = evaluate_dataset(det, root, split_name="test")
    assert sorted(p.file for p in preds) == sorted(str(s.path) for s in trained_on["test"])
    assert sel.n_folder == 20                            # the validated folder: the cut file is not a sample
    every, _, sel_all = score_folder(det, root, split_name="all")
    assert sel_all.n_folder == 21 and [p.decision for p in every].count("error") == 1


def test_a_long_stream_hands_freed_heap_memory_back_every_few_batches(tmp_path, monkeypatch):
    from detectlab.data import torchdata

    files = [p for p in sorted(make_set(tmp_path / "ds", n_per_class=10).rglob("*.png"))]
    calls = []
    monkeypatch.setattr(torchdata, "release_free_memory", lambda: calls.append(1))
    batches = list(torchdata.fitted_batches(files, 16, batch_size=1, workers=0))
    assert len(batches) == 20 and len(calls) == 20 // torchdata.TRIM_EVERY
    monkeypatch.undo()
    torchdata.release_free_memory()  # the real one: glibc's malloc_trim here, a no-op where there is none


def test_workers_get_names_packed_and_file_objects_as_they_are(tmp_path):
    import io

    from detectlab.data.torchdata import FittedFiles

    files = sorted(make_set(tmp_path / "ds", n_per_class=2).rglob("*.png"))
    packed = FittedFiles(files, 16)
    assert isinstance(packed.files, np.ndarray) and packed.files.dtype.kind == "S"   # a byte a character
    buf = io.BytesIO(files[0].read_bytes())
    as_is = FittedFiles([buf], 16)
    i, x, wh, err = as_is[0]
    assert as_is.files[0] is buf and err == "" and x.shape == (3, 16, 16) and wh == (40, 32)
    assert torch.equal(packed[0][1], x)


def test_a_listed_sample_is_one_string_and_behaves_as_the_path_it_names(tmp_path):
    import pickle

    from detectlab.data import PathList, Sample

    s = Sample(tmp_path / "real" / "a.b.png", 0, "real")
    assert s.path == tmp_path / "real" / "a.b.png" and s.file == str(s.path) and s.group == "a.b"
    assert Sample(str(tmp_path / "real//a.b.png"), 0, "real") == s   # a string is normalised as a Path is
    assert Sample(s.path, 0, "real", "a.b") == s and hash(Sample(s.path, 0, "real", "a.b")) == hash(s)
    assert Sample(s.path, 0, "real", "src7").group == "src7" and Sample(s.path, 0, "real", "src7") != s
    assert pickle.loads(pickle.dumps(s)) == s and {s: 1}[Sample(s.path, 0, "real")] == 1
    with pytest.raises(AttributeError, match="immutable"):
        s.label = 1
    files = PathList([str(tmp_path / "x.png"), str(tmp_path / "y.png")])
    assert files[1] == tmp_path / "y.png" and list(files[:1]) == [tmp_path / "x.png"] and len(files) == 2


def test_a_reopened_listing_costs_a_few_hundred_bytes_a_file(tmp_path):
    """What a 100k-image fingerprint's peak grew by was the listing: 100k ``Path`` objects, the parsed index and
    the folder's directory entries (~0.7 KB a file at the peak). Measured here on 20k files."""
    import tracemalloc

    root = tmp_path / "big"
    for k, name in enumerate(("real", "gan")):
        (root / name).mkdir(parents=True)
        for i in range(10_000):
            (root / name / f"{k}{i:05d}.png").write_bytes(b"x")
    _age(root)
    assert len(discover(root, validate=False)) == 20_000   # the first open writes the index
    tracemalloc.start()
    try:
        ds = discover(root, validate=False)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ds) == 20_000 and ds.samples[0].path == root / "gan" / "100000.png"
    # measured: ~200 bytes a file held, ~250 at the peak (were ~420 and ~720 with a Path a file, the index
    # parsed as row lists and the listing's directory entries held to be sorted)
    assert held / 20_000 < 300 and peak / 20_000 < 400, (held / 20_000, peak / 20_000)


def test_expanded_folders_are_strings_in_the_order_paths_sort(tmp_path):
    """``expand_inputs`` keeps 100k names as strings, ordered as ``Path``s order (part by part: "a/b" comes
    before "a-c/x", which a plain string sort would put first)."""
    from detectlab.data import PathList
    from detectlab.detect.predict import expand_inputs

    for rel in ("a/b.png", "a-c/x.png", "a/z/y.png", "b.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel)
    files = expand_inputs([tmp_path])
    assert isinstance(files, PathList) and all(isinstance(n, str) for n in files.names)
    assert list(files) == sorted(tmp_path.rglob("*.png"))
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/b.png", "a/z/y.png", "a-c/x.png", "b.png"]
