"""Plain REST routes beside the Gradio app: ``POST /api/v1/detect``, ``/api/v1/localize``, ``/api/v1/attack``.

Gradio's queue costs a round trip of its own (~220 ms for an endpoint that does nothing), so a script
scoring many images pays more for the queue than for the model. These routes take a multipart upload and
answer JSON in one request, on the same server, behind the same login, through the same decoder and limits;
their OpenAPI page is ``/api/v1/docs`` (schema: ``/api/v1/openapi.json``). Wiring only:

- ``detect`` scores every image of a request through one batched forward (``detect.predict.score_files``,
  the app's batch and ``detectlab predict``), so each file's numbers are the Gradio ``/detect``'s for that
  image and detector (resize path; an image large enough is scored by tiles too, as ``/detect`` does);
- ``localize`` and ``attack`` call the Gradio endpoints' own functions (``ui.api``), so their JSON is
  exactly theirs.

Errors are JSON ``{"error": ...}`` naming the file: a file that does not decode (corrupt, truncated, HTML,
over the pixel limit) is reported in its own result and the request's other files are still scored; the
status is then 422. Bounded concurrency: at most ``DETECTLAB_API_CONCURRENCY`` (2) requests compute at
once, up to ``DETECTLAB_API_QUEUE`` (16) more wait in line, each at most ``DETECTLAB_API_WAIT_S`` (60 s);
beyond that a request gets 503 with ``Retry-After`` at once rather than piling threads and memory up.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path

import fastapi
import gradio as gr
from fastapi import File, Form, UploadFile
from fastapi.responses import JSONResponse

from detectlab import __version__, catalog, config
from detectlab.data.uploads import staged_uploads
from detectlab.errors import DetectLabError
from detectlab.ui import api
from detectlab.ui.widgets import scrub, upload_dirs

PREFIX = "/api/v1"
#: Files one request may carry (a request is also bounded in bytes by ``config.MAX_UPLOAD_BYTES``).
MAX_FILES = int(os.environ.get("DETECTLAB_API_MAX_FILES", 256))


DESCRIPTION = """Multipart upload in, JSON out, beside the browser app and behind its login (HTTP Basic with
DETECTLAB_USER / DETECTLAB_PASSWORD, or the app's login cookie). `/detect` scores one or many images (multipart
field `files`, repeated) in one batched forward; each result holds the numbers the Gradio `/detect` returns.
A file that does not decode is reported in its own result (`error`, naming the file) and the other files are
still scored; the status is then 422. At most DETECTLAB_API_CONCURRENCY requests compute at once, others wait
in a bounded line; a full line answers 503 with Retry-After."""


class Busy(Exception):
    """Every compute slot is taken and the line is full (or the wait ran out): the client should retry."""


class Limiter:
    """At most ``limit`` requests compute at once; up to ``queue`` more wait, each at most ``wait_s`` seconds.

    Waiting (rather than refusing at once) suits a script that sends a few requests in parallel; the bound
    on the line keeps a flood from holding every server thread. A thread-level semaphore, because the
    routes compute in the server's worker threads.
    """

    def __init__(self, limit: int, queue: int, wait_s: float) -> None:
        if limit < 1:
            raise ValueError(f"the REST concurrency limit must be at least 1, got {limit}")
        self.limit, self.queue, self.wait_s = limit, queue, wait_s
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.waiting = 0

    @contextmanager
    def slot(self):
        with self._lock:
            if self.waiting >= self.queue:
                raise Busy(f"{self.limit} requests are computing and {self.waiting} waiting; retry later")
            self.waiting += 1
        try:
            got = self._slots.acquire(timeout=self.wait_s)
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            raise Busy(f"no compute slot freed within {self.wait_s:g} s; retry later")
        try:
            yield
        finally:
            self._slots.release()


def default_limiter() -> Limiter:
    return Limiter(int(os.environ.get("DETECTLAB_API_CONCURRENCY", 2)), int(os.environ.get("DETECTLAB_API_QUEUE", 16)),
                   float(os.environ.get("DETECTLAB_API_WAIT_S", 60)))


class RequestError(Exception):
    """A request the routes refuse as a whole, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- login and size, before the body is read -------------------------------------------------------
