"""The playground's kept state (decoded upload, FGSM direction, batched survival scoring) changes no number.

A moved eps slider re-attacks the same upload: the file is decoded once per version, FGSM's
sign(grad) is computed once per image, and the attacked image and its survival steps are scored
in one batch. Each test compares against the plain computation: ``make_attack`` on a fresh decode
and one forward per image.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detectlab.attacks import FGSM, attack_file, make_attack, playground
from detectlab.attacks.playground import SURVIVAL_CHECKS, p_fake, survival_step
from detectlab.data import filecache, load_tensor
from detectlab.models.base import PreprocessConfig

S = 24


class SmallCNN(nn.Module):
    """Conv + BatchNorm (eval statistics) + head: enough layers for batched and single forwards to round apart."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.preprocess = PreprocessConfig(input_size=S)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, 1))
        with torch.no_grad():
            self.net[1].running_mean.uniform_(-0.1, 0.1)
            self.net[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@pytest.fixture
def model():
    return SmallCNN().eval()


def _photo(path, seed: int):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def _reference(model, path, method, eps, **options):
    """The plain computation: fresh decode, the attack object, one forward per scored image."""
    x = load_tensor(path, S)[None]
    adv = make_attack(method, model, eps, **options)(x, torch.ones(1))
    one = lambda t: float(p_fake(model, t[None])[0])  # noqa: E731
    return adv[0], one(x[0]), one(adv[0]), {c: (one(survival_step(c, x[0])), one(survival_step(c, adv[0])))
                                            for c in SURVIVAL_CHECKS}


@pytest.mark.parametrize("method,options", [("fgsm", {}), ("pgd", {"steps": 3})])
def test_moving_eps_gives_the_numbers_of_a_fresh_attack(model, tmp_path, method, options):
    path = _photo(tmp_path / "photo.jpg", 0)
    filecache.clear()
    for eps in (0.01, 0.04, 0.0, 0.02):
        r = attack_file(model, str(path), method, eps, **options)
        adv, p0, p1, checks = _reference(model, path, method, eps, **options)
        assert torch.equal(r.adversarial, adv), eps     # the same pixels, not merely close
        assert abs(r.p_before - p0) <= 1e-6 and abs(r.p_after - p1) <= 1e-6
        for c in r.checks:
            assert abs(c.p_clean - checks[c.name][0]) <= 1e-6 and abs(c.p_attacked - checks[c.name][1]) <= 1e-6


def test_fgsm_direction_is_computed_once_per_image(model, tmp_path, monkeypatch):
    calls = []
    real = FGSM.input_gradient
    monkeypatch.setattr(FGSM, "input_gradient", lambda self, x, y: calls.append(1) or real(self, x, y))
    playground._directions = playground._Kept(4)
    a, b = _photo(tmp_path / "a.jpg", 1), _photo(tmp_path / "b.jpg", 2)
    for eps in (0.01, 0.03, 0.05):
        attack_file(model, str(a), "fgsm", eps)
    assert len(calls) == 1      # eps moved twice: no backward pass
    attack_file(model, str(b), "fgsm", 0.01)
    assert len(calls) == 2      # another image: its own direction
    other = SmallCNN().eval()
    with torch.no_grad():
        other.net[-1].weight.mul_(-1)
    r = attack_file(other, str(a), "fgsm", 0.03)
    assert len(calls) == 3      # another detector: its own direction, and the right one
    assert torch.equal(r.adversarial, _reference(other, a, "fgsm", 0.03)[0])


def test_a_rewritten_upload_is_attacked_as_its_new_pixels(model, tmp_path):
    path = _photo(tmp_path / "upload.jpg", 3)
    filecache.clear()
    first = attack_file(model, str(path), "fgsm", 0.02)
    st = path.stat()
    _photo(path, 4)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))   # a new version, even within one clock tick
    second = attack_file(model, str(path), "fgsm", 0.02)
    assert not torch.equal(first.image, second.image)
    assert torch.equal(second.image, load_tensor(path, S))
    assert torch.equal(second.adversarial, _reference(model, path, "fgsm", 0.02)[0])
