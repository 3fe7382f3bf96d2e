"""Using a trained run: probabilities per class, ``predict`` over files and ``evaluate`` on a
labelled folder (metrics and pictures, written all or nothing)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from typing import Any, Sequence

import numpy as np

from simplecnn import reports
from simplecnn.data import Skipped, find_split, index_classes, list_images, read_batches
from simplecnn.errors import ConfigError, DataError
from simplecnn.files import dumps_json, write_json
from simplecnn.heads import decide
from simplecnn.outputs import check_place, check_replaceable, make_temp_folder, swap_in
from simplecnn.runs import Run, run_lock_if_inside
from simplecnn.runtime import Predictor, open_predictor

__all__ = ["PREDICT_BATCH", "probabilities", "predict", "evaluate", "format_predictions",
           "is_prediction_file", "open_predictor"]  # fmt: skip

# Images per predict/evaluate batch (measured: `benchmarks/results/defaults_sweep.txt`).
PREDICT_BATCH = 32
CSV_HEADER = ["path", "label", "probability"]


def probabilities(
    predictor: Predictor, paths: Sequence[str], batch_size: int = PREDICT_BATCH, tta: bool = False
) -> tuple[np.ndarray, list[Skipped]]:
    """One probability per class ``(N, classes)`` for image files, and the files that passed the
    header check but did not decode (each scored as a blank image). With ``tta``, the mean over
    each image and its mirror image."""
    run, out, failed = predictor.run, [], []
    for pixels, bad in read_batches(paths, run.image_size, run.channels, batch_size):
        probs = predictor.predict(pixels)
        if tta:
            probs = (probs + predictor.predict(np.ascontiguousarray(pixels[:, :, ::-1]))) / 2
        out.append(probs)
        failed += bad
    return np.concatenate(out) if out else np.zeros((0, len(run.class_names))), failed


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold must be in [0, 1]. Received: {threshold}")


def predict(
    run_dir: str | os.PathLike,
    paths: Sequence[str],
    threshold: float = 0.5,
    batch_size: int = PREDICT_BATCH,
    tta: bool = False,
    runtime: str | Predictor = "auto",
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Classify image files, folders or glob patterns with a run's model.

    Args:
        runtime: "auto", "keras", "onnx" or "onnx-int8" (:mod:`simplecnn.runtime`), or an open
            :class:`~simplecnn.runtime.Predictor`.

    Returns:
        ``(predictions, skipped)``: one dict per image (``path``, ``label``, ``probability`` of
        that label, ``probabilities`` per class) in input order, and the files not read.
    """
    _check_threshold(threshold)
    predictor = runtime if isinstance(runtime, Predictor) else open_predictor(run_dir, runtime, batch_size)
    files, skipped = list_images(paths)
    if not files:
        return [], skipped
    probs, bad = probabilities(predictor, files, batch_size, tta)
    failed = {s.path for s in bad}
    names = predictor.run.class_names
    labels = decide(probs, threshold)
    out = []
    for path, p, label in zip(files, probs, labels):
        if path in failed:
            continue
        per_class = {n: float(v) for n, v in zip(names, p)}
        out.append({"path": path, "label": names[label], "probability": per_class[names[label]],
                    "probabilities": per_class})  # fmt: skip
    return out, skipped + bad


def format_predictions(rows: list[dict[str, Any]], fmt: str = "csv") -> str:
    """``predict``'s rows as CSV (``path,label,probability``) or JSON text."""
    if fmt == "json":
        return dumps_json(rows) + "\n"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([r["path"], r["label"], f"{r['probability']:.6f}"])
    return buf.getvalue()


