"""train / evaluate / predict as functions that return values; a run directory is the unit of work.

A run directory holds everything later steps need, with paths relative to it, so it can be
copied elsewhere and still work:

    model.keras        the best model (lowest validation loss), written atomically
    run.json           model config, class names, image size, pixel convention, recipe, versions
    history.csv        one row per epoch (Keras CSVLogger)
    curves.png         loss and accuracy per epoch
    files.json         every file used (train / validation) and every file skipped, with why
    logs/              TensorBoard logs
    evaluation/        what `evaluate` writes (report.json and PNGs), unless told otherwise
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import keras
import numpy as np

from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.data import (
    DataError,
    Dataset,
    ImageBatches,
    Skipped,
    _find_split,
    _index_classes,
    list_images,
    scan_folder,
)
from simplecnn.models import build_model, check_style
from simplecnn import reports

__all__ = ["TrainResult", "Run", "train", "load_run", "evaluate", "predict", "RunError"]

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
FILES_FILE = "files.json"
LOG_DIR = "logs"
PIXELS = "RGB (or L), EXIF-oriented, bilinear resize of the whole image, uint8 / 255"


class RunError(ValueError):
    """A run directory is missing, incomplete, or not usable for this request."""


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: str
    history: dict[str, list[float]]
    class_names: list[str]
    best_epoch: int
    best: dict[str, float]
    seconds: float
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class Run:
    """A loaded run directory: the model and what it was trained with."""

    path: str
    model: keras.Model
    meta: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def image_size(self) -> tuple[int, int]:
        h, w, _ = self.meta["model_config"]["input_shape"]
        return (h, w)

    @property
    def channels(self) -> int:
        return int(self.meta["model_config"]["input_shape"][2])

    @property
    def num_outputs(self) -> int:
        return int(self.meta["model_config"]["num_classes"])


def _write_json(path: str, data: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Save a .keras file under a temporary name, then rename: never a half-written model."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


class _SaveBest(keras.callbacks.Callback):
    """Keep the model of the best epoch (lowest ``monitor``) in the run directory."""

    def __init__(self, path: str, monitor: str) -> None:
        super().__init__()
        self.path, self.monitor = path, monitor
        self.best, self.best_epoch = np.inf, -1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch
            save_model_atomic(self.model, self.path)


class PreciseBatchNormValidation(keras.callbacks.Callback):
    """At each epoch end: recompute BatchNorm statistics, then validate.

    With small folders an epoch is a handful of steps, and BatchNorm's moving averages
    (momentum 0.99) still remember their initial values after many epochs: validation and
    predictions then run on stale statistics (on the demo's faces, test accuracy 0.58 instead
    of 0.95). So each epoch ends by running fixed, un-augmented training images through the
    model in training mode with dropout off and setting each BatchNorm layer's statistics to
    their exact average over them ("precise BN", as in pycls); only then is the validation set
    measured, and its ``val_*`` figures are added to the epoch's logs for the callbacks after
    this one (early stopping, checkpoint, CSV, TensorBoard, history). Works on every backend:
    it runs where Keras has synchronized the model's variables.
    """

    def __init__(self, bn_batches: ImageBatches, val_batches: ImageBatches | None) -> None:
        super().__init__()
        self.bn_batches, self.val_batches = bn_batches, val_batches

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        recompute_batchnorm(self.model, self.bn_batches)
        if self.val_batches is None or logs is None:
            return
        results = self.model.evaluate(self.val_batches, verbose=0, return_dict=True)
        # Keras's progress bar comes after this callback, so it shows these figures too.
        logs.update({f"val_{k}": float(v) for k, v in results.items()})


def recompute_batchnorm(model: keras.Model, batches: ImageBatches, max_batches: int = 16) -> None:
    """Set every BatchNorm layer's moving statistics to their average over ``batches``."""
    from simplecnn.models import leaf_layers

    layers = leaf_layers(model)
    norms = [l for l in layers if isinstance(l, keras.layers.BatchNormalization)]
    drops = [l for l in layers if isinstance(l, keras.layers.Dropout)]
    if not norms:
        return
    saved_momentum = [l.momentum for l in norms]
    saved_rate = [l.rate for l in drops]
    try:
        for l in drops:
            l.rate = 0.0
        for k in range(min(len(batches), max_batches)):
            # A cumulative average: after batch k (1-based) the statistics are the mean of k batches.
            for l in norms:
                l.momentum = k / (k + 1)
            model(batches[k][0], training=True)
    finally:
        for l, m in zip(norms, saved_momentum):
            l.momentum = m
        for l, r in zip(drops, saved_rate):
            l.rate = r


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "keras": keras.__version__}
    backend = keras.backend.backend()
    try:
        module = __import__(backend)
        out[backend] = getattr(module, "__version__", "?")
    except ImportError:  # pragma: no cover
        pass
    return out


