"""The catalogue: every name a user may type or pick resolves to the same detector or data set everywhere."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from detectlab import catalog
from detectlab.errors import CheckpointError, DatasetError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def run_with_checkpoint(home):
    """A finished run whose checkpoint is a copy of the shipped CNN."""
    from detectlab.runs import RunStore
    from detectlab.train.layout import RunLayout, new_run_id, runs_db

    run_id = new_run_id()
    ckpt = RunLayout.default(home).checkpoint(run_id)
    ckpt.parent.mkdir(parents=True)
    shutil.copy(catalog.shipped_checkpoints()["cnn-resnet18"], ckpt)
    store = RunStore(runs_db(home))
    store.create(run_id, {"arch": "resnet18"}, "mine")
    store.finish(run_id, "finished", {"test": {"accuracy": 0.875}}, checkpoint=str(ckpt))
    return run_id, ckpt, store.get(run_id).label


def test_every_way_of_naming_a_detector(run_with_checkpoint):
    run_id, ckpt, label = run_with_checkpoint
    shipped = catalog.shipped_checkpoints()["cnn-resnet18"]
    assert label == f"run {run_id} mine (resnet18, finished, test acc 0.875)"
    for name, path in [("cnn-resnet18", shipped), ("shipped: cnn-resnet18", shipped), (run_id, ckpt), (label, ckpt)]:
        assert catalog.resolve_detector(name) == path, name
    with catalog.paths_allowed():  # the command line: a checkpoint file is a name too
        assert catalog.resolve_detector(str(ckpt)) == ckpt
    choices = catalog.detector_choices()
    assert list(choices)[0].startswith(catalog.SHIPPED_PREFIX) and choices[label] == ckpt


@pytest.mark.parametrize("name, words", [("", "no detector given"), ("resnet9000", "'resnet9000': no such detector"),
                                         ("/no/such/file.safetensors", "no such detector")])
def test_unknown_detectors_are_named(home, name, words):
    with pytest.raises(CheckpointError, match=words), catalog.paths_allowed():
        catalog.resolve_detector(name)


@pytest.mark.parametrize("resolve", [catalog.resolve_detector, catalog.resolve_localizer])
def test_outside_the_command_line_a_path_is_never_a_name(run_with_checkpoint, resolve):
    """The app's tabs and endpoints resolve through the catalogue: a path is refused in the same words
    whether the file exists or not, so a web client learns nothing of the server's files."""
    _, ckpt, _ = run_with_checkpoint
    existing = catalog.shipped_checkpoints()["cnn-resnet18"]
    messages = set()
    for name in (str(ckpt), str(existing), "/etc/shadow", "/etc/passwd", "~/x", "..\\x.pt", "weights.safetensors"):
        with pytest.raises(CheckpointError, match="not a file path on the server") as err:
            resolve(name)
        messages.add(str(err.value))
    assert len(messages) == 1
    with pytest.raises(CheckpointError, match="not a file path"):
        catalog.load_detector(str(existing))


@pytest.mark.parametrize("name, kind, differentiable", [("cnn-resnet18", "cnn", True),
                                                        ("spectrum-durrall", "spectrum", False)])
def test_loaded_detector_carries_threshold_kind_and_weights(name, kind, differentiable):
    loaded = catalog.load_detector(catalog.SHIPPED_PREFIX + name)
    assert loaded.kind == kind and loaded.differentiable == differentiable
    assert loaded.threshold == float(loaded.meta["threshold"]) and 0 < loaded.threshold < 1
    assert loaded.input_size == loaded.detector.preprocess.input_size == 128
    assert loaded.short_name == name and loaded.weights
    assert catalog.load_detector(name).detector is loaded.detector  # one model per file, cached


def test_data_sets_a_user_can_pick(home, tmp_path):
    up = home / "datasets" / "mine"
    for cls in ("real", "gan"):
        (up / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16)).save(up / cls / "a.png")
    known = catalog.known_datasets()
    assert list(known)[:2] == [catalog.DEMO_LABEL, catalog.DEMO_INPAINT_LABEL]
    assert known[f"{catalog.UPLOADED_PREFIX}mine"] == up
    assert catalog.resolve_dataset(f"{catalog.UPLOADED_PREFIX}mine") == up
    assert catalog.resolve_dataset("ignored", folder="mine") == up.resolve()  # a typed folder wins
    assert catalog.dataset_generators(up) == ["gan"]
    assert catalog.materialize_if_demo(up) == up
    with pytest.raises(DatasetError, match="unknown data set 'nope'"):
        catalog.resolve_dataset("nope")
    with pytest.raises(DatasetError, match="not an existing folder inside the configured data roots"):
        catalog.resolve_dataset(catalog.DEMO_LABEL, folder=str(tmp_path))


def test_demo_generators_are_the_demo_folders(demo_root):
    assert catalog.demo_generators() == catalog.dataset_generators(demo_root)
    from detectlab.generators.designs import DESIGNS, TRAIN, designs_in

    assert set(catalog.demo_generators()) == set(DESIGNS)
    # a training form ticks the demo's train group (its held-out designs stay unseen); any other set: all
    assert catalog.default_generators(demo_root, catalog.demo_generators()) == \
        [g for g in catalog.demo_generators() if g in designs_in(TRAIN)]
    assert catalog.default_generators(demo_root.parent, ["a", "b"]) == ["a", "b"]
