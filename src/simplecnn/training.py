"""train / evaluate / predict as functions that return values; see runs.py for run directories."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np

from simplecnn import hardware, reports
from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.data import (
    Dataset,
    ImageBatches,
    MirroredBatches,
    Skipped,
    _find_split,
    _index_classes,
    list_images,
    scan_folder,
)
from simplecnn.errors import DataError, RunError, TrainingError
from simplecnn.models import build_model, check_style
from simplecnn.runs import (
    BACKUP_DIR,
    CURVES_FILE,
    FILES_FILE,
    HISTORY_FILE,
    LOG_DIR,
    MODEL_FILE,
    RUN_FILE,
    Backup,
    Run,
    latest_backup,
    load_model_file,
    load_run,
    read_history,
    read_json,
    restore_seed_states,
    save_backup,
    save_model_atomic,
    truncate_history,
    write_json,
)

__all__ = ["TrainResult", "train", "evaluate", "predict", "load_run", "Run", "RunError", "TrainingError"]

# Images per predict/evaluate batch (measured: `benchmarks/results/defaults_sweep.txt`).
PREDICT_BATCH = 32

PIXELS = "RGB (or L), EXIF-oriented, bilinear resize of the whole image, uint8 / 255"


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
    resumed_from: int = 0  # epochs already done by an earlier, interrupted process
    stopped: str | None = None  # None (ran all epochs), "early" or "nan"
    message: str = ""
    model: keras.Model | None = field(default=None, repr=False)  # as after the last epoch
    # Time the training steps waited for input: seconds, fraction of training time, worst epoch.
    input_wait: dict[str, float] = field(default_factory=dict)


class _RunKeeper(keras.callbacks.Callback):
    """Best model, early stopping, the NaN guard and the per-epoch backup, in one place.

    At each epoch end, in this order: keep ``model.keras`` if the monitored value improved,
    write the backup a killed run resumes from, then stop if patience ran out. A NaN or Inf
    loss stops training at once and nothing of that epoch is kept.
    """

    def __init__(
        self, run_dir: str, monitor: str, patience: int | None, state: dict[str, Any] | None = None,
        write: bool = True, float32_model: Callable[[], keras.Model] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        state = state or {}
        self.write = write  # False in the processes of a job other than the chief
        # Builds the float32 twin model.keras is written from when training runs in mixed
        # precision (None: save the trained model itself).
        self.float32_model = float32_model
        self._twin: keras.Model | None = None
        self.run_dir, self.monitor, self.patience = run_dir, monitor, patience
        self.best = float(state.get("best", np.inf))
        self.best_epoch = int(state.get("best_epoch", -1))
        self.wait = int(state.get("wait", 0))
        self.epoch = 0
        self.nan: dict[str, Any] | None = None
        self.stopped_early = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def _dir(self) -> str:
        # Saving a model is a collective operation in a multi-process job: every process
        # saves, and those other than the chief save into a scratch folder of their own.
        if self.write:
            return self.run_dir
        if not hasattr(self, "_scratch"):
            import tempfile

            self._scratch = tempfile.mkdtemp(prefix="simplecnn-worker-")
        return self._scratch

    def _kept(self) -> keras.Model:
        """The model to write as model.keras: the trained one, or its float32 twin."""
        if self.float32_model is None:
            return self.model
        if self._twin is None:
            self._twin = self.float32_model()
        self._twin.set_weights(self.model.get_weights())
        return self._twin

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.nan = {"epoch": self.epoch + 1, "batch": batch + 1, "loss": float(loss)}
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.nan is not None:
            return
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(float(value)) and float(value) < self.best:
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            with averaged_weights(self.model):  # the weights that were validated
                save_model_atomic(self._kept(), os.path.join(self._dir(), MODEL_FILE))
        else:
            self.wait += 1
        save_backup(self._dir(), self.model, epoch + 1,
                    {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait})  # fmt: skip
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_early = True
            self.model.stop_training = True


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

    def __init__(
        self, bn_batches: ImageBatches, val_batches: ImageBatches | None, recompute: bool = True
    ) -> None:
        super().__init__()
        self.bn_batches, self.val_batches, self.recompute = bn_batches, val_batches, recompute

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with averaged_weights(self.model):
            if self.recompute:
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


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The recipe's optimizer: Adam or AdamW, constant or warm-up + cosine learning rate."""
    lr: Any = config.learning_rate
    if config.schedule == "cosine":
        total = max(1, steps_per_epoch * config.epochs)
        warmup = min(steps_per_epoch * config.warmup_epochs, total // 2)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.learning_rate * (0.01 if warmup else 1.0),
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=config.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    ema: dict[str, Any] = {}
    if config.ema_epochs > 0:
        # A window of about ema_epochs epochs: momentum 1 - 1 / steps.
        ema = {"use_ema": True, "ema_momentum": 1.0 - 1.0 / max(2.0, config.ema_epochs * steps_per_epoch)}
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **ema)
    return keras.optimizers.Adam(lr, **ema)