def _gradio_user(parent, request_cookies: dict[str, str]) -> str | None:
    """The user Gradio's login cookie names, from the Gradio app mounted beside these routes."""
    for route in getattr(parent, "routes", []):
        app = getattr(route, "app", None)
        if hasattr(app, "tokens") and hasattr(app, "cookie_id"):
            token = (request_cookies.get(f"access-token-{app.cookie_id}")
                     or request_cookies.get(f"access-token-unsecure-{app.cookie_id}"))
            return app.tokens.get(token) if token else None
    return None


def _basic_ok(header: str, auth: tuple[str, str]) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    # both compared whatever the first says: no timing hint of which was wrong
    return secrets.compare_digest(user.encode(), auth[0].encode()) & \
        secrets.compare_digest(password.encode(), auth[1].encode())


class Gate:
    """ASGI middleware in front of the routes: the login (HTTP Basic, or the app's login cookie) and the
    request size are checked before a byte of the body is read, so neither an anonymous client nor an
    oversized upload fills the server's disk."""

    def __init__(self, app, auth: tuple[str, str] | None, parent) -> None:
        self.app, self.auth, self.parent = app, auth, parent

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refused = self._refusal(scope, headers)
        if refused is not None:
            return await refused(scope, receive, send)
        return await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict[str, str]) -> JSONResponse | None:
        if self.auth is not None and not _basic_ok(headers.get("authorization", ""), self.auth):
            from http.cookies import SimpleCookie

            cookies = SimpleCookie()
            cookies.load(headers.get("cookie", ""))
            if not _gradio_user(self.parent, {k: m.value for k, m in cookies.items()}):
                return JSONResponse({"error": "login required: HTTP Basic with DETECTLAB_USER / DETECTLAB_PASSWORD, "
                                              "or the app's login cookie"}, 401,
                                    headers={"WWW-Authenticate": 'Basic realm="DetectLab"'})
        if scope["method"] == "POST":
            length = headers.get("content-length")
            if length is None:
                return JSONResponse({"error": "send the request with a Content-Length (no chunked uploads)"}, 411)
            if not length.isdigit() or int(length) > config.MAX_UPLOAD_BYTES:
                return JSONResponse({"error": f"request of {length} bytes is over the upload limit of "
                                              f"{config.MAX_UPLOAD_BYTES // 2**20} MB (DETECTLAB_MAX_UPLOAD_MB)"}, 413)
        return None


# -- uploads ---------------------------------------------------------------------------------------
@contextmanager
def saved(uploads: list[UploadFile]):
    """The uploads as files under Gradio's upload cache (so messages are scrubbed of it, and the server's
    shutdown sweeps anything left), each under its client's name so decode errors name it."""
    if not uploads:
        raise RequestError(422, "no image: send one or more image files as multipart field 'files'")
    if len(uploads) > MAX_FILES:
        raise RequestError(413, f"{len(uploads)} files in one request; at most {MAX_FILES} (DETECTLAB_API_MAX_FILES)")
    with staged_uploads([(up.filename, up.file) for up in uploads], upload_dirs()[0]) as paths:
        yield paths


def _png(path: str | None) -> str | None:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii") if path else None


# -- the routes ------------------------------------------------------------------------------------
def detect_files(paths: list[Path], detector: str = "") -> tuple[dict, int]:
    """Score files in one batch with one detector; (the response body, its status).

    Each result holds the numbers ``/detect`` returns for that file (resize path): P(fake), decision,
    threshold, verdict and its reasons, both paths' scores, the calibrated P(fake) and the
    out-of-distribution distance, and the detector's held-out rates.
    """
    from detectlab.detect.predict import score_files

    label = catalog.pick_detector((detector or "").strip() or api.default_detector())
    loaded = catalog.load_detector(label)
    held = loaded.heldout_fields("resize")  # /detect's own fields
    results, failed = [], 0
    for path, p in zip(paths, score_files(loaded, paths)):
        if p.p_fake is None:
            failed += 1
            results.append({"file": path.name, "error": scrub(p.error, path)})
            continue
        row = {"file": path.name, "p_fake": p.p_fake, "decision": p.decision, "threshold": loaded.threshold,
               "detector": label, "scoring": "resize", "verdict": p.verdict, "verdict_reasons": list(p.reasons),
               "p_fake_resize": p.p_fake, "p_fake_tiles": p.p_fake_tiles, **held}
        if p.p_calibrated is not None:
            row.update(p_fake_calibrated=p.p_calibrated, unlike_training=p.unlike_training,
                       ood_distance=p.ood_distance, ood_threshold=p.ood_threshold)
        results.append(row)
    body = {"detector": label, "count": len(paths), "failed": failed, "results": results}
    return body, 422 if failed else 200


