"""A fresh virtual environment with only the light runtime (`pip install simplecnn[predict,serve]`:
no Keras, no backend) predicts and serves a run made by the full install, as Keras does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import free_port, train_small_run
from simplecnn.inference import predict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """The light venv's bin/ folder, and its installed size in MiB."""
    venv = tmp_path_factory.mktemp("light") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{ROOT}[predict,serve]"],
                         capture_output=True, text=True)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 2**20
    return venv / "bin", size


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data, run_dir = train_small_run(tmp_path_factory, "subclassing")
    from simplecnn.export import export_run

    assert export_run(run_dir, "onnx").check["passed"]
    return data, run_dir


def test_the_light_install_has_no_keras_and_is_small(light):
    bin_dir, size = light
    for module in ("keras", "tensorflow", "jax", "torch"):
        found = subprocess.run([str(bin_dir / "python"), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed in the light runtime"
    print(f"light runtime installed size: {size:.0f} MiB")
    assert size < 400


def test_the_light_install_predicts_as_keras_does(light, run):
    bin_dir, _ = light
    data, run_dir = run
    folder = os.path.join(data, "dogs")
    done = subprocess.run([str(bin_dir / "simplecnn"), "predict", run_dir, folder, "--format", "json"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "runtime: onnx" in done.stderr
    light_rows = json.loads(done.stdout)
    keras_rows, _ = predict(run_dir, [folder], runtime="keras")
    assert [r["label"] for r in light_rows] == [r["label"] for r in keras_rows]
    for a, b in zip(light_rows, keras_rows):
        assert all(abs(a["probabilities"][k] - b["probabilities"][k]) <= 1e-4 for k in a["probabilities"])
    refused = subprocess.run([str(bin_dir / "simplecnn"), "train", data, "--out", "x"], capture_output=True, text=True)
    assert refused.returncode == 2 and "pip install 'simplecnn[train]'" in refused.stderr


def test_the_light_install_serves(light, run):
    bin_dir, _ = light
    data, run_dir = run
    port = free_port()
    server = subprocess.Popen([str(bin_dir / "simplecnn"), "serve", run_dir, "--port", str(port), "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                health = json.loads(urllib.request.urlopen(url + "/health", timeout=2).read())
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(0.2)
        assert health["runtime"] == "onnx" and health["explain"] is False
        boundary = "simplecnnboundary"
        with open(os.path.join(data, "cats", "img_001.png"), "rb") as f:
            image = f.read()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
        request = urllib.request.Request(url + "/predict", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
            assert response.headers["X-Simplecnn-Runtime"] == "onnx"
        (expected,), _ = predict(run_dir, [os.path.join(data, "cats", "img_001.png")], runtime="keras")
        assert answer["label"] == expected["label"]
        assert abs(answer["probability"] - expected["probability"]) <= 1e-4
        explain = urllib.request.Request(url + "/predict?explain=true", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(explain, timeout=30)
        assert info.value.code == 501 and "Keras" in json.loads(info.value.read())["error"]
    finally:
        server.terminate()
        server.wait(timeout=30)
