"""Hostile files, part two (issue 23, items 6, 9, 10, 11): what a zip may hold and say, one demo
derivation at a time, a server that stops promptly and leaves nothing behind, bounded outputs and an
honest exit code from ``detectlab predict``.

- a ``manifest.json`` nesting 100,000 levels gets DetectLab's one-line message (not "Unexpected
  error: RecursionError"), the zip is not left imported, and the server keeps serving;
- zip messages name no server path and carry no HTML entities (``&#x27;``);
- a file named ``.png`` that is no image is never stored, however big;
- two ``detectlab demo materialize`` runs (and the app's first start) take one lock: a second
  caller says it waits, and waits; nothing is written meanwhile, and the folders end complete;
- a server stopped while it derives the demo exits within seconds, cleanly, and removes its
  uploads and outputs; output folders are kept by count as well as by age;
- ``detectlab predict`` exits non-zero when any input was refused and says how many.

Self-contained: the helpers below repeat what ``test_bad_inputs`` has, so the lead can merge this
file into it as it is.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DETECTOR = "spectrum-durrall"   # the cheapest detector
_ENTITY = re.compile(r"&(?:#x?[0-9a-fA-F]+|[a-zA-Z]+);")
_DEEP = 100_000


# ---------------------------------------------------------------------------- helpers
def photo(w: int = 48, h: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 5.0)], -1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _zip(path: Path, entries) -> Path:
    import warnings

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are meant
        for name, data in entries:
            z.writestr(name, data)
    return path


def _deep_manifest() -> bytes:
    return b"[" * _DEEP + b"]" * _DEEP


def _deep_zip(path: Path) -> Path:
    return _zip(path, [(f"{path.stem}/real/a.png", _png(photo(seed=1))),
                       (f"{path.stem}/gan/b.png", _png(photo(seed=2))),
                       (f"{path.stem}/manifest.json", _deep_manifest())])


def _datasets() -> list[str]:
    from detectlab import config

    return sorted(p.name for p in config.datasets_dir().iterdir())


def _no_server_paths(text: str, *more: Path) -> None:
    """No absolute path of this machine, no zip staging folder, no HTML entity."""
    import tempfile

    from detectlab import config

    for needle in (str(config.home()), str(config.datasets_dir()), str(config.REPO_ROOT), tempfile.gettempdir() + "/",
                   ".extract-", "Traceback", *map(str, more)):
        assert needle not in text, f"{needle!r} in: {text[:400]}"
    assert not _ENTITY.search(text), f"an HTML entity in: {text[:400]}"


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    c = Client(app_url, verbose=False)
    yield c
    c.close()


def _upload_zip(entry: str, path: Path, client) -> tuple[bool, str, list]:
    """Import ``path`` through the Data tab's handler or the API; (imported?, status, skipped rows)."""
    if entry == "tab":
        from detectlab.ui.data_tab import upload_zip

        status, rows, _, skipped, _ = upload_zip(str(path))
        return bool(rows), status, skipped
    from gradio_client import handle_file

    status, counts, _, skipped, _ = client.predict(handle_file(str(path)), api_name="/upload_zip")
    return bool(counts and counts.get("data")), status, (skipped or {}).get("data", [])


# ---------------------------------------------------------------------------- item 6: a deep manifest
@pytest.mark.parametrize("entry", ["tab", "api"])
def test_deep_manifest_zip_gets_one_line_and_is_not_kept_and_the_server_serves(entry, tmp_path, client):
    before = _datasets()
    ok, status, _ = _upload_zip(entry, _deep_zip(tmp_path / f"deep{entry}.zip"), client)
    assert not ok
    assert status.startswith("**Error:**") and "\n" not in status, status[:400]
    assert "manifest.json" in status and "nests more than" in status, status[:400]
    assert "Unexpected" not in status and "RecursionError" not in status, status[:400]
    _no_server_paths(status, tmp_path)
    assert _datasets() == before, "the refused zip stayed imported"
    # the server still answers, right after
    status, counts, *_ = client.predict("demo", api_name="/open_folder")
    assert {row[1] for row in counts["data"]} >= {"real", "pixel-shuffle"}, status


