"""The prediction service: API over HTTP, bad uploads, concurrent load, the page in Chromium."""

import io
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import free_port, train_small_run
from fastapi.testclient import TestClient
from imagegen import COLOURS, make_image
from PIL import Image

from simplecnn.serve import create_app
from simplecnn.training import predict


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_small_run(tmp_path_factory, "subclassing")


@pytest.fixture(scope="module")
def client(run):
    app = create_app(run[1], max_upload_bytes=200_000)
    with TestClient(app) as c:
        yield c


def _png_bytes(size=(40, 48), colour=(200, 60, 50)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("name", ["img_003.png", "big.jpg"])
def test_predict_gives_the_same_answer_as_the_cli(client, run, name, tmp_path):
    """Same pixels as `simplecnn predict` (JPEG draft-mode decoding of a large photo too)."""
    data, run_dir = run
    path = os.path.join(data, "dogs", name)
    if name == "big.jpg":  # large enough that libjpeg decodes it at 1/4 scale
        path = str(tmp_path / name)
        make_image(COLOURS["dogs"], np.random.default_rng(5), size=(160, 200)).save(path, quality=90)
    with open(path, "rb") as f:
        response = client.post("/predict", files={"file": ("photo.bin", f, "application/octet-stream")})
    assert response.status_code == 200, response.text
    body = response.json()
    (expected,), _ = predict(run_dir, [path])
    assert body["label"] == expected["label"]
    assert set(body["probabilities"]) == {"cats", "dogs"}
    for name, p in expected["probabilities"].items():
        assert abs(body["probabilities"][name] - p) < 1e-5
    assert "gradcam" not in body


def test_predict_with_explain_returns_a_gradcam_png(client):
    response = client.post("/predict?explain=true", files={"file": ("a.png", _png_bytes(), "image/png")})
    assert response.status_code == 200
    body = response.json()
    assert body["layer"] == "block2_conv2"
    assert body["gradcam"].startswith("data:image/png;base64,")
    import base64

    with Image.open(io.BytesIO(base64.b64decode(body["gradcam"].split(",", 1)[1]))) as im:
        assert im.format == "PNG" and im.width > 80


@pytest.mark.parametrize(
    "content, status, words",
    [
        (b"", 400, "empty"),
        (b"%PDF-1.4 not really a photo", 415, "not a supported image"),
        (b"<html><body>hello</body></html>", 415, "not a supported image"),
        (_png_bytes()[:60], 400, "could not be decoded"),
        (b"\x00" * 250_000, 413, "too large"),
    ],
    ids=["empty", "pdf-named-jpg", "html", "truncated-png", "too-large"],
)
def test_bad_uploads_get_clear_json_errors(client, content, status, words):
    response = client.post("/predict", files={"file": ("photo.jpg", content, "image/jpeg")})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_unsupported_image_type_and_missing_field(client):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "TIFF")
    response = client.post("/predict", files={"file": ("x.png", buf.getvalue(), "image/png")})
    assert response.status_code == 415 and "TIFF images are not supported" in response.json()["error"]
    response = client.post("/predict", data={"other": "x"})
    assert response.status_code == 400 and "'file'" in response.json()["error"]


def test_health_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["classes"] == ["cats", "dogs"]
    assert health["image_size"] == [32, 32] and health["style"] == "subclassing"
    spec = client.get("/openapi.json").json()
    assert "/predict" in spec["paths"] and "/health" in spec["paths"]
    assert set(spec["paths"]["/predict"]["post"]["responses"]) >= {"200", "400", "413", "415"}
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "cats, dogs" in page.text


# --- a real server on 127.0.0.1 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(run):
    import uvicorn

    app = create_app(run[1])
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(timeout=10)


def test_load_200_requests_at_concurrency_8(server, run):
    """A bounded load test: zero errors, and concurrent requests share model batches."""
    import httpx

    url, app = server
    data, _ = run
    photos = []
    for name in ("cats", "dogs"):
        with open(os.path.join(data, name, "img_002.jpg"), "rb") as f:
            photos.append(f.read())
    latencies, errors = [], []

    def one(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            start = time.perf_counter()
            r = c.post(f"{url}/predict", files={"file": ("p.jpg", photos[i % 2], "image/jpeg")})
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200 or r.json()["label"] not in ("cats", "dogs"):
                errors.append((r.status_code, r.text[:100]))

    before = app.state.batcher.images
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    wall = time.perf_counter() - start
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(f"\nload: 200 requests, concurrency 8: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"{200 / wall:.1f} req/s, errors {len(errors)}, largest batch {app.state.batcher.max_batch_seen}")
    assert errors == [] and len(latencies) == 200
    assert app.state.batcher.images - before == 200
    assert app.state.batcher.max_batch_seen > 1  # requests were batched, not served one by one


# --- the web page in headless Chromium --------------------------------------------------------


def _browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, installing Debian's packages if root; else a reason."""
    def find():
        return (shutil.which("chromium") or shutil.which("chromium-browser"),
                shutil.which("chromedriver"))  # fmt: skip

    chromium, driver = find()
    if not (chromium and driver) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "chromium-driver"]):  # fmt: skip
            subprocess.run(cmd, env=env, capture_output=True, timeout=900)
        chromium, driver = find()
    if chromium and driver:
        return chromium, driver
    return "no Chromium: install Debian's chromium and chromium-driver (needs root and apt-get)"


def test_web_page_in_headless_chromium(server, run, tmp_path):
    found = _browser()
    if isinstance(found, str):
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = found
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,1100"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        url, _ = server
        browser.get(url + "/")
        assert "simplecnn" in browser.title
        photo = os.path.join(run[0], "cats", "img_004.jpg")
        browser.find_element(By.ID, "file").send_keys(photo)
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "label").text.strip())
        assert browser.find_element(By.ID, "label").text in ("cats", "dogs")
        assert browser.find_element(By.ID, "probability").text.startswith("probability 0.")
        WebDriverWait(browser, 30).until(
            lambda b: b.execute_script("return document.getElementById('heatmap').naturalWidth") > 80
        )
        assert browser.find_element(By.ID, "error").text == ""
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 1000
    finally:
        browser.quit()
