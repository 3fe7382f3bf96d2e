"""Where simplecnn writes, and the one rule for it: only ever create, replace or delete what
simplecnn made itself.

* **Folders** simplecnn writes (a run, an evaluation, an export, Grad-CAM pictures, the demo) carry
  a marker file, ``.simplecnn``, naming their kind. :func:`claim_folder` gives a command a folder
  to fill: a new or empty one, or one of the same kind that holds nothing but what simplecnn
  writes there; anything else is refused with one line. Folders made by earlier versions are
  recognised by their contents (a run by its ``run.json``; its ``evaluation/`` and ``export/``
  sub-folders by their place in it).
* **Places** an output may not be: the data folder, anything inside it or any folder holding it
  (a report or picture there would become a training image), and a run folder or one of its
  parents (the run itself would be replaced). :func:`check_place` says which.
* **Files** are written to a temporary name in the same folder and renamed into place
  (:func:`atomic_write`), so a kill leaves the old file or the new one; a full disk removes the
  temporary file and names the path and the free space. A single file simplecnn may replace
  (``predict --output``, ``lr-find --out``) is recognised by its contents.
* **Locks**: :class:`RunLock` is an OS file lock on a run folder, held while a command writes into
  it, so two commands never write one run at once; the OS drops it when the process ends, however
  it ends, so a lock is never stale.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import os
import re
import shutil
import socket
import time
from typing import Any, Callable, Iterator

from simplecnn.errors import DiskFullError, LockedError, OutputError

__all__ = [
    "MARKER", "LOCK_FILE", "KINDS", "claim_folder", "check_place", "folder_kind", "foreign_entries",
    "atomic_write", "write_text", "write_json", "dumps_json", "read_json", "is_own_png", "PNG_METADATA", "swap_in", "RunLock", "check_file_target",
    "disk_full_error", "is_disk_full", "make_temp_folder", "remove_own_folder", "check_replaceable",
]  # fmt: skip

MARKER = ".simplecnn"
LOCK_FILE = ".simplecnn.lock"
# The text chunk in every PNG simplecnn draws: how it recognises a picture it may replace.
PNG_METADATA = {"Software": "simplecnn"}

# What simplecnn writes into each kind of folder: file-name patterns, and sub-folders with the
# kind of their contents ("*" for a tree another library writes, such as TensorBoard's logs).
# Temporary names (".tmp" files, ".tmp-"/".old-" folders) are simplecnn's in every kind.
KINDS: dict[str, dict[str, Any]] = {
    "run": {
        "files": ["model.keras", "run.json", "history.csv", "curves.png", "files.json"],
        "dirs": {"logs": "*", "backup": "backups", "evaluation": "evaluation", "export": "exports",
                 "explain": "explain"},
    },  # fmt: skip
    "backups": {"files": [], "dirs": {"epoch-*": "*"}},
    "evaluation": {
        "files": ["report.json", "confusion_matrix.png", "roc_curve.png", "most_wrong.png"],
        "dirs": {},
    },
    "explain": {"files": ["explain.json", "*_gradcam.png"], "dirs": {}},
    "export": {
        "files": ["labels.txt", "config.json", "check.json", "model.keras", "model.onnx",
                  "model.tflite"],
        "dirs": {"saved_model": "*"},
    },  # fmt: skip
    "exports": {"files": [], "dirs": {"*": "export"}},
    "demo": {"files": [], "dirs": {"data": "*", "run": "run"}},
}
_OWN_ALWAYS = [MARKER, LOCK_FILE, "*.tmp", "*.tmp.*", ".tmp-*", ".old-*"]
# The sub-folder of a run where each kind goes by default (recognised without a marker).
_RUN_PLACES = {"evaluation": "evaluation", "explain": "explain"}


# --- kinds and ownership --------------------------------------------------------------------


def _read_marker(folder: str) -> str | None:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            kind = json.load(f).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in KINDS else None


def _legacy_run(folder: str) -> bool:
    """A run written before runs had a marker: its run.json says so."""
    try:
        with open(os.path.join(folder, "run.json"), encoding="utf-8") as f:
            return bool(json.load(f).get("simplecnn_run"))
    except (OSError, ValueError, AttributeError):
        return False


def folder_kind(folder: str) -> str | None:
    """The kind of simplecnn folder ``folder`` is (``"run"``, ``"export"`` ...), or None."""
    if not os.path.isdir(folder) or os.path.islink(folder):
        return None
    kind = _read_marker(folder)
    if kind is not None:
        return kind
    if _legacy_run(folder):
        return "run"
    parent, name = os.path.split(os.path.abspath(folder))
    parent_kind = folder_kind(parent) if parent != folder else None
    if parent_kind is not None:
        child = _child_kind(parent_kind, name)
        if child not in (None, "*"):
            return child
    return None


def _child_kind(kind: str, name: str) -> str | None:
    for pattern, child in KINDS[kind]["dirs"].items():
        if fnmatch.fnmatchcase(name, pattern):
            return child
    return None


def _own_file(kind: str, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in [*KINDS[kind]["files"], *_OWN_ALWAYS])


def foreign_entries(folder: str, kind: str, limit: int = 5) -> list[str]:
    """Paths in ``folder`` that a ``kind`` folder would not hold: things simplecnn did not make."""
    found: list[str] = []
    stack = [(folder, kind)]
    while stack and len(found) < limit:
        path, k = stack.pop()
        if k == "*":
            continue
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            found.append(path)
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                child = _child_kind(k, entry.name)
                if child is not None:
                    stack.append((entry.path, child))
                elif not any(fnmatch.fnmatchcase(entry.name, p) for p in _OWN_ALWAYS):
                    found.append(entry.path)
            elif not _own_file(k, entry.name) or entry.is_symlink():
                found.append(entry.path)
    return found[:limit]


def _write_marker(folder: str, kind: str) -> None:
    write_json(os.path.join(folder, MARKER), {"kind": kind, "tool": "simplecnn", "version": 1})


# --- places ---------------------------------------------------------------------------------


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_place(
    out: str | os.PathLike,
    flag: str,
    data: list[str | os.PathLike] = (),  # type: ignore[assignment]
    runs: list[str | os.PathLike] = (),  # type: ignore[assignment]
    inside_run: str | None = None,
) -> None:
    """Refuse an output path that would write over the data or a run.

    Args:
        out: where the command would write (a folder or a file).
        flag: the option that named it, for the message (``--out``).
        data: data folders the command reads: ``out`` may not be one, hold one or lie in one.
        runs: run folders: ``out`` may not be one or hold one (below one is for ``inside_run``).
        inside_run: the only sub-folder of a run ``out`` may be in (``export``); None: any place
            in a run except the run itself.

    Raises:
        OutputError: one line naming the path and what it would destroy.
    """
    target = _real(out)
    for folder in data:
        real = _real(folder)
        if _inside(target, real):
            raise OutputError(
                f"{flag} {out}: is inside the data folder {folder}; simplecnn does not write into "
                "your data (an image written there would be trained on); choose another place"
            )
        if _inside(real, target):
            raise OutputError(
                f"{flag} {out}: holds the data folder {folder}; choose a folder outside your data"
            )
    for run in runs:
        real = _real(run)
        if _inside(real, target):
            raise OutputError(
                f"{flag} {out}: is the run folder {run} or holds it; choose another place (the "
                "default keeps outputs inside the run)"
            )
        if inside_run is not None and _inside(target, real):
            allowed = os.path.join(real, inside_run)
            if not _inside(target, allowed) or target == allowed:
                raise OutputError(
                    f"{flag} {out}: is inside the run folder {run} but not in its {inside_run}/ "
                    f"folder; leave {flag} out, or choose a place outside the run"
                )


# --- folders --------------------------------------------------------------------------------


def claim_folder(path: str | os.PathLike, kind: str, flag: str, replace: bool,
                 replace_hint: str = "--overwrite") -> bool:  # fmt: skip
    """Make ``path`` a folder of ``kind`` that this command may fill.

    A missing or empty folder is created and marked. An existing folder of the same kind is
    kept as it is when ``replace`` is False (the caller resumes or adds to it), and emptied when
    ``replace`` is True, but only if everything in it is what simplecnn writes there.

    Returns:
        True if the folder was created by this call (so the caller may remove it on failure).

    Raises:
        OutputError: the path is a file, or a folder simplecnn did not make, or one holding
            files simplecnn did not make (they are named), or of another kind.
    """
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: exists and is not a folder; choose another {flag}")
    if not os.path.isdir(path):
        try:
            os.makedirs(path)
        except OSError as exc:
            raise OutputError(f"{flag} {path}: cannot create the folder ({exc.strerror})") from None
        _write_marker(path, kind)
        return True
    entries = [e for e in os.listdir(path) if e != LOCK_FILE]
    if not entries:
        _write_marker(path, kind)
        return False
    found = folder_kind(path)
    if found is None:
        raise OutputError(
            f"{flag} {path}: folder exists and is not empty, and simplecnn did not make it; "
            f"simplecnn only writes into folders it made: choose a new or empty {flag}"
        )
    if found != kind:
        raise OutputError(f"{flag} {path}: is a simplecnn {found} folder, not {_a(kind)} folder; "
                          f"choose another {flag}")  # fmt: skip
    if replace:
        _clear_own(path, kind, flag, replace_hint)
        _write_marker(path, kind)
    elif not os.path.isfile(os.path.join(path, MARKER)):
        _write_marker(path, kind)  # a folder of an earlier version: mark it now
    return False


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _clear_own(path: str, kind: str, flag: str, hint: str) -> None:
    foreign = foreign_entries(path, kind)
    if foreign:
        raise OutputError(
            f"{flag} {path}: holds files simplecnn did not make ({', '.join(foreign)}); "
            f"move them out before {hint}, or choose another {flag}"
        )
    for name in os.listdir(path):
        if name == LOCK_FILE:  # held by this process: keep it
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)


def check_replaceable(path: str | os.PathLike, kind: str, flag: str) -> None:
    """Raise OutputError unless ``path`` is missing, empty, or a ``kind`` folder holding only
    what simplecnn writes (checked before long work, so a refusal comes first)."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: exists and is not a folder; choose another {flag}")
    if not os.path.isdir(path) or not [e for e in os.listdir(path) if e != LOCK_FILE]:
        return
    found = folder_kind(path)
    if found is None:
        raise OutputError(
            f"{flag} {path}: folder exists and is not empty, and simplecnn did not make it; "
            f"simplecnn only replaces folders it made: choose a new or empty {flag}"
        )
    if found != kind:
        raise OutputError(f"{flag} {path}: is a simplecnn {found} folder, not {_a(kind)} folder; "
                          f"choose another {flag}")  # fmt: skip
    foreign = foreign_entries(path, kind)
    if foreign:
        raise OutputError(
            f"{flag} {path}: holds files simplecnn did not make ({', '.join(foreign)}); move "
            f"them out, or choose another {flag}"
        )


