"""Helpers of the adversarial suite: fill command templates, snapshot folders, the refusal contract."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from simplecnn.locks import LOCK_FILE


def fill(template: str, world: dict[str, str]) -> list[str]:
    """Split a command template and put the world's paths in place of its placeholders."""
    out = []
    for word in template.split():
        for key in sorted(world, key=len, reverse=True):
            if word == key or word.startswith(key + "/"):
                word = world[key] + word[len(key):]
                break
        out.append(word)
    return out


def snapshot(root: str | Path) -> dict[str, str]:
    """sha256 of every file and the target of every link below ``root``.

    A run's lock file is left out: its text says who holds the lock, so every command that
    takes the lock rewrites it, by design.
    """
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                out[path] = "link:" + os.readlink(path)
            elif os.path.isfile(path) and name != LOCK_FILE:
                with open(path, "rb") as f:
                    out[path] = hashlib.sha256(f.read()).hexdigest()
            elif os.path.isdir(path):
                out[path] = "dir"
    return out


def one_line_exit_2(code: int, err: str) -> None:
    """The contract for a refusal: exit code 2 and one line on stderr, no traceback."""
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
