"""`simplecnn serve` under wrk (a C load generator, so the client takes little of the CPU the
server runs on), per runtime, A/B/A/B.

    .venv/bin/python benchmarks/serve_wrk.py RUN_DIR PHOTO [--runtimes keras,onnx,onnx-int8]
        [--rounds 2] [--seconds 15] [--connections 8] [--json out.json]

Each round starts `simplecnn serve RUN_DIR --runtime R` per runtime in turn, posts PHOTO as
multipart form field `file` from `wrk -t2 -cCONNECTIONS -dSECONDS --latency`, and records
requests/s, p50/p99 latency, non-2xx answers, the server's CPU seconds and its peak resident
memory (VmHWM). Needs Debian's `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BOUNDARY = "simplecnnwrk"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _script(photo: str, folder: str) -> str:
    with open(photo, "rb") as f:
        data = f.read()
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()  # fmt: skip
    body_path = os.path.join(folder, "body.bin")
    with open(body_path, "wb") as f:
        f.write(body)
    lua = os.path.join(folder, "post.lua")
    with open(lua, "w") as f:
        f.write(f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
                f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n')  # fmt: skip
    return lua


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def _one(run_dir: str, runtime: str, lua: str, seconds: int, connections: int) -> dict:
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    server = subprocess.Popen([exe, "serve", run_dir, "--port", str(port), "--quiet", "--runtime", runtime],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit(f"server for {runtime} did not start")
                time.sleep(0.2)
        with open(f"/proc/{server.pid}/stat") as f:
            cpu0 = sum(int(x) for x in f.read().split()[13:15])
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", lua, "--latency",
                              f"http://127.0.0.1:{port}/predict"], capture_output=True, text=True).stdout  # fmt: skip
        with open(f"/proc/{server.pid}/stat") as f:
            cpu1 = sum(int(x) for x in f.read().split()[13:15])
        with open(f"/proc/{server.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    finally:
        server.terminate()
        server.wait(timeout=30)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"runtime": runtime, "requests": requests, "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(re.search(r"50%\s+(\S+)", out).group(1)), "p99_ms": _ms(re.search(r"99%\s+(\S+)", out).group(1)),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else "",
            "server_cpu_s_per_request": (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK") / max(1, requests),
            "peak_rss_mib": round(rss)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("photo")
    p.add_argument("--runtimes", default="keras,onnx,onnx-int8")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        lua = _script(args.photo, folder)
        for round_ in range(args.rounds):
            for runtime in args.runtimes.split(","):
                result = {**_one(args.run_dir, runtime, lua, args.seconds, args.connections), "round": round_ + 1}
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
