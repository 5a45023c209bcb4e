"""Every route that can return a file, walked on the running app; server paths to every endpoint that names a model."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

SECRET = b"<script>document.title='owned-7f3a'</script>"


@pytest.fixture(scope="module")
def served(demo_root):
    from detectlab.ui.app import serve

    s = serve(host="127.0.0.1", port=0)
    yield s
    s.close()


def _routes(app, prefix: str = ""):
    """(path template, methods) of every route under ``app``, mounts followed."""
    for route in getattr(app, "routes", []):
        included = getattr(route, "original_router", None)  # FastAPI's include_router(), as Gradio's API uses
        if included is not None:
            yield from _routes(included, prefix + (route.include_context.prefix or ""))
            continue
        path = prefix + getattr(route, "path", "")
        sub = getattr(route, "app", None)
        if getattr(route, "routes", None) is not None and not getattr(route, "methods", None):
            yield from _routes(route, path)
        elif sub is not None and not getattr(route, "methods", None) and hasattr(sub, "routes"):
            yield from _routes(sub, path)
        else:
            yield path, set(getattr(route, "methods", None) or ())


def _file_routes(served) -> list[str]:
    """GET routes with a parameter that can carry a file system path (``{name:path}``)."""
    app = served.server.config.app
    while not hasattr(app, "routes"):
        app = app.app  # through our middleware
    return sorted({p for p, methods in _routes(app) if "GET" in methods and re.search(r"\{\w+:path\}", p)})


@pytest.fixture(scope="module")
def hostile_files():
    from detectlab import config

    root = config.datasets_dir() / f"hostile-{uuid.uuid4().hex[:6]}"
    (root / "real").mkdir(parents=True)
    files = {}
    for name in ("real/evil.html", "real/evil.svg", "real/evil.htm", "real/run.js", "manifest.json"):
        (root / name).write_bytes(SECRET)
        files[name] = root / name
    Image.new("RGB", (8, 8), (10, 200, 30)).save(root / "real" / "ok.png")
    files["real/ok.png"] = root / "real" / "ok.png"
    # shipped files in the assets data root: the demo's manifest and generator weights
    files["assets manifest"] = config.DEMO_DIR / "manifest.json"
    files["assets weights"] = next(config.GENERATOR_DIR.glob("*.safetensors"))
    return files


def test_every_file_route_serves_only_rasters_from_the_data_roots(served, hostile_files):
    routes = _file_routes(served)
    assert any("file=" in r for r in routes) and any(r.endswith("/file/{path:path}") for r in routes), routes
    base = served.url.rstrip("/")
    png_served = 0
    with httpx.Client(timeout=30) as http:
        for route in routes:
            for name, path in hostile_files.items():
                url = base + re.sub(r"\{\w+:path\}", str(path), re.sub(r"\{\w+\}", "x", route))
                r = http.get(url)
                assert r.headers.get("x-content-type-options") == "nosniff", (url, r.status_code)
                if name.endswith(".png"):
                    png_served += r.status_code == 200
                    continue
                # nothing of a non-raster file under a data root leaves the server, on any route
                assert r.status_code != 200 or path.read_bytes() not in r.content, (url, r.status_code)
                assert SECRET not in r.content, url
                if r.status_code == 200:
                    assert not r.headers.get("content-type", "").startswith(("text/html", "image/svg")), url
    assert png_served >= 2  # the raster itself is still served, by /file= and by /file/


def test_a_served_upload_of_an_active_type_is_a_download(served):
    """A file in Gradio's own cache (an upload, an output) is Gradio's: served, but never as a page."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    page = folder / "figure.html"
    page.write_bytes(SECRET)
    for route in ("file=", "file/"):
        r = httpx.get(f"{served.url}gradio_api/{route}{page}", timeout=30)
        if r.status_code == 200:
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.headers["content-disposition"].startswith("attachment")
        assert r.headers["x-content-type-options"] == "nosniff"


SERVER_PATHS = ["/etc/shadow", "/etc/passwd", "checkpoints/cnn-resnet18.safetensors", "~/.ssh/id_rsa",
                "../../checkpoints/manifest.json"]


def _endpoint_calls(image, path):
    from gradio_client import handle_file

    img = handle_file(str(image))
    return {
        "/detect (detector)": dict(image_path=img, detector=path, api_name="/detect"),
        "/degrade_score (detectors)": dict(image=img, detectors=path, api_name="/degrade_score"),
        "/attack (detector)": dict(image=img, detector=path, api_name="/attack"),
        "/localize (localizer)": dict(image_path=img, mask_path=None, localizer=path, api_name="/localize"),
        "/localize (detector)": dict(image_path=img, mask_path=None, localizer="unet-small", detector=path, api_name="/localize"),
    }


@pytest.mark.parametrize("path", SERVER_PATHS)
def test_no_endpoint_takes_a_server_path_as_a_model(served, demo_root, path):
    """Whether the file exists or not, the answer is the same sentence: the API learns nothing of the disk."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from detectlab import config

    if path.startswith("checkpoints/"):
        path = str(config.REPO_ROOT / path)  # a real, loadable checkpoint, named by its full path
    image = next((demo_root / "real").glob("*.png"))
    client = Client(served.url, verbose=False)
    for endpoint, kwargs in _endpoint_calls(image, path).items():
        with pytest.raises(AppError) as err:
            client.predict(**kwargs)
        text = str(err.value)
        assert "not a file path on the server" in text, (endpoint, text[:300])
        assert "cannot be loaded" not in text and "no such file" not in text.lower(), (endpoint, text[:300])
