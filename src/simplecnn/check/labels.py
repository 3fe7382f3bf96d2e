"""Likely wrong labels: images whose given class a model finds least plausible, ranked by
cleanlab's label-quality score on out-of-sample probabilities.

Out-of-sample probabilities for every image, training images included, come from k-fold
cross-validation: the images are split into ``folds`` stratified folds, and for each fold the
seed's model is trained (the default recipe, at a low resolution, within a share of the time
budget) on the other folds and predicts the held-out one. With ``run_dir`` instead, a trained
run's model predicts every image: out-of-sample for its validation images only, so its ranking
of training images is weaker (it has seen them, labels and all).
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import numpy as np

from simplecnn.data import Dataset, scan_folder
from simplecnn.errors import BudgetError

__all__ = ["label_issues"]


def _out_of_fold(dataset: Dataset, items: list[tuple[str, int]], folds: int, image_size: int,
                 time_budget: float, seed: int, say: Any) -> np.ndarray:  # fmt: skip
    """Probabilities ``(n, classes)`` for ``items``, each from a model that did not train on it."""
    from sklearn.model_selection import StratifiedKFold

    from simplecnn.config import TrainConfig
    from simplecnn.inference import probabilities
    from simplecnn.runtime import open_predictor
    from simplecnn.training import train

    labels = np.array([label for _, label in items])
    probs = np.zeros((len(items), len(dataset.class_names)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with tempfile.TemporaryDirectory(prefix="simplecnn-check-") as scratch:
        for k, (fit_idx, held_idx) in enumerate(splitter.split(np.zeros(len(items)), labels)):
            fold = os.path.join(scratch, f"fold{k}")
            _link_folder(fold, [items[i] for i in fit_idx], dataset.class_names)
            config = TrainConfig(image_size=image_size, epochs=40, seed=seed, validation_split=0.0,
                                 time_budget=max(10.0, time_budget / folds))  # fmt: skip
            say(f"fold {k + 1}/{folds}: training on {len(fit_idx)} images, predicting {len(held_idx)}")
            try:
                train(fold, os.path.join(scratch, f"run{k}"), config, verbose=0)
            except BudgetError as exc:
                raise BudgetError(
                    f"--time-budget {time_budget:g} is too short for the label check, which trains "
                    f"{folds} models at {image_size} px: each needs about {exc.needed:g} s here; give "
                    f"--time-budget {math.ceil(exc.needed * folds)} or more", needed=exc.needed * folds,
                ) from None  # fmt: skip
            predictor = open_predictor(os.path.join(scratch, f"run{k}"), "keras")
            probs[held_idx], _ = probabilities(predictor, [items[i][0] for i in held_idx])
    return probs


def _link_folder(root: str, items: list[tuple[str, int]], names: list[str]) -> None:
    """A class-folder tree of links to ``items`` (the user's files are never copied or moved)."""
    for name in names:
        os.makedirs(os.path.join(root, name))
    for i, (path, label) in enumerate(items):
        os.symlink(os.path.abspath(path), os.path.join(root, names[label], f"{i:06d}{os.path.splitext(path)[1]}"))


def label_issues(
    data_dir: str | os.PathLike, run_dir: str | None = None, folds: int = 4, image_size: int = 48,
    time_budget: float = 600.0, seed: int = 0, top: int = 48, say: Any = lambda _: None,
) -> dict[str, Any]:  # fmt: skip
    """Rank every image of ``data_dir`` by how plausible its given label is (least first).

    Returns:
        ``{"method", "ranking": [{"path", "class", "predicted", "score", "flagged"}, ...] (the
        ``top`` least plausible), "flagged": n, "images": n}``; ``flagged`` marks the images
        cleanlab's ``find_label_issues`` (confident learning) calls label errors.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    dataset = scan_folder(data_dir, validation_split=0.0 if run_dir is None else 0.2, seed=seed)
    items = list(dataset.train) + list(dataset.val)
    labels = np.array([label for _, label in items])
    if run_dir is None:
        method = f"{folds}-fold out-of-sample probabilities at {image_size} px"
        probs = _out_of_fold(dataset, items, folds, image_size, time_budget, seed, say)
    else:
        from simplecnn.inference import probabilities
        from simplecnn.runtime import open_predictor

        method = f"the model of {run_dir} (in-sample for its training images)"
        probs, _ = probabilities(open_predictor(run_dir), [p for p, _ in items])
    probs = np.clip(probs, 1e-6, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    scores = get_label_quality_scores(labels, probs, method="self_confidence")
    flagged = find_label_issues(labels, probs, filter_by="prune_by_noise_rate")
    names = dataset.class_names
    order = np.argsort(scores, kind="stable")
    ranking = [{"path": items[i][0], "class": names[labels[i]], "predicted": names[int(probs[i].argmax())],
                "score": float(scores[i]), "flagged": bool(flagged[i])} for i in order[:top]]  # fmt: skip
    return {"method": method, "ranking": ranking, "order": [items[i][0] for i in order],
            "flagged": int(flagged.sum()), "images": len(items)}
