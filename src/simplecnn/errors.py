"""The errors simplecnn raises on purpose; the CLI turns each into one line and an exit code.

Kept free of heavy imports so the CLI can catch them without loading Keras.
"""

from __future__ import annotations

__all__ = ["SimplecnnError", "UsageError", "DataError", "RunError", "TrainingError"]


class SimplecnnError(Exception):
    """Base of the errors below."""


class UsageError(SimplecnnError, ValueError):
    """A problem with what the user asked for (exit code 2)."""


class DataError(UsageError):
    """The data folder or an image cannot be used as given; the message says where and how."""


class RunError(UsageError):
    """A run directory or model file is missing, incomplete, foreign or unsafe."""


class TrainingError(SimplecnnError, RuntimeError):
    """Training could not produce a model, e.g. the loss was NaN from the start (exit code 1)."""
