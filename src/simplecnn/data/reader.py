"""uint8 batches of image files, in order, decoded ahead in threads: what predict, evaluate and the
ONNX runtime feed a model. No Keras (the Keras runtime scales them with ``scale_pixels``)."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, Sequence

import numpy as np

from simplecnn.data.folders import Skipped
from simplecnn.data.images import load_image
from simplecnn.errors import DataError

__all__ = ["read_batches"]


def _decode(paths: Sequence[str], size: tuple[int, int], channels: int) -> tuple[np.ndarray, list[Skipped]]:
    images, failed = [], []
    for path in paths:
        try:
            images.append(load_image(path, size, channels))
        except DataError as exc:
            # Passed the header check but failed to decode: a blank image, recorded.
            failed.append(Skipped(path, exc.reason))
            images.append(np.zeros((*size, channels), np.uint8))
    return np.stack(images), failed


def read_batches(
    paths: Sequence[str], size: tuple[int, int], channels: int = 3, batch_size: int = 32,
    workers: int | None = None, ahead: int = 4,
) -> Iterator[tuple[np.ndarray, list[Skipped]]]:  # fmt: skip
    """Yield ``(uint8 images (n, h, w, c), files that failed to decode)`` per batch, in order.

    Batches are decoded by ``workers`` threads (default: twice the cores, at most 8) while the
    caller runs the model on the previous ones; at most ``ahead`` batches wait decoded.
    """
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    starts = range(0, len(paths), batch_size)
    with ThreadPoolExecutor(workers, thread_name_prefix="simplecnn-read") as pool:
        pending: list[Future] = []
        for start in starts:
            pending.append(pool.submit(_decode, paths[start : start + batch_size], size, channels))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
