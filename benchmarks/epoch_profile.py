"""Where an epoch of the default recipe goes: training steps against the epoch-end work, with
augmentation on and off, alternately in one process (A/B/A/B).

    .venv/bin/python benchmarks/epoch_profile.py ../shared/data/flower_photos --image-size 64 \
        --out benchmarks/results/epoch_profile_flowers_64.jsonl

Each line: ``train_s`` per epoch (first step to last), ``end_s`` (precise BN, validation, the
backup: simplecnn's epoch-end sequence runs before this script's callback sees the epoch end)
and ``input_wait`` (how long the training steps waited for decoded images). Run it with
nothing else running on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import keras

from simplecnn.config import TrainConfig
from simplecnn.training import train


class Split(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.t1 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append((self.t1 - self.t0, time.perf_counter() - self.t1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/epoch_profile.jsonl")
    args = p.parse_args()
    with open(args.out, "w") as f:
        for rep in range(args.repeats):
            for aug in (True, False):
                split = Split()
                config = TrainConfig(image_size=args.image_size, epochs=args.epochs, augment=aug, check_data=False)
                with tempfile.TemporaryDirectory() as tmp:
                    result = train(args.data_dir, os.path.join(tmp, "run"), config, verbose=0, callbacks=[split])
                row = {"augment": aug, "repeat": rep, "train_s": [round(a, 1) for a, _ in split.rows],
                       "end_s": [round(b, 1) for _, b in split.rows], "input_wait": result.input_wait,
                       "image_size": args.image_size, "cpus": os.cpu_count(), "backend": keras.backend.backend()}  # fmt: skip
                print(json.dumps(row), flush=True)
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
