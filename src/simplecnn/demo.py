"""The built-in demo: the three styles, the proof they are one model, and a real training run
on a small data set that ships inside scikit-image (faces vs. non-faces from LFW)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["write_lfw_folders", "LFW_CLASSES"]

# skimage.data.lfw_subset(): 200 grayscale 25x25 crops, the first 100 faces, the next 100 not.
LFW_CLASSES = ("background", "face")


def write_lfw_folders(root: str, seed: int = 0, fractions: tuple[float, float] = (0.6, 0.2)) -> dict[str, Any]:
    """Write ``lfw_subset`` as PNG files in ``root/{train,val,test}/{background,face}/``.

    Each class is split, seeded, into train / validation / test by ``fractions`` (the rest is
    test), so the demo goes through the same folder pipeline as a user's photos.

    Returns:
        ``{"train": {...counts}, "val": {...}, "test": {...}}``.
    """
    from PIL import Image
    from skimage.data import lfw_subset

    images = lfw_subset()  # (200, 25, 25) floats in [0, 1]
    labels = np.array([1] * 100 + [0] * 100)  # 1: face
    rng = np.random.default_rng(seed)
    counts: dict[str, dict[str, int]] = {s: {c: 0 for c in LFW_CLASSES} for s in ("train", "val", "test")}
    for label, name in enumerate(LFW_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_train = int(len(idx) * fractions[0])
        n_val = int(len(idx) * fractions[1])
        parts = {"train": idx[:n_train], "val": idx[n_train : n_train + n_val], "test": idx[n_train + n_val :]}
        for split, members in parts.items():
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in members:
                pixels = np.clip(images[i] * 255.0 + 0.5, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, "L").save(os.path.join(folder, f"lfw_{i:03d}.png"))
            counts[split][name] = len(members)
    return counts
