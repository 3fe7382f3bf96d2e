"""Writing files: atomic writes, JSON that keeps file names' bytes, full disks, and telling a
file simplecnn wrote (which it may replace) from one it did not.

Every file simplecnn writes goes through :func:`atomic_write`: a temporary name in the same
folder, renamed into place when complete, so a kill leaves the old file or the new one; a failed
write removes its temporary file, and a full disk becomes one line naming the path and the space.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from typing import Any, Callable, Iterator

from simplecnn.errors import DiskFullError, OutputError

__all__ = [
    "PNG_METADATA", "atomic_write", "write_text", "write_json", "dumps_json", "read_json",
    "disk_full_error", "is_disk_full", "is_own_png", "check_file_target",
]  # fmt: skip

# The text chunk in every PNG simplecnn draws: how it recognises a picture it may replace.
PNG_METADATA = {"Software": "simplecnn"}


def disk_full_error(path: str, exc: OSError) -> DiskFullError:
    """One line for a full disk: the path and how much space is left where it was written."""
    where = os.path.dirname(os.path.abspath(path)) or "."
    try:
        free = shutil.disk_usage(where).free
        left = f"{_size(free)} free on {where}"
    except OSError:
        left = "free space unknown"
    reason = "file too large for this process's limit" if exc.errno == errno.EFBIG else "no space left on device"
    return DiskFullError(f"{path}: {reason} ({left}); free some space or write elsewhere")


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space (or of a file-size limit)."""
    return isinstance(exc, OSError) and exc.errno in _FULL


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block ends, rename it to ``path``.

    ``suffix`` keeps a file extension on the temporary name for writers that look at it
    (``.keras``, ``.png``). If the block fails, the temporary file is removed and ``path`` is
    as it was; a full disk becomes a :class:`DiskFullError` naming ``path``.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp{suffix}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from exc
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically (UTF-8; names that are not UTF-8 keep their bytes)."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                         newline="") as f:  # fmt: skip
        f.write(text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps_json(data: Any) -> str:
    """JSON text, non-ASCII kept readable; a file name that is not valid UTF-8 (Python keeps
    its bytes as lone surrogates) is written as ``\\udcXX`` escapes, which read back to it."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (see :func:`dumps_json`)."""
    write_text(path, dumps_json(data))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_own_png(path: str) -> bool:
    """Whether ``path`` is a PNG simplecnn drew (it carries :data:`PNG_METADATA`)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == PNG_METADATA["Software"]
    except Exception:  # not an image at all, unreadable, ...: not ours
        return False


def check_file_target(path: str | os.PathLike, flag: str, recognise: Callable[[str], bool]) -> None:
    """Refuse a file path to write unless it is new or a file simplecnn wrote (``recognise``)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"{flag} {path}: is a folder; name a file")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputError(f"{flag} {path}: its folder {parent} does not exist")
    if os.path.lexists(path) and (os.path.islink(path) or not recognise(path)):
        raise OutputError(
            f"{flag} {path}: exists and was not written by simplecnn; simplecnn only replaces "
            f"files it wrote: choose a new {flag}"
        )
