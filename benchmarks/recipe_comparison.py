"""The seed's plain recipe against simplecnn's default, in the same time budget, over seeds.

    .venv/bin/python benchmarks/recipe_comparison.py ../shared/data/flower_photos \
        --budgets 900 --seeds 0 1 2 --out benchmarks/results/recipe_flowers

Each (recipe, image size, budget, seed) is one ``train`` call with ``time_budget`` (and nothing
else but the recipe's own settings), so the default recipe's schedule is planned in the budget
and the plain one runs at its constant learning rate until the budget ends. Results go to
``runs.jsonl`` one line per training as it finishes (a rerun skips what is there), then
``curves.csv`` (recipe, size, budget, seed, epoch, seconds, val_accuracy, val_loss),
``curves.png`` (validation accuracy against training time) and the table the docs show.
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
from simplecnn.errors import BudgetError
from simplecnn.training import train

RECIPES = {
    "default": {},
    "plain": {**PLAIN_RECIPE, "epochs": 10_000},  # the seed's: Adam 1e-3 constant, batch 32, no augmentation
}


def _value(text: str):
    """'32' -> 32, '2e-3' -> 0.002, 'true' -> True, anything else stays text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def candidate(text: str) -> tuple[str, dict]:
    """'b32:batch_size=32,learning_rate=2e-3' -> ('b32', the default recipe with those settings)."""
    name, _, settings = text.partition(":")
    pairs = [item.split("=", 1) for item in settings.split(",") if item]
    if not name or not pairs or any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME:field=value[,field=value...], got {text!r}")
    overrides = {key: _value(value) for key, value in pairs}
    unknown = set(overrides) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise argparse.ArgumentTypeError(f"not TrainConfig fields: {', '.join(sorted(unknown))}")
    return name, overrides


