"""How training cost grows with image size and image count, and memory staying bounded.

    .venv/bin/python benchmarks/scaling.py --sizes 64,128,256 --counts 1000,10000 \
        --out benchmarks/results/scaling_cpu.json

Generates COUNT JPEG photos-like images (400x300, two classes) once per count in a scratch
folder, then for each (size, count) runs ``simplecnn.training.train`` (the defaults: its
precision, cache rule, augmentation, read-ahead) for one epoch in a fresh process, stopped after
``--max-steps`` training steps when the epoch is longer. It reports the steady step time (steps
after the first three), the epoch time that gives (measured when the epoch ran whole), the
share of step time spent waiting for input, whether decoded images were cached, and the
process's peak resident memory. Run it with nothing else running on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_images(root: str, count: int, seed: int = 0) -> str:
    """root/{a,b}/NNNNN.jpg: count noisy 400x300 JPEGs, half a class each (made once)."""
    from PIL import Image

    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = "ab"[i % 2]
        os.makedirs(os.path.join(root, label), exist_ok=True)
        base = rng.integers(0, 256, (15, 20, 3), dtype=np.uint8)  # smooth: JPEG-sized like photos
        image = Image.fromarray(base).resize((400, 300), Image.Resampling.BICUBIC)
        noise = rng.normal(0, 12, (300, 400, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, label, f"{i:05d}.jpg"), quality=90)
    open(done, "w").close()
    return root


def _one(data: str, size: int, max_steps: int) -> dict:
    """Runs in a fresh process: one (possibly cut) epoch of the default recipe."""
    import resource

    import keras

    from simplecnn.config import TrainConfig
    from simplecnn.training import train

    class Steps(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())
            if batch + 1 >= max_steps:
                self.model.stop_training = True

    steps = Steps()
    config = TrainConfig(image_size=size, epochs=1, validation_split=0.0)
    with tempfile.TemporaryDirectory() as out:
        result = train(data, os.path.join(out, "run"), config, verbose=0, callbacks=[steps])
        meta = json.load(open(os.path.join(out, "run", "run.json")))
    n = sum(meta["counts"]["train"].values())
    per_epoch = -(-n // config.batch_size)
    step_s = float(np.median(np.diff(steps.times[3:]))) if len(steps.times) > 4 else float("nan")
    return {
        "image_size": size, "images": n, "steps_per_epoch": per_epoch,
        "steps_run": len(steps.times), "whole_epoch": len(steps.times) >= per_epoch,
        "step_s": step_s, "epoch_s": per_epoch * step_s,
        "img_per_s": config.batch_size / step_s,
        "input_wait_fraction": result.input_wait["fraction"],
        "cache": meta["cache"], "precision": meta["precision"],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,128,256")
    p.add_argument("--counts", default="1000,10000")
    p.add_argument("--max-steps", type=int, default=60, help="training steps measured per row at most")
    p.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "simplecnn-scaling"))
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args()
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        t = time.perf_counter()
        data = make_images(os.path.join(args.scratch, str(count)), count)
        print(f"{count} images ready in {time.perf_counter() - t:.0f} s", flush=True)
        for size in [int(s) for s in args.sizes.split(",")]:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", data, str(size), str(args.max_steps)],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )  # fmt: skip
            if proc.returncode:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{size:>4} px {row['images']:>6} images: {row['step_s']:.3f} s/step, "
                  f"{row['img_per_s']:.1f} img/s, epoch {row['epoch_s']:.0f} s"
                  f"{'' if row['whole_epoch'] else ' (projected)'}, input wait "
                  f"{row['input_wait_fraction']:.1%}, cache {row['cache']}, "
                  f"peak {row['peak_rss_mib']:.0f} MiB", flush=True)  # fmt: skip
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                       "max_steps": args.max_steps, "rows": rows}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(json.dumps(_one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        sys.exit(0)
    sys.exit(main())
