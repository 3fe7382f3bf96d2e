"""`simplecnn check` on a generated folder of N photos: its own time beyond decoding, and memory.

    .venv/bin/python benchmarks/check_speed.py --count 10000 [--json out.json]

Generates COUNT JPEGs (400x300, two classes; benchmarks/scaling.py's generator) plus a few
planted copies, then runs `simplecnn check --json` twice in fresh processes (a cold cache, then
the cache of the first run) and records each part of its time and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scaling import make_images  # noqa: E402


def _run(data: str, cache: str) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    done = subprocess.run(["/usr/bin/time", "-f", "%M", exe, "check", data, "--json"], capture_output=True,
                          text=True, env={**os.environ, "XDG_CACHE_HOME": cache})  # fmt: skip
    report = json.loads(done.stdout)
    return {"seconds": report["seconds"], "peak_rss_mib": int(done.stderr.strip().splitlines()[-1]) / 1024,
            "groups": {k: len(v) for k, v in report["groups"].items()}}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=10_000)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as cache:
        data = make_images(os.path.join(root, "data"), args.count)
        folder = os.path.join(data, "a")
        for name in sorted(os.listdir(folder))[:5]:  # five exact copies
            shutil.copy(os.path.join(folder, name), os.path.join(folder, "copy_" + name))
        result = {"images": args.count + 5, "cold": _run(data, cache), "cached": _run(data, cache)}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
