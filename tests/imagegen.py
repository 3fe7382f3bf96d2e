"""Image folders the tests write themselves (Pillow): learnable classes, every format."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

# Class -> mean colour. Different enough that a few epochs at 32 px learn them.
COLOURS = {"cats": (200, 60, 50), "dogs": (50, 70, 200), "eels": (60, 190, 70)}


def make_image(colour: tuple[int, int, int], rng: np.random.Generator, size: tuple[int, int] = (40, 48)) -> Image.Image:
    """A noisy image of one dominant colour with a random bright square."""
    h, w = size
    base = np.array(colour, dtype=np.float64)
    pixels = base + rng.normal(0, 35, (h, w, 3))
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    pixels[y : y + h // 3, x : x + w // 3] += 60
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_folder(
    root: str,
    classes: tuple[str, ...] = ("cats", "dogs"),
    per_class: int = 24,
    seed: int = 0,
    formats: tuple[str, ...] = ("jpg", "png"),
) -> str:
    """root/<class>/img_<i>.<fmt>, alternating formats. Returns root."""
    rng = np.random.default_rng(seed)
    for name in classes:
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            ext = formats[i % len(formats)]
            make_image(COLOURS[name], rng).save(os.path.join(folder, f"img_{i:03d}.{ext}"))
    return root


def make_split_folder(root: str, classes: tuple[str, ...] = ("cats", "dogs"), seed: int = 0) -> str:
    """root/train/<class>/..., root/val/<class>/... """
    make_folder(os.path.join(root, "train"), classes, per_class=20, seed=seed)
    make_folder(os.path.join(root, "val"), classes, per_class=6, seed=seed + 1)
    return root
