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
    text = TestClient(RasterOnlyFromDataRoots(inner, roots=[tmp_path / "datasets"])).get("/gradio_api/queue/data").text
    got = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert got[0]["output"]["error"] == "my photo.png: file is truncated"
    data = got[1]["output"]["data"]
    assert data[0] == "**Error:** entry real/a.png twice"
    assert data[1] == heat and data[2] == f"{uploads.resolve()}/ff00/x.csv"  # file outputs untouched
