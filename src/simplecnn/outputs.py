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
* **Swaps**: a report, an export or a set of pictures is written into a new folder beside its
  place (:func:`make_temp_folder`) and put in place whole (:func:`swap_in`).

Files are written by :mod:`simplecnn.files` (atomic writes, full disks, single files simplecnn may
replace); a run being written is locked by :mod:`simplecnn.locks`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from typing import Any

from simplecnn.errors import OutputError
from simplecnn.files import write_json
from simplecnn.locks import LOCK_FILE

__all__ = [
    "MARKER", "KINDS", "folder_kind", "foreign_entries", "check_place", "claim_folder",
    "check_replaceable", "make_temp_folder", "swap_in", "remove_own_folder",
]  # fmt: skip

MARKER = ".simplecnn"

# What simplecnn writes into each kind of folder: file-name patterns, and sub-folders with the
# kind of their contents ("*" for a tree another library writes, such as TensorBoard's logs).
# Temporary names (".tmp" files, ".tmp-"/".old-" folders) are simplecnn's in every kind.
KINDS: dict[str, dict[str, Any]] = {
    "run": {
        "files": ["model.keras", "run.json", "history.csv", "curves.png", "files.json", "check.json"],
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
    "check": {"files": ["report.json", "*.png"], "dirs": {}},
}
_OWN_ALWAYS = [MARKER, LOCK_FILE, "*.tmp", "*.tmp.*", ".tmp-*", ".old-*"]


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
    if not _is_own_or_empty(path, kind, flag, "writes into"):
        try:
            os.makedirs(path)
        except OSError as exc:
            raise OutputError(f"{flag} {path}: cannot create the folder ({exc.strerror})") from None
        _write_marker(path, kind)
        return True
    if replace:
        _refuse_foreign(path, kind, flag, f"before {replace_hint}")
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if name == LOCK_FILE:  # held by this process: keep it
                continue
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
    if replace or not os.path.isfile(os.path.join(path, MARKER)):
        _write_marker(path, kind)  # also marks a folder of an earlier version, or an empty one
    return False


def check_replaceable(path: str | os.PathLike, kind: str, flag: str) -> None:
    """Raise OutputError unless ``path`` is missing, empty, or a ``kind`` folder holding only
    what simplecnn writes (checked before long work, so a refusal comes first)."""
    path = os.fspath(path)
    if _is_own_or_empty(path, kind, flag, "replaces") and _entries(path):
        _refuse_foreign(path, kind, flag, "")


def _entries(path: str) -> list[str]:
    return [e for e in os.listdir(path) if e != LOCK_FILE]


def _is_own_or_empty(path: str, kind: str, flag: str, verb: str) -> bool:
    """False if ``path`` does not exist; True if it is an empty folder or a ``kind`` folder;
    else OutputError (a file, a folder simplecnn did not make, a folder of another kind)."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{flag} {path}: exists and is not a folder; choose another {flag}")
    if not os.path.isdir(path):
        return False
    if not _entries(path):
        return True
    found = folder_kind(path)
    if found is None:
        raise OutputError(
            f"{flag} {path}: folder exists and is not empty, and simplecnn did not make it; "
            f"simplecnn only {verb} folders it made: choose a new or empty {flag}"
        )
    if found != kind:
        article = "an" if kind[0] in "aeiou" else "a"
        raise OutputError(f"{flag} {path}: is a simplecnn {found} folder, not {article} {kind} "
                          f"folder; choose another {flag}")  # fmt: skip
    return True


def _refuse_foreign(path: str, kind: str, flag: str, when: str) -> None:
    foreign = foreign_entries(path, kind)
    if foreign:
        raise OutputError(
            f"{flag} {path}: holds files simplecnn did not make ({', '.join(foreign)}); move "
            f"them out{' ' + when if when else ''}, or choose another {flag}"
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
