"""``simplecnn serve``: a prediction service (HTTP API and a web page) for a run directory.

    GET  /              a page: drop or pick a photo, see the label, probability and Grad-CAM
    POST /predict       multipart form field ``file``: an image. ``?explain=true`` adds a
                        Grad-CAM overlay (PNG, as a data URL). JSON back: label, probability,
                        probabilities per class.
    GET  /health        status, classes, input size, backend
    GET  /openapi.json  the OpenAPI description (FastAPI)

Uploads are checked by content, not by name: the bytes must be a JPEG, PNG, GIF, BMP or WebP
image (else 415), complete and decodable (else 400), and at most ``max_upload_bytes`` (else 413).
Errors are JSON ``{"error": "..."}``; bad input never gives a 500.

Concurrency: decoding runs in worker threads; predictions go through a micro-batcher, a
thread that collects the requests waiting (up to ``max_batch``, for at most ``batch_wait_s``)
into one model call, so concurrent requests share a batch instead of queueing behind each
other. Grad-CAM runs in worker threads, at most ``explain_workers`` at a time.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.

import asyncio
import base64
import importlib.resources
import io
import queue
import threading
import time
from typing import Any, Callable

import numpy as np
from PIL import Image

from simplecnn.data import MAX_PIXELS, check_pixels, decode_image
from simplecnn.errors import UsageError
from simplecnn.runs import Run
from simplecnn.runtime import Predictor, open_predictor

__all__ = ["create_app", "serve", "MicroBatcher", "PAGE"]

ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                   "BMP": "image/bmp", "WEBP": "image/webp"}  # fmt: skip
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class BadImage(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# How each accepted format's file begins: the type is judged by these bytes, not by the name,
# so a JPEG cut short in its header is a broken JPEG (400), not an unsupported type (415).
_SIGNATURES = {"JPEG": (b"\xff\xd8\xff",), "PNG": (b"\x89PNG\r\n\x1a\n",),
               "GIF": (b"GIF87a", b"GIF89a"), "BMP": (b"BM",)}  # fmt: skip


def _sniff(data: bytes) -> str | None:
    """The accepted format ``data`` starts as, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for fmt, heads in _SIGNATURES.items() if data.startswith(heads)), None)


