"""The measurements behind simplecnn's speed defaults (``simplecnn/hardware.py``).

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/defaults_sweep.py 256 --steps 4
    KERAS_BACKEND=torch .venv/bin/python benchmarks/defaults_sweep.py 64 --steps 8

For one backend and image size: the seed's model (functional) under each dtype policy
(float32, mixed_bfloat16) and, on TensorFlow, with ``jit_compile`` True and False, trained for
``--steps`` steps of batch 16 on random images in memory, then predicting them at batch 16, 32
and 64. Every configuration is built and warmed up first, then all are timed round by round
(A B C D A B C D ...) so that a shared machine's drift hits them alike; each figure printed is
one round. Run with nothing else running on the machine.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from simplecnn.config import ModelConfig
from simplecnn.models import build_model

BATCH = 16
PREDICT_BATCHES = (16, 32, 64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image_size", type=int)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    size, backend = args.image_size, keras.backend.backend()
    rng = np.random.default_rng(0)
    n = max(BATCH * args.steps, max(PREDICT_BATCHES))
    x = rng.random((n, size, size, 3), dtype=np.float32)
    y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    xt, yt = x[: BATCH * args.steps], y[: BATCH * args.steps]
    jits = (True, False) if backend == "tensorflow" else ("auto",)
    runs = {}
    for policy in ("float32", "mixed_bfloat16"):
        for jit in jits:
            keras.config.set_dtype_policy(policy)
            model = build_model("functional", ModelConfig(input_shape=(size, size, 3)))
            keras.config.set_dtype_policy("float32")
            model.compile("adam", "binary_crossentropy", jit_compile=jit)
            t = time.perf_counter()
            model.fit(xt[:BATCH], yt[:BATCH], batch_size=BATCH, verbose=0)
            for b in PREDICT_BATCHES:
                model.predict(x[:b], batch_size=b, verbose=0)
            runs[(policy, jit)] = {"model": model, "warmup_s": time.perf_counter() - t,
                                   "train": [], **{b: [] for b in PREDICT_BATCHES}}  # fmt: skip
    for _ in range(args.rounds):
        for r in runs.values():
            t = time.perf_counter()
            r["model"].fit(xt, yt, batch_size=BATCH, shuffle=False, verbose=0)
            r["train"].append(len(xt) / (time.perf_counter() - t))
            for b in PREDICT_BATCHES:
                t = time.perf_counter()
                r["model"].predict(x, batch_size=b, verbose=0)
                r[b].append(len(x) / (time.perf_counter() - t))
    print(f"{backend}, {size}x{size}, train batch {BATCH} x {args.steps} steps, "
          f"{args.rounds} interleaved rounds (img/s per round)")  # fmt: skip
    for (policy, jit), r in runs.items():
        fmt = lambda values: " ".join(f"{v:6.2f}" for v in values)  # noqa: E731
        print(f"  {policy:<15} jit_compile={str(jit):<5} warm-up {r['warmup_s']:5.1f} s | "
              f"train {fmt(r['train'])} | "
              + " | ".join(f"predict@{b} {fmt(r[b])}" for b in PREDICT_BATCHES))  # fmt: skip


if __name__ == "__main__":
    main()
