"""Export a run's model for use outside simplecnn, and check each export against Keras.

Every export takes raw pixels, uint8 ``(N, H, W, C)`` at the size the run was trained at, and
gives one probability per class, ``(N, classes)`` in the order of ``labels.txt`` (a binary
model's sigmoid ``p`` becomes ``[1 - p, p]``). The pixel scaling is inside the artifact
(a ``Rescaling(1/255)`` layer: exactly :func:`simplecnn.data.scale_pixels`), so there is no
train/serve skew. Resizing stays outside: give the export images already resized (bilinear,
the whole image) as ``simplecnn predict`` does.

Formats (each written with Keras's own ``model.export``/``save``):

    keras         model.keras             keras.models.load_model (needs simplecnn for the
                                          subclassing style)
    saved_model   saved_model/            tf.saved_model.load(path).serve(pixels)
    onnx          model.onnx              onnxruntime.InferenceSession
    litert        model.tflite            LiteRT / tf.lite Interpreter

``--quantize int8`` (litert, onnx): post-training static quantization, calibrated on the run's
training images; its accuracy change against the float model is measured and reported.

Beside the artifact: ``labels.txt`` (one class name per line), ``config.json`` (model config,
classes, input spec, pixel convention, source run) and ``check.json`` (the parity check).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import keras
import numpy as np

from simplecnn.data import load_image
from simplecnn.errors import ExportError, UsageError
from simplecnn.files import disk_full_error, is_disk_full, write_json, write_text
from simplecnn.outputs import check_place, check_replaceable, make_temp_folder, swap_in
from simplecnn.runs import Run, load_run, run_lock_if_inside

__all__ = ["FORMATS", "ARTIFACTS", "serving_model", "export_run", "ExportError", "load_artifact"]

FORMATS = ("keras", "saved_model", "onnx", "litert")
ARTIFACTS = {
    "keras": "model.keras",
    "saved_model": "saved_model",
    "onnx": "model.onnx",
    "litert": "model.tflite",
}
QUANTIZABLE = ("onnx", "litert")
FLOAT_TOLERANCE = 1e-4
CHECK_IMAGES = 64


def serving_model(run: Run) -> keras.Model:
    """The run's model wrapped to take uint8 pixels and give one probability per class."""
    h, w = run.image_size
    pixels = keras.Input(shape=(h, w, run.channels), dtype="uint8", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale_pixels")(pixels)
    p = run.model(x)
    if run.num_outputs == 1:
        # simplecnn.heads.class_probabilities inside the artifact: [1 - p, p], from standard
        # layers only (a Lambda would need safe_mode off to load).
        first = keras.layers.Dense(1, trainable=False, name="first_class")
        q = first(p)
        first.set_weights([-np.ones((1, 1), "float32"), np.ones((1,), "float32")])
        p = keras.layers.Concatenate(name="probabilities")([q, p])
    model = keras.Model(pixels, p, name="simplecnn_serving")
    model(np.zeros((1, h, w, run.channels), np.uint8))  # Keras's ONNX export needs a called model
    return model


# --- sample images for the check ------------------------------------------------------------


def _sample_images(run: Run, count: int, split: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Up to ``count`` labelled images of the run's ``split`` (from files.json), else noise."""
    images, labels = [], []
    for path, label in run.files(split):
        try:
            images.append(load_image(path, run.image_size, run.channels))
        except (UsageError, OSError):
            continue
        labels.append(label)
        if len(images) == count:
            break
    if images:
        return np.stack(images), np.asarray(labels), f"{len(images)} {split} images of the run"
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(count, *run.image_size, run.channels), dtype=np.uint8)
    return noise, None, f"{count} random images (the run's {split} images are not reachable)"


# --- writers and readers per format ---------------------------------------------------------


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"this export needs the {module!r} package; install it with: "
            f"pip install 'simplecnn[{extra}]'"
        ) from None


def _write_keras(model: keras.Model, path: str, calib: Callable | None) -> None:
    model.save(path)


def _write_saved_model(model: keras.Model, path: str, calib: Callable | None) -> None:
    _require("tensorflow", "export")
    model.export(path, format="tf_saved_model", verbose=False)


