"""Bad training settings and a hostile .pt through the run entry points (issue 23, items 7 and 8).

Every field of every training config is checked in one place (``TrainConfig``, ``LocalizerConfig``),
so the config classes, the run queue, the Train tab's ``/train`` and ``/train_localizer`` endpoints
and the CLI refuse the same values with the same message naming the field — and queue nothing.
A ``.pt`` uploaded to start a localizer from is never unpickled in the server: with *trust* ticked
its pickle is read as opcodes only (a non-ultralytics pickle is refused there, unrun), and only the
training worker process loads it; the form says in words that trusting lets the file run code as
the server's user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detectlab.errors import DetectLabError

DEMO = "demo (real + 3 generators)"
DEMO_INPAINT = "demo-inpainted (images + masks)"
_LEAKS = ("Traceback", "Could not preprocess input", "Unexpected error")

#: (field, value, phrase of the message) for detector runs: TrainConfig, /train, the CLI.
TRAIN_BAD = [
    ("iterations", -5, "iterations must be an integer in [1, "),
    ("epochs", 10**9, "epochs must be an integer in [1, "),
    ("threads", -1, "threads must be an integer in [1, 256], got -1"),
    ("threads", 1_000_000, "threads must be an integer in [1, 256], got 1000000"),
    ("name", "bad\0name", "name must be plain text without control characters; it contains a NUL byte"),
    ("name", "x" * 10_000, "name is too long: 10,000 characters (at most 100)"),
    ("name", "two\nlines", "name must be plain text without control characters"),
    ("data", "folder\0x", "data must be plain text without control characters; it contains a NUL byte"),
    ("generators", ["gan\0"], "generators must be plain text without control characters"),
    ("hflip", "false", "hflip must be true or false, got 'false'"),
    ("augment", {"jpeg_p": 0.5, "jpeg_quality": [0, 100]}, "augment: "),
]

#: (field, value, phrase) for localizer runs: LocalizerConfig, /train_localizer.
LOCALIZER_BAD = [
    ("imgsz", 100_000, "imgsz must be an integer in [32, 1024], got 100000"),
    ("imgsz", 100, "imgsz must be a multiple of 32"),
    ("threads", -1, "threads must be an integer in [0, 256], got -1"),
    ("threads", 1_000_000, "threads must be an integer in [0, 256], got 1000000"),
    ("epochs", 10**9, "epochs must be an integer in [1, 10000], got 1000000000"),
    ("epochs", 0, "epochs must be an integer in [1, 10000], got 0"),
    ("batch", -2, "batch must be an integer in [1, 1024], got -2"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("lr", 0, "lr must be a number in (0, 1), got 0"),
    ("width", 10**6, "width must be an integer in [1, 256]"),
    ("conf", 2, "conf must be a number in [0, 1], got 2"),
    ("workers", -1, "workers must be an integer in [0, 64], got -1"),
    ("trust_weights", "yes", "trust_weights must be true or false, got 'yes'"),
    ("name", "bad\0name", "name must be plain text without control characters; it contains a NUL byte"),
    ("name", "x" * 10_000, "name is too long: 10,000 characters (at most 100)"),
    ("name", "../../escape", "names the checkpoint file"),
    ("weights", "w\0.pt", "weights must be plain text without control characters"),
    ("weights", "model.pkl", "weights must be an ultralytics .pt file"),
    ("data", "d" * 5000, "data is too long: 5,000 characters (at most 4,096)"),
    ("kind", "detector", "kind must be 'localizer'"),
]


def _ids(rows):
    return [f"{f}={v!r}"[:40] for f, v, _ in rows]


# ---------------------------------------------------------------------------- the config classes
@pytest.mark.parametrize("field,value,phrase", TRAIN_BAD, ids=_ids(TRAIN_BAD))
def test_train_config_refuses_every_bad_field(field, value, phrase):
    from detectlab.train.config import TrainConfig, TrainConfigError

    with pytest.raises(TrainConfigError) as err:
        TrainConfig.from_dict(TrainConfig().to_dict() | {field: value})
    assert phrase in str(err.value) and isinstance(err.value, DetectLabError)
    assert len(str(err.value)) < 400, "a long value is not echoed back whole"
    if field not in ("augment", "generators"):  # the form's path: with_overrides (generators: comma text there)
        with pytest.raises(TrainConfigError, match=field):
            TrainConfig().with_overrides(**{field: value})


@pytest.mark.parametrize("field,value,phrase", LOCALIZER_BAD, ids=_ids(LOCALIZER_BAD))
def test_localizer_config_refuses_every_bad_field(field, value, phrase):
    from detectlab.localize import LocalizerConfig, LocalizerConfigError
    from detectlab.train.config import TrainConfigError

    with pytest.raises(LocalizerConfigError) as err:
        LocalizerConfig.from_dict({"kind": "localizer", field: value})
    assert phrase in str(err.value), str(err.value)
    assert isinstance(err.value, TrainConfigError) and isinstance(err.value, DetectLabError)
    assert len(str(err.value)) < 400


def test_good_localizer_settings_pass_and_come_back_as_numbers():
    from detectlab.localize import LocalizerConfig
    from detectlab.localize.defaults import LOCALIZER_DEFAULTS

    cfg = LocalizerConfig.from_dict({"arch": "unet", "epochs": 3.0, "imgsz": 64.0, "threads": 0, "name": " run-x "})
    assert (cfg.epochs, cfg.imgsz, cfg.threads, cfg.name) == (3, 64, 0, "run-x")
    assert isinstance(cfg.epochs, int) and isinstance(cfg.imgsz, int)
    for name, fields in LOCALIZER_DEFAULTS.items():
        assert LocalizerConfig.from_dict({**fields, "name": name}).name == name


def test_the_run_queue_refuses_bad_fields_and_run_names(tmp_path):
    """``RunManager.submit`` (the Train tab's, the Attack tab's and the API's way in) queues nothing bad."""
    from detectlab.runs import RunManager
    from detectlab.train.config import TrainConfig, TrainConfigError

    m = RunManager(tmp_path / "home")
    try:
        good = TrainConfig(data=str(tmp_path)).to_dict()
        for field, value, phrase in TRAIN_BAD:
            with pytest.raises(TrainConfigError) as err:
                m.submit(good | {field: value})
            assert phrase in str(err.value)
        for field, value, phrase in LOCALIZER_BAD:
            if field == "kind":
                continue  # another kind is a detector config: refused there, as an unknown setting
            with pytest.raises(TrainConfigError) as err:
                m.submit({"kind": "localizer", "arch": "yolov8n-seg", field: value})
            assert phrase in str(err.value)
        for name, phrase in (("a\0b", "run name must be plain text without control characters; it contains a NUL"),
                             ("y" * 10_000, "run name is too long: 10,000 characters (at most 100)"),
                             ("bell\x07", "control character U+0007")):
            with pytest.raises(TrainConfigError) as err:
                m.submit(good, name=name)
            assert phrase in str(err.value)
        assert m.store.list() == []  # nothing was queued
    finally:
        m.close()


@pytest.mark.parametrize("flags,phrase", [
    (["--iterations", "-5"], "iterations must be an integer in [1, "),
    (["--epochs", str(10**9)], "epochs must be an integer in [1, "),
    (["--threads", "-1"], "threads must be an integer in [1, 256], got -1"),
    (["--threads", "1000000"], "threads must be an integer in [1, 256], got 1000000"),
    (["--name", "x" * 10_000], "too long"),  # the CLI's own path-text check may answer first
    (["--name", "tab\there"], "name must be plain text without control characters"),
])
def test_the_cli_refuses_bad_fields_before_queueing(flags, phrase, capsys, tmp_path, monkeypatch):
    from detectlab.cli import main
    from detectlab.runs import RunStore
    from detectlab.train.layout import runs_db

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path))
    assert main(["train", *flags]) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert not runs_db(tmp_path).exists() or RunStore(runs_db(tmp_path)).list() == []