def build_training_model(
    style: str, model_config: ModelConfig, config: TrainConfig, steps_per_epoch: int
) -> keras.Model:
    """The model as ``train`` trains it: built in the recipe's precision, compiled with its
    optimizer (schedule, weight average) and the machine's ``jit_compile`` choice."""
    with hardware.dtype_policy(hardware.training_precision(config.precision)):
        model = build_model(style, model_config)
    loss = "binary_crossentropy" if model_config.num_classes == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss,
                  metrics=["accuracy"], jit_compile=hardware.jit_compile())  # fmt: skip
    return model


def float32_model(style: str, model_config: ModelConfig) -> keras.Model:
    """The model built in float32 whatever the global dtype policy (what a run keeps)."""
    with hardware.dtype_policy("float32"):
        return build_model(style, model_config)


@contextlib.contextmanager
def averaged_weights(model: keras.Model) -> Iterator[None]:
    """Inside: the model holds its optimizer's moving average of the weights (if it keeps one).

    Keras's optimizers keep the average (``use_ema``) and copy it into the model only when
    ``fit`` ends; validation, the kept checkpoint and precise BN need it at every epoch end,
    while training must go on from the raw weights (and backups keep those).
    """
    opt = getattr(model, "optimizer", None)
    averages = getattr(opt, "_model_variables_moving_average", None) if opt is not None else None
    if not (opt is not None and opt.use_ema and averages):
        yield
        return
    variables = list(opt._trainable_variables)
    raw = [keras.ops.convert_to_numpy(v) for v in variables]
    for v, a in zip(variables, averages):
        # A copy: on JAX, assigning the average itself would share its buffer, which the next
        # jitted step donates (and deletes).
        v.assign(keras.ops.convert_to_numpy(a))
    try:
        yield
    finally:
        for v, r in zip(variables, raw):
            v.assign(r)


def unshare_weights(model: keras.Model) -> None:
    """Give each weight its own buffer again after ``fit`` with a weight average.

    With ``use_ema``, Keras's ``fit`` ends by assigning the optimizer's averages to the weights;
    on JAX that shares their buffers, and a later ``fit`` donates one and finds the other
    deleted ("Buffer has been deleted or donated").
    """
    for v in model.trainable_variables:
        v.assign(keras.ops.convert_to_numpy(v))


