"""The errors simplecnn raises on purpose; the CLI turns each into one line and an exit code.

A :class:`UsageError` (and every subclass) is the user's to fix: one line, exit code 2. A
:class:`TrainingError` means training ran but produced no usable model: exit code 1. Anything
else that escapes a command is a bug in simplecnn, and the CLI says so.

Kept free of heavy imports so the CLI can catch them without loading Keras.
"""

from __future__ import annotations

__all__ = [
    "SimplecnnError", "UsageError", "ConfigError", "DataError", "RunError", "OutputError",
    "LockedError", "DiskFullError", "BudgetError", "ExportError", "BackendError", "TrainingError",
]  # fmt: skip


class SimplecnnError(Exception):
    """Base of the errors below."""


class UsageError(SimplecnnError, ValueError):
    """A problem with what the user asked for (exit code 2)."""


class ConfigError(UsageError):
    """A configuration value out of range; the message names the value and what is allowed."""


class DataError(UsageError):
    """The data folder or an image cannot be used as given; the message says where and how.

    ``path`` and ``reason`` are set for one unreadable file, so a list of skipped files can
    name the file once and give the reason beside it.
    """

    def __init__(self, message: str, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason or message


class RunError(UsageError):
    """A run directory or model file is missing, incomplete, foreign or unsafe."""


class OutputError(UsageError):
    """An output path simplecnn refuses to write: it would change something it did not make."""


class LockedError(UsageError):
    """A run folder is being written by another simplecnn process."""


class DiskFullError(UsageError):
    """A write failed for lack of space; the message names the path and the free space."""


class BudgetError(UsageError):
    """A time budget too short for a schedule (two epochs, measured); nothing was kept.
    ``needed`` is the budget, in seconds, that would have fitted."""

    def __init__(self, message: str, needed: float = 0.0) -> None:
        super().__init__(message)
        self.needed = needed


class ExportError(UsageError):
    """An export could not be written or its format's tools are missing."""


class BackendError(SimplecnnError, RuntimeError):
    """A Keras backend process failed (for example a crashed ``bench`` worker): exit code 1."""


class TrainingError(SimplecnnError, RuntimeError):
    """Training could not produce a model, e.g. the loss was NaN from the start (exit code 1)."""
