"""What ``check`` knows of each image: size, colour mode, an exact hash of its decoded pixels and
a perceptual hash, computed once per file (decoded in threads) and cached by path, size and time.

The exact hash is of the pixels after decoding and EXIF orientation (so a re-saved copy with
the same pixels counts as the same image); the perceptual hash is the 64-bit pHash of
``imagehash`` (DCT of a 32x32 grayscale), whose Hamming distance finds resized, re-encoded,
brightened and slightly cropped copies.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps

from simplecnn.files import atomic_write

__all__ = ["Facts", "facts_of", "cache_path", "thumb_similarity", "THUMB_SIDE"]

_VERSION = 3  # of the cached facts: bump when what is computed changes
THUMB_SIDE = 16


@dataclass(frozen=True)
class Facts:
    """One image file's facts (``error`` set, and the rest empty, if it could not be decoded)."""

    width: int = 0
    height: int = 0
    mode: str = ""
    exact: str = ""  # blake2b of (size, mode, decoded RGB pixels)
    phash: int = 0  # 64-bit perceptual hash
    thumb: str = ""  # 16x16 RGB thumbnail, hex: verifies that two close hashes are one picture
    entropy: float = 0.0  # bits, of a 64x64 grayscale version: near 0 for a blank or flat picture
    error: str = ""


def _compute(path: str) -> Facts:
    import imagehash

    try:
        with Image.open(path) as image:
            mode = image.mode
            image.seek(0)
            oriented = ImageOps.exif_transpose(image).convert("RGB")
    except Exception as exc:  # the scan already skipped unreadable files; a race or a bad frame
        return Facts(error=" ".join(str(exc).split())[:200] or type(exc).__name__)
    digest = hashlib.blake2b(f"{oriented.size}".encode() + oriented.tobytes(), digest_size=16)
    thumb = oriented.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX).tobytes().hex()
    entropy = oriented.convert("L").resize((64, 64), Image.Resampling.BOX).entropy()
    return Facts(oriented.width, oriented.height, mode, digest.hexdigest(),
                 int(str(imagehash.phash(oriented)), 16), thumb, round(entropy, 3))  # fmt: skip


def cache_path(root: str) -> str:
    """Where the facts of the folder ``root`` are cached: the user's cache folder
    ($XDG_CACHE_HOME, else ~/.cache)/simplecnn/check/, never inside the data."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha1(os.fsencode(os.path.realpath(root))).hexdigest()[:16]
    return os.path.join(base, "simplecnn", "check", f"{key}.json")


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def facts_of(paths: Iterable[str], root: str, workers: int | None = None, use_cache: bool = True) -> dict[str, Facts]:
    """Facts of each path (decoded in ``workers`` threads), reusing the cache of ``root`` for
    files whose size and modification time have not changed, and updating it."""
    paths = list(paths)
    cache_file = cache_path(root)
    cached: dict = {}
    if use_cache:
        try:
            with open(cache_file, encoding="utf-8") as f:
                data = json.load(f)
            cached = data.get("facts", {}) if data.get("version") == _VERSION else {}
        except (OSError, ValueError, AttributeError):
            cached = {}
    out: dict[str, Facts] = {}
    todo = []
    for path in paths:
        key = os.fsencode(path).decode("utf-8", "surrogateescape")
        entry = cached.get(key)
        if entry is not None and entry.get("stamp") == _stamp(path):
            out[path] = Facts(**{k: v for k, v in entry.items() if k != "stamp"})
        else:
            todo.append(path)
    with ThreadPoolExecutor(workers or min(8, 2 * (os.cpu_count() or 1))) as pool:
        for path, facts in zip(todo, pool.map(_compute, todo)):
            out[path] = facts
    if use_cache and todo:
        entries = {os.fsencode(p).decode("utf-8", "surrogateescape"): {**asdict(f), "stamp": _stamp(p)}
                   for p, f in out.items() if not f.error}  # fmt: skip
        try:
            os.makedirs(os.path.dirname(cache_file), exist_ok=True)
            with atomic_write(cache_file) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
                json.dump({"version": _VERSION, "root": os.path.realpath(root), "facts": entries}, f)
        except OSError:
            pass  # a cache that cannot be written only costs time next time
    return out


def thumb_similarity(a: str, b: str) -> float:
    """Correlation of two thumbnails after each is normalised to mean 0 and variance 1: 1.0 for
    the same picture however bright or contrasted, lower for different pictures."""
    x = np.frombuffer(bytes.fromhex(a), np.uint8).astype(np.float64)
    y = np.frombuffer(bytes.fromhex(b), np.uint8).astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float(np.array_equal(x, y))
