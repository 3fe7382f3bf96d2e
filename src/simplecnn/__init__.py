"""simplecnn: the seed tutorial's CNN image classifier in the three Keras styles, made useful.

Importing ``simplecnn`` is cheap: the submodules that import Keras (and so a backend) load on
first use, so the backend can still be chosen with ``KERAS_BACKEND`` after ``import simplecnn``.
"""

from __future__ import annotations

import importlib
from typing import Any

from simplecnn.config import ModelConfig, TrainConfig

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "STYLES": "simplecnn.models",
    "build_model": "simplecnn.models",
    "SimpleCNN": "simplecnn.models",
    "transfer_weights": "simplecnn.models.weights",
    "compare_styles": "simplecnn.equivalence",
    "model_cost": "simplecnn.costs",
    "train": "simplecnn.training",
    "prepare": "simplecnn.training",
    "evaluate": "simplecnn.inference",
    "predict": "simplecnn.inference",
    "load_run": "simplecnn.runs",
    "explain_files": "simplecnn.explain",
    "export_run": "simplecnn.export",
}

__all__ = ["ModelConfig", "TrainConfig", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simplecnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
