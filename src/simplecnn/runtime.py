"""What answers a prediction: Keras (the run's ``model.keras``, on any backend) or ONNX Runtime
(the checked export in ``RUN/export/onnx/``), behind one interface.

``--runtime auto`` (the default of predict, evaluate and serve) uses the ONNX export when the run
has one whose check passed, and Keras otherwise. With ONNX Runtime nothing imports Keras or a
backend: decoding is :mod:`simplecnn.data.images` (the same pixels as training), the model call is
``onnxruntime``, the rest is NumPy. ``onnx-int8`` (the post-training int8 export) is used only when
asked for, and its recorded accuracy change is reported with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from simplecnn.errors import RunError, UsageError
from simplecnn.files import read_json
from simplecnn.runs import Run, read_run

__all__ = ["RUNTIMES", "Predictor", "resolve_runtime", "open_predictor", "onnx_artifact"]

RUNTIMES = ("auto", "keras", "onnx", "onnx-int8")
# runtime -> the export folder (inside the run) it answers from
_EXPORTS = {"onnx": "onnx", "onnx-int8": "onnx-int8"}


@dataclass
class Predictor:
    """A run's model behind one call: uint8 pixels ``(N, H, W, C)`` at the run's size ->
    probability per class ``(N, classes)``, float64."""

    name: str  # "keras", "onnx" or "onnx-int8"
    run: Run
    predict: Callable[[np.ndarray], np.ndarray]
    note: str  # where the answers come from, said to the user (and the int8 accuracy change)


def onnx_artifact(run_dir: str, runtime: str = "onnx") -> str:
    """The path of the run's ONNX export for ``runtime`` (which may not exist)."""
    return os.path.join(run_dir, "export", _EXPORTS[runtime], "model.onnx")


def _check(run_dir: str, runtime: str) -> dict | None:
    """The export's check.json if its artifact exists and the check passed, else None."""
    path = onnx_artifact(run_dir, runtime)
    try:
        check = read_json(os.path.join(os.path.dirname(path), "check.json"))
    except (OSError, ValueError):
        return None
    return check if os.path.isfile(path) and check.get("passed") else None


def resolve_runtime(run_dir: str | os.PathLike, runtime: str = "auto") -> str:
    """The runtime ``runtime`` means for this run: ``auto`` is ``onnx`` when the run holds a
    checked ONNX export, else ``keras``."""
    if runtime not in RUNTIMES:
        raise UsageError(f"Unknown runtime {runtime!r}. Allowed: {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    return "onnx" if _check(os.fspath(run_dir), "onnx") is not None else "keras"


def open_predictor(run_dir: str | os.PathLike, runtime: str = "auto", batch_size: int = 32) -> Predictor:
    """The run's model on ``runtime`` (see the module docstring).

    Raises:
        RunError: the run, or the export the runtime needs, is missing or failed its check.
        UsageError: the runtime's package is not installed (the message says which extra).
    """
    run_dir = os.fspath(run_dir)
    name = resolve_runtime(run_dir, runtime)
    run = read_run(run_dir)
    if name == "keras":
        return _keras_predictor(run, batch_size)
    check = _check(run_dir, name)
    if check is None:
        fmt = "onnx --quantize int8" if name == "onnx-int8" else "onnx"
        raise RunError(f"{run_dir}: no checked {name} export (export/{_EXPORTS[name]}/); make one "
                       f"with: simplecnn export {run_dir} --format {fmt}")  # fmt: skip
    path = onnx_artifact(run_dir, name)
    session = _onnx_session(path)
    input_name = session.get_inputs()[0].name

    def predict(pixels: np.ndarray) -> np.ndarray:
        outs = [session.run(None, {input_name: pixels[i : i + batch_size]})[0]
                for i in range(0, len(pixels), batch_size)]  # fmt: skip
        return np.concatenate(outs).astype(np.float64)

    note = f"{name} ({path})"
    if name == "onnx-int8" and check.get("accuracy_change") is not None:
        note += (f"; int8 changed accuracy by {100 * check['accuracy_change']:+.2f} points on "
                 f"{check.get('images', 'the check images')}, against Keras")  # fmt: skip
    return Predictor(name, run, predict, note)


def _onnx_session(path: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError("the onnx runtime needs onnxruntime: pip install 'simplecnn[predict]'") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are not the user's
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _keras_predictor(run: Run, batch_size: int) -> Predictor:
    try:
        import keras  # noqa: F401
    except ImportError:
        raise UsageError("the keras runtime needs Keras and a backend: pip install 'simplecnn[train]', "
                         "or export the run to ONNX and use --runtime onnx") from None  # fmt: skip
    from simplecnn.data import scale_pixels
    from simplecnn.heads import class_probabilities

    model = run.model  # loaded and checked now

    def predict(pixels: np.ndarray) -> np.ndarray:
        # predict_on_batch: the compiled predict step without building a dataset per call.
        outs = [np.asarray(model.predict_on_batch(scale_pixels(pixels[i : i + batch_size])))
                for i in range(0, len(pixels), batch_size)]  # fmt: skip
        return class_probabilities(np.concatenate(outs))

    return Predictor("keras", run, predict, f"keras ({os.path.join(run.path, 'model.keras')})")