# ---------------------------------------------------------------------------- the API endpoints
@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _queued_ids() -> set[str]:
    from detectlab.ui import state

    return {r.id for r in state.manager().store.list()}


def _refused(message: str, phrase: str) -> None:
    assert message.startswith("**Error:**"), message[:300]
    assert phrase in message, message[:300]
    for leak in _LEAKS:
        assert leak not in message, message[:300]
    assert len(message) < 600, "a 10,000-character value is not echoed back"


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(iterations=-5), "iterations must be an integer in [1, "),
    (dict(epochs=10**9), "epochs must be an integer in [1, "),
    (dict(name="bad\0name"), "name must be plain text without control characters; it contains a NUL byte"),
    (dict(name="x" * 10_000), "name is too long: 10,000 characters (at most 100)"),
], ids=["iterations=-5", "epochs=1e9", "name-NUL", "name-10000"])
def test_train_endpoint_refuses_and_queues_nothing(kwargs, phrase, client):
    before = _queued_ids()
    _, message, *_ = client.predict(preset=None, data_choice=DEMO, folder="", **kwargs, api_name="/train")
    _refused(message, phrase)
    assert _queued_ids() == before


@pytest.mark.parametrize("kwargs,phrase", [
    (dict(imgsz=100_000), "imgsz must be an integer in [32, 1024], got 100000"),
    (dict(threads=-1), "threads must be an integer in [0, 256], got -1"),
    (dict(threads=1_000_000), "threads must be an integer in [0, 256], got 1000000"),
    (dict(epochs=10**9), "epochs must be an integer in [1, 10000], got 1000000000"),
    (dict(name="bad\0name"), "run name must be plain text without control characters; it contains a NUL byte"),
    (dict(name="x" * 10_000), "run name is too long: 10,000 characters (at most 100)"),
], ids=["imgsz=100000", "threads=-1", "threads=1e6", "epochs=1e9", "name-NUL", "name-10000"])
def test_train_localizer_endpoint_refuses_and_queues_nothing(kwargs, phrase, client):
    before = _queued_ids()
    _, message, *_ = client.predict(arch="unet", data_choice=DEMO_INPAINT, folder="", weights=None, **kwargs,
                                    api_name="/train_localizer")
    _refused(message, phrase)
    assert _queued_ids() == before