class _TimeBudget(keras.callbacks.Callback):
    """Stop when another epoch like the last one would run past ``seconds`` of training."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if now - self.start + (now - self.epoch_start) > self.seconds:
            self.model.stop_training = True


class InputWait(keras.callbacks.Callback):
    """How long each epoch's training steps waited for input, as a fraction of their time.

    The wait is the time ``batches.__getitem__`` blocked (a batch not decoded yet); the
    epoch's time runs from its start to the end of its last training step, before
    validation. On the TensorFlow backend tf.data asks for batches a little ahead of the
    model, so there the figure is an upper bound. Put this callback first.
    """

    def __init__(self, batches: ImageBatches) -> None:
        super().__init__()
        self.batches = batches
        self.fractions: list[float] = []
        self.wait_s = self.train_s = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start, self._wait0 = time.perf_counter(), self.batches.wait_seconds

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._start
        wait = self.batches.wait_seconds - self._wait0
        self.wait_s += wait
        self.train_s += seconds
        self.fractions.append(wait / seconds if seconds > 0 else 0.0)

    def summary(self) -> dict[str, float]:
        return {
            "seconds": round(self.wait_s, 3),
            "fraction": round(self.wait_s / self.train_s, 4) if self.train_s else 0.0,
            "worst_epoch_fraction": round(max(self.fractions, default=0.0), 4),
        }


def _tensorboard(log_dir: str) -> list[keras.callbacks.Callback]:
    """Keras's TensorBoard callback, which writes through TensorFlow's summary API.

    On the JAX and PyTorch backends without TensorFlow installed, training goes on without
    TensorBoard logs (the rest of the pipeline does not use TensorFlow).
    """
    try:
        import tensorboard  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        return []
    return [keras.callbacks.TensorBoard(log_dir, write_graph=False)]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "keras": keras.__version__}
    backend = keras.backend.backend()
    try:
        module = __import__(backend)
        out[backend] = getattr(module, "__version__", "?")
    except ImportError:  # pragma: no cover
        pass
    return out


def _prepare_run_dir(
    out_dir: str, config: TrainConfig, data_dir: str, overwrite: bool, resume: bool
) -> Backup | None:
    """Make ``out_dir`` ready; return the backup to resume from, if any.

    A folder holding an unfinished run of the same settings resumes from its last finished
    epoch (the same command again after a kill). A finished run or any other non-empty folder
    is refused unless ``overwrite``.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunError(f"{out_dir}: exists and is not a folder; choose another --out")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and overwrite:
        shutil.rmtree(out_dir)
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        if resume:
            raise RunError(f"{out_dir}: nothing to resume (no unfinished run there); drop --resume")
        os.makedirs(out_dir, exist_ok=True)
        return None
    try:
        meta = read_json(os.path.join(out_dir, RUN_FILE))
    except (OSError, ValueError):
        meta = None
    if meta is None:
        raise RunError(
            f"{out_dir}: folder exists and is not empty; pass --overwrite to replace it or "
            "choose another --out"
        )
    if meta.get("status") != "training":
        raise RunError(
            f"{out_dir}: run directory already exists (a finished run); pass --overwrite to "
            "replace it or choose another --out"
        )
    same = meta.get("train_config") == config.to_dict() and meta.get("data_dir") == os.path.abspath(data_dir)
    if not same:
        raise RunError(
            f"{out_dir}: holds an unfinished run with other settings or data; run the same "
            "command to resume it, or pass --overwrite to start again"
        )
    backup = latest_backup(out_dir)
    if backup is None:  # killed before the first epoch finished: nothing to keep
        shutil.rmtree(out_dir)
        os.makedirs(out_dir)
    return backup


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root)


