"""The REST routes (``detectlab/ui/rest.py``) on the real server: one app served with a login for the module,
called over HTTP with httpx, compared with the Gradio endpoints (gradio_client) and the in-process package call."""

from __future__ import annotations

import io
import threading
import time

import pytest

USER, PASSWORD = "alice", "s3cret-pw"
#: Batched (REST) and one-image (Gradio /detect) forwards may differ in the last float bits, nothing more.
TOL = 1e-5


@pytest.fixture(scope="module")
def served(demo_root):
    from detectlab.ui.app import serve

    s = serve(host="127.0.0.1", port=0, auth=(USER, PASSWORD))
    yield s
    s.close()


@pytest.fixture(scope="module")
def api(served):
    import httpx

    with httpx.Client(base_url=served.url + "api/v1", auth=(USER, PASSWORD), timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def gradio(served):
    from gradio_client import Client

    client = Client(served.url, auth=(USER, PASSWORD), verbose=False)
    yield client
    client.close()  # its heartbeat stream would hold the server's shutdown for its 5 s grace


@pytest.fixture(scope="module")
def images(demo_root):
    """Four demo images (two real, two fake) as (name, bytes)."""
    fakes = sorted(p for p in demo_root.iterdir() if p.is_dir() and p.name != "real")
    paths = sorted((demo_root / "real").glob("*.png"))[:2] + [sorted(fakes[0].glob("*.png"))[0],
                                                               sorted(fakes[1].glob("*.png"))[0]]
    return [(p.name, p.read_bytes()) for p in paths]


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def large(images):
    """A 400 px image: over 1.5x the detectors' 128 px input, so /detect scores it by tiles too."""
    from PIL import Image

    return "large.png", _png(Image.open(io.BytesIO(images[2][1])).resize((400, 400), Image.BICUBIC))


def _files(*named):
    return [("files", (name, data, "image/png")) for name, data in named]


def _limiter_holder(served):
    """The mounted REST app's state (its limiter), reached through the server's app."""
    from starlette.routing import Mount

    outer = served.server.config.app.app  # ServedFileGuard -> the FastAPI app
    return next(r.app for r in outer.routes if isinstance(r, Mount) and r.path == "/api/v1").state


def _assert_same(rest: dict, gradio: dict):
    assert set(gradio) <= set(rest), set(gradio) - set(rest)
    for key, want in gradio.items():
        got = rest[key]
        if isinstance(want, float):
            # probabilities to TOL; a feature distance (unbounded scale) to TOL of its size: a batched forward
            # and /detect's single-image forward differ in the last float32 digits
            assert got == pytest.approx(want, rel=TOL, abs=TOL), key
        else:
            assert got == want, key


@pytest.mark.parametrize("detector", ["cnn-resnet18", "spectrum-durrall"])
def test_detect_numbers_equal_gradio_detect(api, gradio, images, large, tmp_path, detector):
    from gradio_client import handle_file

    r = api.post("/detect", files=_files(images[0], images[2], large), data={"detector": detector})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 3 and body["failed"] == 0 and body["detector"] == detector
    for (name, data), rest in zip([images[0], images[2], large], body["results"]):
        path = tmp_path / name
        path.write_bytes(data)
        want, _ = gradio.predict(handle_file(str(path)), detector, "gradcam", 0.5, "resize", api_name="/detect")
        assert rest["file"] == name
        _assert_same(rest, want)
        assert "ood_distance" in rest and 0 <= rest["p_fake"] <= 1
    assert body["results"][2]["p_fake_tiles"] is not None  # the large image was scored both ways, as /detect does
    assert body["results"][0]["p_fake_tiles"] is None


def test_many_images_in_one_request_equal_the_in_process_batch(api, images, tmp_path):
    from detectlab import catalog
    from detectlab.detect.predict import score_files

    named = images * 4 + [("same.png", images[0][1]), ("same.png", images[2][1])]  # a name twice: both scored
    r = api.post("/detect", files=_files(*named), data={"detector": "cnn-resnet18"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["file"] for x in results] == [n for n, _ in named]
    paths = []
    for i, (name, data) in enumerate(named):
        (tmp_path / str(i)).mkdir()
        paths.append(tmp_path / str(i) / name)
        paths[-1].write_bytes(data)
    expected = score_files(catalog.load_detector("cnn-resnet18"), paths)
    assert [x["p_fake"] for x in results] == pytest.approx([p.p_fake for p in expected], abs=TOL)
    assert [x["verdict"] for x in results] == [p.verdict for p in expected]
    assert results[-2]["p_fake"] != pytest.approx(results[-1]["p_fake"], abs=1e-4)  # not one file scored twice


def test_bad_files_are_named_and_the_others_still_scored(api, images, monkeypatch):
    from detectlab import config

    truncated = images[0][1][: len(images[0][1]) // 2]
    r = api.post("/detect", files=_files(images[0], ("cut.png", truncated), ("page.png", b"<html><body>hi</body></html>"),
                                         ("empty.png", b""), images[2]))
    assert r.status_code == 422
    body = r.json()
    assert body["count"] == 5 and body["failed"] == 3
    ok, cut, page, empty, ok2 = body["results"]
    assert 0 <= ok["p_fake"] <= 1 and 0 <= ok2["p_fake"] <= 1
    for result, name in ((cut, "cut.png"), (page, "page.png"), (empty, "empty.png")):
        assert result["error"].startswith(f"{name}: ") and "p_fake" not in result, result
        assert "/" not in result["error"].split(": ", 1)[0]  # the upload's name, no server path
    assert "truncated" in cut["error"] or "corrupt" in cut["error"], cut["error"]
    assert "empty" in empty["error"]

    r = api.post("/detect", files=_files(("../../etc/passwd.png", b"<html></html>"), (".", images[0][1])))
    assert [x.get("error", "")[:12] for x in r.json()["results"]] == ["passwd.png: ", ""]  # no folders, no escape
    assert r.json()["results"][1]["file"] == "image-1"

    monkeypatch.setattr(config, "MAX_IMAGE_PIXELS", 100 * 100)  # the server is this process: same config
    r = api.post("/detect", files=_files(images[0]))
    assert r.status_code == 422
    assert r.json()["results"][0]["error"].startswith(f"{images[0][0]}: image is too large")


def test_request_limits(api, images, monkeypatch):
    from detectlab import config
    from detectlab.ui import rest

    r = api.post("/detect", data={"detector": "cnn-resnet18"})
    assert r.status_code == 422  # no file: FastAPI's own check names the missing field
    assert "files" in r.text
    r = api.post("/detect", files=_files(images[0]), data={"detector": "no-such-detector"})
    assert r.status_code == 422 and "no-such-detector" in r.json()["error"]

    monkeypatch.setattr(rest, "MAX_FILES", 2)
    r = api.post("/detect", files=_files(*images[:3]))
    assert r.status_code == 413 and "at most 2" in r.json()["error"]

    monkeypatch.setattr(config, "MAX_UPLOAD_BYTES", 1000)
    r = api.post("/detect", files=_files(images[0]))
    assert r.status_code == 413 and "over the upload limit" in r.json()["error"]


def test_login_is_required(served, images):
    import httpx

    url = served.url + "api/v1"
    for auth in (None, (USER, "wrong"), ("bob", PASSWORD)):
        r = httpx.post(url + "/detect", files=_files(images[0]), auth=auth, timeout=60)
        assert r.status_code == 401, auth
        assert r.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(url + "/openapi.json", timeout=60).status_code == 401

    with httpx.Client(timeout=60) as browser:  # the app's login form: its cookie opens the REST routes too
        assert browser.post(served.url + "login", data={"username": USER, "password": PASSWORD}).status_code == 200
        r = browser.post(url + "/detect", files=_files(images[0]))
        assert r.status_code == 200, r.text
        assert 0 <= r.json()["results"][0]["p_fake"] <= 1


def test_kept_alive_connections_answer_without_the_delayed_ack_wait(served, api):
    """The server's sockets say TCP, so asyncio sets TCP_NODELAY: a second request on one connection
    answers in about a millisecond, not after the ~40 ms of Nagle against the client's delayed ACK."""
    import socket

    assert all(s.proto == socket.IPPROTO_TCP for srv in served.server.servers for s in srv.sockets)
    times = []
    for _ in range(10):
        start = time.perf_counter()
        assert api.get("/openapi.json").status_code == 200
        times.append(time.perf_counter() - start)
    assert min(times) < 0.02, times  # with the wait, every request took >= 40 ms


def test_openapi_page_lists_the_routes(api):
    schema = api.get("/openapi.json").json()
    assert {"/detect", "/localize", "/attack"} <= set(schema["paths"])
    assert schema["servers"][0]["url"] == "/api/v1"  # the docs page's "try it out" reaches the mounted routes
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert docs.headers["x-content-type-options"] == "nosniff"  # ServedFileGuard covers these routes


def test_attack_and_localize_return_the_gradio_endpoints_json(api, gradio, images, demo_root, tmp_path):
    import base64

    from gradio_client import handle_file

    from detectlab import config

    path = tmp_path / images[2][0]
    path.write_bytes(images[2][1])
    r = api.post("/attack", files={"file": (path.name, path.read_bytes(), "image/png")},
                 data={"detector": "cnn-resnet18", "method": "fgsm", "eps": "0.02", "images": "true"})
    assert r.status_code == 200, r.text
    rest = r.json()
    want, _ = gradio.predict(handle_file(str(path)), "cnn-resnet18", "fgsm", 0.02, "resize", api_name="/attack")
    _assert_same({k: v for k, v in rest.items() if k != "seconds"}, {k: v for k, v in want.items() if k != "seconds"})
    assert base64.b64decode(rest["adversarial_png"]).startswith(b"\x89PNG")

    image = sorted((config.DEMO_INPAINT_DIR / "images").glob("*.png"))[0]
    mask = config.DEMO_INPAINT_DIR / "masks" / image.name
    r = api.post("/localize", files={"file": (image.name, image.read_bytes(), "image/png"),
                                     "mask": (mask.name, mask.read_bytes(), "image/png")}, data={"conf": "0.25"})
    assert r.status_code == 200, r.text
    want, _, _ = gradio.predict(handle_file(str(image)), handle_file(str(mask)), "", None, 0.25, api_name="/localize")
    _assert_same(r.json(), want)

    r = api.post("/attack", files={"file": ("page.png", b"<html></html>", "image/png")},
                 data={"detector": "cnn-resnet18"})
    assert r.status_code == 422 and r.json()["error"].startswith("page.png: ")


def test_concurrency_is_bounded(served, api, images):
    state = _limiter_holder(served)
    original = state.limiter
    try:
        _check_bound(state, api, images)
    finally:
        state.limiter = original


def _check_bound(state, api, images):
    from detectlab.ui.rest import Limiter

    limiter = state.limiter = Limiter(limit=1, queue=1, wait_s=60)
    done, in_line = {}, threading.Event()
    slots = limiter._slots

    class Signalling:
        """The limiter's semaphore, saying when this request has taken its place in line (``waiting`` is
        counted before the request asks for a slot)."""

        def acquire(self, timeout=None):
            in_line.set()
            return slots.acquire(timeout=timeout)

        def release(self):
            slots.release()

    def waiting_request():
        done["response"] = api.post("/detect", files=_files(images[0]))

    with limiter.slot():  # the one compute slot is busy
        limiter._slots = Signalling()
        t = threading.Thread(target=waiting_request)
        t.start()
        assert in_line.wait(30)  # the request's own signal, not a poll
        assert limiter.waiting == 1 and "response" not in done  # it waits in line
        r = api.post("/detect", files=_files(images[0]))  # the line is full: refused at once
        assert r.status_code == 503 and r.headers["retry-after"] == "5" and "waiting" in r.json()["error"]
    t.join(60)
    assert done["response"].status_code == 200  # the waiting request ran once the slot freed

    limiter = state.limiter = Limiter(limit=1, queue=4, wait_s=0.2)
    with limiter.slot():
        start = time.monotonic()
        r = api.post("/detect", files=_files(images[0]))
        assert r.status_code == 503 and "within 0.2 s" in r.json()["error"]
        assert time.monotonic() - start < 10


def test_serve_device_flag(monkeypatch, capsys):
    import os

    import torch

    from detectlab.cli import main
    from detectlab.ui import app

    seen = {}
    monkeypatch.delenv("DETECTLAB_DEVICE", raising=False)
    monkeypatch.setattr(app, "launch", lambda **kw: seen.update(kw, device=os.environ.get("DETECTLAB_DEVICE")))
    assert main(["serve", "--device", "cpu", "--port", "0"]) == 0
    assert seen["device"] == "cpu" and seen["port"] == 0
    assert "detectors run on cpu" in capsys.readouterr().out

    seen.clear()
    monkeypatch.setenv("DETECTLAB_DEVICE", "tpu")  # a bad variable, no flag: refused before the app builds
    assert main(["serve"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err and not seen
    monkeypatch.delenv("DETECTLAB_DEVICE")
    assert main(["serve", "--device", "tpu"]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err and not seen
    if not torch.cuda.is_available():
        assert main(["serve", "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "PyTorch sees no CUDA GPU" in err and "--device cpu" in err and not seen  # the app never started


@pytest.mark.parametrize("name,stored", [("a.png", "a.png"), ("../../x.png", "x.png"), ("C:\\up\\y.jpg", "y.jpg"),
                                         ("", "image-3"), ("..", "image-3"), ("n\0ul.png", "nul.png"),
                                         ("z" * 300 + ".webp", "z" * 115 + ".webp")])
def test_upload_names_are_safe_base_names(name, stored):
    from detectlab.data.uploads import upload_name

    assert upload_name(name, 3) == stored