# ---------------------------------------------------------------------------- a hostile .pt
def _pid_recorder(folder: Path, names_ultralytics: bool) -> bytes:
    """A pickle whose loading writes ``folder/<pid of the loading process>``: proof of where code ran.

    Hand-written (protocol 0) so that it can name ultralytics' SegmentationModel without importing it.
    """
    code = f"import os; open(os.path.join({str(folder)!r}, str(os.getpid())), 'w').close()"
    data = b"(dp0\nVpayload\np1\ncbuiltins\nexec\np2\n(V" + code.encode("raw_unicode_escape") + b"\np3\ntp4\nRp5\ns"
    if names_ultralytics:
        data += b"Vmodel\np6\ncultralytics.nn.tasks\nSegmentationModel\np7\ns"
    return data + b"."


def test_the_pid_recorder_pickle_runs_where_it_is_loaded(tmp_path):
    """The test's own probe works: unpickled in another process, it names that process."""
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "probe.pt").write_bytes(_pid_recorder(marks, names_ultralytics=False))
    proc = subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))",
                           str(tmp_path / "probe.pt")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(list(marks.iterdir())) == 1 and str(os.getpid()) not in os.listdir(marks)


def test_trusting_a_non_ultralytics_pickle_never_runs_it_in_the_server(client, tmp_path):
    """Through /train_localizer with trust ticked: refused from its opcodes, nothing in it ran, nothing queued."""
    from gradio_client import handle_file

    marks = tmp_path / "marks"
    marks.mkdir()
    evil = tmp_path / "evil.pt"
    evil.write_bytes(_pid_recorder(marks, names_ultralytics=False))
    before = _queued_ids()
    for trust in (True, False):
        _, message, *_ = client.predict(arch="yolov8n-seg", data_choice=DEMO_INPAINT, folder="", epochs=1,
                                        weights=handle_file(str(evil)), trust=trust, api_name="/train_localizer")
        _refused(message, "evil.pt")
        if trust:
            assert "not an ultralytics checkpoint" in message and "nothing in it ran" in message, message
        else:
            assert "run code as the server" in message and "trust" in message, message
    assert list(marks.iterdir()) == [], "the pickle's code ran in the server process"
    assert _queued_ids() == before


