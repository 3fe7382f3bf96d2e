"""``train``: prepare -> open the run directory -> fit -> finish. Read top to bottom."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import keras

from simplecnn import distributed, reports
from simplecnn.checkpoints import load_model_file, restore_seed_states
from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.data import Skipped
from simplecnn.errors import BudgetError, TrainingError
from simplecnn.files import disk_full_error, is_disk_full, write_json
from simplecnn.models import leaf_layers
from simplecnn.outputs import claim_folder, remove_own_folder
from simplecnn.runs import (
    BACKUP_DIR,
    CHECK_FILE,
    CURVES_FILE,
    HISTORY_FILE,
    LOG_DIR,
    MODEL_FILE,
    PIXELS,
    Backup,
    latest_backup,
    open_run,
    read_history,
    read_record,
    truncate_history,
    write_files_record,
    write_record,
)  # fmt: skip
from simplecnn.training.budget import Plan, PlannedLength, PlannedProgbar, length_of
from simplecnn.training.callbacks import EpochEnd, tensorboard, unshare_weights
from simplecnn.training.hints import after_training
from simplecnn.training.setup import Setup, float32_model, keeps_a_twin, prepare
from simplecnn.training.sizing import describe as describe_side

__all__ = ["TrainResult", "train"]


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
    warnings: list[str] = field(default_factory=list)  # about the data; training went on
    exports: dict[str, dict] = field(default_factory=dict)  # format -> its check (train(export=...))
    check: dict[str, int] = field(default_factory=dict)  # leaks, conflicts, copies found (check.json)
    plan: dict[str, Any] = field(default_factory=dict)  # the length asked for and planned (run.json)
    image_size: dict[str, Any] = field(default_factory=dict)  # how --image-size auto chose (run.json)
    hints: list[str] = field(default_factory=list)  # what the curves say to do next (run.json)


def train(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    architecture: ModelConfig | None = None,
    export: Sequence[str] = (),
) -> TrainResult:
    """Train the seed's classifier on a folder of images and write a run directory.

    Running the same call again after the process was killed resumes from the last finished
    epoch (model, optimizer and dropout state are backed up atomically after every epoch). In a
    multi-process job (:func:`simplecnn.distributed.initialize`), each process feeds its slice
    of every global batch and only process 0 writes files.

    Args:
        data_dir: one sub-folder per class, or ``train/`` and ``val/`` folders of that form.
        out_dir: the run directory to create (or the unfinished one to resume).
        config: the recipe (:class:`TrainConfig` defaults when ``None``).
        overwrite: replace ``out_dir`` if it is a finished simplecnn run.
        resume: require an unfinished run in ``out_dir`` to resume (it resumes anyway).
        verbose: Keras's verbosity for ``fit`` (progress bar by default).
        callbacks: extra Keras callbacks.
        architecture: the model's blocks and head (the seed's by default).
        export: formats to export the finished run to, checked, as ``simplecnn export`` does
            (``("onnx",)``: predict, evaluate and serve then answer without Keras).

    Returns:
        A :class:`TrainResult` with the history and the best epoch's metrics.

    Raises:
        DataError / RunError / OutputError / LockedError: before any training.
        TrainingError: the loss was NaN or Inf before any epoch finished.
        BudgetError: ``config.time_budget`` does not fit two epochs (measured on the first
            steps); nothing is kept.
    """
    config = config or TrainConfig()
    out_dir = os.fspath(out_dir)
    shard = distributed.process_slice()
    chief = shard[0] == 0
    earlier = None if overwrite else _unfinished_size(out_dir, config)
    if earlier is not None:  # resuming: the side the interrupted run chose, not a new choice
        config = dataclasses.replace(config, image_size=earlier["side"])
    setup = prepare(data_dir, config, architecture, shard)
    setup.size_choice = setup.size_choice or earlier
    if verbose and chief and setup.size_choice and earlier is None:
        print(describe_side(setup.size_choice), flush=True)
    lock, created = None, False
    if chief:
        backup, lock, created = open_run(out_dir, setup.config, setup.dataset.root, overwrite, resume)
    else:
        verbose, backup = 0, None if overwrite else latest_backup(out_dir)
    try:
        result = _fit(setup, out_dir, backup, chief, shard[1], verbose, callbacks)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(exc.filename or out_dir, exc) from exc
        raise
    except BudgetError:
        if chief and backup is None:  # nothing was trained: leave the folder as it was found
            if created:
                remove_own_folder(out_dir, "run")
            else:
                claim_folder(out_dir, "run", "--out", replace=True)
        raise
    finally:
        if lock is not None:
            lock.release()
    if chief and result.stopped != "nan":
        from simplecnn.export import export_run  # after the lock is released: it takes it again

        result.exports = {fmt: export_run(out_dir, fmt).check for fmt in export}
    return result


def _unfinished_size(out_dir: str, config: TrainConfig) -> dict[str, Any] | None:
    """The side ``--image-size auto`` chose for the unfinished run in ``out_dir`` (which the same
    command resumes), or None."""
    if config.image_size is not None:
        return None
    meta = read_record(out_dir)
    choice = meta.get("image_size") if meta and meta.get("status") == "training" else None
    return choice if isinstance(choice, dict) and isinstance(choice.get("side"), int) else None


def _fit(setup: Setup, out_dir: str, backup: Backup | None, chief: bool, processes: int,
         verbose: int | str, callbacks: Sequence[keras.callbacks.Callback]) -> TrainResult:  # fmt: skip
    """Build or restore the model, fit it with the epoch-end sequence, then finish the run."""
    config, dataset = setup.config, setup.dataset
    length = length_of(config)
    cosine = config.schedule == "cosine"
    plan = Plan(length, warmup_epochs=config.warmup_epochs if cosine else 0, decays=cosine)
    planned = PlannedLength(plan, len(setup.train_batches),
                            len(setup.val_batches) if setup.val_batches is not None else 0,
                            state=backup.state if backup else None, agree=distributed.agree,
                            ema_epochs=config.ema_epochs)  # fmt: skip
    if backup is None:
        initial_epoch, model = 0, setup.build_model()
    else:
        # The backup holds the compiled model with its optimizer state (and the schedule's step).
        initial_epoch = backup.epochs_done
        keras.utils.set_random_seed(config.seed)
        model = load_model_file(os.path.join(backup.path, MODEL_FILE))
        restore_seed_states(model, backup.state.get("seed_states", {}))
        if chief:
            truncate_history(os.path.join(out_dir, HISTORY_FILE), initial_epoch)
        setup.train_batches.set_epoch(initial_epoch)  # the shuffling an uninterrupted run would use
        if verbose:
            print(f"resuming {out_dir} after epoch {initial_epoch} (of {plan.epochs} planned)", flush=True)
    # The precision the layers compute in: a model loaded from a backup keeps its layers'
    # policies while its own policy reads float32, so ask a layer.
    precision = leaf_layers(model)[0].dtype_policy.name
    loggers = [keras.callbacks.CSVLogger(os.path.join(out_dir, HISTORY_FILE), append=backup is not None),
               *tensorboard(os.path.join(out_dir, LOG_DIR))] if chief else []  # fmt: skip
    epoch_end = EpochEnd(
        out_dir, setup.bn_batches, setup.val_batches, config.precise_bn, config.patience,
        backup.state if backup else None, write=chief,
        float32_model=(lambda: _float32_twin(model, setup))
        if keeps_a_twin(setup.model_config.num_classes, config, precision) else None,
        train_batches=setup.train_batches, length=planned, loggers=loggers,
    )  # fmt: skip
    progress = [PlannedProgbar(plan, planned)] if verbose else []
    meta = _record(setup, precision, processes)
    if chief:
        write_record(out_dir, {**meta, "status": "training"})
        write_files_record(out_dir, dataset, [])
        if setup.check is not None:
            write_json(os.path.join(out_dir, CHECK_FILE), setup.check)
    probe_s = 0.0 if backup or not setup.size_choice else float(setup.size_choice["probe_s"])
    planned.start_clock(spent=probe_s)  # choosing the image side was part of the budget
    start = time.perf_counter() - probe_s
    fit = model.fit(setup.train_batches, epochs=length.epochs, initial_epoch=initial_epoch,
                    callbacks=[epoch_end, *callbacks, *progress], class_weight=setup.class_weight,
                    shuffle=False,  # ImageBatches shuffles, seeded per epoch (Keras's uses `random`)
                    verbose=verbose)  # fmt: skip
    seconds = time.perf_counter() - start
    unshare_weights(model)
    failed = setup.train_batches.failed + (setup.val_batches.failed if setup.val_batches else [])
    history = ({k: [float(v) for v in vals] for k, vals in fit.history.items()} if not chief
               else read_history(os.path.join(out_dir, HISTORY_FILE)))  # fmt: skip
    best_epoch = max(epoch_end.best_epoch, 0)
    result = TrainResult(out_dir, history, dataset.class_names, best_epoch + 1,
                         {k: v[best_epoch] for k, v in history.items() if len(v) > best_epoch},
                         seconds, dataset.skipped + failed, initial_epoch, model=model,
                         input_wait=epoch_end.input_wait.summary(), warnings=dataset.warnings,
                         check=setup.check["counts"] if setup.check else {},
                         plan=_plan_record(plan), image_size=setup.size_choice or {})  # fmt: skip
    if chief:
        _finish(result, epoch_end, meta, failed, setup)
    return result


def _plan_record(plan: Plan) -> dict[str, Any]:
    """run.json's account of the length: asked for, planned, and the re-plans."""
    return {
        "asked": plan.length.describe(),
        "max_epochs": plan.length.epochs,
        "budget_s": plan.length.budget,
        "default": plan.length.default,
        "planned_epochs": plan.epochs,
        "changes": [{"after_epoch": done, "epochs": epochs} for done, epochs in plan.changes],
    }


