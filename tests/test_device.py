"""``--device``: one resolver, and detectors that take CPU tensors wherever they sit."""

import pytest
import torch

from detectlab import config
from detectlab.errors import DetectLabError
from detectlab.models import create_detector
from detectlab.models.base import model_device, on_model_device

NO_GPU = not torch.cuda.is_available()


def test_auto_takes_the_cpu_without_a_gpu_and_the_environment_is_read(monkeypatch):
    monkeypatch.delenv("DETECTLAB_DEVICE", raising=False)
    assert config.device().type == ("cpu" if NO_GPU else "cuda")
    monkeypatch.setenv("DETECTLAB_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    assert config.device("CPU ") == torch.device("cpu")  # a flag's value as typed


@pytest.mark.parametrize("name, message", [("gpu", "unknown device 'gpu'"), ("cpu:1", "unknown device 'cpu:1'"),
                                           ("mps", "choose one of auto, cpu, cuda")])
def test_an_unknown_device_is_refused_with_the_choices(name, message):
    with pytest.raises(DetectLabError, match=message):
        config.device(name)


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_so_instead_of_falling_back():
    with pytest.raises(DetectLabError, match="sees no CUDA GPU.*use --device cpu or auto"):
        config.device("cuda")


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_detector_class_runs_features_and_head_through_the_device_rule():
    import detectlab.models  # noqa: F401  (registers every detector class)
    from detectlab.models.base import Detector

    classes = list(_all_subclasses(Detector))
    assert len(classes) >= 4
    for cls in (Detector, *classes):
        for name in ("features", "forward_head"):
            assert getattr(getattr(cls, name), "__wrapped__", None) is not None, (cls.__name__, name)
    det = create_detector("resnet18", pretrained=False)
    assert model_device(det) == torch.device("cpu")
    assert det(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_the_device_rule_moves_the_input_to_the_model_and_the_result_back(monkeypatch):
    seen = {}

    class Probe(torch.nn.Module):
        @on_model_device
        def run(self, x):
            seen["device"] = x.device
            return x * 2

    probe = Probe()
    x = torch.ones(2, dtype=torch.float64)
    # The model's device stands in for a GPU: a tensor "moved" there is the same CPU tensor, so watch the calls.
    moves = []
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        moves.append(args[0] if args else kwargs.get("device"))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr("detectlab.models.base.model_device", lambda m: torch.device("cpu"))
    monkeypatch.setattr(torch.Tensor, "to", to)
    out = probe.run(x)
    assert moves == []                  # already on the model's device: nothing copied
    assert torch.equal(out, x * 2) and seen["device"] == torch.device("cpu")


def test_every_command_takes_device_and_refuses_an_unknown_one_before_any_work(capsys, tmp_path):
    from detectlab.cli import _leaf_parsers, build_parser, main

    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) > 20
    assert all("--device" in p._option_string_actions for p in leaves), [p.prog for p in leaves
                                                                          if "--device" not in p._option_string_actions]
    missing = tmp_path / "never-read.png"
    assert main(["predict", "--device", "gpu", "cnn-resnet18", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "unknown device 'gpu'" in err and "never-read" not in err


def test_the_device_flag_reaches_what_the_command_loads(monkeypatch):
    from detectlab.cli import _use_device, build_parser

    monkeypatch.delenv("DETECTLAB_DEVICE", raising=False)
    args = build_parser().parse_args(["heldout", "eval", "--device", "cpu"])
    import os

    with _use_device(args):
        assert os.environ["DETECTLAB_DEVICE"] == "cpu" and config.device() == torch.device("cpu")
    assert "DETECTLAB_DEVICE" not in os.environ   # the caller's environment, as it was