def _prepare_run_dir(out_dir: str, overwrite: bool) -> None:
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunError(f"{out_dir}: exists and is not a folder; choose another --out")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not overwrite:
            raise RunError(
                f"{out_dir}: run directory already exists and is not empty; pass --overwrite "
                "to replace it or choose another --out"
            )
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise RunError(f"{out_dir}: not writable; choose another --out")


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root)


def train(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    overwrite: bool = False,
    verbose: int | str = "auto",
) -> TrainResult:
    """Train the seed's classifier on a folder of images and write a run directory.

    Args:
        data_dir: one sub-folder per class, or ``train/`` and ``val/`` folders of that form.
        out_dir: the run directory to create.
        config: the recipe (:class:`TrainConfig` defaults when ``None``).
        overwrite: replace ``out_dir`` if it exists.
        verbose: Keras's verbosity for ``fit`` (progress bar by default).

    Returns:
        A :class:`TrainResult` with the history and the best epoch's metrics.
    """
    config = config or TrainConfig()
    check_style(config.style)
    data_dir, out_dir = str(data_dir), str(out_dir)
    dataset = scan_folder(data_dir, config.validation_split, config.seed)
    if config.batch_size > len(dataset.train):
        raise DataError(
            f"--batch-size {config.batch_size} is larger than the {len(dataset.train)} training "
            f"images in {data_dir}; use a batch size of at most {len(dataset.train)}"
        )
    _prepare_run_dir(out_dir, overwrite)
    num_classes = len(dataset.class_names)
    model_config = ModelConfig(
        input_shape=(config.image_size, config.image_size, config.channels),
        num_classes=1 if num_classes == 2 else num_classes,
    )
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.style, model_config)

    size = (config.image_size, config.image_size)
    common = dict(
        image_size=size, channels=config.channels, batch_size=config.batch_size,
        num_classes=model_config.num_classes, cache=config.cache, seed=config.seed,
    )  # fmt: skip
    train_data = ImageBatches(dataset.train, shuffle=True, augment=config.augment, **common)
    val_data = ImageBatches(dataset.val, **common) if dataset.val else None

    steps = len(train_data) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.01)
    loss = "binary_crossentropy" if model_config.num_classes == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])

    monitor = "val_loss" if val_data is not None else "loss"
    model_path = os.path.join(out_dir, MODEL_FILE)
    save_best = _SaveBest(model_path, monitor)
    callbacks = [
        save_best,
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.CSVLogger(os.path.join(out_dir, HISTORY_FILE)),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(os.path.join(out_dir, LOG_DIR), write_graph=False),
    ]
    # Fixed, un-augmented training images for the BatchNorm statistics (decoded once).
    order = np.random.default_rng(config.seed).permutation(len(dataset.train))
    bn_items = [dataset.train[i] for i in order[: 16 * config.batch_size]]
    bn_data = ImageBatches(bn_items, **{**common, "cache": True})
    callbacks.insert(0, PreciseBatchNormValidation(bn_data, val_data))
    class_weight = None
    if config.class_weight == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        labels = np.array([label for _, label in dataset.train])
        weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
        class_weight = {i: float(w) for i, w in enumerate(weights)}

    meta = {
        "simplecnn_run": 1,
        "style": config.style,
        "class_names": dataset.class_names,
        "model_config": model_config.to_dict(),
        "train_config": config.to_dict(),
        "pixels": PIXELS,
        "data_dir": os.path.abspath(data_dir),
        "layout": dataset.layout,
        "counts": {"train": dataset.counts(dataset.train), "val": dataset.counts(dataset.val)},
        "class_weight": class_weight,
        "backend": keras.backend.backend(),
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_json(os.path.join(out_dir, RUN_FILE), {**meta, "status": "training"})
    _write_files_record(out_dir, dataset, [])

    start = time.perf_counter()
    fit = model.fit(
        train_data,
        epochs=config.epochs,
        callbacks=callbacks,
        class_weight=class_weight,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    if save_best.best_epoch < 0:
        raise DataError(
            f"training diverged (loss {history.get('loss', ['?'])[-1]}): no epoch finished with "
            "a finite loss; try a lower --learning-rate"
        )
    # EarlyStopping restored the best weights; the file already holds them.
    best_epoch = save_best.best_epoch
    best = {k: v[best_epoch] for k, v in history.items() if len(v) > best_epoch}
    failed = train_data.failed + (val_data.failed if val_data is not None else [])
    _write_files_record(out_dir, dataset, failed)
    reports.plot_history(history, os.path.join(out_dir, CURVES_FILE))
    meta.update(
        status="done",
        epochs_run=len(history.get("loss", [])),
        best_epoch=best_epoch + 1,
        best=best,
        train_seconds=round(seconds, 2),
    )
    _write_json(os.path.join(out_dir, RUN_FILE), meta)
    return TrainResult(
        run_dir=out_dir,
        history=history,
        class_names=dataset.class_names,
        best_epoch=best_epoch + 1,
        best=best,
        seconds=seconds,
        skipped=dataset.skipped + failed,
    )


def _write_files_record(out_dir: str, dataset: Dataset, failed: Sequence[Skipped]) -> None:
    root = dataset.root
    names = dataset.class_names
    _write_json(
        os.path.join(out_dir, FILES_FILE),
        {
            "data_dir": os.path.abspath(root),
            "train": [[_relative(p, root), names[l]] for p, l in dataset.train],
            "val": [[_relative(p, root), names[l]] for p, l in dataset.val],
            "skipped": [{"path": _relative(s.path, root), "reason": s.reason}
                        for s in [*dataset.skipped, *failed]],  # fmt: skip
        },
    )


def load_run(run_dir: str | os.PathLike) -> Run:
    """Load a run directory's model and metadata.

    Raises:
        RunError: the folder is not a finished run directory or its model cannot be loaded.
    """
    run_dir = str(run_dir)
    meta_path = os.path.join(run_dir, RUN_FILE)
    model_path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.isdir(run_dir):
        raise RunError(f"{run_dir}: no such run directory; pass the --out folder of a train run")
    if not os.path.isfile(meta_path) or not os.path.isfile(model_path):
        raise RunError(
            f"{run_dir}: not a run directory (needs {RUN_FILE} and {MODEL_FILE}); pass the "
            "--out folder of a finished `simplecnn train`"
        )
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        ModelConfig.from_dict(meta["model_config"])
        meta["class_names"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{meta_path}: unreadable run description ({exc})") from None
    try:
        model = keras.models.load_model(model_path)  # safe_mode stays on
    except Exception as exc:  # Keras raises many types for a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{model_path}: cannot load the model ({first})") from None
    return Run(run_dir, model, meta)


def _predict_probs(run: Run, items: list[tuple[str, int]], batch_size: int) -> tuple[np.ndarray, ImageBatches]:
    batches = ImageBatches(
        items, image_size=run.image_size, channels=run.channels, batch_size=batch_size,
        num_classes=run.num_outputs,
    )  # fmt: skip
    probs = run.model.predict(batches, verbose=0)
    return np.asarray(probs, dtype=np.float64), batches


def evaluate(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    threshold: float = 0.5,
    batch_size: int = 32,
    worst: int = 16,
) -> dict[str, Any]:
    """Measure a run on a labelled folder (class sub-folders named as in training).

    If ``data_dir`` has a train/val split, its validation folder is used. Writes
    ``report.json``, ``confusion_matrix.png``, ``roc_curve.png`` and ``most_wrong.png`` to
    ``out_dir`` (default: ``RUN_DIR/evaluation``).

    Returns:
        The metrics dict (also in report.json), with ``most_wrong`` image paths.
    """
    run = load_run(run_dir)
    data_dir = str(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: no such folder; pass a folder with one sub-folder per class")
    split = _find_split(data_dir)
    folder = split[1] if split else data_dir
    names, items, skipped = _index_classes(folder, run.class_names)
    if not items:
        raise DataError(
            f"{folder}: no readable images in class folders named {run.class_names}"
        )
    probs, batches = _predict_probs(run, items, batch_size)
    y_true = np.array([label for _, label in items])
    metrics = reports.classification_metrics(y_true, probs, names, threshold)
    out_dir = str(out_dir or os.path.join(str(run_dir), "evaluation"))
    os.makedirs(out_dir, exist_ok=True)

    # Most wrong: misclassified images, lowest probability given to the true class first.
    if probs.shape[1] == 1:
        p_true = np.where(y_true == 1, probs[:, 0], 1.0 - probs[:, 0])
        predicted = (probs[:, 0] >= threshold).astype(int)
        confidence = np.where(predicted == 1, probs[:, 0], 1.0 - probs[:, 0])
    else:
        p_true = probs[np.arange(len(y_true)), y_true]
        predicted = probs.argmax(axis=1)
        confidence = probs.max(axis=1)
    wrong = [int(i) for i in np.argsort(p_true, kind="stable") if predicted[i] != y_true[i]][:worst]
    metrics["most_wrong"] = [
        {
            "path": items[i][0],
            "true": names[y_true[i]],
            "predicted": names[predicted[i]],
            "probability": float(confidence[i]),
        }
        for i in wrong
    ]
    metrics.update(
        data_dir=os.path.abspath(data_dir),
        threshold=threshold,
        class_names=names,
        skipped=[{"path": s.path, "reason": s.reason} for s in skipped + batches.failed],
    )
    reports.plot_confusion(metrics["confusion_matrix"], names, os.path.join(out_dir, "confusion_matrix.png"))
    reports.plot_roc(y_true, probs, names, os.path.join(out_dir, "roc_curve.png"))
    if wrong:
        from simplecnn.data import load_image

        size = (128, 128)
        images = [load_image(items[i][0], size, 3) for i in wrong]
        titles = [
            f"{os.path.basename(items[i][0])[:24]}\ntrue {names[y_true[i]]}, "
            f"said {names[predicted[i]]} ({confidence[i]:.2f})"
            for i in wrong
        ]
        reports.plot_grid(images, titles, os.path.join(out_dir, "most_wrong.png"))
    metrics["files"] = sorted(os.listdir(out_dir))
    _write_json(os.path.join(out_dir, "report.json"), metrics)
    metrics["out_dir"] = out_dir
    return metrics


def predict(
    run_dir: str | os.PathLike,
    paths: Sequence[str],
    threshold: float = 0.5,
    batch_size: int = 32,
) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Classify image files, folders or glob patterns with a run's model.

    Returns:
        ``(predictions, skipped)``: one dict per image (``path``, ``label``, ``probability`` of
        that label, ``probabilities`` per class) in input order, and the files not read.
    """
    run = load_run(run_dir)
    if not 0.0 <= threshold <= 1.0:
        raise DataError(f"threshold must be in [0, 1]. Received: {threshold}")
    files, skipped = list_images(paths)
    if not files:
        return [], skipped
    probs, batches = _predict_probs(run, [(p, 0) for p in files], batch_size)
    failed = {s.path for s in batches.failed}
    names = run.class_names
    out = []
    for path, p in zip(files, probs):
        if path in failed:
            continue
        if p.shape[0] == 1:
            per_class = {names[0]: float(1.0 - p[0]), names[1]: float(p[0])}
            label = names[1] if p[0] >= threshold else names[0]
        else:
            per_class = {n: float(v) for n, v in zip(names, p)}
            label = names[int(np.argmax(p))]
        out.append(
            {"path": path, "label": label, "probability": per_class[label], "probabilities": per_class}
        )
    return out, skipped + batches.failed
