"""Whole-process time of ``simplecnn predict RUN IMAGE`` (one image), per backend, interleaved.

    .venv/bin/python benchmarks/startup.py runs/hymenoptera128 photo.jpg --repeats 3

Each repeat runs the command once per backend (A B C A B C ...), plus ``python -c "import
keras"`` on each backend to show how much of it is importing the backend. Prints the median
wall time of each. Run it with nothing else running on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")


def _wall(cmd: list[str], backend: str) -> float:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed on {backend}: {proc.stderr.strip()[-500:]}")
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("image")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", default=",".join(BACKENDS))
    args = p.parse_args()
    simplecnn = os.path.join(os.path.dirname(sys.executable), "simplecnn")
    backends = args.backends.split(",")
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for backend in backends:
            for what, cmd in (("predict", [simplecnn, "predict", args.run_dir, args.image]),
                              ("import keras", [sys.executable, "-c", "import keras"])):  # fmt: skip
                times.setdefault((what, backend), []).append(_wall(cmd, backend))
    for (what, backend), values in times.items():
        print(f"{what:<13}{backend:<12}median {statistics.median(values):5.2f} s  "
              f"({', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
