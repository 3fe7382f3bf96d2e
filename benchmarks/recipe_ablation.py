"""Train the default recipe with some fields changed, one run after another, and tabulate.

    .venv/bin/python benchmarks/recipe_ablation.py ../shared/data/hymenoptera_data \\
        '{"ema_epochs": 0}' '{"ema_epochs": 3}' '{"augment": false}'

Each argument is a JSON dict of TrainConfig fields to change (on top of --image-size 64,
--epochs 70, the --budget time limit and no early stopping). Prints, per run: best validation
accuracy (epoch), final validation accuracy, the largest epoch-to-epoch change from epoch 6 on,
and the epoch of the lowest validation loss; with --csv, appends one row per run to that file.
Run it with nothing else running on the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time

import numpy as np

from simplecnn.config import TrainConfig
from simplecnn.training import train


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("variants", nargs="+", help="JSON dicts of TrainConfig changes")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=70)
    p.add_argument("--budget", type=float, default=514.0)
    p.add_argument("--csv", default=None, help="append the results to this CSV file")
    args = p.parse_args()
    rows = []
    for text in args.variants:
        changes = json.loads(text)
        config = TrainConfig(**{"image_size": args.image_size, "epochs": args.epochs,
                                "time_budget": args.budget, **changes})  # fmt: skip
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = train(args.data_dir, os.path.join(tmp, "run"), config, verbose=2)
        acc, loss = result.history["val_accuracy"], result.history["val_loss"]
        rows.append({
            "changes": json.dumps(changes), "epochs": len(acc),
            "seconds": round(time.perf_counter() - start, 1),
            "best_val_accuracy": round(max(acc), 4), "best_epoch": int(np.argmax(acc)) + 1,
            "final_val_accuracy": round(acc[-1], 4),
            "max_swing_after_epoch_5": round(float(np.abs(np.diff(acc[5:])).max()), 4)
            if len(acc) > 6 else 0.0,
            "lowest_val_loss_epoch": int(np.argmin(loss)) + 1,
            "val_accuracy": " ".join(f"{a:.4f}" for a in acc),
        })  # fmt: skip
    if args.csv:
        new = not os.path.exists(args.csv)
        with open(args.csv, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
    print("| changes | epochs | best val acc (epoch) | final | swing after epoch 5 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['changes']}` | {r['epochs']} | {r['best_val_accuracy']:.3f} ({r['best_epoch']}) "
              f"| {r['final_val_accuracy']:.3f} | {r['max_swing_after_epoch_5']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
