"""The embedded demo: enough images, plausible generator outputs, distinct traces, exact masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detectlab import config
from detectlab.data import discover, load_image, load_mask
from detectlab.demo.build import GENERATORS, INPAINT_GENERATORS, real_crops
from detectlab.generators.train import psnr


def test_counts_and_layout(demo_root):
    ds = discover(demo_root)
    counts = ds.counts()
    assert ds.layout == "real+generators"
    assert counts["real"] >= 300
    assert all(counts[g] >= 300 for g in GENERATORS)
    assert not ds.skipped
    masked = discover(config.DEMO_INPAINT_DIR)
    assert len(masked.pairs) >= 300 and not masked.skipped


def test_the_demo_spans_designs_styles_and_losses_with_a_held_out_group(demo_root):
    """At least 6 designs over 3 up-sampling families, 2 styles beyond the residual net, 2 losses; a held-out group
    of at least 2 designs that combine a style, an up-sampler and a loss as no train design does."""
    from detectlab.generators.designs import DESIGNS, HELD_OUT, TRAIN, designs_in
    from detectlab.generators.nets import UPSAMPLERS

    family = {"transposed-conv": "transposed", "transposed-conv-k3": "transposed", "resize-conv": "interpolation",
              "bilinear-conv": "interpolation", "pixel-shuffle": "sub-pixel"}
    assert set(family) == set(UPSAMPLERS)
    designs = list(DESIGNS.values())
    assert list(GENERATORS) == list(DESIGNS) and len(designs) >= 6
    assert len({family[d.upsampler] for d in designs}) >= 3
    assert len({d.style for d in designs} - {"residual"}) >= 2 and len({d.loss for d in designs}) >= 2
    held, train = designs_in(HELD_OUT), designs_in(TRAIN)
    assert len(held) >= 2 and len(train) >= 4 and not set(held) & set(train)
    seen = {(DESIGNS[t].style, DESIGNS[t].upsampler, DESIGNS[t].loss) for t in train}
    assert all((DESIGNS[h].style, DESIGNS[h].upsampler, DESIGNS[h].loss) not in seen for h in held)
    assert set(discover(demo_root).generators) == set(DESIGNS)  # every design is materialized
    manifest = json.loads((demo_root / "manifest.json").read_text())
    assert {g: d["group"] for g, d in manifest["designs"].items()} == {g: d.group for g, d in DESIGNS.items()}
    for name in set(DESIGNS) - set(INPAINT_GENERATORS):  # the designs added for breadth trained in < 5 min on 2 cores
        assert manifest["generators"][name]["summary"]["train_seconds"] < 300, name


def test_groups_keep_crops_of_one_photo_together(demo_root):
    from detectlab.data import split

    parts = split(discover(demo_root).samples, seed=0)
    photo_split = {}
    for name, samples in parts.items():
        for s in samples:
            assert photo_split.setdefault(s.group, name) == name
    assert all(s.group.startswith("p") and "_c" not in s.group for s in parts["train"][:20])


@pytest.mark.parametrize("generator", GENERATORS)
def test_outputs_are_photographs_not_noise(demo_root, generator):
    stems, real = real_crops()
    idx = range(0, len(stems), max(1, len(stems) // 40))
    r = torch.stack([real[i] for i in idx]).float() / 255
    s = torch.stack([torch.from_numpy(np.asarray(load_image(demo_root / generator / f"{stems[i]}.png"))).permute(2, 0, 1)
                     for i in idx]).float() / 255
    assert s.shape == r.shape and s.shape[-1] >= 128
    assert psnr(s, r) > 18.0  # close to its source photo; noise would be ~8-11 dB
    assert 0.01 < float((s - r).abs().mean()) < 0.15  # ... but not a copy


def test_fingerprints_differ_between_generators():
    fps = {g: np.load(config.ASSETS / "fingerprints" / f"{g}.npy") for g in GENERATORS}
    for i, a in enumerate(GENERATORS):
        for b in GENERATORS[i + 1 :]:
            fa, fb = fps[a].ravel(), fps[b].ravel()
            diff = np.abs(fa - fb).mean() / ((np.abs(fa).mean() + np.abs(fb).mean()) / 2)
            assert diff > 0.2, (a, b, diff)


def test_masks_match_manipulated_pixels():
    root = config.DEMO_INPAINT_DIR
    manifest = json.loads((root / "manifest.json").read_text())["images"]
    areas = []
    for stem, rec in list(manifest.items())[::25]:
        mask = np.asarray(load_mask(root / "masks" / f"{stem}.png"))
        real = np.asarray(load_image(config.DEMO_DIR / "real" / f"{stem}.png"), dtype=int)
        image = np.asarray(load_image(root / "images" / f"{stem}.png"), dtype=int)
        assert (image[~mask] == real[~mask]).all()  # outside the mask: untouched
        assert mask.mean() == pytest.approx(rec["area"], abs=1e-4)
        areas.append(mask.mean())
    assert 0 < min(areas) and max(areas) <= 0.36


def test_cli_data_info_prints_counts(demo_root, capsys):
    from detectlab.cli import main

    assert main(["data", "info", str(demo_root)]) == 0  # in-process: `python -m detectlab` is tested elsewhere
    out = capsys.readouterr().out
    counts = discover(demo_root).counts()
    for g in ("real", *GENERATORS):
        assert g in out and str(counts[g]) in out
    # per-split counts as training splits the set, and the manipulated set that lives beside the demo
    from detectlab.data import split

    parts = split(discover(demo_root).samples, seed=0)
    n = {k: sum(1 for x in parts[k] if x.generator == "real") for k in ("train", "val", "test")}
    assert f"  {'real':20s} {counts['real']:6d} {n['train']:6d} {n['val']:6d} {n['test']:6d}" in out
    assert "demo-inpainted" in out


def test_cli_reports_a_bad_folder(tmp_path, capsys):
    from detectlab.cli import main

    assert main(["data", "info", str(tmp_path / "nope")]) == 2
    assert "folder does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- photo sources (demo/sources/)

def _rcc(path, files: dict[str, tuple[bytes, bool]]):
    """A version-1 Qt resource bundle: one folder ``img`` holding ``files`` (name -> (bytes, zlib))."""
    import struct
    import zlib

    names, tree, data = b"", b"", b""

    def name(text):
        nonlocal names
        off = len(names)
        names += struct.pack(">HI", len(text), 0) + text.encode("utf-16-be")
        return off

    tree += struct.pack(">IHII", 0, 2, 1, 1)                      # node 0: root folder, 1 child at 1
    tree += struct.pack(">IHII", name("img"), 2, len(files), 2)   # node 1: folder img, children from 2
    for fname, (payload, packed) in files.items():
        body = struct.pack(">I", len(payload)) + zlib.compress(payload) if packed else payload
        tree += struct.pack(">IHHHI", name(fname), 1 if packed else 0, 0, 0, len(data))
        data += struct.pack(">I", len(body)) + body
    tree_off = 20
    data_off = tree_off + len(tree)
    names_off = data_off + len(data)
    path.write_bytes(b"qres" + struct.pack(">4I", 1, tree_off, data_off, names_off) + tree + data + names)
    return path


def test_read_rcc_yields_paths_and_unpacked_bytes(tmp_path):
    from detectlab.demo.sources import SourcesError, read_rcc

    bundle = _rcc(tmp_path / "b.rcc", {"a.webp": (b"raw bytes", False), "README": (b"License: CC0\n" * 20, True)})
    entries = {e.path: e for e in read_rcc(bundle)}
    assert entries["/img/a.webp"].data == b"raw bytes" and entries["/img/a.webp"].compression == ""
    assert entries["/img/README"].data == b"License: CC0\n" * 20 and entries["/img/README"].compression == "zlib"
    (tmp_path / "x.rcc").write_bytes(b"nope")
    with pytest.raises(SourcesError, match="x.rcc: not a Qt resource bundle"):
        list(read_rcc(tmp_path / "x.rcc"))


@pytest.mark.parametrize("raw, spdx", [("CC-BY-SA 4.0", "CC-BY-SA-4.0"), ("Public Domain", "public-domain"),
                                       ("GPLv3+", "GPL-3+"), ("cc0", "CC0-1.0"), ("CC BY 2.0.", "CC-BY-2.0")])
def test_licence_names_are_spelt_the_spdx_way(raw, spdx):
    from detectlab.demo.sources.licences import normalise_licence

    assert normalise_licence(raw) == spdx


def test_dep5_and_attribution_readme_licences(tmp_path):
    from detectlab.demo.sources.licences import dep5_licence, parse_attribution_readme, parse_dep5

    (tmp_path / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: GPL-3+\n\n"
        "Files: src/photos/*.jpg\n another/one.png\nLicense: CC-BY-4.0\n\n"
        "License: GPL-3+\n the licence text\n")
    stanzas = parse_dep5(tmp_path / "copyright")
    assert stanzas == [(["*"], "GPL-3+"), (["src/photos/*.jpg", "another/one.png"], "CC-BY-4.0")]
    assert dep5_licence(stanzas, "src/photos/cat.webp") == "CC-BY-4.0"  # converted upstream: extension differs
    assert dep5_licence(stanzas, "src/other.png") == "GPL-3+"
    readme = parse_attribution_readme("Copyright: A\nLicense: CC BY-SA 3.0\nFiles:\ncat.webp dog.webp\n\n"
                                      "Source: https://example.org/x\nLicense: Public Domain\nFiles: owl.webp\n",
                                      "/res/animals")
    assert readme == [(["/res/animals/cat.webp", "/res/animals/dog.webp"], "CC-BY-SA-3.0"),
                      (["/res/animals/owl.webp"], "public-domain")]


def test_exclusions_are_a_data_file_with_patterns():
    from detectlab.demo.sources import EXCLUDE, exclusion_reason

    assert len(EXCLUDE) >= 60 and all(isinstance(v, str) and v for v in EXCLUDE.values())
    assert "chessboard" in exclusion_reason("usr/share/doc/opencv-doc/examples/data/left07.jpg")
    assert exclusion_reason("usr/share/doc/opencv-doc/examples/data/lena.jpg") is None


def test_photo_heuristics_tell_photos_from_graphics_and_copies(tmp_path):
    from PIL import Image

    from detectlab.demo.sources import dhash, heuristic_rejection, load_rgb, photo_statistics
    from detectlab.demo.sources.heuristics import is_near_duplicate, thumb

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400]
    scene = np.clip(np.stack([xx * 0.5, yy * 0.6, (xx + yy) * 0.3], -1) + rng.normal(0, 12, (300, 400, 3)), 0, 255)
    photo = Image.fromarray(scene.astype(np.uint8))
    photo.save(tmp_path / "photo.jpg", quality=92)
    Image.new("RGB", (400, 300), (20, 120, 200)).save(tmp_path / "flat.png")
    rgba = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    rgba.paste(photo.crop((0, 0, 200, 300)), (0, 0))
    rgba.save(tmp_path / "cutout.png")
    assert heuristic_rejection(photo_statistics(tmp_path / "photo.jpg")) is None
    assert "flat" in heuristic_rejection(photo_statistics(tmp_path / "flat.png"))
    assert "transparent" in heuristic_rejection(photo_statistics(tmp_path / "cutout.png"))
    # a resized, recompressed copy is a near-duplicate; another picture is not
    photo.resize((200, 150), Image.BOX).save(tmp_path / "copy.jpg", quality=70)
    a, b = load_rgb(tmp_path / "photo.jpg"), load_rgb(tmp_path / "copy.jpg")
    other = load_rgb(tmp_path / "cutout.png")
    assert is_near_duplicate((dhash(a), thumb(a)), (dhash(b), thumb(b)))
    assert not is_near_duplicate((dhash(a), thumb(a)), (dhash(other), thumb(other)))


def test_materialize_reports_one_overall_fraction_that_never_decreases(tmp_path):
    """Progress runs once from 0 to 1 over every step and generator (it does not restart per generator)."""
    import shutil

    from detectlab.demo.build import materialize

    real = tmp_path / "demo" / "real"
    real.mkdir(parents=True)
    for f in sorted((config.DEMO_DIR / "real").glob("*.png"))[:24]:
        shutil.copy(f, real / f.name)
    reports = []
    materialize(tmp_path / "demo", tmp_path / "demo-inpainted", config.GENERATOR_DIR,
                progress=lambda done, total=None, desc="": reports.append((done / total, total, desc)))
    fractions = [f for f, _, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert len({total for _, total, _ in reports}) == 1
    stages = list(dict.fromkeys(desc for _, _, desc in reports))
    assert stages[0] == "decode the real crops" and stages[-1] == "manipulated images and their masks"
    assert [s for s in stages if s.startswith("synthesize")] == [
        f"synthesize {g} (generator {k + 1} of {len(GENERATORS)})" for k, g in enumerate(GENERATORS)]
    # synthesis is most of the work: after the last generator the bar stands near the end
    last_synth = max(f for f, _, d in reports if d.startswith("synthesize"))
    assert 0.9 < last_synth < 1.0
    assert len(list((tmp_path / "demo-inpainted" / "images").glob("*.png"))) == 24
