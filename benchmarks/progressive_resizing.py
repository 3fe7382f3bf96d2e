"""Progressive resizing, tried: train at a small side, then finish at a larger one, in one budget.

    .venv/bin/python benchmarks/progressive_resizing.py ../shared/data/flower_photos \
        --sides 64 128 --split 0.7 --budget 900 --seeds 0 --out benchmarks/results/progressive_flowers_900

The model is convolutional with a global pooling head, so its weights fit any input side. Phase 1
is ``train`` at the first side with ``split`` of the budget; phase 2 is ``train`` at the second
side with the rest, starting from phase 1's kept model (its own warm-up and cosine decay, as
fastai's progressive resizing runs one ``fit_one_cycle`` per size). Each phase's training time
counts; scanning the folder again does not (``train``'s own seconds). Results go to
``runs.jsonl`` (one line per seed, in the layout ``recipe_comparison.py`` writes, recipe
``progressive``): give both scripts the same ``--out`` and ``recipe_comparison.py`` tables and
plots them together. Run it with nothing else running on the machine: the budget is wall-clock
time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from unittest import mock

import keras

from recipe_comparison import _Clock, summarize  # the same clock and summary as the comparison
from simplecnn.config import TrainConfig
from simplecnn.checkpoints import load_model_file
from simplecnn.training import setup as setup_module
from simplecnn.training import train


def run_phase(data_dir: str, out: str, side: int, budget: float, seed: int, weights: list | None):
    """One ``train`` call at ``side`` for ``budget`` seconds, from ``weights`` when given."""
    build = setup_module.Setup.build_model

    def build_from_weights(self, optimizer=None):
        model = build(self, optimizer)
        if weights is not None:
            model.set_weights(weights)
        return model

    clock = _Clock()
    config = TrainConfig(image_size=side, time_budget=budget, seed=seed)
    with mock.patch.object(setup_module.Setup, "build_model", build_from_weights):
        result = train(data_dir, out, config, verbose=2, callbacks=[clock])
    kept = load_model_file(os.path.join(out, "model.keras"))
    return result, clock.times, kept.get_weights()


def run_one(data_dir: str, sides: tuple[int, int], split: float, budget: float, seed: int) -> dict:
    acc, loss, train_acc, times, lr, phases = [], [], [], [], [], []
    spent, weights = 0.0, None
    with tempfile.TemporaryDirectory() as tmp:  # the run directories are not kept
        for i, side in enumerate(sides):
            share = budget * split if i == 0 else budget - spent
            result, clock, weights = run_phase(data_dir, os.path.join(tmp, f"phase{i}"), side, share, seed, weights)
            acc += result.history["val_accuracy"]
            loss += result.history["val_loss"]
            train_acc += result.history["accuracy"]
            lr += result.history.get("learning_rate", [])
            times += [round(spent + t, 1) for t in clock]
            phases.append({"side": side, "budget": round(share, 1), "seconds": round(result.seconds, 1),
                           "epochs": len(result.history["val_accuracy"]), "plan": result.plan})  # fmt: skip
            spent += result.seconds
    # The kept model of phase 2 is what the user would get; its epoch is phase 2's best.
    return {"recipe": "progressive", "settings": {"sides": list(sides), "split": split},
            "size": "-".join(map(str, sides)), "side": sides[-1], "budget": budget, "seed": seed,
            "seconds": round(spent, 1), "phases": phases, "times": times, "val_accuracy": acc,
            "val_loss": loss, "accuracy": train_acc, "learning_rate": lr, **summarize(acc)}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--sides", nargs=2, type=int, default=[64, 128], help="first side, then the final one")
    p.add_argument("--split", type=float, default=0.7, help="share of the budget for the first side")
    p.add_argument("--budget", type=float, default=900.0, help="seconds of training, both phases")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", default="benchmarks/results/progressive")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "runs.jsonl")
    runs = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    done = {(r["recipe"], r["size"], r["budget"], r["seed"]) for r in runs}
    size = "-".join(map(str, args.sides))
    for seed in args.seeds:
        if ("progressive", size, args.budget, seed) in done:
            continue
        print(f"== progressive {args.sides} px, split {args.split}, {args.budget:g} s, seed {seed}", flush=True)
        run = run_one(args.data_dir, tuple(args.sides), args.split, args.budget, seed)
        run["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": sys.version.split()[0], "keras": keras.__version__,
                          "backend": keras.backend.backend()}  # fmt: skip
        with open(path, "a") as f:
            f.write(json.dumps(run) + "\n")
        print({k: run[k] for k in ("seconds", "epochs", "final", "best", "final_minus_best", "max_swing")}, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