def make_temp_folder(final: str | os.PathLike, kind: str) -> str:
    """A new, marked folder beside ``final`` to fill before :func:`swap_in` puts it in place."""
    final = os.path.abspath(os.fspath(final))
    parent = os.path.dirname(final)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{final}: cannot create its folder ({exc.strerror})") from None
    tmp = os.path.join(parent, f".tmp-{os.path.basename(final)}-{os.getpid()}-{time.monotonic_ns()}")
    os.makedirs(tmp)
    _write_marker(tmp, kind)
    return tmp


def swap_in(tmp: str, final: str | os.PathLike, kind: str, flag: str) -> None:
    """Put the filled temporary folder ``tmp`` in place of ``final`` (checked replaceable).

    ``final`` is renamed aside, ``tmp`` renamed to ``final`` and the old one removed, so
    ``final`` is the old folder or the new one, whole, at any moment but the instant between
    the two renames.
    """
    final = os.fspath(final)
    check_replaceable(final, kind, flag)
    old = None
    if os.path.isdir(final):
        old = os.path.join(os.path.dirname(os.path.abspath(final)),
                           f".old-{os.path.basename(final)}-{os.getpid()}-{time.monotonic_ns()}")  # fmt: skip
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_own_folder(path: str | os.PathLike, kind: str) -> None:
    """Remove a folder this process created, if it still holds only what simplecnn writes."""
    path = os.fspath(path)
    if os.path.isdir(path) and folder_kind(path) == kind and not foreign_entries(path, kind):
        shutil.rmtree(path, ignore_errors=True)


# --- files ----------------------------------------------------------------------------------


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


# --- locks ----------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on a run folder while a command writes into it.

    The lock is ``fcntl.flock`` on ``RUN/.simplecnn.lock``, whose text says who holds it. The
    OS releases it when the process exits, killed or not, so there are no stale locks: a lock
    file nobody holds is simply taken.
    """

    def __init__(self, run_dir: str | os.PathLike, command: str) -> None:
        self.path = os.path.join(os.fspath(run_dir), LOCK_FILE)
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise LockedError(f"{os.path.dirname(self.path)}: in use by {self._holder()}; wait for "
                              "it to finish, or write somewhere else") from None  # fmt: skip
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command":
                                 self.command, "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())  # fmt: skip
        self._fd = fd
        return self

    def _holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8") as f:
                who = json.load(f)
            return (f"`simplecnn {who['command']}` (pid {who['pid']} on {who['host']}, since "
                    f"{who['since']})")  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return "another simplecnn process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
