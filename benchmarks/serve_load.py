"""Load test of `simplecnn serve`, and a screenshot of its page in headless Chromium.

Starts `simplecnn serve RUN_DIR --runtime R` on 127.0.0.1 in a child process, sends REQUESTS
uploads of the given photos at CONCURRENCY, and prints p50 / p99 latency, throughput, errors and
the serving process's peak resident memory as JSON. With several --runtimes and --rounds, the
runtimes are measured in turn, round after round (A B A B), each round a fresh server. With
--screenshot, also opens the page in headless Chromium (Debian's chromium and chromium-driver),
uploads the first photo and saves a PNG of the page.

    .venv/bin/python benchmarks/serve_load.py RUN_DIR PHOTO... [--requests 200] [--concurrency 8]
        [--runtimes keras,onnx] [--rounds 2] [--explain] [--max-batch 16]
        [--screenshot docs/serve_page.png] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


def load(url: str, photos: list[bytes], requests: int, concurrency: int, explain: bool) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    path = "/predict?explain=true" if explain else "/predict"

    def one(i: int) -> None:
        with httpx.Client(timeout=120) as client:
            start = time.perf_counter()
            r = client.post(url + path, files={"file": ("photo.jpg", photos[i % len(photos)], "image/jpeg")})
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                errors.append(f"{r.status_code}: {r.text[:80]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    health = httpx.get(url + "/health").json()
    return {
        "requests": requests, "concurrency": concurrency, "explain": explain,
        "p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1),
        "requests_per_s": round(requests / wall, 1), "errors": len(errors),
        "error_samples": errors[:3], "max_batch_seen": health["max_batch_seen"],
        "image_size": health["image_size"], "runtime": health["runtime"],
    }  # fmt: skip


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024


def screenshot(url: str, photo: str, out: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=820,900"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "chromedriver")
    browser = webdriver.Chrome(service=service, options=options)
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "file").send_keys(os.path.abspath(photo))
        WebDriverWait(browser, 120).until(
            lambda b: b.execute_script("return document.getElementById('heatmap').naturalWidth") > 0
        )
        browser.save_screenshot(out)
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--explain", action="store_true", help="ask for Grad-CAM with every request")
    parser.add_argument("--max-batch", type=int, default=16, help="the server's --max-batch")
    parser.add_argument("--runtimes", default="auto", help="comma list: keras, onnx, auto")
    parser.add_argument("--rounds", type=int, default=1, help="each runtime this many times, in turn")
    parser.add_argument("--screenshot", default=None, help="PNG of the page after one upload")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    photos = []
    for path in args.photos:
        with open(path, "rb") as f:
            photos.append(f.read())
    exe = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    results = []
    for round_ in range(args.rounds):
        for runtime in args.runtimes.split(","):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen([exe, "serve", args.run_dir, "--port", str(port), "--quiet",
                                     "--max-batch", str(args.max_batch), "--runtime", runtime])  # fmt: skip
            try:
                _wait(url, proc)
                result = load(url, photos, args.requests, args.concurrency, args.explain)
                result.update(max_batch=args.max_batch, round=round_ + 1, peak_rss_mib=round(peak_rss_mib(proc.pid)))
                results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
                if args.screenshot and round_ == 0:
                    screenshot(url, args.photos[0], args.screenshot)
                    print(f"wrote {args.screenshot}", file=sys.stderr)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