def test_a_trusted_pt_is_loaded_only_by_the_worker(tmp_path, monkeypatch, demo_root):
    """A pickle that passes the server's opcode check (it names ultralytics' SegmentationModel) is queued
    without being loaded; if its code runs at all, it runs in the training worker process, never here."""
    from detectlab.catalog import DEMO_INPAINT_LABEL
    from detectlab.runs import RunManager
    from detectlab.ui import state, train_tab

    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    marks = tmp_path / "marks"
    marks.mkdir()
    upload = tmp_path / "upload" / "looks-like-yolo.pt"
    upload.parent.mkdir()
    upload.write_bytes(_pid_recorder(marks, names_ultralytics=True))
    m = RunManager(tmp_path / "home", poll_seconds=0.2)
    monkeypatch.setattr(state, "manager", lambda: m)
    try:
        run_id, status, *_ = train_tab.launch_localizer("yolov8n-seg", DEMO_INPAINT_LABEL, "", 1, 64, 8, 0, 1,
                                                        str(upload), True, "trusted-upload")
        assert "Error" not in status, status
        assert list(marks.iterdir()) == [], "the server unpickled the upload"
        record = m.store.get(run_id)
        assert record.config["trust_weights"] is True
        kept = Path(record.config["weights"])
        assert kept.exists() and kept.parent == tmp_path / "home" / "weights"  # a copy the worker will load
        done = m.store.wait_for(run_id, lambda r: r.status in ("finished", "failed", "cancelled"), 240)
        assert done.status == "failed"  # not a real checkpoint: the worker's load fails, the run says why
        ran_in = {int(p.name) for p in marks.iterdir()}
        assert os.getpid() not in ran_in, "the pickle ran in the server process"
        assert ran_in <= {done.pid}, (ran_in, done.pid)  # if it ran at all, in the worker
    finally:
        m.close()


def test_the_form_says_trust_lets_the_file_run_code_as_the_servers_user(app_url):
    """The served page's text, not just a docstring: the tick box and the note say what trusting means."""
    import httpx

    from detectlab.ui import train_tab

    assert "run code as the server's user" in train_tab.TRUST_LABEL
    assert "run any code it carries, as the user this server runs as" in train_tab.TRUST_NOTE
    page = httpx.get(f"{app_url.rstrip('/')}/config", timeout=60).text
    assert "run code as the server's user" in page.replace("\\u0027", "'")
    assert "as the user this server runs as" in page


def test_opcode_check_accepts_the_shipped_yolo_and_refuses_other_files(tmp_path):
    """``inspect_ultralytics_pt`` reads opcodes only: the shipped YOLOv8-seg passes; a non-ultralytics pickle,
    a detection model, garbage and a renamed file are refused naming the file, and nothing runs."""
    from detectlab import config
    from detectlab.errors import CheckpointError
    from detectlab.localize.yolo import inspect_ultralytics_pt

    assert inspect_ultralytics_pt(config.CHECKPOINT_DIR / "localizer-yolov8n-seg.pt") == "SegmentationModel"
    marks = tmp_path / "marks"
    marks.mkdir()
    cases = {
        "evil.pt": (_pid_recorder(marks, names_ultralytics=False), "not an ultralytics checkpoint"),
        "detect.pt": (b"cultralytics.nn.tasks\nDetectionModel\n.", "not a segmentation model"),
        "garbage.pt": (b"\xff not a pickle" * 16, "cannot be read as a torch checkpoint"),
        "truncated.pt": (_pid_recorder(marks, names_ultralytics=True)[:40], "cannot be read as a torch checkpoint"),
        "empty.pt": (b"", "empty (0 bytes)"),
        "model.pkl": (b"N.", "ultralytics .pt file"),
    }
    for name, (data, phrase) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            inspect_ultralytics_pt(tmp_path / name)
        assert phrase in str(err.value) and name in str(err.value), str(err.value)
    assert list(marks.iterdir()) == []
    t0 = time.monotonic()
    inspect_ultralytics_pt(config.CHECKPOINT_DIR / "localizer-yolov8n-seg.pt")
    assert time.monotonic() - t0 < 5
