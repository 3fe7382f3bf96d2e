"""What a finished run's curves say to do next: one line each, printed by ``train`` and kept in
run.json (``hints``). Plain arithmetic on the history, no Keras.

- The kept model is no better than always answering the largest class: said plainly, with the
  likely cause (too few epochs for the image size, BatchNorm statistics that had too few steps
  to settle, a learning rate the model could not learn with, or validation images unlike the
  training ones).
- Validation was still improving at the end (loss and accuracy) and the model was neither
  overfitting nor fitting its training images already: what a longer
  run would cost (a hint, not a promise: a cosine schedule's last epochs lower the validation
  loss of a converged model too, so the rule asks for a fall of more than 2%).
- A time budget fitted only a few epochs at this image size: a smaller size runs more.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["after_training", "majority_share", "still_improving"]

# "Still improving": the last quarter of the epochs lowered the validation loss by more than
# this fraction of the best before it, while training accuracy was at most GAP above validation.
IMPROVING = 0.02
GAP = 0.10
FITTED = 0.99
# Fewer epochs than this in a time budget: suggest a smaller image size.
FEW_EPOCHS = 8
# BatchNorm's moving averages (Keras's default momentum, the seed's) still hold more than
# STALE_BN of their starting values after fewer than log(STALE_BN) / log(BN_MOMENTUM) steps
# (298): validation without precise BN then runs on statistics unlike the images'.
BN_MOMENTUM = 0.99
STALE_BN = 0.05


def majority_share(counts: dict[str, int]) -> tuple[str, float]:
    """The largest class of ``counts`` and its share of all the images."""
    total = sum(counts.values())
    name = max(counts, key=lambda k: counts[k])
    return name, counts[name] / total if total else 0.0


def still_improving(history: dict[str, Sequence[float]]) -> bool:
    """Whether validation was still improving at the end: over the last quarter of the epochs
    the validation loss fell by more than :data:`IMPROVING` and the validation accuracy reached
    at least its best before, while training accuracy stayed within :data:`GAP` of validation
    accuracy (not overfitting) and below :data:`FITTED` (room left to learn).

    Checked against every recorded comparison run (benchmarks/results/recipe_*): without the
    accuracy conditions it fired on both lfw runs, whose validation loss drifted down after
    their accuracy had peaked (training accuracy 0.95 and 1.0)."""
    loss = list(history.get("val_loss", []))
    acc = list(history.get("val_accuracy", []))
    if len(loss) < 4 or len(acc) != len(loss):
        return False
    cut = len(loss) - max(1, len(loss) // 4)
    train_acc = history.get("accuracy", [0.0])[-1]
    return (min(loss[cut:]) < min(loss[:cut]) * (1 - IMPROVING) and max(acc[cut:]) >= max(acc[:cut])
            and train_acc - acc[-1] <= GAP and train_acc < FITTED)  # fmt: skip


def after_training(history: dict[str, Sequence[float]], best: dict[str, float], seconds: float,
                   plan: dict[str, Any], val_counts: dict[str, int], image_size: int,
                   bn_updates: int | None = None) -> list[str]:  # fmt: skip
    """The hints for a finished run (an empty list when there is nothing to say).

    Args:
        history: the per-epoch figures (history.csv).
        best: the kept epoch's figures.
        seconds: training time.
        plan: run.json's ``plan`` (:func:`simplecnn.training.loop._plan_record`).
        val_counts: validation images per class.
        image_size: the side images were trained at.
        bn_updates: the training steps BatchNorm's moving averages were updated in, when
            validation used them (precise BN off); None when precise BN recomputed them.
    """
    hints = []
    epochs = len(history.get("loss", []))
    per_epoch = seconds / max(1, epochs)
    budgeted = plan.get("budget_s") is not None
    if "val_accuracy" in best and val_counts:
        name, share = majority_share(val_counts)
        n_val = sum(val_counts.values())
        if best["val_accuracy"] <= share + max(0.01, 1.0 / n_val):
            hints.append(f"the kept model is no better than always answering {name!r} (validation "
                         f"accuracy {best['val_accuracy']:.3f}; {name!r} is {share:.1%} of the "
                         f"validation images): {_cause(history, epochs, image_size, budgeted, bn_updates)}")  # fmt: skip
    if still_improving(history):
        more = _longer(plan, seconds, per_epoch, epochs)
        hints.append(f"validation loss was still falling at the end (best epoch {_best_epoch(history)} "
                     f"of {epochs}) and the model was not overfitting: {more}")  # fmt: skip
    elif budgeted and epochs < FEW_EPOCHS and image_size > 64 and not hints:
        hints.append(f"only {epochs} epochs fitted in the time budget at {image_size} px; "
                     f"--image-size {image_size // 2} runs about 4x as many in the same time")  # fmt: skip
    return hints


def _cause(history: dict[str, Sequence[float]], epochs: int, image_size: int, budgeted: bool,
           bn_updates: int | None) -> str:  # fmt: skip
    train_acc = history.get("accuracy", [0.0])[-1]
    val_acc = history.get("val_accuracy", [0.0])[-1]
    if epochs < FEW_EPOCHS:
        fix = "a longer --time-budget" if budgeted else "more --epochs"
        smaller = f" or --image-size {image_size // 2}" if image_size > 64 else ""
        return f"only {epochs} epochs ran, too few for {image_size} px images; try {fix}{smaller}"
    if train_acc - val_acc < GAP:
        return (f"training accuracy is {train_acc:.3f}: the model did not learn; try another "
                "--learning-rate (simplecnn lr-find suggests one)")
    left = BN_MOMENTUM**bn_updates if bn_updates is not None else 0.0
    if left > STALE_BN:
        return (f"training accuracy is {train_acc:.3f}, but validation ran on BatchNorm statistics "
                f"averaged over only {bn_updates} training steps ({left:.0%} of them still their "
                "starting values); turn precise BN back on (drop --no-precise-bn or --recipe "
                "plain), which recomputes them on training images")  # fmt: skip
    return (f"training accuracy is {train_acc:.3f}: the model learned the training images but "
            "not in a way that carries to the validation images; check that both hold the same "
            "kind of photos (simplecnn check)")


def _longer(plan: dict[str, Any], seconds: float, per_epoch: float, epochs: int) -> str:
    if plan.get("budget_s") is not None:
        budget = 60 * math.ceil(2 * max(seconds, plan["budget_s"]) / 60)
        return (f"a run twice as long may help: --time-budget {budget} (about "
                f"{int(budget / per_epoch)} epochs at {per_epoch:.0f} s each)")
    return (f"a run twice as long may help: --epochs {2 * epochs} (about "
            f"{math.ceil(2 * epochs * per_epoch / 60)} minutes here)")


def _best_epoch(history: dict[str, Sequence[float]]) -> int:
    loss = list(history["val_loss"])
    return loss.index(min(loss)) + 1
