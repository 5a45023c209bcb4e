"""Fingerprints tab in headless chromium: the side-by-side grid for the demo generators."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_side_by_side_grid_for_demo_generators(page):
    page.get_by_role("tab", name="Fingerprints").click()
    page.locator("#fp-run").click()
    grid = page.locator("#fp-grid")
    from detectlab.generators.designs import DESIGNS

    for g in DESIGNS:  # every design of the demo, side by side
        expect(grid.get_by_text(f"FP(real, {g})")).to_be_visible(timeout=120_000)
    assert grid.locator(".heatmaplayer .hm, .heatmaplayer image").count() >= len(DESIGNS)
    expect(page.locator("#fp-status")).to_contain_text("real images")


def test_uploaded_image_has_its_own_colour_scale_and_profiles_are_told_apart(page, demo_root, tmp_path):
    """One image's spectrum is far noisier than a set mean: it gets its own colour axis (said in its title and
    colour bar) so the fingerprints keep theirs; the radial profiles differ in colour, dash and marker."""
    image = sorted((demo_root / "real").glob("*.png"))[0]
    page.get_by_role("tab", name="Fingerprints").click()
    page.get_by_label("Images per set (0 = all; the paper uses 5000)").fill("64")
    page.locator("#fp-single input[type=file]").set_input_files(str(image))
    page.locator("#fp-run").click()
    grid = page.locator("#fp-grid")
    expect(grid.get_by_text(f"{image.name} − mean real")).to_be_visible(timeout=120_000)
    expect(grid.get_by_text("own colour scale ±")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#fp-profiles .js-plotly-plot')?.data?.length > 0",
                           timeout=120_000)
    axes = grid.locator(".js-plotly-plot").evaluate(
        "gd => ({traces: gd.data.map(t => [t.name, t.coloraxis || 'coloraxis']),"
        " sets: gd.layout.coloraxis.cmax, own: gd.layout.coloraxis2 && gd.layout.coloraxis2.cmax,"
        " bar: gd.layout.coloraxis2 && gd.layout.coloraxis2.colorbar.title.text})")
    own = [name for name, axis in axes["traces"] if axis == "coloraxis2"]
    assert own == [f"{image.name} − mean real"], axes
    from detectlab.generators.designs import DESIGNS

    # its own limit, from the image alone (on this demo the denoisers' fingerprints reach as far as one image's noise)
    assert len(axes["traces"]) == len(DESIGNS) + 1 and axes["own"] > 0 and axes["sets"] > 0, axes
    assert axes["own"] != pytest.approx(axes["sets"], rel=0.05), axes
    assert "own scale" in axes["bar"], axes
    lines = page.locator("#fp-profiles .js-plotly-plot").evaluate(
        "gd => gd.data.filter(t => t.showlegend !== false)"
        ".map(t => [t.name, t.line.color, t.line.dash, t.marker.symbol])")
    assert [n for n, *_ in lines] == ["real", *sorted(DESIGNS), f"uploaded: {image.name}"], lines
    for k in (1, 2, 3):   # colour, dash and marker each tell every line apart
        assert len({line[k] for line in lines}) == len(lines), lines
    legend = page.locator("#fp-profiles .legend")
    for name in ("real", *DESIGNS):
        expect(legend.get_by_text(name, exact=True)).to_be_visible()
    page.locator("#fp-grid").screenshot(path=str(tmp_path / "fp-grid.png"))
    page.locator("#fp-profiles").screenshot(path=str(tmp_path / "fp-profiles.png"))
