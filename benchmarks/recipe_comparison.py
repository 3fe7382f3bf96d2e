"""The seed's plain recipe vs simplecnn's default recipe, same folder, image size and time budget.

    .venv/bin/python benchmarks/recipe_comparison.py ../shared/data/hymenoptera_data \
        --image-size 64 --budget 514 --out benchmarks/results/recipe_hymenoptera_64

Writes curves.csv (recipe, epoch, seconds, val_accuracy, val_loss), curves.png (validation
accuracy against training time) and summary.json, and prints the table the README shows.
Run it with nothing else running on the machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time

import keras
import numpy as np

from simplecnn.config import PLAIN_RECIPE, TrainConfig
from simplecnn.training import train


class _Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.start, self.times = time.perf_counter(), []

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def summarize(acc: list[float]) -> dict:
    best = max(acc)
    # Swings between consecutive epochs from epoch 6 on ("after the first five epochs").
    swings = np.abs(np.diff(acc[5:])) if len(acc) > 6 else np.array([0.0])
    return {
        "best_val_accuracy": best,
        "best_epoch": int(np.argmax(acc)) + 1,
        "final_val_accuracy": acc[-1],
        "final_minus_best": acc[-1] - best,
        "max_swing_after_epoch_5": float(swings.max()),
        "epochs": len(acc),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--budget", type=float, default=514.0, help="seconds of training per recipe")
    p.add_argument("--default-epochs", type=int, default=70,
                   help="epochs the default recipe's schedule is planned for")
    p.add_argument("--out", default="benchmarks/results/recipe_comparison")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    recipes = {
        "plain (seed: Adam 1e-3, batch 32, no augmentation)": TrainConfig(
            **{**PLAIN_RECIPE, "image_size": args.image_size, "epochs": 10_000,
               "time_budget": args.budget}),
        "default (simplecnn train)": TrainConfig(
            image_size=args.image_size, epochs=args.default_epochs, time_budget=args.budget),
    }  # fmt: skip
    rows, summary = [], {}
    for name, config in recipes.items():
        clock = _Clock()
        with tempfile.TemporaryDirectory() as tmp:  # the run directories are not kept
            result = train(args.data_dir, os.path.join(tmp, "run"), config, verbose=2, callbacks=[clock])
        acc, loss = result.history["val_accuracy"], result.history["val_loss"]
        for i, (a, l, t) in enumerate(zip(acc, loss, clock.times), 1):
            rows.append([name, i, round(t, 1), a, l])
        summary[name] = {**summarize(acc), "seconds": round(clock.times[-1], 1),
                         "config": config.to_dict()}  # fmt: skip
    with open(os.path.join(args.out, "curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["recipe", "epoch", "seconds", "val_accuracy", "val_loss"])
        w.writerows(rows)
    summary["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": sys.version.split()[0], "keras": keras.__version__,
                          "backend": keras.backend.backend()}  # fmt: skip
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name in recipes:
        pts = [(r[2], r[3]) for r in rows if r[0] == name]
        ax.plot(*zip(*pts), "-o", ms=3, label=name)
    ax.axhline(0.7, color="grey", ls=":", label="target best 0.70")
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{os.path.basename(os.path.normpath(args.data_dir))}, {args.image_size} px, "
                 f"{args.budget:.0f} s per recipe")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(os.path.join(args.out, "curves.png"), dpi=110, bbox_inches="tight")

    print("| recipe | epochs | seconds | best val acc (epoch) | final val acc | final - best | max swing after epoch 5 |")
    print("|---|---|---|---|---|---|---|")
    for name in recipes:
        s = summary[name]
        print(f"| {name} | {s['epochs']} | {s['seconds']} | {s['best_val_accuracy']:.3f} ({s['best_epoch']}) "
              f"| {s['final_val_accuracy']:.3f} | {s['final_minus_best']:+.3f} | {s['max_swing_after_epoch_5']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
