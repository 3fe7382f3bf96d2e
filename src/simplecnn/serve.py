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
import io
import queue
import threading
import time
from typing import Any

import numpy as np
from PIL import Image

from simplecnn.data import MAX_PIXELS, decode_image, scale_pixels
from simplecnn.runs import Run, load_run

__all__ = ["create_app", "MicroBatcher", "PAGE"]

ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                   "BMP": "image/bmp", "WEBP": "image/webp"}  # fmt: skip
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class BadImage(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def decode_upload(data: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Uploaded bytes -> uint8 pixels at the model's size, or :class:`BadImage` (415/400/413)."""
    if not data:
        raise BadImage(400, "the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise BadImage(413, f"image too large (over {MAX_PIXELS:,} pixels)") from None
    except Exception:
        raise BadImage(
            415, "not a supported image: send a JPEG, PNG, GIF, BMP or WebP file"
        ) from None
    if image.format not in ALLOWED_FORMATS:
        raise BadImage(
            415, f"{image.format} images are not supported: send a JPEG, PNG, GIF, BMP or WebP file"
        )
    try:
        with image:  # decode_image loads it (after JPEG draft mode: the same pixels as predict)
            return decode_image(image, size, channels)
    except Image.DecompressionBombError:
        raise BadImage(413, f"image too large (over {MAX_PIXELS:,} pixels)") from None
    except Exception as exc:
        raise BadImage(400, f"the {image.format} image could not be decoded ({exc})") from None


class MicroBatcher:
    """Collects concurrent single-image predictions into batches for one model call each.

    ``submit`` is called from the event loop and returns an awaitable future; a daemon thread
    runs the model. ``max_batch_seen`` and ``batches`` are kept for the tests and /health.
    """

    def __init__(self, run: Run, max_batch: int = 16, batch_wait_s: float = 0.005) -> None:
        self.run = run
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
        import keras

        out = keras.ops.convert_to_numpy(self.run.model(scale_pixels(pixels), training=False))
        out = np.asarray(out, dtype=np.float64)
        if out.shape[1] == 1:
            out = np.concatenate([1.0 - out, out], axis=1)
        return out

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
):
    """The FastAPI application serving ``run_dir``'s model."""
    import anyio
    import keras
    from fastapi import FastAPI, File, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from simplecnn.explain import display_image, explain_picture

    run = load_run(run_dir)
    names = run.class_names
    batcher = MicroBatcher(run, max_batch=max_batch, batch_wait_s=batch_wait_s)
    batcher.predict_batch(np.zeros((1, *run.image_size, run.channels), np.uint8))  # warm up
    explain_slots = anyio.CapacityLimiter(explain_workers)
    style = run.meta.get("train_config", {}).get("style")

    app = FastAPI(
        title="simplecnn",
        version="1",
        description=f"Image classifier ({style} style, classes: {', '.join(names)}) from {run_dir}",
    )
    app.state.batcher = batcher

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return error(400, f"bad request: send the image as multipart form field 'file' ({fields})")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(exc).__name__}")

    @app.middleware("http")
    async def _limit_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > max_upload_bytes + 64 * 1024:
            return error(413, f"upload too large: at most {max_upload_bytes:,} bytes")
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.replace("{{CLASSES}}", ", ".join(names)).replace("{{STYLE}}", str(style))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness and what this service classifies."""
        return {
            "status": "ok",
            "classes": names,
            "image_size": list(run.image_size),
            "style": style,
            "backend": keras.backend.backend(),
            "batches": batcher.batches,
            "images": batcher.images,
            "max_batch_seen": batcher.max_batch_seen,
        }

    @app.post(
        "/predict",
        responses={400: {"description": "empty, truncated or undecodable image"},
                   413: {"description": "upload too large"},
                   415: {"description": "not a JPEG, PNG, GIF, BMP or WebP image"}},  # fmt: skip
    )
    async def predict(file: UploadFile = File(...), explain: bool = False) -> dict[str, Any]:
        """Classify one image; with ``explain=true`` also return a Grad-CAM overlay (PNG data URL)."""
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            return error(413, f"upload too large: at most {max_upload_bytes:,} bytes")
        try:
            pixels = await anyio.to_thread.run_sync(
                decode_upload, data, run.image_size, run.channels
            )
        except BadImage as exc:
            return error(exc.status, exc.message)
        probs = await batcher.submit(pixels)
        index = int(np.argmax(probs))
        result: dict[str, Any] = {
            "label": names[index],
            "probability": float(probs[index]),
            "probabilities": {n: float(p) for n, p in zip(names, probs)},
        }
        if explain:
            result["gradcam"], result["layer"] = await anyio.to_thread.run_sync(
                _explain, data, pixels, limiter=explain_slots
            )
        return result

    def _explain(data: bytes, pixels: np.ndarray) -> tuple[str, str]:
        figure, cam = explain_picture(run.model, pixels, display_image(io.BytesIO(data)), names)
        return _png_data_url(figure), cam.layer

    return app


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>simplecnn</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 760px; margin: 2em auto; padding: 0 1em; color: #222; }
  #drop { border: 2px dashed #888; border-radius: 10px; padding: 2em; text-align: center; cursor: pointer; }
  #drop.over { background: #eef5ff; border-color: #36c; }
  #result { margin-top: 1.5em; }
  #label { font-size: 1.6em; font-weight: 600; }
  #error { color: #b00; }
  #heatmap { max-width: 100%; margin-top: 1em; display: none; }
  table { border-collapse: collapse; margin-top: .5em; }
  td { padding: 2px 10px 2px 0; }
</style>
</head>
<body>
<h1>simplecnn</h1>
<p>Classes: <b>{{CLASSES}}</b> &middot; model style: {{STYLE}}.
   Drop a photo below, or click to pick one.</p>
<div id="drop">Drop a photo here, or click to choose a file
  <input id="file" type="file" accept="image/*" style="display:none">
</div>
<div id="result">
  <div id="status"></div>
  <div id="error"></div>
  <div id="label"></div>
  <div id="probability"></div>
  <table id="probabilities"></table>
  <img id="heatmap" alt="Grad-CAM overlay">
</div>
<script>
const drop = document.getElementById('drop');
const input = document.getElementById('file');
const $ = (id) => document.getElementById(id);
drop.addEventListener('click', () => input.click());
drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files.length) send(e.dataTransfer.files[0]);
});
input.addEventListener('change', () => { if (input.files.length) send(input.files[0]); });
async function send(file) {
  $('status').textContent = 'Classifying ' + file.name + ' ...';
  $('error').textContent = ''; $('label').textContent = ''; $('probability').textContent = '';
  $('probabilities').innerHTML = ''; $('heatmap').style.display = 'none';
  const form = new FormData(); form.append('file', file);
  try {
    const response = await fetch('predict?explain=true', { method: 'POST', body: form });
    const body = await response.json();
    $('status').textContent = file.name;
    if (!response.ok) { $('error').textContent = body.error || response.statusText; return; }
    $('label').textContent = body.label;
    $('probability').textContent = 'probability ' + body.probability.toFixed(3);
    for (const [name, p] of Object.entries(body.probabilities)) {
      const row = $('probabilities').insertRow();
      row.insertCell().textContent = name; row.insertCell().textContent = p.toFixed(3);
    }
    $('heatmap').src = body.gradcam; $('heatmap').style.display = 'block';
  } catch (err) {
    $('error').textContent = 'request failed: ' + err;
  }
}
</script>
</body>
</html>
"""
