"""The HTTP guard: only raster images leave a data root; every served file is nosniff."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from detectlab.ui.serving import RasterOnlyFromDataRoots


def _client(root):
    async def anything(request):
        return PlainTextResponse("served", headers={"content-type": "text/html"})

    inner = Starlette(routes=[Route("/{rest:path}", anything)])
    return TestClient(RasterOnlyFromDataRoots(inner, roots=[root]))


@pytest.mark.parametrize("name,status", [
    ("real/x.html", 403), ("real/y.svg", 403), ("real/z.HTM", 403), ("real/run.js", 403),
    ("real/a.png", 200), ("real/b.JPG", 200), ("real/c.webp", 200),
])
def test_only_rasters_are_served_from_a_data_root(tmp_path, name, status):
    root = tmp_path / "datasets"
    (root / "real").mkdir(parents=True)
    (root / name).write_bytes(b"<script>alert(1)</script>")
    r = _client(root).get(f"/gradio_api/file={root / name}")
    assert r.status_code == status
    assert r.headers["x-content-type-options"] == "nosniff"
    if status == 403:
        assert "only raster images" in r.text


def test_traversal_into_a_root_is_resolved_before_the_check(tmp_path):
    root = tmp_path / "datasets"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.html").write_text("<script></script>")
    r = _client(root).get(f"/gradio_api/file={tmp_path}/other/../datasets/a/x.html")
    assert r.status_code == 403


def test_other_routes_pass_untouched(tmp_path):
    r = _client(tmp_path).get("/config")
    assert r.status_code == 200 and r.text == "served" and "x-content-type-options" not in r.headers
