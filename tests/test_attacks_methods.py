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
    amp, scale = r.residual_image()
    assert scale == pytest.approx(0.02, abs=1e-6) and amp.min() >= 0 and amp.max() <= 1
    assert torch.allclose(amp.min(), torch.tensor(0.0)) or torch.allclose(amp.max(), torch.tensor(1.0))
    assert r.flipped == (r.decision_before != r.decision_after)
    zero = attack_image(tiny, fake, "fgsm", 0.0)
    assert zero.size.psnr == math.inf and zero.residual_image()[1] == 0.0


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
