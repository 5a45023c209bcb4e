"""Training settings are validated once, in ``TrainConfig.from_dict``: the tab, the /train API (the run queue)
and the CLI refuse a bad value before a run is queued, with DetectLab's own error naming the field and its range."""

from __future__ import annotations

import subprocess
import sys

import pytest

from detectlab.errors import DetectLabError
from detectlab.train.config import TrainConfig, TrainConfigError

BAD = [
    ("input_size", 0, "input_size must be an integer in [32, 1024], got 0"),
    ("input_size", 2048, "input_size must be an integer in [32, 1024]"),
    ("input_size", 127.5, "input_size must be an integer"),
    ("input_size", "abc", "input_size must be an integer"),
    ("epochs", -3, "epochs must be an integer in [1, "),
    ("epochs", 0, "epochs must be an integer in [1, "),
    ("iterations", -5, "iterations must be an integer in [1, "),
    ("batch_size", 0, "batch_size must be an integer in [1, 1024], got 0"),
    ("batch_size", 5000, "batch_size must be an integer in [1, 1024]"),
    ("lr", -1, "lr must be a number in (0, 1), got -1"),
    ("lr", 0, "lr must be a number in (0, 1)"),
    ("lr", 1.0, "lr must be a number in (0, 1)"),
    ("lr", float("nan"), "lr must be a number in (0, 1)"),
    ("weight_decay", -0.1, "weight_decay must be a number >= 0"),
    ("runs", 0, "runs must be an integer in [1, 20], got 0"),
    ("runs", 21, "runs must be an integer in [1, 20]"),
    ("threads", 0, "threads must be an integer in [1, 256]"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("adv_eps", "abc", "adv_eps: 'abc' is not a comma-separated list of numbers"),
    ("adv_eps", [0.6], "adv_eps must be a number in (0, 0.5], got 0.6"),
    ("adv_eps", [0.0], "adv_eps must be a number in (0, 0.5], got 0.0"),
    ("adv_eps", ["x"], "adv_eps must be a number in (0, 0.5]"),
    ("adv_fraction", 1.5, "adv_fraction must be a number in [0, 1]"),
    ("split_fractions", [0.5, 0.5, 0.0], "split_fractions must be three positive numbers"),
    ("split_fractions", [0.8, 0.1, 0.2], "split_fractions must be three positive numbers (train, val, test) summing to 1"),
    ("split_fractions", [1.0], "split_fractions must be three positive numbers"),
    ("train_part", "3/2", "train_part must be 'k/n' with n >= 2 and 1 <= k <= n"),
    ("train_part", "1/1", "train_part must be 'k/n'"),
    ("train_part", "0/2", "train_part must be 'k/n'"),
    ("train_part", "half", "train_part must be 'k/n'"),
    ("arch", "resnet9000", "unknown architecture arch='resnet9000'; choose one of resnet18"),
    ("arch", "frozen:nope", "arch 'frozen:nope': frozen:<a> or frozen:<a>+<b> of the backbones"),
    ("arch", "spectrum:nope", "unknown architecture arch='spectrum:nope'"),
]


@pytest.mark.parametrize("field,value,message", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_a_bad_value_is_refused_naming_the_field(field, value, message):
    builds = [lambda: TrainConfig.from_dict(TrainConfig().to_dict() | {field: value}),
              lambda: TrainConfig().with_overrides(**{field: value})]  # a form's iterations: only 0 = "use epochs"
    for build in builds:
        with pytest.raises(TrainConfigError) as err:
            build()
        assert message in str(err.value)
        assert isinstance(err.value, DetectLabError)  # shown as it is by the tab and the CLI


@pytest.mark.parametrize("changes", [
    dict(input_size=32, batch_size=1, runs=20, lr=0.5, weight_decay=0, threads=1, adv_eps="0.5", adv_fraction=0),
    dict(input_size=1024, epochs=0, iterations=10, train_part="2/3", split_fractions=(0.6, 0.2, 0.2)),
    dict(arch="frozen:mobilenet_v2+efficientnet_lite0"),
    dict(arch="spectrum:durrall"),
    dict(arch="convnext_atto"),  # any timm model trains end to end
    dict(input_size=128.0, epochs=3.0),  # a form's numbers arrive as floats
])
def test_values_at_the_edges_are_accepted(changes):
    cfg = TrainConfig().with_overrides(**changes)
    assert TrainConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert isinstance(cfg.input_size, int) and isinstance(cfg.epochs, int)


def test_a_forms_zero_iterations_means_use_epochs_and_a_negative_count_is_refused():
    assert TrainConfig().with_overrides(iterations=0, epochs=3).iterations is None
    for bad in (-5, -1, 10**9):
        with pytest.raises(TrainConfigError, match=r"iterations must be an integer in \[1, "):
            TrainConfig().with_overrides(iterations=bad)


@pytest.mark.parametrize("field,value,message", [
    ("name", "bad\0name", "name must be plain text without control characters; it contains a NUL byte at position 4"),
    ("name", "x" * 10_000, "name is too long: 10,000 characters (at most 100)"),
    ("name", "right-to-left\u202e", "control character U+202E"),
    ("threads", 1_000_000, "threads must be an integer in [1, 256], got 1000000"),
    ("threads", -1, "threads must be an integer in [1, 256], got -1"),
    ("epochs", 10**9, "epochs must be an integer in [1, 100000], got 1000000000"),
    ("select_best", "no", "select_best must be true or false, got 'no'"),
    ("pretrained", 3.5, "pretrained must be true, false or a weight file"),
    ("out_dir", "o\0", "out_dir must be plain text without control characters"),
    ("augment", {"blur_p": 0.5, "blur_sigma": [2.0, 1.0]}, "augment: blur_sigma: low 2.0 is above high 1.0"),
])
def test_names_texts_and_the_rest_of_the_fields_are_checked(field, value, message):
    with pytest.raises(TrainConfigError) as err:
        TrainConfig.from_dict(TrainConfig().to_dict() | {field: value})
    assert message in str(err.value)
    assert len(str(err.value)) < 300  # a 10,000-character value is not echoed back


def test_a_name_is_trimmed_and_plain_unicode_is_fine():
    cfg = TrainConfig().with_overrides(name="  Läufer — ResNet 🙂 ")
    assert cfg.name == "Läufer — ResNet 🙂"


def test_every_preset_and_stored_default_validates():
    from detectlab.train.config import PRESETS
    from detectlab.train.defaults import DEFAULTS

    for name in PRESETS:
        TrainConfig().with_preset(name)
    for fields, _ in DEFAULTS.values():
        TrainConfig.from_dict(TrainConfig().to_dict() | fields)


def test_the_run_queue_refuses_before_queueing(tmp_path):
    from detectlab.runs import RunManager

    manager = RunManager(tmp_path)
    try:
        for bad in (dict(input_size=0), dict(batch_size=0), dict(runs=0), dict(lr=-1), dict(epochs=-3),
                    dict(adv_eps="abc")):
            with pytest.raises(TrainConfigError, match=next(iter(bad))):
                manager.submit(TrainConfig(data=str(tmp_path)).to_dict() | bad, name="bad")
        assert manager.store.list() == []  # nothing was queued
    finally:
        manager.close()


@pytest.mark.parametrize("flags,message", [
    (["--input-size", "0"], "input_size must be an integer in [32, 1024], got 0"),
    (["--batch-size", "0"], "batch_size must be an integer in [1, 1024], got 0"),
    (["--lr", "-1"], "lr must be a number in (0, 1), got -1"),
    (["--epochs", "-3"], "epochs must be an integer in [1, "),
    (["--adv-eps", "abc"], "adv_eps: 'abc' is not a comma-separated list of numbers"),
    (["--part", "3/2"], "train_part must be 'k/n'"),
    (["--arch", "nope"], "unknown architecture arch='nope'"),
])
def test_the_cli_refuses_with_a_message(flags, message, capsys):
    from detectlab.cli import main

    rc = main(["train", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_the_cli_process_exits_non_zero_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "detectlab.cli", "train", "--input-size", "0", "--runs", "3"],
                          capture_output=True, text=True, timeout=120, env={"DETECTLAB_HOME": str(tmp_path),
                                                                            "OMP_NUM_THREADS": "1", "PATH": ""})
    assert proc.returncode == 2
    assert "input_size must be an integer in [32, 1024], got 0" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("bad,field", [
    (dict(input_size=0), "input_size"), (dict(batch=0), "batch_size"), (dict(runs=0), "runs"), (dict(lr=-1), "lr"),
    (dict(epochs=-3), "epochs"), (dict(adv_eps="abc"), "adv_eps"),
])
def test_the_train_tab_shows_the_message_and_queues_nothing(bad, field, monkeypatch, demo_root):
    """The Train tab's launch (also the /train endpoint): DetectLab's message, not 'Unexpected error'."""
    from detectlab.catalog import DEMO_LABEL
    from detectlab.ui import state, train_tab

    queued = []

    class Manager:
        def submit(self, cfg, name=""):
            queued.append(cfg)
            raise AssertionError("a bad config reached the run queue")

    monkeypatch.setattr(state, "manager", lambda: Manager())
    form = dict(preset=None, data_choice=DEMO_LABEL, folder="", generators=[], arch="resnet18", input_size=128,
                epochs=5, iterations=0, lr=1e-3, wd=1e-4, batch=32, weighted=True, hflip=True, augment=False,
                aug_p=0.0, aug_kinds=[], blur_max=3.0, jpeg_min=30, scale_min=0.5, patch_min=32, adv_eps="", runs=1,
                seed=0, name="bad")
    out = train_tab.launch(**(form | bad))
    messages = [o for o in out if isinstance(o, str) and o.startswith("**")]
    assert messages and messages[0].startswith(f"**Error:** {field}"), out
    assert queued == []
