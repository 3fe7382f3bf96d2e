"""Planted wrong labels: how many of them `simplecnn check --labels` ranks at the top.

    .venv/bin/python benchmarks/label_errors.py ../shared/data/flower_photos --from daisy --to tulips \
        --fraction 0.05 --time-budget 900 --json benchmarks/results/label_errors_flowers.json

Builds, in a temporary folder, a tree of links to the photos (the photos themselves are never
touched) in which FRACTION of the FROM class's training photos are filed under TO, runs the k-fold
ranking of simplecnn.check.labels on it, and reports where the planted ones land: recall in the
top 1% and 5% of the ranking, and among cleanlab's flagged images.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--from", dest="source", required=True)
    p.add_argument("--to", dest="target", required=True)
    p.add_argument("--fraction", type=float, default=0.05)
    p.add_argument("--time-budget", type=float, default=900)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from simplecnn.check.labels import label_issues

    with tempfile.TemporaryDirectory() as root:
        planted = set()
        rng = random.Random(0)
        for split in sorted(os.listdir(args.data_dir)):
            for cls in sorted(os.listdir(os.path.join(args.data_dir, split))):
                names = sorted(os.listdir(os.path.join(args.data_dir, split, cls)))
                move = set(rng.sample(names, round(len(names) * args.fraction))) if (cls == args.source and split == "train") else set()
                for name in names:
                    dest_cls = args.target if name in move else cls
                    os.makedirs(os.path.join(root, split, dest_cls), exist_ok=True)
                    link = os.path.join(root, split, dest_cls, name)
                    os.symlink(os.path.abspath(os.path.join(args.data_dir, split, cls, name)), link)
                    if name in move:
                        planted.add(link)
        start = time.perf_counter()
        result = label_issues(root, time_budget=args.time_budget, image_size=args.image_size, top=200,
                              say=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
        seconds = time.perf_counter() - start
        order = result["order"]
        n = len(order)
        report = {
            "images": n, "planted": len(planted), "method": result["method"], "seconds": round(seconds, 1),
            "recall_top_1pct": sum(p in planted for p in order[: max(1, n // 100)]) / len(planted),
            "recall_top_5pct": sum(p in planted for p in order[: max(1, n // 20)]) / len(planted),
            "precision_top_planted": sum(p in planted for p in order[: len(planted)]) / len(planted),
            "cleanlab_flagged": result["flagged"],
            "planted_ranks": sorted(order.index(p) + 1 for p in planted),
        }  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