def _float32_twin(model: keras.Model, setup: Setup) -> keras.Model:
    """The float32 model ``model.keras`` is written from, compiled as ``model`` is (so it loads
    back with its optimizer, without warnings)."""
    twin = float32_model(setup.config.style, setup.model_config)
    optimizer = keras.optimizers.deserialize(keras.optimizers.serialize(model.optimizer))
    twin.compile(optimizer=optimizer, loss=model.loss, metrics=["accuracy"])
    twin.optimizer.build(twin.trainable_variables)
    return twin


def _record(setup: Setup, precision: str, processes: int) -> dict[str, Any]:
    """run.json's description of the run (status and results are added as it goes)."""
    dataset, config = setup.dataset, setup.config
    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__}
    try:
        versions[backend] = getattr(__import__(backend), "__version__", "?")
    except ImportError:  # pragma: no cover
        pass
    meta: dict[str, Any] = {
        "simplecnn_run": 1,
        "style": config.style,
        "class_names": dataset.class_names,
        "model_config": setup.model_config.to_dict(),
        "train_config": config.to_dict(),
        "pixels": PIXELS,
        "data_dir": os.path.abspath(dataset.root),
        "layout": dataset.layout,
        "counts": {"train": dataset.counts(dataset.train), "val": dataset.counts(dataset.val)},
        "class_weight": setup.class_weight,
        "backend": backend,
        "versions": versions,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "augment": setup.augment,
        "cache": setup.cache,
        "precision": precision,
    }
    if setup.size_choice:
        meta["image_size"] = setup.size_choice
    if dataset.warnings:
        meta["warnings"] = dataset.warnings
    if processes > 1:
        meta["processes"] = processes
    return meta