def test_a_stored_set_with_a_deep_manifest_says_so_when_opened(tmp_path, client):
    """A folder that got its manifest some other way: opening it is DetectLab's one line, each time."""
    from detectlab import config
    from detectlab.data.discover import discover
    from detectlab.errors import DatasetError
    from detectlab.ui.data_tab import open_folder

    root = config.datasets_dir() / "issue23-deep-manifest"
    shutil.rmtree(root, ignore_errors=True)
    try:
        for cls, seed in (("real", 3), ("gan", 4)):
            (root / cls).mkdir(parents=True)
            photo(seed=seed).save(root / cls / "x.png")
        (root / "manifest.json").write_bytes(_deep_manifest())
        with pytest.raises(DatasetError, match="nests more than"):
            discover(root)
        for _ in range(2):
            status, rows, *_ = open_folder(root.name)
            assert not rows and status.startswith("**Error:**") and "\n" not in status, status[:300]
            assert "issue23-deep-manifest/manifest.json" in status and "RecursionError" not in status
            _no_server_paths(status)
        status, counts, *_ = client.predict(root.name, api_name="/open_folder")
        assert "nests more than" in status and not counts["data"], status
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("manifest,phrase", [
    (b'{"groups": ' + b'{"a": ' * 40 + b'"g"' + b"}" * 41, "nests more than"),
    (b'{"groups": {"x": [1, 2]}}', "not text or a number"),
    (b'{"groups": ' + b"9" * 5000 + b"}", "cannot read the manifest"),   # over Python's digit limit
    (b"\xff\xfe not utf-8", "cannot read the manifest"),
])
def test_bad_manifests_are_one_line_dataset_errors(tmp_path, manifest, phrase):
    from detectlab.data.discover import discover
    from detectlab.errors import DatasetError

    for cls in ("real", "gan"):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        photo().save(tmp_path / "ds" / cls / "x.png")
    (tmp_path / "ds" / "manifest.json").write_bytes(manifest)
    with pytest.raises(DatasetError, match=phrase) as info:
        discover(tmp_path / "ds")
    assert "\n" not in str(info.value) and str(tmp_path) not in str(info.value), str(info.value)[:300]


# ---------------------------------------------------------------------------- item 11: zip messages
def _message_zips(d: Path) -> dict[str, Path]:
    img = _png(photo())
    return {
        "flat": _zip(d / "flat.zip", [("flat/a.png", img), ("flat/it's.png", img)]),   # no layout; quotes
        "traversal": _zip(d / "traversal.zip", [("../<b>&'evil'.png", img), ("real/a.png", img)]),
        "duplicate": _zip(d / "duplicate.zip", [("real/a.png", img), ("real/a.png", img), ("gan/b.png", img)]),
        "not a zip": (d / "notazip.zip", (d / "notazip.zip").write_bytes(b"plain text"))[0],
        "deep manifest": _deep_zip(d / "deepmsg.zip"),
    }


@pytest.mark.parametrize("case", ["flat", "traversal", "duplicate", "not a zip", "deep manifest"])
@pytest.mark.parametrize("entry", ["tab", "api"])
def test_zip_messages_name_no_server_path_and_carry_no_html_entities(entry, case, tmp_path, client):
    before = _datasets()
    ok, status, _ = _upload_zip(entry, _message_zips(tmp_path)[case], client)
    assert not ok and status.startswith("**Error:**"), status[:300]
    _no_server_paths(status, tmp_path)
    if case == "flat":
        assert "flat is not a data set: no 'real' folder" in status, status[:300]
    if case == "traversal":
        assert "'..'" in status and "‹b›&'evil'" in status, status[:300]
    if case == "duplicate":
        assert "real/a.png appears twice" in status, status[:300]
    assert _datasets() == before