def decode_upload(data: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Uploaded bytes -> uint8 pixels at the model's size, or :class:`BadImage`: 400 for an
    empty, truncated or undecodable image of an accepted type, 415 for any other type, 413 for
    one over the pixel limit."""
    if not data:
        raise BadImage(400, "the uploaded file is empty")
    fmt = _sniff(data)
    if fmt is None:
        try:
            with Image.open(io.BytesIO(data)) as other:
                kind = f"{other.format} images are not supported"
        except Exception:
            kind = "not a supported image"
        raise BadImage(415, f"{kind}: send a JPEG, PNG, GIF, BMP or WebP file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            check_pixels(image)
            # decode_image loads it (after JPEG draft mode: the same pixels as predict)
            return decode_image(image, size, channels)
    except Image.DecompressionBombError:
        raise BadImage(413, f"image too large (over {MAX_PIXELS:,} pixels)") from None
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise BadImage(400, f"the {fmt} image could not be decoded: truncated or corrupt ({reason})") from None


class MicroBatcher:
    """Collects concurrent single-image predictions into batches for one model call each.

    ``submit`` is called from the event loop and returns an awaitable future; a daemon thread
    runs the model. ``max_batch_seen`` and ``batches`` are kept for the tests and /health.
    """

    def __init__(self, predictor: Predictor, max_batch: int = 16, batch_wait_s: float = 0.005) -> None:
        self.predictor = predictor
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.queue: queue.Queue = queue.Queue()
        self.max_batch_seen = 0
        self.batches = 0
        self.images = 0
        self._thread = threading.Thread(target=self._loop, name="simplecnn-batcher", daemon=True)
        self._thread.start()

    def predict_batch(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 ``(N, H, W, C)`` -> probability per class ``(N, classes)``."""
        return self.predictor.predict(pixels)

    def submit(self, pixels: np.ndarray) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.put((pixels, future, loop))
        return future

    def _loop(self) -> None:
        while True:
            items = [self.queue.get()]
            deadline = time.perf_counter() + self.batch_wait_s
            while len(items) < self.max_batch:
                left = deadline - time.perf_counter()
                try:
                    items.append(self.queue.get(timeout=max(left, 0)) if left > 0 else self.queue.get_nowait())
                except queue.Empty:
                    break
            self.max_batch_seen = max(self.max_batch_seen, len(items))
            self.batches += 1
            self.images += len(items)
            try:
                probs = self.predict_batch(np.stack([item[0] for item in items]))
                results: list[Any] = list(probs)
            except Exception as exc:  # a model failure reaches every waiting request
                results = [exc] * len(items)
            for (_, future, loop), result in zip(items, results):
                loop.call_soon_threadsafe(_resolve, future, result)


def _resolve(future: asyncio.Future, result: Any) -> None:
    if future.done():
        return
    if isinstance(result, Exception):
        future.set_exception(result)
    else:
        future.set_result(result)


def _png_data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def create_app(
    run_dir: str,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_batch: int = 16,
    batch_wait_s: float = 0.005,
    explain_workers: int = 2,
    runtime: str = "auto",
):
    """The FastAPI application serving ``run_dir``'s model on ``runtime`` (simplecnn.runtime)."""
    from fastapi import FastAPI

    predictor = open_predictor(run_dir, runtime)
    run = predictor.run
    batcher = MicroBatcher(predictor, max_batch=max_batch, batch_wait_s=batch_wait_s)
    batcher.predict_batch(np.zeros((1, *run.image_size, run.channels), np.uint8))  # warm up
    app = FastAPI(
        title="simplecnn",
        version="1",
        description=f"Image classifier ({run.style} style, classes: {', '.join(run.class_names)}) "
        f"from {run_dir}",
        docs_url=None,  # served by _offline_docs from files on this machine, not from a CDN
        redoc_url=None,
    )
    app.state.batcher = batcher
    _add_error_handling(app, max_upload_bytes, predictor.name)
    _offline_docs(app)
    _add_routes(app, run, batcher, max_upload_bytes, explain_workers)
    return app


def _error(status: int, message: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _add_error_handling(app: Any, max_upload_bytes: int, runtime: str) -> None:
    """Every error is JSON ``{"error": ...}``; an oversized body is refused before it is read;
    every response says which runtime answered (``X-Simplecnn-Runtime``)."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        return _error(400, "bad request: " + "; ".join(_explain_invalid(e) for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Any:
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.middleware("http")
    async def _limit_size(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > max_upload_bytes + 64 * 1024:
            response = _error(413, f"upload too large: at most {max_upload_bytes:,} bytes")
        else:
            response = await call_next(request)
        response.headers["X-Simplecnn-Runtime"] = runtime
        return response


def _add_routes(app: Any, run: Run, batcher: MicroBatcher, max_upload_bytes: int, explain_workers: int) -> None:
    """``/`` (the page), ``/health`` and ``/predict``."""
    import importlib.util

    import anyio
    from fastapi import File, Request, UploadFile
    from fastapi.responses import HTMLResponse

    names, explain_slots = run.class_names, anyio.CapacityLimiter(explain_workers)
    # Grad-CAM needs gradients, so Keras: loaded when first asked for, whatever answers predictions.
    can_explain = importlib.util.find_spec("keras") is not None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.replace("{{CLASSES}}", ", ".join(names)).replace("{{STYLE}}", str(run.style))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what this service classifies."""
        return {"status": "ok", "classes": names, "image_size": list(run.image_size), "style": run.style,
                "runtime": batcher.predictor.name, "explain": can_explain, "batches": batcher.batches,
                "images": batcher.images, "max_batch_seen": batcher.max_batch_seen}  # fmt: skip

    @app.post("/predict", responses={400: {"description": "empty, truncated or undecodable image"},
                                     413: {"description": "upload too large"},
                                     415: {"description": "not a JPEG, PNG, GIF, BMP or WebP image"},
                                     501: {"description": "explain=true on an install without Keras"}})  # fmt: skip
    async def predict(request: Request, file: UploadFile = File(...), explain: bool = False) -> Any:
        """Classify one image; with ``explain=true`` also return a Grad-CAM overlay (PNG data URL)."""
        form = await request.form()  # parsed once already (FastAPI caches it): count the files
        if len(form.multi_items()) != 1:
            return _error(400, "send exactly one image, as the multipart form field 'file', and nothing else")
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return _error(413, f"upload too large: at most {max_upload_bytes:,} bytes")
        try:
            pixels = await anyio.to_thread.run_sync(decode_upload, data, run.image_size, run.channels)
        except BadImage as exc:
            return _error(exc.status, exc.message)
        probs = await batcher.submit(pixels)
        index = int(np.argmax(probs))
        result: dict[str, Any] = {"label": names[index], "probability": float(probs[index]),
                                  "probabilities": {n: float(p) for n, p in zip(names, probs)}}  # fmt: skip
        if explain:
            if not can_explain:
                return _error(501, "Grad-CAM needs gradients, so Keras and a backend, which this "
                              "install lacks: pip install 'simplecnn[train]' (predictions work without)")  # fmt: skip
            result["gradcam"], result["layer"] = await anyio.to_thread.run_sync(
                _explain, data, pixels, limiter=explain_slots)  # fmt: skip
        return result

    def _explain(data: bytes, pixels: np.ndarray) -> tuple[str, str]:
        from simplecnn.explain import display_image, explain_picture

        figure, cam = explain_picture(run.model, pixels, display_image(io.BytesIO(data)), names)
        return _png_data_url(figure), cam.layer


def _explain_invalid(error: dict) -> str:
    """One validation error of FastAPI's, said for a person."""
    where = [str(p) for p in error.get("loc", ())]
    if where[:1] == ["query"] and len(where) > 1:
        return f"query parameter {where[1]!r}: {error.get('msg', 'invalid')} (use true or false)"
    if where[-1:] == ["file"]:
        return "send the image as the multipart form field 'file'"
    return f"{'.'.join(where)}: {error.get('msg', 'invalid')}"


def _offline_docs(app: Any) -> None:
    """``/docs``: Swagger UI from the swagger-ui-bundle package, so it works with no network."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    try:
        import swagger_ui_bundle
    except ImportError:  # without it, /docs says what to install instead of reaching a CDN

        @app.get("/docs", include_in_schema=False)
        async def _no_docs() -> HTMLResponse:
            return HTMLResponse("<p>Interactive docs need the swagger-ui-bundle package "
                                "(pip install 'simplecnn[serve]'); the API is described at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>")  # fmt: skip

        return
    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="simplecnn API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")  # fmt: skip


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: int = 10,
          max_batch: int = 16, quiet: bool = False, say: Callable[[str], None] = print,
          runtime: str = "auto") -> None:  # fmt: skip
    """Serve ``run_dir`` over HTTP until interrupted.

    The address is bound before anything is said to be serving, so a port in use, a bad host or
    a missing run is one error (:class:`UsageError`), never a half-started server.
    """
    import socket

    try:
        import uvicorn
    except ImportError:
        raise UsageError("serve needs FastAPI and uvicorn: pip install 'simplecnn[serve]'") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be in [1, 65535]. Received: {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc}); use 127.0.0.1 "
                         "or 0.0.0.0") from None  # fmt: skip
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
                         "--port or --host") from None  # fmt: skip
    try:
        app = create_app(run_dir, max_upload_bytes=max_upload_mb * 1024 * 1024, max_batch=max_batch,
                         runtime=runtime)  # fmt: skip
        say(f"serving {run_dir} on http://{host}:{port}/ (API: /predict, /health, /docs); "
            f"runtime: {app.state.batcher.predictor.note}")
        config = uvicorn.Config(app, log_level="warning" if quiet else "info")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


# The page at "/": drop or pick a photo, see the label, probabilities and Grad-CAM overlay.
PAGE = (importlib.resources.files("simplecnn") / "web" / "index.html").read_text(encoding="utf-8")