def _finish(result: TrainResult, epoch_end: EpochEnd, meta: dict[str, Any], failed: list[Skipped],
            setup: Setup) -> None:  # fmt: skip
    """Write the run's final record, curves and file list; drop the backups. A run whose loss
    became NaN before any epoch finished keeps nothing and raises TrainingError."""
    out_dir = result.run_dir
    write_files_record(out_dir, setup.dataset, failed)
    nan = epoch_end.nan
    if epoch_end.best_epoch < 0:
        shutil.rmtree(os.path.join(out_dir, BACKUP_DIR), ignore_errors=True)
        write_record(out_dir, {**meta, "status": "failed"})
        where = f" at epoch {nan['epoch']}, batch {nan['batch']}" if nan else ""
        raise TrainingError(
            f"the loss became {nan['loss'] if nan else 'non-finite'}{where} before any epoch "
            "finished, so no model was kept; try a lower --learning-rate"
        )
    if nan is not None:
        result.stopped = "nan"
        result.message = (
            f"training stopped: the loss became {nan['loss']} at epoch {nan['epoch']}, batch "
            f"{nan['batch']}; {out_dir} keeps the model of epoch {result.best_epoch} "
            f"({epoch_end.monitor} {epoch_end.best:.4f}); try a lower --learning-rate"
        )
    elif epoch_end.stopped_early:
        result.stopped = "early"
    reports.plot_history(result.history, os.path.join(out_dir, CURVES_FILE))
    epochs_run = len(result.history.get("loss", []))
    bn_updates = None if setup.config.precise_bn else epochs_run * len(setup.train_batches)
    result.hints = after_training(result.history, result.best, result.seconds, result.plan,
                                  setup.dataset.counts(setup.dataset.val), setup.config.image_size,
                                  bn_updates)  # fmt: skip
    meta.update(
        status="done" if result.stopped != "nan" else "stopped: nan loss",
        epochs_run=epochs_run,
        best_epoch=result.best_epoch,
        best=result.best,
        train_seconds=round(result.seconds, 2),
        resumed_from=result.resumed_from,
        input_wait=result.input_wait,
        plan=result.plan,
        hints=result.hints,
    )
    write_record(out_dir, meta)
    shutil.rmtree(os.path.join(out_dir, BACKUP_DIR), ignore_errors=True)