def _write_onnx(model: keras.Model, path: str, calib: Callable | None) -> None:
    _require("onnx", "export")
    if keras.backend.backend() != "torch":
        _require("tf2onnx", "export")
    if calib is None:
        model.export(path, format="onnx", verbose=False)
        return
    ort_quant = _require("onnxruntime.quantization", "export")
    float_path = path + ".float.onnx"
    model.export(float_path, format="onnx", verbose=False)
    input_name = _require("onnxruntime", "export").InferenceSession(
        float_path, providers=["CPUExecutionProvider"]
    ).get_inputs()[0].name

    class Reader(ort_quant.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = ({input_name: b} for b in calib())

        def get_next(self):
            return next(self.batches, None)

    try:
        ort_quant.quantize_static(
            float_path, path, Reader(),
            quant_format=ort_quant.QuantFormat.QDQ,
            activation_type=ort_quant.QuantType.QUInt8,
            weight_type=ort_quant.QuantType.QInt8,
            per_channel=True,
        )  # fmt: skip
    finally:
        os.remove(float_path)


def _write_litert(model: keras.Model, path: str, calib: Callable | None) -> None:
    tf = _require("tensorflow", "export")
    kwargs: dict[str, Any] = {}
    if calib is not None:
        kwargs = {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": lambda: ([b] for b in calib()),
        }
    model.export(path, format="litert", verbose=False, **kwargs)


WRITERS = {
    "keras": _write_keras,
    "saved_model": _write_saved_model,
    "onnx": _write_onnx,
    "litert": _write_litert,
}


def _tflite_interpreter(path: str) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = _require("tensorflow", "export").lite.Interpreter
    return Interpreter(model_path=path, num_threads=os.cpu_count())


def load_artifact(fmt: str, path: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function uint8 pixels ``(N, H, W, C)`` -> probabilities ``(N, classes)``, from an export."""
    if fmt == "keras":
        model = keras.models.load_model(path, safe_mode=True)
        return lambda x: np.asarray(model.predict(x, verbose=0, batch_size=32))
    if fmt == "saved_model":
        tf = _require("tensorflow", "export")
        loaded = tf.saved_model.load(path)
        return lambda x: np.concatenate(
            [loaded.serve(tf.constant(x[i : i + 32])).numpy() for i in range(0, len(x), 32)]
        )
    if fmt == "onnx":
        ort = _require("onnxruntime", "export")
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: np.concatenate(
            [session.run(None, {name: x[i : i + 32]})[0] for i in range(0, len(x), 32)]
        )
    if fmt == "litert":
        interpreter = _tflite_interpreter(path)

        def run(x: np.ndarray) -> np.ndarray:
            inp = interpreter.get_input_details()[0]
            out = interpreter.get_output_details()[0]
            interpreter.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
            interpreter.allocate_tensors()
            results = []
            for image in x:  # one at a time: LiteRT's usual on-device batch
                interpreter.set_tensor(inp["index"], image[None])
                interpreter.invoke()
                results.append(np.array(interpreter.get_tensor(out["index"])[0]))
            return np.stack(results)

        return run
    raise ValueError(f"Unknown export format {fmt!r}. Allowed: {', '.join(FORMATS)}")


# --- the command ----------------------------------------------------------------------------


@dataclass
class ExportResult:
    path: str  # the artifact
    out_dir: str
    check: dict[str, Any]


def _accuracy(probs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    return float((probs.argmax(axis=1) == labels).mean())


def _timed(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> tuple[np.ndarray, float]:
    fn(x)  # warm-up: compiles for every batch shape the timed pass uses
    start = time.perf_counter()
    y = fn(x)
    return np.asarray(y, dtype=np.float64), len(x) / (time.perf_counter() - start)


def export_run(
    run_dir: str | os.PathLike,
    fmt: str,
    out_dir: str | os.PathLike | None = None,
    quantize: str | None = None,
    check_images: int = CHECK_IMAGES,
) -> ExportResult:
    """Export a run's model (see the module docstring) and check it against the Keras model.

    Returns:
        the artifact's path, its folder and the check (also written as ``check.json``). The
        check's ``passed`` is False when a float export differs from Keras by more than 1e-4.
    """
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}. Allowed: {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ExportError(f"Unknown quantization {quantize!r}. Allowed: int8")
    if quantize and fmt not in QUANTIZABLE:
        raise ExportError(
            f"--quantize int8 is available for {' and '.join(QUANTIZABLE)}, not {fmt}"
        )
    run = load_run(run_dir)
    name = fmt + ("-int8" if quantize else "")
    out_dir = str(out_dir or os.path.join(str(run_dir), "export", name))
    check_place(out_dir, "--out", runs=[str(run_dir)], inside_run="export")
    check_replaceable(out_dir, "export", "--out")
    model = serving_model(run)

    check_x, check_y, source = _sample_images(run, check_images, "val")
    calib = None
    if quantize:
        calib_x, _, calib_source = _sample_images(run, 128, "train")

        def calib() -> Iterator[np.ndarray]:
            for image in calib_x:
                yield image[None]

    # Everything goes into a new folder that then replaces the old one whole: never half an
    # export, and never a folder simplecnn did not make.
    with run_lock_if_inside(str(run_dir), out_dir, "export"):
        tmp = make_temp_folder(out_dir, "export")
        try:
            artifact = os.path.join(tmp, ARTIFACTS[fmt])
            check = _write_and_check(run, fmt, model, artifact, calib, quantize, check_x, check_y, source)
            if quantize:
                check["calibration_images"] = calib_source
            write_text(os.path.join(tmp, "labels.txt"), "\n".join(run.class_names) + "\n")
            write_json(os.path.join(tmp, "config.json"), _export_config(run, fmt, quantize, str(run_dir)))
            write_json(os.path.join(tmp, "check.json"), check)
            swap_in(tmp, out_dir, "export", "--out")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(os.path.join(out_dir, ARTIFACTS[fmt]), out_dir, check)


def _write_and_check(
    run: Run, fmt: str, model: keras.Model, artifact: str, calib: Callable | None,
    quantize: str | None, check_x: np.ndarray, check_y: np.ndarray | None, source: str,
) -> dict[str, Any]:  # fmt: skip
    """Write the artifact with its format's writer, then run it against the Keras model."""
    try:
        WRITERS[fmt](model, artifact, calib)
    except UsageError:
        raise
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(artifact, exc) from exc
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise ExportError(f"{fmt} export failed on the {keras.backend.backend()} backend ({text})") from exc
    reference, keras_speed = _timed(
        lambda x: np.asarray(model.predict(x, verbose=0, batch_size=32)), check_x
    )
    exported, export_speed = _timed(load_artifact(fmt, artifact), check_x)
    diff = float(np.abs(exported - reference).max())
    check: dict[str, Any] = {
        "format": fmt,
        "quantize": quantize,
        "backend": keras.backend.backend(),
        "images": source,
        "max_abs_difference": diff,
        "tolerance": None if quantize else FLOAT_TOLERANCE,
        "passed": True if quantize else diff <= FLOAT_TOLERANCE,
        "label_agreement": float((exported.argmax(1) == reference.argmax(1)).mean()),
        "keras_accuracy": _accuracy(reference, check_y),
        "export_accuracy": _accuracy(exported, check_y),
        "keras_img_per_s": round(keras_speed, 2),
        "export_img_per_s": round(export_speed, 2),
        "artifact_bytes": _size(artifact),
    }
    if check["keras_accuracy"] is not None:
        check["accuracy_change"] = check["export_accuracy"] - check["keras_accuracy"]
    return check


def _export_config(run: Run, fmt: str, quantize: str | None, run_dir: str) -> dict[str, Any]:
    """config.json beside the artifact: what goes in and out, the classes, the source run."""
    return {
        "format": fmt,
        "artifact": ARTIFACTS[fmt],
        "quantize": quantize,
        "input": {"shape": [None, *run.image_size, run.channels], "dtype": "uint8",
                  "pixels": run.meta.get("pixels")},  # fmt: skip
        "output": {"shape": [None, len(run.class_names)], "dtype": "float32",
                   "meaning": "probability of each class, in the order of labels.txt"},  # fmt: skip
        "class_names": run.class_names,
        "model_config": run.meta["model_config"],
        "style": run.style,
        "source_run": os.path.abspath(run_dir),
    }


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )
