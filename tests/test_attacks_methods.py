"""FGSM, PGD and L-BFGS ([Petrželková 2024] §3.2) on a tiny CNN trained inside the test, and the set-level experiments."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from detectlab.attacks import (
    ATTACKS,
    FGSM,
    LBFGS,
    PGD,
    AttackError,
    ImageSet,
    attack_image,
    blur_defence,
    confusion_rate,
    confusion_stats,
    cross_sample,
    load_split,
    make_attack,
    mirror,
    parse_eps_list,
    transfer,
    write_csv,
)
from detectlab.attacks import paper, plots
from detectlab.progress import CancelToken, Cancelled
from detectlab.models.base import PreprocessConfig

S = 16


class TinyCNN(nn.Module):
    """A real/fake detector small enough to train in a second: fakes carry a checkerboard trace."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.preprocess = PreprocessConfig(input_size=S)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(n, 3, S + 2, S + 2, generator=g), 3, 1)  # smooth "photos"
    checker = ((torch.arange(S)[:, None] + torch.arange(S)[None, :]) % 2).float() * 2 - 1
    y = (torch.arange(n) % 2).float()
    x = (0.2 + 0.6 * base + 0.03 * y.view(-1, 1, 1, 1) * checker).clamp(0, 1)
    return x, y


def _train(seed: int) -> TinyCNN:
    model = TinyCNN(seed)
    x, y = _images(64, seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: threads only contend with each other
    try:
        for _ in range(120):
            opt.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    opt.zero_grad(set_to_none=True)  # the attacks must leave .grad as they found it: None
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return _train(0)


@pytest.fixture(scope="module")
def tiny_other():
    return _train(1)


@pytest.fixture(scope="module")
def test_set():
    x, y = _images(40, 123)
    return x, y


def _p(model, x):
    with torch.no_grad():
        return torch.sigmoid(model(x))


def test_tiny_detector_learned_the_trace(tiny, test_set):
    x, y = test_set
    assert ((_p(tiny, x) > 0.5).float() == y).float().mean() >= 0.95


def test_registry_names_each_attack():
    assert ATTACKS == {"fgsm": FGSM, "pgd": PGD, "lbfgs": LBFGS}


@pytest.mark.parametrize("method", list(ATTACKS))
@pytest.mark.parametrize("eps", [0.01, 0.05])
def test_attack_stays_in_the_box_and_lowers_p_fake(tiny, test_set, method, eps):
    x, y = test_set
    fakes = x[y == 1]
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    fast = {"lbfgs": dict(search_steps=3, max_iter=10)}.get(method, {})  # L-BFGS's search is the slow part
    adv = make_attack(method, tiny, eps, **fast)(fakes, torch.ones(len(fakes)))
    assert adv.shape == fakes.shape and adv.min() >= 0 and adv.max() <= 1
    assert (adv - fakes).abs().max() <= eps + 1e-6          # L-BFGS too: eps bounds its residual
    with torch.no_grad():  # logits: P(fake) saturates near 1 on this easy trace
        assert (tiny(adv) < tiny(fakes)).all() and tiny(adv).mean() < tiny(fakes).mean() - 1.0
    assert all(torch.equal(state[k], v) for k, v in tiny.state_dict().items())
    assert all(p.grad is None for p in tiny.parameters())


def test_fgsm_equals_torchattacks_fgsm_on_a_two_logit_wrapper(tiny, test_set):
    torchattacks = pytest.importorskip("torchattacks", reason="torchattacks is a dev dependency (requirements-dev.txt)")

    class TwoLogits(nn.Module):  # [-z, z]: softmax cross-entropy then has the sign of BCE on z
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            z = self.m(x)
            return torch.stack([-z, z], dim=1)

    x, y = test_set
    for eps in (0.01, 0.03):
        ours = FGSM(tiny, eps)(x, y)
        # eval() first: torchattacks puts the wrapper back in the mode it found it in
        theirs = torchattacks.FGSM(TwoLogits(tiny).eval(), eps=eps)(x, y.long())
        assert (ours - theirs).abs().max() <= 1e-6
    assert not tiny.training


def test_pgd_is_at_least_as_strong_as_fgsm(tiny, test_set):
    x, y = test_set
    fakes = x[y == 1]
    ones = torch.ones(len(fakes))
    for eps in (0.005, 0.01, 0.02):
        p_fgsm = _p(tiny, FGSM(tiny, eps)(fakes, ones))
        p_pgd = _p(tiny, PGD(tiny, eps, steps=10)(fakes, ones))
        assert p_pgd.mean() <= p_fgsm.mean() + 1e-6
        assert confusion_rate(tiny, x, y, eps, method="pgd") >= confusion_rate(tiny, x, y, eps)
    # one full step without random start is FGSM wherever FGSM raises the loss
    one = PGD(tiny, 0.02, alpha=0.02, steps=1)(fakes, ones)
    step = FGSM(tiny, 0.02)(fakes, ones)
    raised = _p(tiny, step) < _p(tiny, fakes)
    assert torch.allclose(one[raised], step[raised])


def test_pgd_random_start_is_seeded(tiny, test_set):
    x, y = test_set
    a = PGD(tiny, 0.02, random_start=True, generator=torch.Generator().manual_seed(5))(x, y)
    b = PGD(tiny, 0.02, random_start=True, generator=torch.Generator().manual_seed(5))(x, y)
    assert torch.equal(a, b) and (a - x).abs().max() <= 0.02 + 1e-6


def test_lbfgs_flips_with_a_smaller_l2_than_fgsm(tiny, test_set):
    x, y = test_set
    fake = x[y == 1][:1]
    assert _p(tiny, fake) > 0.5
    # the smallest FGSM step (on a grid of 0.002) that flips this image
    eps = next(e / 1000 for e in range(2, 200, 2) if _p(tiny, FGSM(tiny, e / 1000)(fake, torch.ones(1))) < 0.5)
    fgsm_l2 = float((FGSM(tiny, eps)(fake, torch.ones(1)) - fake).norm())
    adv = LBFGS(tiny, search_steps=8)(fake, torch.ones(1))
    assert _p(tiny, adv) < 0.5
    lbfgs_l2 = float((adv - fake).norm())
    assert lbfgs_l2 < fgsm_l2, (lbfgs_l2, fgsm_l2, eps)
    assert all(p.grad is None for p in tiny.parameters())


def test_confusion_stats_with_pgd_and_threshold(tiny, test_set):
    x, y = test_set
    s = confusion_stats(tiny, x, y, 0.05, method="pgd")
    assert s.eligible == int(((_p(tiny, x) > 0.5) & (y == 1)).sum()) and s.rate == 1.0
    # a threshold above every score: nothing is decided fake, the rate is undefined
    assert confusion_stats(tiny, x, y, 0.05, threshold=1.0).rate is None


def test_transfer_matrix_shape_and_diagonal(tiny, tiny_other, test_set):
    x, y = test_set
    images = ImageSet((x * 255).round().to(torch.uint8), y, [f"{i}.png" for i in range(len(y))], ["g"] * len(y))
    xq = images.batch(0, len(images))
    models = {"a": tiny, "b": tiny_other}
    res = transfer(models, models, images, [0.005, 0.02], batch_size=16)
    assert res.attackers == ["a", "b"] and res.judges == ["a", "b"] and len(res.cells) == 8
    for eps in (0.005, 0.02):
        m = res.matrix(eps)
        assert len(m) == 2 and all(len(r) == 2 for r in m)
        assert m[0][0] == pytest.approx(confusion_rate(tiny, xq, y, eps))
        assert m[1][1] == pytest.approx(confusion_rate(tiny_other, xq, y, eps))
        assert m[1][0] == pytest.approx(confusion_rate(tiny, xq, y, eps, attack_model=tiny_other))
    diag = transfer(models, {}, images, [0.02], pairs="diagonal")
    assert [(c.attacker, c.judge) for c in diag.cells] == [("a", "a"), ("b", "b")]
    assert diag.curve("a") == [(0.02, res.matrix(0.02)[0][0])]


def test_mirror_is_the_transfer_of_the_pair_in_table_4_5s_layout(tiny, tiny_other, test_set, tmp_path):
    # tiny and tiny_other are trained on disjoint image sets (seeds 0 and 1): a mirror pair
    x, y = test_set
    images = ImageSet((x * 255).round().to(torch.uint8), y, [f"{i}.png" for i in range(len(y))], ["g"] * len(y))
    eps = [0.005, 0.025]
    res = mirror(tiny, tiny_other, images, eps, names=("A", "B"), batch_size=16)
    ref = transfer({"A": tiny, "B": tiny_other}, {"A": tiny, "B": tiny_other}, images, eps, batch_size=16)
    for e in eps:
        m = ref.matrix(e)  # [attacker][judge]
        # [Petrželková 2024]'s orientation: rows judge, columns the model the residual was crafted on
        assert res.table(e) == [[m[0][0], m[1][0]], [m[0][1], m[1][1]]]
        assert res.rate("A", "B", e) == m[0][1] and res.rate("B", "A", e) == m[1][0]
    assert res.table(0.025)[0][0] == 1.0 and res.table(0.025)[1][1] == 1.0  # white box at 0.025: every fake flips
    rows = res.rows()
    assert [(r["case"], r["eps"]) for r in rows] == [(c, e) for c in ("A→A", "A→B", "B→A", "B→B") for e in eps]
    assert all(r["table"] == "4.5" and r["method"] == "fgsm" for r in rows)
    assert write_csv(rows, tmp_path / "m.csv").read_text().splitlines()[0].startswith("table,case,method,attacker")
    lines = paper.mirror_findings(res)
    assert len(lines) == len(eps) + 1
    assert f"A→B {100 * res.rate('A', 'B', 0.025):.1f} %" in lines[1] and "Petrželková 2024" in lines[-1]
    assert "At eps 0.025" in lines[-1]
    seen = []
    res_p = mirror(tiny, tiny_other, images, [0.01], progress=lambda d, t, desc="": seen.append((d, t)), batch_size=16)
    assert seen[-1] == (2 * len(images), 2 * len(images)) and res_p.a == "A"
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        mirror(tiny, tiny_other, images, [0.01], cancel=token)
    with pytest.raises(AttackError, match="different names"):
        mirror(tiny, tiny_other, images, [0.01], names=("A", "A"))
    with pytest.raises(AttackError, match="do not apply"):
        mirror(tiny, SpectrumLike(0).eval(), images, [0.01])


class SpectrumLike(TinyCNN):
    kind = "spectrum"


def test_detectors_without_gradients_get_a_clear_message(test_set):
    x, y = test_set
    judge = SpectrumLike(0).eval()
    with pytest.raises(AttackError, match="do not apply to 'spec'.*judge"):
        attack_image(judge, x[0], "fgsm", 0.01, name="spec")
    for method in ATTACKS:
        with pytest.raises(AttackError, match="do not apply"):
            make_attack(method, judge, 0.01)


def test_a_spectrum_detector_can_judge(tiny, test_set):
    x, y = test_set
    images = ImageSet((x * 255).round().to(torch.uint8), y, ["f"] * len(y), ["g"] * len(y))
    res = transfer({"a": tiny}, {"a": tiny, "spec": SpectrumLike(0).eval()}, images, [0.01])
    assert res.judges == ["a", "spec"] and len(res.matrix(0.01)[0]) == 2


def test_cross_sample_on_a_linear_detector_is_hand_computable():
    # logit = 40 * (mean(x) - 0.5): FGSM's residual is -eps on every pixel, so adding it to an
    # image of mean m gives mean m - eps: it turns real exactly when m - eps < 0.5.
    class Mean(nn.Module):
        preprocess = PreprocessConfig(input_size=4)

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(40.0))

        def forward(self, x):
            return self.scale * (x.flatten(1).mean(1) - 0.5)

    means = torch.tensor([0.51, 0.52, 0.53, 0.56, 0.58, 0.6])
    x = means.view(-1, 1, 1, 1).expand(-1, 3, 4, 4).contiguous()
    images = ImageSet((x * 255).round().to(torch.uint8), torch.ones(6), [f"{i}" for i in range(6)], ["g"] * 6)
    m = images.batch(0, 6).flatten(1).mean(1)  # after 8-bit storage
    res = cross_sample(Mean(), images, [0.035], n_sources=6)
    for k, src in enumerate(range(6)):
        others = [i for i in range(6) if i != src]
        expected = sum(bool(m[i] - 0.035 < 0.5) for i in others) / 5
        assert res.rates[0.035][k] == pytest.approx(expected)
    assert res.mean(0.035) == pytest.approx(sum(res.rates[0.035]) / 6)
    assert res.eligible == 6


def test_blur_defence_table(tiny, test_set):
    x, y = test_set
    images = ImageSet((x * 255).round().to(torch.uint8), y, ["f"] * len(y), ["g"] * len(y))
    res = blur_defence(tiny, images, eps=0.02, sigma=0.0)  # sigma 0: "blurred" = unblurred
    assert res.accuracy["clean"] == res.accuracy["blurred clean"] >= 0.95
    assert res.confusion["adversarial"] == res.confusion["blurred adversarial"] == 1.0
    assert res.fake_accuracy["adversarial"] == 0.0
    strong = blur_defence(tiny, images, eps=0.02, sigma=1.0)
    assert [r["case"] for r in strong.rows()] == list(strong.CASES)
    # the checkerboard trace and the high-frequency residual are both blurred away
    assert strong.confusion["blurred adversarial"] is None or strong.confusion["blurred adversarial"] <= 1.0


def _defence(fake_acc: dict, confusion: dict) -> "BlurDefenceResult":
    from detectlab.attacks.experiments import BlurDefenceResult

    return BlurDefenceResult("d", "pgd", 0.05, 5.0, 100, 100, dict(fake_acc), dict(fake_acc),
                             {c: None for c in fake_acc}, confusion)


def test_blur_defence_statement_follows_the_numbers():
    from detectlab.attacks.paper import blur_findings

    # blur alone sends every fake to "real": the confusion rate barely moves, nothing is undone
    none = _defence({"clean": 0.967, "blurred clean": 0.003, "adversarial": 0.0, "blurred adversarial": 0.003},
                    {"adversarial": 1.0, "blurred adversarial": 0.997})
    text = " ".join(blur_findings(none))
    assert "Unlike [Petrželková 2024], blurring does not undo the attack here, but costs 96 points" in text
    # [Petrželková 2024]'s own numbers: 3.2 % -> 78 % is undone
    paper = _defence({"clean": 0.99, "blurred clean": 0.95, "adversarial": 0.032, "blurred adversarial": 0.78},
                     {"adversarial": 0.96, "blurred adversarial": 0.18})
    assert "As in [Petrželková 2024], blurring undoes much of the attack." in " ".join(blur_findings(paper))