def build(auth: tuple[str, str] | None, parent=None, limiter: Limiter | None = None) -> fastapi.FastAPI:
    """The REST app (to mount at ``PREFIX``); ``parent`` is the app it is mounted in, where the Gradio app
    (and its login cookies) lives."""
    rest = fastapi.FastAPI(
        title="DetectLab REST API", version=__version__, docs_url="/docs", redoc_url=None,
        openapi_url="/openapi.json",
        description=DESCRIPTION)
    rest.state.limiter = limiter or default_limiter()

    def run(work):
        """``work()`` inside a compute slot, its outcome as a JSON response."""
        try:
            with rest.state.limiter.slot():
                body, status = work()
        except Busy as exc:
            return JSONResponse({"error": str(exc)}, 503, headers={"Retry-After": "5"})
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        except (DetectLabError, gr.Error) as exc:
            return JSONResponse({"error": scrub(str(getattr(exc, "message", exc)))}, 422)
        except Exception as exc:  # noqa: BLE001 - the server keeps running; the client learns what broke
            return JSONResponse({"error": scrub(f"unexpected error: {type(exc).__name__}: {exc}")}, 500)
        return JSONResponse(body, status)

    @rest.post("/detect", summary="P(fake) and the verdict of one or many images (one batched forward)")
    def detect(files: list[UploadFile] = File(..., description="one or more image files (PNG, JPEG, WebP, BMP, TIFF)"),
               detector: str = Form("", description="a shipped name (cnn-resnet18, ...), a run id; empty: the default")):
        def work():
            with saved(files) as paths:
                return detect_files(paths, detector)
        return run(work)

    @rest.post("/localize", summary="Manipulated regions of one image (the Gradio /localize's JSON)")
    def localize(file: UploadFile = File(..., description="the image file"),
                 mask: UploadFile | None = File(None, description="optional: the true mask (white = manipulated)"),
                 localizer: str = Form("", description="a shipped localizer name; empty: the first"),
                 detector: str = Form("", description="optional: a detector whose heatmap is compared"),
                 conf: float = Form(0.25, ge=0, le=1), images: bool = Form(False, description="add the overlay PNGs (base64)")):
        def work():
            with saved([file] + ([mask] if mask is not None else [])) as paths:
                info, overlay, tpfpfn = api.localize(str(paths[0]), str(paths[1]) if mask is not None else None,
                                                     localizer, detector, conf)
                if images:
                    info = {**info, "overlay_png": _png(overlay), "tp_fp_fn_png": _png(tpfpfn)}
                return info, 200
        return run(work)

    @rest.post("/attack", summary="Attack one image towards real and score it before and after (the Gradio /attack's JSON)")
    def attack(file: UploadFile = File(..., description="the image file"),
               detector: str = Form("", description="a differentiable detector; empty: the default"),
               method: str = Form("fgsm", description="fgsm, pgd or lbfgs"), eps: float = Form(0.02, ge=0, le=1),
               scoring: str = Form("resize", description="resize or tiles"),
               images: bool = Form(False, description="add the adversarial image PNG (base64)")):
        def work():
            with saved([file]) as paths:
                info, adversarial = api.attack(str(paths[0]), detector, method, eps, scoring)
                if images:
                    info = {**info, "adversarial_png": _png(adversarial)}
                return info, 200
        return run(work)

    gated = Gate(rest, auth, parent)
    gated.state = rest.state  # tests and the bench reach the limiter through the mounted app
    return gated


def mount(app: fastapi.FastAPI, auth: tuple[str, str] | None) -> None:
    """Mount the routes at ``PREFIX`` on ``app``, before the Gradio app is mounted at the root (routes match
    in order, and Gradio's would take every path)."""
    app.mount(PREFIX, build(auth, parent=app))
