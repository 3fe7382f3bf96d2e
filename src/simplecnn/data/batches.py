"""Batches for Keras: a ``keras.utils.PyDataset`` that streams image files, decodes them in
parallel threads ahead of the model, can keep them decoded in memory, and augments them, seeded
so that every batch of every epoch is fixed by the seed. Works on every Keras backend.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

import keras
import numpy as np

from simplecnn.data.folders import Skipped
from simplecnn.data.images import augment, load_image, mix_batch, scale_pixels
from simplecnn.errors import DataError
from simplecnn.heads import encode_labels

__all__ = ["ImageBatches", "MirroredBatches"]


class ImageBatches(keras.utils.PyDataset):
    """Batches of ``(scaled images, labels)`` streamed from image files.

    Args:
        items: ``(path, label)`` pairs.
        image_size: ``(height, width)`` the model takes.
        channels: 3 (RGB) or 1 (grayscale).
        batch_size: images per batch (the last batch may be smaller).
        num_classes: 1 for the sigmoid head (labels become float 0/1), else the class count.
        one_hot: give a softmax head's labels as one-hot rows (for a smoothed categorical
            loss), not class indices (:func:`simplecnn.heads.encode_labels`).
        shuffle: reshuffle every epoch (seeded: the order depends only on ``seed`` and epoch).
        augment: random flip / rotation / zoom, seeded per image and epoch.
        mix: ``"mixup"`` or ``"cutmix"``: mix each batch's images in pairs after augmentation,
            and their targets with them (:func:`~simplecnn.data.images.mix_batch`), seeded per
            batch and epoch; the targets are then floats (pass ``one_hot`` for a softmax).
        cache: keep decoded images in memory after their first read.
        seed: the seed of shuffling and augmentation.
        workers: threads decoding batches ahead of the model, in parallel.
        max_queue_size: how many batches may be decoded ahead.

    Batches are decoded ahead by this class, not by Keras's enqueuer: Keras's prefetching
    threads read a batch's position in the epoch's order when they get to it, and keep
    left-over batches for the next epoch, so which epoch's order and augmentation a batch
    near an epoch boundary gets would depend on thread timing. Here each read-ahead batch
    is tied to the epoch it was asked for, so a seed fixes every batch of every epoch, and a
    resumed run sees what the uninterrupted run saw. (``fit`` must not shuffle batches
    itself: pass ``shuffle=False``, as :func:`simplecnn.training.train` does.)
    """

    def __init__(
        self,
        items: Sequence[tuple[str, int]],
        image_size: tuple[int, int],
        channels: int = 3,
        batch_size: int = 16,
        num_classes: int = 1,
        shuffle: bool = False,
        augment: bool = False,
        cache: bool = False,
        seed: int = 0,
        workers: int | None = None,
        max_queue_size: int = 8,
        shard: tuple[int, int] = (0, 1),
        one_hot: bool = False,
        mix: str | None = None,
    ) -> None:
        if workers is None:
            workers = min(8, (os.cpu_count() or 1) * 2)
        # One Keras worker: Keras calls __getitem__ in order from one thread; the read-ahead
        # threads are ours (see the class docstring).
        super().__init__(workers=1, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.decode_workers = max(1, int(workers))
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[tuple[int, int], Future] = {}
        self._lock = threading.Lock()
        self.items = list(items)
        self.image_size = tuple(image_size)
        self.channels = channels
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.one_hot = one_hot
        self.shuffle = shuffle
        self.augment = augment
        self.mix = mix
        self.seed = seed
        self.epoch = 0
        # Seconds __getitem__ spent waiting for a batch that was not ready (see InputWait).
        self.wait_seconds = 0.0
        self.failed: list[Skipped] = []
        self._failed_paths: set[str] = set()
        self._cache: dict[int, np.ndarray] | None = {} if cache else None
        # (index, count): this process's slice of every global batch; the last, incomplete
        # global batch is dropped so every process feeds the same number of images.
        self.shard_index, self.shard_count = shard
        if self.shard_count > 1 and batch_size % self.shard_count:
            raise DataError(
                f"batch size {batch_size} must be a multiple of the {self.shard_count} processes"
            )
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.items))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.items))

    def __len__(self) -> int:
        if self.shard_count > 1:
            return len(self.items) // self.batch_size
        return math.ceil(len(self.items) / self.batch_size)

    def _batch_indices(self, batch: int, order: np.ndarray | None = None) -> np.ndarray:
        order = self._order if order is None else order
        indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
        if self.shard_count > 1:
            local = self.batch_size // self.shard_count
            indices = indices[self.shard_index * local : (self.shard_index + 1) * local]
        return indices

    def _image(self, index: int) -> np.ndarray:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        path = self.items[index][0]
        try:
            image = load_image(path, self.image_size, self.channels)
        except DataError as exc:
            # Passed the header check but failed to decode (a truncated file): a blank image,
            # recorded, rather than a crash in the middle of an epoch.
            with self._lock:
                if path not in self._failed_paths:  # a file read twice (TTA) is recorded once
                    self._failed_paths.add(path)
                    self.failed.append(Skipped(path, exc.reason))
            image = np.zeros((*self.image_size, self.channels), np.uint8)
        if self._cache is not None:
            self._cache[index] = image
        return image

    def images(self, batch: int) -> np.ndarray:
        """The uint8 images of batch ``batch`` (before augmentation and scaling)."""
        indices = self._batch_indices(batch)
        return np.stack([self._image(int(i)) for i in indices])

    def _make_batch(self, epoch: int, order: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``batch`` of epoch ``epoch`` (whose order is ``order``): pure of ``self.epoch``."""
        indices = self._batch_indices(batch, order)
        images = []
        for i in indices:
            image = self._image(int(i))
            if self.augment:
                image = augment(image, np.random.default_rng([self.seed, epoch, int(i)]))
            images.append(image)
        labels = encode_labels([self.items[int(i)][1] for i in indices], self.num_classes, self.one_hot)
        x = scale_pixels(np.stack(images))
        if self.mix:
            # Seeded by the batch (a list of another length than the images' seeds above).
            rng = np.random.default_rng([self.seed, epoch, batch, len(self)])
            return mix_batch(x, labels, self.mix, rng)
        return x, labels

    def __getitem__(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= batch < len(self):
            raise IndexError(f"batch {batch} out of range for {len(self)} batches")
        epoch, order = self.epoch, self._order
        with self._lock:
            future = self._ahead.pop((epoch, batch), None)
            if self.decode_workers > 1 and self.max_queue_size > 0:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="simplecnn-decode")
                for ahead in range(batch + 1, min(len(self), batch + 1 + self.max_queue_size)):
                    if (epoch, ahead) not in self._ahead:
                        self._ahead[(epoch, ahead)] = self._pool.submit(self._make_batch, epoch, order, ahead)
        start = time.perf_counter()
        try:
            if future is not None:
                return future.result()
            return self._make_batch(epoch, order, batch)
        finally:
            self.wait_seconds += time.perf_counter() - start

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle (and augment) as for epoch ``epoch`` (0-based); used when resuming."""
        with self._lock:
            for future in self._ahead.values():  # read ahead for another epoch: not wanted now
                future.cancel()
            self._ahead.clear()
            self.epoch = epoch
            self._order = self._permutation()

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    @property
    def labels(self) -> np.ndarray:
        """Labels in batch order (fixed when ``shuffle`` is off)."""
        return np.array([self.items[int(i)][1] for i in self._order])

    @property
    def paths(self) -> list[str]:
        return [self.items[int(i)][0] for i in self._order]


class MirroredBatches(keras.utils.PyDataset):
    """The batches of an :class:`ImageBatches`, each image mirrored left to right (for TTA)."""

    def __init__(self, batches: ImageBatches) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.batches[batch]
        return x[:, :, ::-1], y