def train(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> TrainResult:
    """Train the seed's classifier on a folder of images and write a run directory.

    Running the same call again after the process was killed resumes from the last finished
    epoch (model, optimizer and dropout state are backed up atomically after every epoch).

    Args:
        data_dir: one sub-folder per class, or ``train/`` and ``val/`` folders of that form.
        out_dir: the run directory to create (or the unfinished one to resume).
        config: the recipe (:class:`TrainConfig` defaults when ``None``).
        overwrite: replace ``out_dir`` if it exists.
        resume: require an unfinished run in ``out_dir`` to resume (it resumes anyway).
        verbose: Keras's verbosity for ``fit`` (progress bar by default).
        callbacks: extra Keras callbacks.

    Returns:
        A :class:`TrainResult` with the history and the best epoch's metrics.

    Raises:
        DataError / RunError: before any training, for unusable data or run directories.
        TrainingError: the loss was NaN or Inf before any epoch finished.
    """
    from simplecnn import distributed

    config = config or TrainConfig()
    check_style(config.style)
    data_dir, out_dir = str(data_dir), str(out_dir)
    dataset = scan_folder(data_dir, config.validation_split, config.seed)
    if config.batch_size > len(dataset.train):
        raise DataError(
            f"--batch-size {config.batch_size} is larger than the {len(dataset.train)} training "
            f"images in {data_dir}; use a batch size of at most {len(dataset.train)}"
        )
    # In a multi-process job each process feeds its slice of every global batch, and only
    # process 0 (the chief) writes files.
    dist = distributed.current()
    chief = distributed.is_chief()
    shard = (dist.process_id, dist.num_processes) if dist else (0, 1)
    if chief:
        backup = _prepare_run_dir(out_dir, config, data_dir, overwrite, resume)
    else:
        verbose = 0
        backup = None if overwrite else latest_backup(out_dir)
    num_classes = len(dataset.class_names)
    model_config = ModelConfig(
        input_shape=(config.image_size, config.image_size, config.channels),
        num_classes=1 if num_classes == 2 else num_classes,
    )
    size = (config.image_size, config.image_size)
    cache = config.cache_for(len(dataset.train) + len(dataset.val))
    common = dict(
        image_size=size, channels=config.channels, batch_size=config.batch_size,
        num_classes=model_config.num_classes, cache=cache, seed=config.seed,
    )  # fmt: skip
    augment = config.augment_for(len(dataset.train))
    train_data = ImageBatches(dataset.train, shuffle=True, augment=augment, shard=shard, **common)
    val_data = ImageBatches(dataset.val, shard=shard, **common) if dataset.val else None

    keras.utils.set_random_seed(config.seed)
    if backup is None:
        initial_epoch = 0
        model = build_training_model(config.style, model_config, config, len(train_data))
    else:
        # The backup holds the compiled model with its optimizer state (and the schedule's step).
        initial_epoch = backup.epochs_done
        model = load_model_file(os.path.join(backup.path, MODEL_FILE))
        restore_seed_states(model, backup.state.get("seed_states", {}))
        if chief:
            truncate_history(os.path.join(out_dir, HISTORY_FILE), initial_epoch)
        train_data.set_epoch(initial_epoch)  # the shuffling an uninterrupted run would use
        if verbose:
            print(f"resuming {out_dir} after epoch {initial_epoch} (of {config.epochs})", flush=True)

    monitor = "val_loss" if val_data is not None else "loss"
    kept_model = None
    if model.dtype_policy.name != "float32":  # keep a float32 model.keras, compiled alike

        def kept_model() -> keras.Model:
            twin = float32_model(config.style, model_config)
            twin.compile(optimizer=keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer)),
                         loss=model.loss, metrics=["accuracy"])  # fmt: skip
            twin.optimizer.build(twin.trainable_variables)  # saved whole: loads without warnings
            return twin

    keeper = _RunKeeper(out_dir, monitor, config.patience, backup.state if backup else None,
                        write=chief, float32_model=kept_model)  # fmt: skip
    input_wait = InputWait(train_data)
    # Fixed, un-augmented training images for the BatchNorm statistics (decoded once).
    order = np.random.default_rng(config.seed).permutation(len(dataset.train))
    bn_data = ImageBatches([dataset.train[i] for i in order[: 16 * config.batch_size]],
                           **{**common, "cache": True})  # fmt: skip
    all_callbacks = [
        input_wait,  # first: its epoch ends before validation
        PreciseBatchNormValidation(bn_data, val_data, config.precise_bn),  # adds val_*
        keeper,
        *([
            keras.callbacks.CSVLogger(os.path.join(out_dir, HISTORY_FILE), append=backup is not None),
            *_tensorboard(os.path.join(out_dir, LOG_DIR)),
        ] if chief else []),
        *([_TimeBudget(config.time_budget)] if config.time_budget else []),
        *callbacks,
    ]  # fmt: skip
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
    meta.update(augment=augment, cache=cache, precision=model.dtype_policy.name)
    if dist:
        meta["processes"] = dist.num_processes
    if chief:
        write_json(os.path.join(out_dir, RUN_FILE), {**meta, "status": "training"})
        _write_files_record(out_dir, dataset, [])

    start = time.perf_counter()
    fit = model.fit(
        train_data,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=all_callbacks,
        class_weight=class_weight,
        shuffle=False,  # ImageBatches shuffles, seeded per epoch (Keras's would use `random`)
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    unshare_weights(model)
    failed = train_data.failed + (val_data.failed if val_data is not None else [])
    if not chief:
        history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
        best_epoch = max(keeper.best_epoch, 0)
        return TrainResult(out_dir, history, dataset.class_names, best_epoch + 1,
                           {k: v[best_epoch] for k, v in history.items() if len(v) > best_epoch},
                           seconds, failed, initial_epoch, model=model)  # fmt: skip
    history = read_history(os.path.join(out_dir, HISTORY_FILE))
    _write_files_record(out_dir, dataset, failed)
    if keeper.best_epoch < 0:
        shutil.rmtree(os.path.join(out_dir, BACKUP_DIR), ignore_errors=True)
        write_json(os.path.join(out_dir, RUN_FILE), {**meta, "status": "failed"})
        where = f" at epoch {keeper.nan['epoch']}, batch {keeper.nan['batch']}" if keeper.nan else ""
        raise TrainingError(
            f"the loss became {keeper.nan['loss'] if keeper.nan else 'non-finite'}{where} before "
            "any epoch finished, so no model was kept; try a lower --learning-rate"
        )
    best_epoch = keeper.best_epoch
    best = {k: v[best_epoch] for k, v in history.items() if len(v) > best_epoch}
    stopped, message = None, ""
    if keeper.nan is not None:
        stopped = "nan"
        message = (
            f"training stopped: the loss became {keeper.nan['loss']} at epoch "
            f"{keeper.nan['epoch']}, batch {keeper.nan['batch']}; {out_dir} keeps the model of "
            f"epoch {best_epoch + 1} ({monitor} {keeper.best:.4f}); try a lower --learning-rate"
        )
    elif keeper.stopped_early:
        stopped = "early"
    reports.plot_history(history, os.path.join(out_dir, CURVES_FILE))
    meta.update(
        status="done" if stopped != "nan" else "stopped: nan loss",
        epochs_run=len(history.get("loss", [])),
        best_epoch=best_epoch + 1,
        best=best,
        train_seconds=round(seconds, 2),
        resumed_from=initial_epoch,
        input_wait=input_wait.summary(),
    )
    write_json(os.path.join(out_dir, RUN_FILE), meta)
    shutil.rmtree(os.path.join(out_dir, BACKUP_DIR), ignore_errors=True)
    return TrainResult(
        run_dir=out_dir,
        history=history,
        class_names=dataset.class_names,
        best_epoch=best_epoch + 1,
        best=best,
        seconds=seconds,
        skipped=dataset.skipped + failed,
        resumed_from=initial_epoch,
        stopped=stopped,
        message=message,
        model=model,
        input_wait=input_wait.summary(),
    )


def _write_files_record(out_dir: str, dataset: Dataset, failed: Sequence[Skipped]) -> None:
    root = dataset.root
    names = dataset.class_names
    write_json(
        os.path.join(out_dir, FILES_FILE),
        {
            "data_dir": os.path.abspath(root),
            "train": [[_relative(p, root), names[l]] for p, l in dataset.train],
            "val": [[_relative(p, root), names[l]] for p, l in dataset.val],
            "skipped": [{"path": _relative(s.path, root), "reason": s.reason}
                        for s in [*dataset.skipped, *failed]],  # fmt: skip
        },
    )


def _predict_probs(
    run: Run, items: list[tuple[str, int]], batch_size: int, tta: bool = False
) -> tuple[np.ndarray, ImageBatches]:
    """Class probabilities; with ``tta``, the mean over each image and its mirror image."""
    batches = ImageBatches(
        items, image_size=run.image_size, channels=run.channels, batch_size=batch_size,
        num_classes=run.num_outputs,
    )  # fmt: skip
    probs = np.asarray(run.model.predict(batches, verbose=0), dtype=np.float64)
    if tta:
        mirrored = np.asarray(run.model.predict(MirroredBatches(batches), verbose=0), dtype=np.float64)
        probs = (probs + mirrored) / 2
    return probs, batches


def evaluate(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    threshold: float = 0.5,
    batch_size: int = PREDICT_BATCH,
    worst: int = 16,
    tta: bool = False,
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
    probs, batches = _predict_probs(run, items, batch_size, tta)
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
        tta=tta,
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
    write_json(os.path.join(out_dir, "report.json"), metrics)
    metrics["out_dir"] = out_dir
    return metrics


def predict(
    run_dir: str | os.PathLike,
    paths: Sequence[str],
    threshold: float = 0.5,
    batch_size: int = PREDICT_BATCH,
    tta: bool = False,
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
    probs, batches = _predict_probs(run, [(p, 0) for p in files], batch_size, tta)
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