def is_prediction_file(path: str) -> bool:
    """Whether ``path`` holds what :func:`format_predictions` writes (so it may be replaced)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    if head.startswith(",".join(CSV_HEADER) + "\n") or head == "":
        return True
    try:
        rows = json.loads(head) if len(head) < 1 << 16 else None
    except ValueError:
        return False
    return isinstance(rows, list) and all(isinstance(r, dict) and {"path", "label"} <= set(r) for r in rows)


def evaluate(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    threshold: float = 0.5,
    batch_size: int = PREDICT_BATCH,
    worst: int = 16,
    tta: bool = False,
    runtime: str = "auto",
) -> dict[str, Any]:
    """Measure a run on a labelled folder (class sub-folders named as in training).

    If ``data_dir`` has a train/val split, its validation folder is used. Writes
    ``report.json``, ``confusion_matrix.png``, ``roc_curve.png`` and ``most_wrong.png`` into a
    new folder that then replaces ``out_dir`` (default: ``RUN_DIR/evaluation``) whole, so it is
    always one consistent report; a file that fails to decode is recorded, never fatal.

    Returns:
        The metrics dict (also in report.json), with ``most_wrong`` image paths and the
        ``runtime`` that answered.
    """
    _check_threshold(threshold)
    predictor = open_predictor(run_dir, runtime, batch_size)
    run = predictor.run
    data_dir, run_dir = os.fspath(data_dir), os.fspath(run_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: no such folder; pass a folder with one sub-folder per class")
    split = find_split(data_dir)
    folder = split[1] if split else data_dir
    names, items, skipped = index_classes(folder, run.class_names)
    if not items:
        raise DataError(f"{folder}: no readable images in class folders named {run.class_names}")
    out_dir = os.fspath(out_dir or os.path.join(run_dir, "evaluation"))
    check_place(out_dir, "--out", data=[data_dir], runs=[run_dir])
    check_replaceable(out_dir, "evaluation", "--out")
    with run_lock_if_inside(run_dir, out_dir, "evaluate"):
        probs, bad = probabilities(predictor, [p for p, _ in items], batch_size, tta)
        y_true = np.array([label for _, label in items])
        metrics = reports.classification_metrics(y_true, probs, names, threshold)
        predicted = decide(probs, threshold)
        confidence = probs[np.arange(len(probs)), predicted]
        p_true = probs[np.arange(len(probs)), y_true]
        # Misclassified images, the lowest probability given to the true class first.
        wrong = [int(i) for i in np.argsort(p_true, kind="stable") if predicted[i] != y_true[i]][:worst]
        metrics["most_wrong"] = [
            {"path": items[i][0], "true": names[y_true[i]], "predicted": names[predicted[i]],
             "probability": float(confidence[i])}
            for i in wrong
        ]  # fmt: skip
        metrics.update(data_dir=os.path.abspath(data_dir), threshold=threshold, tta=tta,
                       class_names=names, runtime=predictor.name,
                       skipped=[s.to_dict() for s in skipped + bad])  # fmt: skip
        tmp = make_temp_folder(out_dir, "evaluation")
        try:
            _write_report(tmp, metrics, run, items, y_true, probs, wrong, predicted, confidence)
            swap_in(tmp, out_dir, "evaluation", "--out")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    metrics["out_dir"] = out_dir
    return metrics


def _write_report(
    folder: str, metrics: dict[str, Any], run: Run, items: list[tuple[str, int]], y_true: np.ndarray,
    probs: np.ndarray, wrong: list[int], predicted: np.ndarray, confidence: np.ndarray,
) -> None:  # fmt: skip
    """report.json and its pictures (confusion matrix, ROC curve, most-wrong grid) in ``folder``."""
    names = metrics["class_names"]
    reports.plot_confusion(metrics["confusion_matrix"], names, os.path.join(folder, "confusion_matrix.png"))
    reports.plot_roc(y_true, probs, names, os.path.join(folder, "roc_curve.png"))
    if wrong:
        _most_wrong_grid(run, items, wrong, y_true, predicted, confidence, names,
                         os.path.join(folder, "most_wrong.png"))  # fmt: skip
    metrics["files"] = sorted([*(f for f in os.listdir(folder) if not f.startswith(".")), "report.json"])
    write_json(os.path.join(folder, "report.json"), metrics)


def _most_wrong_grid(
    run: Run, items: list[tuple[str, int]], wrong: list[int], y_true: np.ndarray,
    predicted: np.ndarray, confidence: np.ndarray, names: list[str], path: str,
) -> None:  # fmt: skip
    """The misclassified images, worst first, captioned; an unreadable one shown blank."""
    from simplecnn.data import load_image, shown

    images, titles = [], []
    for i in wrong:
        try:
            images.append(load_image(items[i][0], (128, 128), run.channels))
            note = ""
        except DataError:  # it was scored as a blank image: shown as one, and named
            images.append(np.zeros((128, 128, run.channels), np.uint8))
            note = " [unreadable]"
        titles.append(f"{shown(os.path.basename(items[i][0]))[:24]}{note}\ntrue {names[y_true[i]]}, "
                      f"said {names[predicted[i]]} ({confidence[i]:.2f})")  # fmt: skip
    reports.plot_grid(images, titles, path)