def test_playground_numbers(tiny, test_set):
    x, y = test_set
    fake = x[y == 1][0]
    r = attack_image(tiny, fake, "fgsm", 0.02)
    n = fake.numel()
    assert r.p_after < r.p_before
    assert r.size.linf == pytest.approx(0.02, abs=1e-6)
    assert r.size.l2 == pytest.approx(0.02 * math.sqrt(n), rel=1e-3)       # every pixel moved by eps
    assert r.size.psnr == pytest.approx(-20 * math.log10(0.02), abs=0.01)
    # 8-bit PNG only rounds to 1/255: P(fake) barely moves; JPEG 90 is a real change
    assert abs(r.p_saved["png"] - r.p_after) < 0.05 and set(r.p_saved) == {"png", "jpeg90"}
    # |after - before| amplified by the stated gain: the largest change is white, no change black
    amp, gain = r.residual_image()
    assert gain == pytest.approx(50, rel=1e-5) and amp.min() >= 0 and float(amp.max()) == pytest.approx(1.0)
    assert torch.allclose(amp, (r.residual.abs() * gain).clamp(0, 1))
    assert r.flipped == (r.decision_before != r.decision_after)
    zero = attack_image(tiny, fake, "fgsm", 0.0)
    assert zero.size.psnr == math.inf and zero.residual_image()[1] == 0.0
    assert float(zero.residual_image()[0].max()) == 0.0