class _Clock(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.start, self.times = time.perf_counter(), []

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def summarize(acc: list[float]) -> dict:
    """Best, final, final - best, and the largest swing between consecutive epochs after the
    first fifth of the epochs (the kept model's accuracy is read from the curves: _kept)."""
    best = max(acc)
    start = max(1, len(acc) // 5)
    swings = np.abs(np.diff(acc[start:])) if len(acc) - start > 1 else np.array([0.0])
    return {"best": best, "best_epoch": int(np.argmax(acc)) + 1, "final": acc[-1],
            "final_minus_best": acc[-1] - best, "max_swing": float(swings.max()), "epochs": len(acc)}  # fmt: skip


def run_one(data_dir: str, recipe: str, size: int | str, budget: float, seed: int) -> dict:
    side = None if size == "auto" else size
    config = TrainConfig(**{**RECIPES[recipe], "image_size": side, "time_budget": budget, "seed": seed})
    clock = _Clock()
    with tempfile.TemporaryDirectory() as tmp:  # the run directories are not kept
        result = train(data_dir, os.path.join(tmp, "run"), config, verbose=2, callbacks=[clock])
    acc, loss = result.history["val_accuracy"], result.history["val_loss"]
    probe = result.image_size.get("probe_s", 0.0)  # auto's timing of the side, part of the budget
    return {"recipe": recipe, "settings": RECIPES[recipe], "size": size, "side": result.image_size.get("side", side), "budget": budget,
            "seed": seed, "seconds": round(result.seconds, 1), "plan": result.plan, "hints": result.hints,
            "image_size": result.image_size, "times": [round(t + probe, 1) for t in clock.times],
            "val_accuracy": acc, "val_loss": loss, "accuracy": result.history["accuracy"],
            "learning_rate": result.history.get("learning_rate", []), **summarize(acc)}  # fmt: skip


def table(runs: list[dict]) -> list[str]:
    """One markdown line per (recipe, size, budget): mean and spread over seeds."""
    lines = ["| recipe | px | budget (s) | seeds | epochs | final val acc (min-max) | kept model | best | final - best | max swing after 1/5 |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    keys = sorted({(r["recipe"], r["size"], r["budget"]) for r in runs}, key=lambda k: (k[2], str(k[1]), k[0]))
    for recipe, size, budget in keys:
        rs = [r for r in runs if (r["recipe"], r["size"], r["budget"]) == (recipe, size, budget)]
        final = [r["final"] for r in rs]
        sides = sorted({r.get("side", size) for r in rs})
        shown = f"auto ({', '.join(map(str, sides))})" if size == "auto" else size
        lines.append(
            f"| {recipe} | {shown} | {budget:g} | {len(rs)} | {np.mean([r['epochs'] for r in rs]):.0f} "
            f"| **{np.mean(final):.3f}** ({min(final):.3f}-{max(final):.3f}) | {_kept(rs)} "
            f"| {np.mean([r['best'] for r in rs]):.3f} "
            f"| {np.mean([r['final_minus_best'] for r in rs]):+.3f} | {max(r['max_swing'] for r in rs):.3f} |"
        )  # fmt: skip
    return lines


def _kept(runs: list[dict]) -> str:
    """Mean accuracy of the kept models (lowest validation loss; of the last ``train`` call's
    epochs for progressive_resizing.py's runs), from the recorded curves."""
    kept = []
    for r in runs:
        last = -r["phases"][-1]["epochs"] if "phases" in r else 0
        acc, loss = r["val_accuracy"][last:], r["val_loss"][last:]
        kept.append(acc[int(np.nanargmin(loss))])
    return f"{np.mean(kept):.3f}"


def _label(run: dict) -> str:
    side = f"auto ({run['side']})" if run["size"] == "auto" else run["size"]
    return f"{run['recipe']} {side} px"


def plot(runs: list[dict], title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = {}
    for r in runs:
        key = _label(r)
        color = colors.setdefault(key, f"C{len(colors)}")
        ax.plot(r["times"], r["val_accuracy"], "-o", ms=2, color=color, alpha=0.8,
                label=key if r is next(x for x in runs if _label(x) == key) else None)  # fmt: skip
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--candidate", action="append", type=candidate, default=[], metavar="NAME:FIELD=VALUE,...",
                   help="a recipe to measure: the default with these TrainConfig settings (repeatable); "
                        "name it in --recipes")  # fmt: skip
    p.add_argument("--recipes", nargs="+", default=["default", "plain"])
    p.add_argument("--sizes", nargs="+", type=lambda t: t if t == "auto" else int(t), default=["auto"],
                   help="image sides (pixels), or auto (simplecnn's choice for the budget)")
    p.add_argument("--budgets", nargs="+", type=float, default=[900.0], help="seconds of training")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", default="benchmarks/results/recipe_comparison")
    p.add_argument("--table-only", action="store_true",
                   help="train nothing: write the table, curves.csv and curves.png from --out's runs.jsonl")  # fmt: skip
    args = p.parse_args()
    RECIPES.update(args.candidate)
    unknown = [r for r in args.recipes if r not in RECIPES]
    if args.table_only:
        args.budgets = []
    elif unknown:
        p.error(f"unknown recipe(s) {', '.join(unknown)}: choose from {', '.join(sorted(RECIPES))} or add --candidate")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "runs.jsonl")
    runs = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    done = {(r["recipe"], r["size"], r["budget"], r["seed"]) for r in runs}
    for budget in args.budgets:
        for seed in args.seeds:
            for size in args.sizes:
                for recipe in args.recipes:
                    if (recipe, size, budget, seed) in done:
                        continue
                    print(f"== {recipe}, {size} px, {budget:g} s, seed {seed}", flush=True)
                    try:
                        run = run_one(args.data_dir, recipe, size, budget, seed)
                    except BudgetError as exc:  # two epochs do not fit: recorded as such
                        print(f"refused: {exc}", flush=True)
                        run = {"recipe": recipe, "size": size, "budget": budget, "seed": seed, "refused": str(exc)}
                    run["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                                      "python": sys.version.split()[0], "keras": keras.__version__,
                                      "backend": keras.backend.backend()}  # fmt: skip
                    runs.append(run)
                    with open(path, "a") as f:
                        f.write(json.dumps(run) + "\n")
    refused = [r for r in runs if "refused" in r]
    runs = [r for r in runs if "refused" not in r]
    with open(os.path.join(args.out, "curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["recipe", "size", "budget", "seed", "epoch", "seconds", "val_accuracy", "val_loss"])
        for r in runs:
            for i, (t, a, l) in enumerate(zip(r["times"], r["val_accuracy"], r["val_loss"]), 1):
                w.writerow([r["recipe"], r["size"], r["budget"], r["seed"], i, t, a, l])
    name = os.path.basename(os.path.normpath(args.data_dir))
    plot(runs, f"{name}: validation accuracy against training time", os.path.join(args.out, "curves.png"))
    lines = table(runs) + [f"| {r['recipe']} | {r['size']} | {r['budget']:g} | refused: {r['refused']} |"
                           for r in refused]  # fmt: skip
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
