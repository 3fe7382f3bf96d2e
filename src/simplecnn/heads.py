"""The one place that knows the seed's binary head: two classes are one sigmoid unit giving the
probability of the second class; three or more are a softmax with one unit per class.

Everything that turns a class count into a model, a loss or a probability per class asks here.
No Keras: the serving runtimes use it too.
"""

from __future__ import annotations

import numpy as np

__all__ = ["head_units", "num_classes_of", "loss_name", "one_hot_targets", "encode_labels",
           "class_probabilities", "decide"]


def head_units(num_classes: int) -> int:
    """Output units for ``num_classes`` classes: 1 (sigmoid) for two, else one per class."""
    return 1 if num_classes == 2 else num_classes


def num_classes_of(units: int) -> int:
    """The number of classes an output layer of ``units`` units tells apart."""
    return 2 if units == 1 else units


def loss_name(units: int) -> str:
    """The Keras loss for an output layer of ``units`` units (targets as :func:`encode_labels`
    makes them without ``one_hot``)."""
    return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"


def one_hot_targets(units: int, soft: bool) -> bool:
    """Whether training takes one-hot targets: a softmax head whose targets are ``soft``, not
    one class each (label smoothing, mixed images: Keras's sparse cross-entropy takes class
    indices only, its categorical one takes any distribution; the sigmoid head's target is one
    number either way)."""
    return units > 1 and bool(soft)


def encode_labels(labels: np.ndarray, units: int, one_hot: bool = False) -> np.ndarray:
    """Class indices -> the targets the loss takes: a float 0/1 column for the sigmoid head,
    int32 indices for a softmax, or float32 one-hot rows when ``one_hot``."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if units == 1:
        return labels.astype(np.float32).reshape(-1, 1)
    if one_hot:
        return np.eye(units, dtype=np.float32)[labels]
    return labels.astype(np.int32)


def class_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Model outputs ``(N, units)`` -> one probability per class ``(N, classes)``, float64.

    A sigmoid output ``p`` (the probability of the second class) becomes ``[1 - p, p]``.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError(f"outputs must be (N, units). Received shape {out.shape}")
    return np.concatenate([1.0 - out, out], axis=1) if out.shape[1] == 1 else out


def decide(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Predicted class per row of ``class_probabilities``: a binary run's second class when its
    probability reaches ``threshold``, else the most probable class."""
    if probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).astype(int)
    return probs.argmax(axis=1)
