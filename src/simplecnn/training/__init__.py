"""Training: one setup (setup.py), the epoch-end sequence (callbacks.py), the loop (loop.py).

``from simplecnn.training import train`` is the entry point; ``evaluate``, ``predict`` and
``load_run`` are re-exported from where they live (inference.py, runs.py) for scripts written
against earlier versions.
"""

from simplecnn.errors import RunError, TrainingError
from simplecnn.inference import PREDICT_BATCH, evaluate, predict
from simplecnn.runs import Run, load_run
from simplecnn.training.callbacks import (
    EpochEnd,
    averaged_weights,
    recompute_batchnorm,
    unshare_weights,
)
from simplecnn.training.loop import TrainResult, train
from simplecnn.training.setup import (
    Setup,
    build_training_model,
    float32_model,
    make_loss,
    make_optimizer,
    prepare,
)

__all__ = [
    "TrainResult", "train", "Setup", "prepare", "make_optimizer", "make_loss", "build_training_model",
    "float32_model", "EpochEnd", "averaged_weights", "recompute_batchnorm", "unshare_weights",
    "evaluate", "predict", "load_run", "Run", "RunError", "TrainingError", "PREDICT_BATCH",
]  # fmt: skip
