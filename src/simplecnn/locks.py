"""One writer per run: an OS file lock on a run folder while a command writes into it."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Any

from simplecnn.errors import LockedError

__all__ = ["LOCK_FILE", "RunLock"]

LOCK_FILE = ".simplecnn.lock"


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
