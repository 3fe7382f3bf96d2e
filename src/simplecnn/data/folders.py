"""A folder of photos -> labelled file lists: classes, the train/validation split, and every
file that was left out with the reason. Reads headers only; decoding is images.py's. No Keras.

Layouts: one sub-folder per class (a seeded, stratified validation split is held out), or
``train/`` and ``val/`` (or ``validation/``) folders of that form, used as given.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from simplecnn.data.images import IMAGE_EXTENSIONS, check_image_file, shown
from simplecnn.errors import DataError

__all__ = ["Skipped", "Dataset", "scan_folder", "list_images", "find_split", "index_classes"]

# Files that file managers leave in photo folders; skipped silently but recorded.
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "icon\r"}
_SPLIT_TRAIN = ("train",)
_SPLIT_VAL = ("val", "validation")


@dataclass(frozen=True)
class Skipped:
    """A file that was not used, with the reason."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class Dataset:
    """The labelled files of a data folder, split into training and validation."""

    root: str
    class_names: list[str]
    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    skipped: list[Skipped] = field(default_factory=list)
    layout: str = "classes"  # "classes" (one folder per class) or "split" (train/ and val/)
    # Things worth telling the user that do not stop training, one line each.
    warnings: list[str] = field(default_factory=list)

    def counts(self, items: Sequence[tuple[str, int]]) -> dict[str, int]:
        out = {name: 0 for name in self.class_names}
        for _, label in items:
            out[self.class_names[label]] += 1
        return out


def _inside(path: str, folder: str) -> bool:
    """Whether real path ``path`` is ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _walk_files(folder: str, data_root: str | None = None) -> tuple[list[str], list[Skipped]]:
    """Every file below ``folder`` (sub-folders and links followed), sorted, with what was cut.

    Links are resolved once. A folder link back to a folder already walked, or to one that holds
    ``folder`` (the data folder, ``/``), is a loop and is cut. With ``data_root`` (a class
    folder of a data set), a link to a file or folder elsewhere in the data is skipped, so an
    image is only ever counted under the class folder it sits in; links to photos outside the
    data folder (a photo library) are followed. A file reached twice through links counts once.
    """
    files, skipped, seen = [], [], set()
    home = os.path.realpath(folder)
    root = os.path.realpath(data_root) if data_root else None
    real_files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        reason = None
        if real in seen:
            reason = "folder link loop (already visited)"
        elif dirpath != folder and _inside(home, real):
            reason = f"folder link loop (to {shown(real)}, which holds {shown(folder)})"
        elif root and _inside(real, root) and not _inside(real, home):
            reason = f"folder link to another folder of the data ({shown(real)})"
        if reason:
            skipped.append(Skipped(dirpath, reason))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        # Real files before links, so a link that is a second name for a file here is the one left out.
        for name in sorted(filenames, key=lambda n: (os.path.islink(os.path.join(dirpath, n)), n)):
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
                target = os.path.realpath(path)
                if root and _inside(target, root) and not _inside(target, home):
                    skipped.append(Skipped(path, f"link to a file in another folder of the data "
                                                 f"({shown(target)})"))  # fmt: skip
                elif target in real_files:
                    skipped.append(Skipped(path, f"the same file as {shown(real_files[target])} "
                                                 "(a link)"))  # fmt: skip
                else:
                    real_files[target] = path
                    files.append(path)
    return sorted(files), skipped


def _checked(paths: list[str], workers: int = 8) -> tuple[list[str], list[Skipped]]:
    """Keep the files whose header Pillow can read; the others are skipped with the reason."""

    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(check_image_file, paths))
    good = [p for p, r in zip(paths, reasons) if r is None]
    bad = [Skipped(p, r) for p, r in zip(paths, reasons) if r is not None]
    return good, bad


def _class_folders(folder: str) -> list[str]:
    return sorted(
        e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
    )


def find_split(root: str) -> tuple[str, str] | None:
    names = {e.name for e in os.scandir(root) if e.is_dir()}
    train = next((n for n in _SPLIT_TRAIN if n in names), None)
    val = next((n for n in _SPLIT_VAL if n in names), None)
    if train and val:
        return os.path.join(root, train), os.path.join(root, val)
    return None


def index_classes(
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
        paths, skip = _walk_files(sub, data_root=folder)
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
    split = find_split(root)
    if split:
        names, train, skipped = index_classes(split[0])
        _, val, skipped_val = index_classes(split[1], names)
        skipped += skipped_val
        layout = "split"
    else:
        names, items, skipped = index_classes(root)
        train, val = _stratified_split(items, validation_split, seed)
        layout = "classes"
    dataset = Dataset(root, names, train, val, skipped, layout)
    _check_classes(dataset, split[0] if split else root)
    if val:
        absent = [n for n, c in dataset.counts(val).items() if c == 0]
        if absent:
            why = (f"the validation folder {split[1]} has no images of it" if split else
                   "too few images to hold one out")  # fmt: skip
            dataset.warnings.append(
                f"validation holds no image of class(es) {absent} ({why}); validation figures "
                "say nothing about them: add images"
            )
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