@pytest.mark.parametrize("eps", [-0.01, 1.5, float("nan"), "0.1"])
def test_bad_eps_is_named(tiny, test_set, eps):
    with pytest.raises(AttackError, match="eps must be a number in \\[0, 1\\]"):
        attack_image(tiny, test_set[0][0], "fgsm", eps)


def test_unknown_method(tiny):
    with pytest.raises(AttackError, match="unknown attack 'cw'"):
        make_attack("cw", tiny, 0.01)


def _write_folder(root, classes: dict[str, int]):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for cls, n in classes.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            arr = (torch.rand(20, 20, 3, generator=g) * 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(root / cls / f"{cls}{i}.png")


def test_load_split_and_a_one_class_folder(tmp_path, tiny):
    _write_folder(tmp_path / "two", {"real": 4, "gen": 4})
    s = load_split(tmp_path / "two", "all", size=S)
    assert len(s) == 8 and s.images.dtype == torch.uint8 and s.images.shape[-1] == S and s.labels.sum() == 4
    assert len(load_split(tmp_path / "two", "all", size=S, limit=3)) == 3
    _write_folder(tmp_path / "one", {"real": 3})
    only_real = load_split(tmp_path / "one", "all", size=S)
    with pytest.raises(AttackError, match="needs fake images.*3 images are all real"):
        transfer({"a": tiny}, {}, only_real, [0.01], pairs="diagonal")
    with pytest.raises(Exception, match="unknown split 'tests'"):
        load_split(tmp_path / "two", "tests", size=S)


@pytest.mark.parametrize("text,expected", [
    ("0.01,0.02,0.05", [0.01, 0.02, 0.05]),
    (" 0.01, 0.02 ; 0.05, ", [0.01, 0.02, 0.05]),     # spaces, semicolons and a trailing comma
    ("0", [0.0]),
    (0.025, [0.025]),                                  # a number as it comes from a form
])
def test_parse_eps_list(text, expected):
    assert parse_eps_list(text) == expected


@pytest.mark.parametrize("text,match", [
    ("0.01,abc", "eps list '0.01,abc': give numbers separated by commas, e.g. 0.01,0.02,0.05"),
    ("", "give at least one eps, e.g. 0.01,0.02,0.05"),
    (" , ;", "give at least one eps"),
    ("0.01,2", "eps must be a number in \\[0, 1\\].*got 2.0"),
    ("nan", "eps must be a number in \\[0, 1\\]"),
])
def test_parse_eps_list_names_what_is_wrong(text, match):
    with pytest.raises(AttackError, match=match):
        parse_eps_list(text)


def test_playground_png_and_file_name(tiny, test_set, tmp_path):
    from detectlab.data import load_tensor

    r = attack_image(tiny, test_set[0][0], "pgd", 0.02, steps=2)
    assert r.scoring == "resize"
    assert r.file_name("/up/loads/my photo (1).JPG") == "my_photo__1__pgd_eps0.020.png"
    assert r.file_name("/x/.png") == ".png_pgd_eps0.020.png" and r.file_name("") == "image_pgd_eps0.020.png"
    path = r.write_png(tmp_path / r.file_name("a.png"))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert torch.allclose(load_tensor(path), r.adversarial, atol=0.5 / 255 + 1e-6)  # lossless up to 8 bits


@pytest.fixture(scope="module")
def results(tiny, tiny_other, test_set):
    """One result of each set-level experiment, on the tiny pair."""
    x, y = test_set
    images = ImageSet((x * 255).round().to(torch.uint8), y, [f"{i}.png" for i in range(len(y))], ["g"] * len(y))
    models = {"a": tiny, "b": tiny_other}
    return {"transfer": transfer(models, models, images, [0.01, 0.02]),
            "mirror": mirror(tiny, tiny_other, images, [0.01, 0.025], names=("A", "B")),
            "cross_sample": cross_sample(tiny, images, [0.01, 0.02], name="a", n_sources=3),
            "blur": blur_defence(tiny, images, 0.02, 1.0, name="a")}


@pytest.mark.parametrize("figure,result,names", [
    (lambda r: plots.curves_figure(r), "transfer", ["a → a", "a → b", "b → a", "b → b"]),
    (lambda r: plots.curves_figure(r, {("a", "a")}), "transfer", ["a → a"]),
    (lambda r: plots.matrix_figure(r), "transfer", [None, None]),
    (lambda r: plots.mirror_figure(r), "mirror",
     ["A → A", "A → B", "B → A", "B → B", "Petrželková 2024 white box", "Petrželková 2024 across halves"]),
    (lambda r: plots.hardening_figure(r, "a", "b"), "transfer",
     ["judged by a", "judged by b", "judged by a", "judged by b"]),
    (lambda r: plots.cross_sample_figure(r), "cross_sample", ["one source image", "a: mean", "Petrželková 2024 ResNet-50"]),
    (lambda r: plots.blur_figure(r), "blur", ["a, fakes", "a, reals", "Petrželková 2024 ResNet-50, fakes (ε 0.05, σ 5)"]),
])
def test_each_figure_draws_its_result_in_percent(results, figure, result, names):
    fig = figure(results[result])
    assert [t.name for t in fig.data] == names
    values = [v for t in fig.data for row in (t.z if t.type == "heatmap" else [t.y]) for v in row if v is not None]
    assert values and all(0 <= v <= 100 for v in values)


def test_curves_are_the_confusion_rates_in_percent(results):
    res = results["transfer"]
    fig = plots.curves_figure(res)
    for trace in fig.data:
        attacker, judge = trace.name.split(" → ")
        assert list(trace.x) == res.eps
        assert list(trace.y) == [None if r is None else pytest.approx(100 * r) for _, r in res.curve(judge, attacker)]
        assert trace.line.dash == ("solid" if attacker == judge else "dash")
    heat = plots.matrix_figure(res).data[1]  # eps 0.02: rows crafted on, columns judged by
    assert [list(row) for row in heat.z] == [[None if v is None else round(100 * v, 1) for v in row]
                                              for row in res.matrix(0.02)]


def test_write_csv(tmp_path):
    p = write_csv([{"a": 1, "b": None}, {"a": 2, "c": "x"}], tmp_path / "t.csv")
    assert p.read_text().splitlines() == ["a,b,c", "1,,", "2,,x"]


# -- the playground on the path the detector scores: resize or native-resolution tiles ---------------
def _photo(height: int, width: int, fake: bool, seed: int = 5) -> torch.Tensor:
    """A smooth "photo" of any size; a fake carries the tiny detector's checkerboard trace."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, height + 2, width + 2, generator=g), 3, 1)[0]
    checker = ((torch.arange(height)[:, None] + torch.arange(width)[None, :]) % 2).float() * 2 - 1
    return (0.2 + 0.6 * base + (0.03 * checker if fake else 0)).clamp(0, 1)


@pytest.mark.parametrize("max_tiles", [64, 3])          # every tile, and detect.tiling's seeded sample
def test_tiled_logit_is_the_tiles_score(tiny, max_tiles):
    from detectlab.attacks import TiledLogit
    from detectlab.detect.tiling import score_tiled

    x = _photo(27, 40, fake=True)
    plain = TiledLogit(tiny, 27, 40, max_tiles=max_tiles)
    with torch.no_grad():
        z = float(plain(x[None])[0])
    t = score_tiled(tiny, x, max_tiles=max_tiles)
    assert z == pytest.approx(t.logit, abs=1e-5) and len(plain.starts) == t.tiles_scored
    # checkpointed (recomputed batch by batch) and plain backward passes give the same gradient
    grads = []
    for over in (10_000, 0):
        model = TiledLogit(tiny, 27, 40, max_tiles=max_tiles, batch_size=2, checkpoint_over=over)
        xx = x[None].clone().requires_grad_(True)
        model(xx).sum().backward()
        grads.append(xx.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0
    with pytest.raises(AttackError, match="laid out for 40×27 images, got 16×16"):
        plain(torch.zeros(1, 3, 16, 16))


def test_tiles_attack_keeps_the_upload_size_and_is_scored_as_detect_scores(tiny, tmp_path):
    from detectlab.detect.tiling import score_file_tiled, score_tiled

    x = _photo(27, 40, fake=True)
    r = attack_image(tiny, x, "fgsm", 0.03, scoring="tiles")
    assert r.scoring == "tiles" and r.adversarial.shape == x.shape and r.output_size == (40, 27)
    assert r.tiles == score_tiled(tiny, x).tiles_scored == 6      # 2 rows x 3 columns of 16 px
    assert r.p_before == pytest.approx(score_tiled(tiny, x).p_fake, abs=1e-6)
    assert r.p_after == pytest.approx(score_tiled(tiny, r.adversarial).p_fake, abs=1e-6)
    assert r.p_after < r.p_before - 0.1
    # every pixel lies in a scored tile: FGSM moves each by eps, none by more
    assert r.residual.abs().max() <= 0.03 + 1e-6 and (r.residual.abs() > 0.029).float().mean() > 0.99
    assert "40×27" in r.describe() and "6 tiles of 16 px" in r.describe()
    # the download, read back and scored by Detect's tiles path, is the "saved as PNG" number
    png = r.write_png(tmp_path / r.file_name("up.png"))
    assert png.name == "up_fgsm_eps0.030_tiles.png"
    assert score_file_tiled(tiny, png).p_fake == pytest.approx(r.p_saved["png"], abs=1e-6)


def test_resize_attack_works_on_the_detectors_input(tiny):
    x = _photo(27, 40, fake=True)
    r = attack_image(tiny, x, "fgsm", 0.02, scoring="resize")
    assert r.scoring == "resize" and r.output_size == (S, S) and r.source_size == (40, 27)
    assert "the centre 27×27 of the 40×27 upload resized to the detector's 16×16 input" in r.describe()
    # an image no larger than the input: the tiles path scores it whole, and so the attack runs on resize
    small = attack_image(tiny, _photo(S, S, fake=True), "fgsm", 0.02, scoring="tiles")
    assert small.scoring == "resize" and small.output_size == (S, S) and small.scored_whole
    assert small.describe().startswith("the tiles path scores an image no larger than the detector's input whole")
    with pytest.raises(AttackError, match="scoring must be one of resize, tiles, got 'crop'"):
        attack_image(tiny, x, "fgsm", 0.02, scoring="crop")


@pytest.mark.parametrize("scoring", ["resize", "tiles"])
def test_each_survival_number_has_its_clean_control(tiny, scoring):
    from detectlab.attacks import SURVIVAL_CHECKS
    from detectlab.attacks.playground import survival_step
    from detectlab.detect.tiling import score_tiled

    x = (_photo(27, 40, fake=True) * 255).round() / 255          # 8-bit, as a decoded file is
    r = attack_image(tiny, x, "pgd", 0.03, scoring=scoring, steps=3)
    assert [c.name for c in r.checks] == list(SURVIVAL_CHECKS)

    def score(t):
        return score_tiled(tiny, t).p_fake if scoring == "tiles" else float(torch.sigmoid(tiny(t[None]))[0])

    with torch.no_grad():
        for c in r.checks:
            assert c.p_clean == pytest.approx(score(survival_step(c.name, r.image)), abs=1e-5)
            assert c.p_attacked == pytest.approx(score(survival_step(c.name, r.adversarial)), abs=1e-5)
    png = r.checks[0]
    if scoring == "tiles":       # the clean image is 8-bit already: its PNG round trip is itself
        assert png.p_clean == pytest.approx(r.p_before, abs=1e-6)
    # the controls are kept for the next eps: the same numbers, the attack's own ones new
    again = attack_image(tiny, x, "pgd", 0.01, scoring=scoring, steps=3)
    assert [c.p_clean for c in again.checks] == [c.p_clean for c in r.checks] and again.p_before == r.p_before


@pytest.mark.parametrize("p_before,p_clean,p_attacked,says", [
    (0.9, 0.261, 0.12, "JPEG 90 alone already makes the clean image real: the attack is not what makes it real"),
    (0.9, 0.8, 0.12, "the attack survives JPEG 90: the clean image stays fake, the attacked one is called real"),
    (0.9, 0.8, 0.7, "the attack does not survive JPEG 90: the attacked image is called fake"),
    (0.2, 0.1, 0.05, "the clean image is called real already: there is no fake verdict to flip"),
])
def test_survival_conclusion_is_honest(p_before, p_clean, p_attacked, says):
    from detectlab.attacks import SurvivalCheck

    assert SurvivalCheck("jpeg90", "JPEG 90", p_clean, p_attacked).conclusion(p_before, 0.5) == says


def test_attack_file_decodes_as_detect_does(tiny, tmp_path):
    from detectlab.attacks import attack_file
    from detectlab.data import load_tensor, to_pil

    path = tmp_path / "wide.png"
    to_pil(_photo(27, 40, fake=True)).save(path)
    tiles = attack_file(tiny, path, "fgsm", 0.02, scoring="tiles")
    assert tiles.output_size == (40, 27) and tiles.source_size == (40, 27)
    assert torch.equal(tiles.image, load_tensor(path))
    resize = attack_file(tiny, path, "fgsm", 0.02, scoring="resize")
    assert resize.output_size == (S, S) and resize.source_size == (40, 27)
    assert torch.allclose(resize.image, load_tensor(path, S))
    with pytest.raises(AttackError, match=r"wide.png is 40×27 \(0.0 MP\): the tiles attack .* at most 0 MP"):
        attack_file(tiny, path, "fgsm", 0.02, scoring="tiles", file_name="wide.png", max_pixels=100)


# -- set-level findings: per class, and strongest / weakest -----------------------------------------
def _transfer_result(rates: dict[tuple[str, str], float | None]):
    from detectlab.attacks import ConfusionResult
    from detectlab.attacks.experiments import TransferCell, TransferResult

    names = list(dict.fromkeys(n for pair in rates for n in pair))
    cells = [TransferCell(a, j, 0.02, ConfusionResult(0.02, 10, 0 if r is None else round(10 * r), r))
             for (a, j), r in rates.items()]
    return TransferResult("fgsm", names, names, [0.02], cells, 10)


@pytest.mark.parametrize("rates,says", [
    ({("a", "a"): 1.0, ("a", "b"): 0.4}, "one pair only, a→b 40.0 %"),
    ({("a", "b"): 0.4, ("b", "a"): 0.4}, "all 2 pairs equal, 40.0 % (a→b, b→a)"),
    ({("a", "b"): 0.9, ("b", "a"): 0.2, ("a", "c"): 0.2}, "strongest a→b 90.0 %, weakest b→a, a→c 20.0 %"),
    ({("a", "b"): 0.9, ("b", "a"): 0.2, ("a", "c"): 0.5}, "strongest a→b 90.0 %, weakest b→a 20.0 %"),
])
def test_transfer_findings_never_name_one_pair_strongest_and_weakest(rates, says):
    (line,) = paper.transfer_findings(_transfer_result(rates))
    assert line.startswith(f"Transfer at eps 0.02: {says}")
    if "strongest" in line:
        strong, weak = line.split("weakest")
        assert not {p for p in strong.split() if "→" in p} & {p.strip(",") for p in weak.split() if "→" in p}


def test_per_class_rates_of_a_set(results, test_set):
    _, y = test_set
    res = results["transfer"]
    n_fake, n_real = int(y.sum()), int((y == 0).sum())
    for c in res.cells:
        r = c.result
        assert (r.n_fake, r.n_real) == (n_fake, n_real)
        # accuracy after = the two classes' shares of correct decisions, weighted by their sizes
        assert r.accuracy_after == pytest.approx(
            (n_fake * (1 - r.fakes_called_real_after) + n_real * (1 - r.reals_called_fake_after)) / len(y))
        assert 0 <= r.reals_turned_fake <= n_real
        assert r.reals_turned_fake >= round(n_real * (r.reals_called_fake_after - r.reals_called_fake_before))
    white = [c.result for c in res.cells if c.attacker == c.judge == "a"]
    assert white[-1].reals_called_fake_after > white[-1].reals_called_fake_before   # reals pushed towards fake
    lines = paper.class_findings(res)
    assert len(lines) == 2 and lines[0].startswith("a attacked on itself (fgsm), per class: fakes called real ")
    assert f"(of {n_fake} fakes); reals called fake" in lines[0] and f"(of {n_real} reals)" in lines[0]
    assert f"eps 0.02: {100 * white[-1].reals_called_fake_after:.1f} % ({white[-1].reals_turned_fake} turned fake)" \
        in lines[0]
    assert {"fakes_called_real_after", "reals_called_fake_after", "reals_turned_fake"} <= set(res.rows()[0])


def test_transfer_matrix_tick_labels_stay_off_the_cells(results):
    fig = plots.matrix_figure(results["transfer"])
    # shared rows: only the first panel names them, in the left margin that grows to fit
    assert fig.layout.yaxis.showticklabels is True and fig.layout.yaxis.automargin is True
    assert fig.layout.yaxis2.showticklabels is False
    assert fig.layout.xaxis.tickangle == -30 and fig.layout.xaxis2.tickangle == -30
    # the panels do not touch, and the colour bar sits right of the last one
    assert fig.layout.xaxis.domain[1] < fig.layout.xaxis2.domain[0]
    assert fig.data[-1].colorbar.x >= 1.0 and fig.layout.margin.r >= 60