# ---------------------------------------------------------------------------- item 11: non-images are not stored
def test_a_large_non_image_png_in_a_zip_is_never_stored(tmp_path, monkeypatch):
    """64 MB of text named .png, and a file with a PNG signature and garbage after: neither is stored."""
    from detectlab.data.overview import import_dataset_zip, stored_bytes

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    size = 64 << 20
    archive = tmp_path / "withjunk.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("withjunk/real/a.png", _png(photo(seed=5)))
        z.writestr("withjunk/gan/b.png", _png(photo(seed=6)))
        with z.open("withjunk/gan/huge.png", "w", force_zip64=True) as f:
            line = b"not an image, just text\n" * 4096
            for _ in range(size // len(line)):
                f.write(line)
        z.writestr("withjunk/real/fake_signature.png", b"\x89PNG\r\n\x1a\n" + os.urandom(2 << 20))
        z.writestr("withjunk/real/empty.jpg", b"")
    root = import_dataset_zip(archive)
    stored = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert stored == ["gan/b.png", "real/a.png"], stored
    assert stored_bytes() < 1 << 20, f"the data sets folder holds {stored_bytes():,} bytes"
    skipped: list[tuple[str, str]] = []  # what was not stored, and why: for the Data tab's table
    import_dataset_zip(archive, name="again", skipped=skipped)
    reasons = dict(skipped)
    assert set(reasons) == {"withjunk/gan/huge.png", "withjunk/real/fake_signature.png", "withjunk/real/empty.jpg"}
    assert "not an image" in reasons["withjunk/gan/huge.png"] and "not stored" in reasons["withjunk/gan/huge.png"]
    assert "empty" in reasons["withjunk/real/empty.jpg"]
    for reason in reasons.values():
        _no_server_paths(reason, tmp_path)


def test_the_data_tab_lists_what_a_zip_import_did_not_store(tmp_path, monkeypatch):
    from detectlab.ui.data_tab import upload_zip

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    archive = _zip(tmp_path / "listed.zip", [("listed/real/a.png", _png(photo(seed=7))),
                                              ("listed/gan/b.png", _png(photo(seed=8))),
                                              ("listed/gan/notes.png", b"just notes " * 1000),
                                              ("listed/real/page.html", b"<script>alert(1)</script>")])
    status, rows, _, skipped, _ = upload_zip(str(archive))
    assert rows and "2 images" in status and "2 files skipped" in status and "2 not images, not stored" in status
    shown = {row[0]: row[1] for row in skipped}
    assert "not stored" in shown["listed/gan/notes.png"] and "listed/real/page.html" in shown
    for text in (status, *map(str, skipped)):
        _no_server_paths(text, tmp_path)
    assert not (tmp_path / "home" / "datasets" / "listed" / "gan" / "notes.png").exists()


# ---------------------------------------------------------------------------- item 9: one demo lock
def _repo_copy(dest: Path, n_real: int) -> Path:
    """The package, app.py and the committed demo inputs (``n_real`` real crops, linked) in ``dest``:
    a demo of its own to derive, so the shared ``assets/demo`` is never touched."""
    from detectlab import config

    shutil.copytree(config.REPO_ROOT / "detectlab", dest / "detectlab",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    shutil.copy(config.REPO_ROOT / "app.py", dest / "app.py")
    shutil.copytree(config.GENERATOR_DIR, dest / "assets" / "generators")
    shutil.copytree(config.ASSETS / "fingerprints", dest / "assets" / "fingerprints")
    os.symlink(config.CHECKPOINT_DIR, dest / "checkpoints")
    real = dest / "assets" / "demo" / "real"
    real.mkdir(parents=True)
    for f in sorted((config.DEMO_DIR / "real").glob("*.png"))[:n_real]:
        os.symlink(f, real / f.name)
    return dest


def _env(copy: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIO_TEMP_DIR", "DETECTLAB_HOME")}
    env.update(DETECTLAB_HOME=str(home), PYTHONPATH=str(copy))
    return env


class _Lines:
    """A child's output, read in a thread, searchable while it runs."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.done = threading.Event()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
        self.done.set()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = self.done.is_set()
            m = re.search(pattern, self.text)
            if m or finished:  # the child closed its output: nothing more will come
                return m
            time.sleep(0.1)
        return None


def _hold_lock(lock: Path) -> subprocess.Popen:
    """Another process holding the demo lock, as a running `demo materialize` does (pid in the file)."""
    code = ("import fcntl, os, sys, time\n"
            "f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); f.truncate()\n"
            "f.write(str(os.getpid())); f.flush(); print('held', flush=True); sys.stdin.read()\n")
    lock.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_two_demo_derivations_at_once_take_turns_and_leave_complete_folders(tmp_path):
    """Two `detectlab demo materialize --force` while a third process holds the lock: both say they
    wait and write nothing; released, they take turns and every folder ends complete."""
    from detectlab.demo.build import GENERATORS

    n = 64
    copy = _repo_copy(tmp_path / "repo", n)
    demo = copy / "assets" / "demo"
    holder = _hold_lock(copy / "assets" / ".demo.lock")
    procs, errs = [], []
    try:
        for k in range(2):
            p = subprocess.Popen([sys.executable, "-m", "detectlab", "demo", "materialize", "--force"], cwd=copy,
                                 env=_env(copy, tmp_path / f"home{k}"), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            procs.append(p)
            errs.append(_Lines(p.stderr))
        for e in errs:
            m = e.wait_for(r"process (\d+) is deriving the demo images.*waiting for it to finish", timeout=180)
            assert m, e.text[-2000:]
            assert int(m.group(1)) == holder.pid
        time.sleep(1.0)
        written = sorted(p.name for p in demo.iterdir() if p.name != "real")
        assert written == [], f"written while another derivation held the lock: {written}"
        assert not (copy / "assets" / "demo-inpainted").exists()
    finally:
        holder.stdin.close()
        holder.wait(30)
    for p, e in zip(procs, errs):
        out = p.stdout.read()
        assert p.wait(300) == 0, e.text[-2000:]
        assert '"synthetic_per_generator": %d' % n in out, out[-1000:]
    for name in GENERATORS:
        assert len(list((demo / name).glob("*.png"))) == n, name
    for part in ("images", "masks"):
        assert len(list((copy / "assets" / "demo-inpainted" / part).glob("*.png"))) == n, part
    assert not list(demo.glob(".*.tmp")) and not list((copy / "assets").glob(".*.tmp"))
    check = subprocess.run([sys.executable, "-c", "from detectlab.demo.build import is_materialized as m; "
                            "print(m())"], cwd=copy, env=_env(copy, tmp_path / "home0"), capture_output=True,
                           text=True, timeout=120)
    assert check.stdout.strip() == "True", check.stderr[-1000:]


def test_the_first_start_waits_for_the_lock_says_so_and_can_be_stopped(tmp_path, monkeypatch):
    from detectlab.demo.build import demo_lock
    from detectlab.ui import first_run

    demo = tmp_path / "assets" / "demo"
    entered = threading.Event()

    def work(progress, cancel, on_wait):
        with demo_lock(demo, on_wait=on_wait, cancel=cancel):
            entered.set()

    holder = _hold_lock(tmp_path / "assets" / ".demo.lock")
    try:
        monkeypatch.setattr(first_run, "_current", None)
        prep = first_run.start_in_background(work)
        deadline = time.monotonic() + 10
        while "Waiting" not in prep.stage and time.monotonic() < deadline:
            time.sleep(0.05)
        banner, _ = first_run.tick()
        assert f"process {holder.pid} is deriving the demo images" in banner["value"], banner["value"]
        start = time.monotonic()
        assert first_run.stop(timeout=10)
        assert time.monotonic() - start < 3, "the waiting derivation did not stop promptly"
        assert prep.cancelled and prep.error is None and not entered.is_set()
        banner, timer = first_run.tick()
        assert banner["visible"] is False and timer.active is False
    finally:
        holder.stdin.close()
        holder.wait(30)


def test_the_lock_is_reentrant_in_one_thread_and_serializes_threads(tmp_path):
    from detectlab.demo.build import demo_lock
    from detectlab.progress import CancelToken, Cancelled

    demo = tmp_path / "demo"
    said: list[str] = []
    token = CancelToken()
    outcome: list[str] = []

    def other():
        try:
            with demo_lock(demo, on_wait=said.append, cancel=token):
                outcome.append("entered")
        except Cancelled:
            outcome.append("cancelled")

    with demo_lock(demo):
        with demo_lock(demo):  # materialize inside ensure_demo: no deadlock
            t = threading.Thread(target=other)
            t.start()
            time.sleep(0.6)
            assert said and "another thread" in said[0] and not outcome
            token.cancel()
            t.join(5)
    assert outcome == ["cancelled"]
    with demo_lock(demo):  # released: free again
        pass


# ---------------------------------------------------------------------------- item 10: shutdown and outputs
def test_clear_server_files_removes_this_servers_uploads_and_outputs(tmp_path, monkeypatch):
    from detectlab.ui import widgets

    home = tmp_path / "home"
    monkeypatch.setenv("DETECTLAB_HOME", str(home))
    uploads = home / "uploads"
    old = uploads / "earlier-server" / "kept.png"   # another live server's upload, from before this one started
    old.parent.mkdir(parents=True)
    old.write_bytes(b"x")
    since = time.time() + 5
    os.utime(old, (since - 600, since - 600))
    # this server's files, "after" it started: an upload, 40 empty multipart temp files, gallery PNGs
    mine = [uploads / "3f2a" / "photo.png", *(uploads / f"tmp{k:02d}" for k in range(40)),
            *(uploads / f"g{k}" / "pixel-shuffle.png" for k in range(3))]
    for f in mine:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"" if f.name.startswith("tmp") else b"png")
        os.utime(f, (since + 1, since + 1))
    outs = [widgets.output_path(f"heatmap{k}.png") for k in range(5)]
    for o in outs:
        o.write_bytes(b"png")
    foreign = widgets.outputs_dir() / "another-process"   # another live server's output: left
    foreign.mkdir()
    stale = widgets.outputs_dir() / "stale"               # older than the cache age: anyone's, gone
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    removed = widgets.clear_server_files(since=since)
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert left == ["uploads/earlier-server/kept.png"], left
    assert sorted(p.name for p in widgets.outputs_dir().iterdir()) == ["another-process"]
    assert removed == {"uploads": len(mine), "outputs": 6}, removed
    assert not any((uploads / d).exists() for d in ("3f2a", "g0")), "emptied folders stay"
    assert widgets.clear_server_files(since=since) == {"uploads": 0, "outputs": 0}  # twice is harmless


def test_clear_server_files_leaves_an_upload_folder_outside_the_home_alone(tmp_path, monkeypatch):
    from detectlab.ui import widgets

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    (shared / "someone-elses.txt").write_text("x")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(shared))
    widgets.clear_server_files(since=0)
    assert (shared / "someone-elses.txt").exists()


def test_outputs_beyond_the_count_limit_are_pruned(tmp_path, monkeypatch):
    from detectlab.ui import widgets

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DETECTLAB_MAX_OUTPUTS", "20")
    made = []
    for k in range(60):
        path = widgets.output_path(f"heatmap{k}.png")
        path.write_bytes(b"png")
        made.append(path)
        assert path.parent.is_dir()  # the folder just made is never the one pruned
    folders = sorted(widgets.outputs_dir().iterdir())
    assert len(folders) <= 20, len(folders)
    assert all(p.exists() for p in made[-10:]), "the newest outputs were pruned"
    monkeypatch.setenv("DETECTLAB_MAX_OUTPUTS", "3")  # below the floor: at least 16 are kept
    assert widgets.max_outputs() == widgets.MIN_OUTPUTS


def test_a_server_stopped_while_it_derives_the_demo_exits_promptly_and_leaves_nothing(tmp_path):
    """SIGTERM during the first-start derivation: exit within seconds (status 0, no abort), no
    uploads, no outputs, no half-made demo folder. Needs the shutdown hook in ``ui.app``."""
    from gradio_client import Client, handle_file

    from detectlab.demo.build import GENERATORS

    n = 1223  # all of them: the derivation runs for a minute or more, so the stop finds it running
    copy = _repo_copy(tmp_path / "repo", n)
    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0"], cwd=copy, env=_env(copy, home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = _Lines(proc.stdout)
    try:
        m = out.wait_for(r"running on (http://127\.0\.0\.1:\d+/)", timeout=240)
        assert m and "deriving the demo images in the background" in out.text, out.text[-2000:]
        client = Client(m.group(1), verbose=False)
        image = sorted((copy / "assets" / "demo" / "real").glob("*.png"))[0]
        for _ in range(2):
            info, _ = client.predict(handle_file(str(image)), DETECTOR, "gradcam", 0.5, api_name="/detect")
            assert 0.0 <= info["p_fake"] <= 1.0
        client.close()
        assert any(p.is_file() for p in (home / "uploads").rglob("*")), "no upload reached the cache"
        assert any((home / "outputs").iterdir()), "no output was written"
        assert not (copy / "assets" / "demo" / ".materialized.json").exists(), "the derivation ended before the stop"
    finally:
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        took = time.monotonic() - start
    print(f"\nserver deriving the demo stopped {took:.1f} s after SIGTERM (exit status {code})")
    assert code == 0, out.text[-3000:]
    assert took < 15, f"stopping took {took:.1f} s"
    assert [p for p in (home / "uploads").rglob("*") if p.is_file()] == [], "uploads left after the stop"
    assert list((home / "outputs").iterdir()) == [], "outputs left after the stop"
    demo = copy / "assets" / "demo"
    assert not list(demo.glob(".*.tmp")) and not list((copy / "assets").glob(".*.tmp")), "half-made folders left"
    for name in GENERATORS:  # a generator folder exists only complete
        assert not (demo / name).exists() or len(list((demo / name).glob("*.png"))) == n, name


# ---------------------------------------------------------------------------- item 11: predict's exit code
def test_predict_exits_non_zero_when_any_input_is_refused_and_says_how_many(tmp_path, capsys):
    from detectlab.cli import main

    folder = tmp_path / "mixed"
    folder.mkdir()
    for k in range(3):
        photo(seed=30 + k).save(folder / f"good{k}.png")
    (folder / "text.png").write_bytes(b"just some notes, not an image\n" * 10)
    (folder / "empty.jpg").write_bytes(b"")
    code = main(["predict", DETECTOR, str(folder)])
    captured = capsys.readouterr()
    assert code != 0, captured.out
    assert "2 of 5 file(s) refused" in captured.err and "3 scored" in captured.err, captured.err
    assert captured.out.count("\terror\t") == 2 and captured.out.count("\treal\t") + captured.out.count("\tfake\t") == 3
    code = main(["predict", DETECTOR, str(folder / "good0.png")])  # all scored: success
    assert code == 0, capsys.readouterr().err
