"""The HTTP guards: only raster images leave a data root, whatever the route; no served file runs as a page;
every response is nosniff; messages carry no server paths."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from detectlab.ui.serving import ServedFileGuard, raster_only


@pytest.mark.parametrize("name,allowed", [
    ("real/x.html", False), ("real/y.svg", False), ("real/z.HTM", False), ("real/run.js", False),
    ("manifest.json", False), ("w.safetensors", False),
    ("real/a.png", True), ("real/b.JPG", True), ("real/c.webp", True),
])
def test_only_rasters_are_allowed_from_a_data_root(tmp_path, name, allowed):
    root = tmp_path / "datasets"
    assert raster_only(root / name, [root]) is allowed
    assert raster_only(tmp_path / "elsewhere" / name, [root]) is True  # outside the roots: Gradio's own rules


def test_traversal_into_a_root_is_resolved_before_the_check(tmp_path):
    root = tmp_path / "datasets"
    (root / "a").mkdir(parents=True)
    assert not raster_only(f"{tmp_path}/other/../datasets/a/x.html", [root])


def _file_client(tmp_path, name: str, disposition: str = "inline"):
    path = tmp_path / name
    path.write_bytes(b"<script>alert(1)</script>")

    async def serve(request):
        return FileResponse(path, filename=name, content_disposition_type=disposition)

    async def page(request):
        return PlainTextResponse("<html></html>", media_type="text/html")

    inner = Starlette(routes=[Route("/any/route/{rest:path}", serve), Route("/", page)])
    return TestClient(ServedFileGuard(inner))


@pytest.mark.parametrize("name", ["x.html", "y.svg", "z.xml", "run.js", "a.xhtml"])
def test_a_served_file_of_an_active_type_is_a_download_on_any_route(tmp_path, name):
    r = _file_client(tmp_path, name).get(f"/any/route/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    assert name in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_images_stay_inline_and_the_page_stays_a_page(tmp_path):
    client = _file_client(tmp_path, "a.png")
    r = client.get("/any/route/a.png")
    assert r.headers["content-type"] == "image/png" and r.headers["content-disposition"].startswith("inline")
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html") and page.headers["x-content-type-options"] == "nosniff"


def test_event_streams_lose_upload_paths_but_keep_file_outputs(tmp_path, monkeypatch):
    """An error naming an upload reaches the client with the file's name; FileData and URLs stay whole."""
    import json

    from starlette.responses import StreamingResponse

    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    up = f"{uploads.resolve()}/ab12cd/my photo.png"
    staged = f"{tmp_path.resolve()}/datasets/.mine.extract-x1y2/real/a.png"
    heat = {"path": f"{uploads.resolve()}/ff00/heatmap.png", "url": f"http://h/gradio_api/file={uploads.resolve()}/ff00/heatmap.png",
            "meta": {"_type": "gradio.FileData"}}
    events = [{"msg": "process_completed", "success": False, "output": {"error": f"{up}: file is truncated"}},
              {"msg": "process_completed", "success": True, "output": {"data": [f"**Error:** entry {staged} twice", heat,
                                                                                 f"{uploads.resolve()}/ff00/x.csv"]}}]

    async def stream(request):
        async def gen():
            for e in events:
                yield f"data: {json.dumps(e)}\n\n"
        return StreamingResponse(gen(), media_type="text/event-stream")

    inner = Starlette(routes=[Route("/gradio_api/queue/data", stream)])
    text = TestClient(ServedFileGuard(inner)).get("/gradio_api/queue/data").text
    got = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert got[0]["output"]["error"] == "my photo.png: file is truncated"
    data = got[1]["output"]["data"]
    assert data[0] == "**Error:** entry real/a.png twice"
    assert data[1] == heat and data[2] == f"{uploads.resolve()}/ff00/x.csv"  # file outputs untouched
