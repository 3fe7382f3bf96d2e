"""Folder of images -> labelled file lists -> batches; what was skipped and why.

One pixel convention for everything (train, evaluate, predict, export): decode with Pillow, apply
the EXIF orientation, convert to RGB (or L), resize to the model's input with bilinear filtering
(the whole image, not a crop), keep uint8, and scale with :func:`scale_pixels` (x / 255) just
before the model. The loader is a ``keras.utils.PyDataset``: it streams from disk, decodes in
parallel threads, prefetches, can cache decoded images, and works on every Keras backend.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import keras
import numpy as np
from PIL import Image, ImageOps

from simplecnn.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Skipped",
    "Dataset",
    "DataError",
    "scan_folder",
    "list_images",
    "load_image",
    "decode_image",
    "scale_pixels",
    "ImageBatches",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
# Files that file managers leave in photo folders; skipped silently but recorded.
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "icon\r"}
_SPLIT_TRAIN = ("train",)
_SPLIT_VAL = ("val", "validation")
# Images above this many pixels are refused (Pillow's decompression-bomb guard, made an error).
MAX_PIXELS = 89_478_485
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True)
class Skipped:
    """A file that was not used, with the reason."""

    path: str
    reason: str


@dataclass
class Dataset:
    """The labelled files of a data folder, split into training and validation."""

    root: str
    class_names: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    skipped: list[Skipped] = field(default_factory=list)
    layout: str = "classes"  # "classes" (one folder per class) or "split" (train/ and val/)

    def counts(self, items: Sequence[tuple[str, int]]) -> dict[str, int]:
        out = {name: 0 for name in self.class_names}
        for _, label in items:
            out[self.class_names[label]] += 1
        return out


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> the model's input: float32 in [0, 1]. The one place pixels are scaled."""
    return np.asarray(images, dtype=np.float32) * np.float32(1.0 / 255.0)


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode (palette, RGBA, CMYK, 16-bit, float) -> 'RGB' or 'L'."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and 32-bit grayscale: rescale to 8 bits (convert('L') would clip at 255).
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels become white, as on a web page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def decode_image(image: Image.Image, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """An open Pillow image -> uint8 array ``(height, width, channels)`` at ``size``."""
    height, width = size
    if image.format == "JPEG":
        # Let libjpeg decode at a reduced scale when the photo is much larger than needed.
        image.draft("RGB" if channels == 3 else "L", (width, height))
    image.seek(0)  # animated GIF/WebP: the first frame
    image = ImageOps.exif_transpose(image)
    image = _to_mode(image, channels)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = np.asarray(image, dtype=np.uint8)
    return arr.reshape(height, width, channels)


def load_image(path: str | os.PathLike, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Read and decode one image file (see :func:`decode_image`).

    Raises:
        DataError: the file is not a readable image; the message names it.
    """
    try:
        with Image.open(path) as image:
            return decode_image(image, size, channels)
    except Image.DecompressionBombError:
        raise DataError(
            f"{path}: image too large (over {MAX_PIXELS:,} pixels); resize it or remove it"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


# How each format's file ends; a file without it was probably cut short.
_ENDINGS = {"JPEG": b"\xff\xd9", "PNG": b"IEND", "GIF": b";"}


def _check_header(path: str) -> str | None:
    """None if ``path`` is an image Pillow can decode, else the reason it is not.

    Cheap for good files: the header gives format and size, and the file's last bytes show
    whether it is complete. Only a file that looks cut short is decoded in full to decide.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                return (
                    f"image too large ({image.width}x{image.height} pixels, over {MAX_PIXELS:,}: "
                    "decompression-bomb guard)"
                )
            ending = _ENDINGS.get(image.format or "")
            if ending is None:
                return None
            with open(path, "rb") as f:
                f.seek(max(0, size - 1024))
                tail = f.read()
            if ending in tail:
                return None
            image.load()  # looks cut short: decode it all to be sure
            return None
    except Image.DecompressionBombError:
        return f"image too large (over {MAX_PIXELS:,} pixels: decompression-bomb guard)"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = " ".join(str(exc).split())
        if "truncated" in reason.lower():
            return f"truncated or corrupt image ({reason})"
        return f"not a readable image ({reason})"


def _walk_files(folder: str) -> tuple[list[str], list[Skipped]]:
    """Every file below ``folder`` (sub-folders and links followed, link loops cut), sorted."""
    files, skipped, seen = [], [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            skipped.append(Skipped(dirpath, "folder link loop (already visited)"))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.startswith(".") or name.lower() in _SYSTEM_FILES:
                skipped.append(Skipped(path, "hidden or system file"))
            elif not os.path.exists(path):
                skipped.append(Skipped(path, "broken symbolic link"))
            elif not name.lower().endswith(IMAGE_EXTENSIONS):
                skipped.append(
                    Skipped(path, f"not an image extension ({', '.join(IMAGE_EXTENSIONS)})")
                )
            else:
                files.append(path)
    return sorted(files), skipped


def _checked(paths: list[str], workers: int = 8) -> tuple[list[str], list[Skipped]]:
    """Keep the files whose header Pillow can read; the others are skipped with the reason."""

    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(_check_header, paths))
    good = [p for p, r in zip(paths, reasons) if r is None]
    bad = [Skipped(p, r) for p, r in zip(paths, reasons) if r is not None]
    return good, bad


def _class_folders(folder: str) -> list[str]:
    return sorted(
        e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
    )


def _find_split(root: str) -> tuple[str, str] | None:
    names = {e.name for e in os.scandir(root) if e.is_dir()}
    train = next((n for n in _SPLIT_TRAIN if n in names), None)
    val = next((n for n in _SPLIT_VAL if n in names), None)
    if train and val:
        return os.path.join(root, train), os.path.join(root, val)
    return None


def _index_classes(
    folder: str, class_names: list[str] | None = None
) -> tuple[list[str], list[tuple[str, int]], list[Skipped]]:
    """(class names, [(path, label)], skipped) for a folder with one sub-folder per class."""
    found = _class_folders(folder)
    names = class_names or found
    if class_names is not None:
        extra = sorted(set(found) - set(class_names))
        if extra:
            raise DataError(
                f"{folder}: class folder(s) {extra} are not among the classes "
                f"{class_names}; remove them or train a model that has them"
            )
    items, skipped = [], []
    for label, name in enumerate(names):
        sub = os.path.join(folder, name)
        if not os.path.isdir(sub):
            continue
        paths, skip = _walk_files(sub)
        good, bad = _checked(paths)
        skipped += skip + bad
        items += [(p, label) for p in good]
    for f in sorted(os.listdir(folder)):
        path = os.path.join(folder, f)
        if os.path.isfile(path):
            skipped.append(Skipped(path, "file outside any class folder"))
    return names, items, skipped


def _stratified_split(
    items: list[tuple[str, int]], fraction: float, seed: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({lab for _, lab in items}):
        group = [it for it in items if it[1] == label]
        order = rng.permutation(len(group))
        n_val = int(round(len(group) * fraction))
        if fraction > 0 and len(group) >= 2:
            n_val = min(max(n_val, 1), len(group) - 1)
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return sorted(train), sorted(val)


def scan_folder(data_dir: str | os.PathLike, validation_split: float = 0.2, seed: int = 0) -> Dataset:
    """Index a data folder.

    ``data_dir`` holds one sub-folder per class, or ``train/`` and ``val/`` (or
    ``validation/``) folders of that form, used as given. Without a split, a seeded, stratified
    ``validation_split`` of each class is held out (0: no validation). Class names are the
    folder names, sorted. Files that are not readable images are skipped, with the reason.

    Raises:
        DataError: the folder is missing, has fewer than two classes, or a class has no image.
    """
    root = str(data_dir)
    if not os.path.exists(root):
        raise DataError(f"{root}: no such folder; pass a folder with one sub-folder per class")
    if not os.path.isdir(root):
        raise DataError(f"{root}: not a folder; pass a folder with one sub-folder per class")
    if not 0.0 <= validation_split < 1.0:
        raise DataError(
            f"validation split must be in [0, 1). Received: {validation_split!r}"
        )
    split = _find_split(root)
    if split:
        names, train, skipped = _index_classes(split[0])
        _, val, skipped_val = _index_classes(split[1], names)
        skipped += skipped_val
        layout = "split"
    else:
        names, items, skipped = _index_classes(root)
        train, val = _stratified_split(items, validation_split, seed)
        layout = "classes"
    dataset = Dataset(root, names, train, val, skipped, layout)
    _check_classes(dataset, split[0] if split else root)
    return dataset


def _check_classes(dataset: Dataset, folder: str) -> None:
    names = dataset.class_names
    if len(names) < 2:
        raise DataError(
            f"{folder}: found {len(names)} class folder(s) {names}; a classifier needs at least "
            "two: put each class's images in its own sub-folder (e.g. ants/ and bees/)"
        )
    counts = dataset.counts(dataset.train)
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise DataError(
            f"{folder}: class folder(s) {empty} hold no readable image; add images or remove "
            "the folder"
        )


def list_images(paths: Iterable[str]) -> tuple[list[str], list[Skipped]]:
    """Expand files, folders (recursively) and glob patterns into image files, in order."""
    import glob

    out, skipped = [], []
    for spec in paths:
        if os.path.isdir(spec):
            files, skip = _walk_files(spec)
            out += files
            skipped += skip
        elif os.path.isfile(spec):
            out.append(spec)
        else:
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise DataError(f"{spec}: no such file or folder, and no file matches it")
            for m in matches:
                if os.path.isdir(m):
                    files, skip = _walk_files(m)
                    out += files
                    skipped += skip
                else:
                    out.append(m)
    good, bad = _checked(out)
    return good, skipped + bad


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip, rotation, zoom, shift, brightness and contrast of one uint8 image.

    Horizontal flip (p=0.5), rotation +-10 degrees, zoom 0.9-1.1 and a shift of up to 10% of
    each side in one bilinear affine warp (Pillow), then brightness and contrast scaled by
    0.8-1.2 each.
    """
    if rng.random() < 0.5:
        image = image[:, ::-1]
    angle = rng.uniform(-10.0, 10.0)
    zoom = rng.uniform(0.9, 1.1)
    h, w = image.shape[:2]
    dx, dy = rng.uniform(-0.1, 0.1) * w, rng.uniform(-0.1, 0.1) * h
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else np.ascontiguousarray(image))
    # Inverse affine map (output -> input): the output's centre samples the input at the centre
    # shifted by (dx, dy); around it, rotate by `angle` and scale by 1/zoom.
    cos, sin = math.cos(math.radians(angle)) / zoom, math.sin(math.radians(angle)) / zoom
    ox, oy = w / 2.0, h / 2.0
    cx, cy = ox + dx, oy + dy
    matrix = (cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy)
    pil = pil.transform((w, h), Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR)
    out = np.asarray(pil, dtype=np.float32).reshape(h, w, image.shape[-1])
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.8, 1.2) + mean * rng.uniform(0.8, 1.2)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class ImageBatches(keras.utils.PyDataset):
    """Batches of ``(scaled images, labels)`` streamed from image files.

    Args:
        items: ``(path, label)`` pairs.
        image_size: ``(height, width)`` the model takes.
        channels: 3 (RGB) or 1 (grayscale).
        batch_size: images per batch (the last batch may be smaller).
        num_classes: 1 for the sigmoid head (labels become float 0/1), else the class count.
        shuffle: reshuffle every epoch (seeded: the order depends only on ``seed`` and epoch).
        augment: random flip / rotation / zoom, seeded per image and epoch.
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
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        # Seconds __getitem__ spent waiting for a batch that was not ready (see InputWait).
        self.wait_seconds = 0.0
        self.failed: list[Skipped] = []
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
            self.failed.append(Skipped(path, str(exc)))
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
                image = _augment(image, np.random.default_rng([self.seed, epoch, int(i)]))
            images.append(image)
        labels = np.array([self.items[int(i)][1] for i in indices])
        if self.num_classes == 1:
            labels = labels.astype(np.float32).reshape(-1, 1)
        else:
            labels = labels.astype(np.int32)
        return scale_pixels(np.stack(images)), labels

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
