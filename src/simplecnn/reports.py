"""Plots (PNG) and metrics: training curves, confusion matrix, ROC curve, most-wrong grid."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from simplecnn.files import PNG_METADATA, atomic_write

__all__ = ["classification_metrics", "plot_history", "plot_confusion", "plot_roc", "plot_grid",
           "plot_lr_find"]  # fmt: skip


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str) -> str:
    # Written then renamed (never half a PNG), and signed, so simplecnn can tell a PNG it drew
    # (which it may replace) from one it did not.
    try:
        with atomic_write(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    finally:
        _plt().close(fig)
    return path


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC and the confusion matrix, by scikit-learn.

    Args:
        y_true: class indices, shape ``(n,)``.
        probs: one probability per class ``(n, k)``, or a sigmoid head's ``(n, 1)`` outputs
            (:func:`simplecnn.heads.class_probabilities` makes the one from the other).
        class_names: the run's class names (index order).
        threshold: the decision threshold of a binary run.

    Returns:
        A JSON-friendly dict. Binary runs report precision/recall/F1 of ``class_names[1]``
        (the positive class); multi-class runs their macro averages.
    """
    from sklearn import metrics

    from simplecnn.heads import class_probabilities, decide

    probs = class_probabilities(probs)
    y_true = np.asarray(y_true).astype(int)
    k = len(class_names)
    binary = k == 2
    y_pred = decide(probs, threshold)
    scores = probs[:, 1] if binary else probs
    present = np.unique(y_true)
    out: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "averaging": "binary (positive class: %s)" % class_names[1] if binary else "macro",
    }
    avg = "binary" if binary else "macro"
    kw = {"average": avg, "zero_division": 0}
    if not binary:
        kw["labels"] = list(range(k))
    out["precision"] = float(metrics.precision_score(y_true, y_pred, **kw))
    out["recall"] = float(metrics.recall_score(y_true, y_pred, **kw))
    out["f1"] = float(metrics.f1_score(y_true, y_pred, **kw))
    if len(present) < 2:
        out["roc_auc"] = None  # undefined with one class present
    elif binary:
        out["roc_auc"] = float(metrics.roc_auc_score(y_true, scores))
    elif len(present) == k:
        out["roc_auc"] = float(metrics.roc_auc_score(y_true, scores, multi_class="ovr"))
    else:
        out["roc_auc"] = None
    out["confusion_matrix"] = metrics.confusion_matrix(y_true, y_pred, labels=list(range(k))).tolist()
    out["per_class"] = {
        name: {
            "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)
        }  # fmt: skip
        for name, p, r, f, s in zip(
            class_names,
            *metrics.precision_recall_fscore_support(
                y_true, y_pred, labels=list(range(k)), zero_division=0
            ),
        )
    }
    return out


def plot_history(history: dict[str, list[float]], path: str) -> str:
    """Loss and accuracy per epoch, training and validation, as one PNG."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--o")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=prefix + key, ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: str) -> str:
    """The confusion matrix (rows: true class, columns: predicted) as a PNG."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _plt()
    size = max(4.0, 0.6 * len(class_names) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", colorbar=False
    )
    ax.set_title("Confusion matrix")
    return _save(fig, path)


def plot_roc(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: str) -> str:
    """ROC curve (binary) or one-vs-rest curves (multi-class) as a PNG."""
    from sklearn.metrics import auc, roc_curve

    plt = _plt()
    from simplecnn.heads import class_probabilities

    fig, ax = plt.subplots(figsize=(5, 5))
    y_true, probs = np.asarray(y_true).astype(int), class_probabilities(probs)
    curves = (
        [(class_names[1], y_true == 1, probs[:, 1])]
        if len(class_names) == 2
        else [(name, y_true == i, probs[:, i]) for i, name in enumerate(class_names)]
    )
    drawn = 0
    for name, positive, score in curves:
        if positive.all() or not positive.any():
            continue  # undefined without both outcomes
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        drawn += 1
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve")
    if drawn:
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "undefined: the images hold one class only", ha="center", va="center")
    return _save(fig, path)


def plot_grid(images: Sequence[np.ndarray], titles: Sequence[str], path: str, cols: int = 4) -> str:
    """A grid of uint8 images with a title under each, as a PNG."""
    plt = _plt()
    n = max(1, len(images))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), images, titles):
        ax.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(title, fontsize=8)
    return _save(fig, path)


def plot_lr_find(lrs: np.ndarray, losses: np.ndarray, suggested: float, path: str) -> str:
    """Loss against learning rate (log scale), the suggestion marked, as a PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.axvline(suggested, color="red", ls="--", label=f"suggested {suggested:.2g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    ax.set_title("lr-find")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
