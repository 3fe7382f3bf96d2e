"""What happens around each epoch of ``train``, owned by one object: :class:`EpochEnd`.

At each epoch end, in this order, written out in :meth:`EpochEnd.on_epoch_end` rather than left
to the order of a callback list:

1. measure how long the epoch's steps waited for input;
2. swap in the moving average of the weights (if the recipe keeps one);
3. recompute BatchNorm statistics on fixed training images ("precise BN");
4. validate, and add the ``val_*`` figures to the epoch's logs;
5. keep ``model.keras`` if the monitored figure improved (the weights just validated, as float32);
6. swap the raw weights back; re-plan the schedule's length in the time budget (its epochs are
   timed up to here; :mod:`simplecnn.training.budget`); write the backup a killed run resumes from;
7. add the epoch's learning rate to the logs and hand them to the loggers (history.csv,
   TensorBoard), then stop if patience ran out or the planned epochs are done.

A NaN or Inf loss stops training at once and nothing of that epoch is kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np

from simplecnn.checkpoints import save_backup, save_model_atomic
from simplecnn.data import ImageBatches
from simplecnn.models import leaf_layers
from simplecnn.runs import MODEL_FILE
from simplecnn.training.budget import PlannedLength, learning_rate_schedule

__all__ = ["EpochEnd", "last_learning_rate", "averaged_weights", "recompute_batchnorm", "unshare_weights", "tensorboard"]


class EpochEnd(keras.callbacks.Callback):
    """The end-of-epoch sequence (see the module docstring), the NaN guard and the loggers.

    Args:
        run_dir: where ``model.keras`` and the backups go.
        bn_batches: fixed, un-augmented training images for precise BN.
        val_batches: the validation images (None: monitor the training loss).
        precise_bn: recompute BatchNorm statistics before each validation.
        patience: epochs without improvement before stopping (None: never).
        state: ``best``, ``best_epoch`` and ``wait`` of a resumed run's backup.
        write: False in the processes of a multi-process job other than the chief (they save
            into a scratch folder: saving a model is a collective operation there).
        float32_model: builds the float32 twin ``model.keras`` is written from when training
            runs in mixed precision (None: save the trained model itself).
        train_batches: the training batches, whose input wait is measured.
        length: plans the number of epochs in a time budget (None: fit's epochs).
        loggers: Keras callbacks that read the completed logs (CSVLogger, TensorBoard).
    """

    def __init__(
        self, run_dir: str, bn_batches: ImageBatches, val_batches: ImageBatches | None,
        precise_bn: bool = True, patience: int | None = None, state: dict[str, Any] | None = None,
        write: bool = True, float32_model: Callable[[], keras.Model] | None = None,
        train_batches: ImageBatches | None = None, length: PlannedLength | None = None,
        loggers: Sequence[keras.callbacks.Callback] = (),
    ) -> None:  # fmt: skip
        super().__init__()
        state = state or {}
        self.run_dir, self.bn_batches, self.val_batches = run_dir, bn_batches, val_batches
        self.precise_bn, self.patience, self.write = precise_bn, patience, write
        self.float32_model, self._twin = float32_model, None
        self.monitor = "val_loss" if val_batches is not None else "loss"
        self.best = float(state.get("best", np.inf))
        self.best_epoch = int(state.get("best_epoch", -1))
        self.wait = int(state.get("wait", 0))
        self.epoch, self.nan, self.stopped_early = 0, None, False
        self.input_wait = _InputWait(train_batches)
        self.length = length
        self.loggers = keras.callbacks.CallbackList(list(loggers), add_history=False, add_progbar=False)
        self._scratch: str | None = None

    # Loggers see every hook, after this object has done its part.
    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.loggers.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.loggers.set_params(params)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.length is not None:
            self.length.begin(self.model)
        self.loggers.on_train_begin(logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.loggers.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        if self.length is not None:
            self.length.epoch_begin()
        self.input_wait.begin()
        self.loggers.on_epoch_begin(epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.loggers.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.nan = {"epoch": self.epoch + 1, "batch": batch + 1, "loss": float(loss)}
            self.model.stop_training = True
        elif self.length is not None:
            self.length.batch_end(batch)
        self.loggers.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        self.input_wait.end()  # 1. before validation adds its time
        if self.nan is not None:
            return
        with averaged_weights(self.model):  # 2.
            if self.precise_bn:
                recompute_batchnorm(self.model, self.bn_batches)  # 3.
            if self.val_batches is not None:  # 4.
                results = self.model.evaluate(self.val_batches, verbose=0, return_dict=True)
                logs.update({f"val_{k}": float(v) for k, v in results.items()})
            value = logs.get(self.monitor)
            improved = value is not None and np.isfinite(float(value)) and float(value) < self.best
            if improved:  # 5.
                self.best, self.best_epoch, self.wait = float(value), epoch, 0
                save_model_atomic(self._kept(), os.path.join(self._dir(), MODEL_FILE))
            else:
                self.wait += 1
        logs["learning_rate"] = last_learning_rate(self.model.optimizer)  # 7. (before re-planning)
        state = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        if self.length is not None:  # 6.
            self.length.epoch_end(epoch)
            state.update(self.length.state())
        save_backup(self._dir(), self.model, epoch + 1, state)
        self.loggers.on_epoch_end(epoch, logs)  # 7.
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_early = True
            self.model.stop_training = True
        if self.length is not None and self.length.finished(epoch):
            self.model.stop_training = True

    def _dir(self) -> str:
        if self.write:
            return self.run_dir
        if self._scratch is None:
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


def last_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate of the optimizer's last step (its schedule one step back)."""
    schedule = learning_rate_schedule(optimizer)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        step = max(0, int(keras.ops.convert_to_numpy(optimizer.iterations)) - 1)
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class _InputWait:
    """How long each epoch's training steps waited for input, as a fraction of their time.

    The wait is the time ``batches.__getitem__`` blocked (a batch not decoded yet); the epoch's
    time runs from its start to the end of its last training step, before validation. On the
    TensorFlow backend tf.data asks for batches a little ahead of the model, so there the
    figure is an upper bound.
    """

    def __init__(self, batches: ImageBatches | None) -> None:
        self.batches = batches
        self.fractions: list[float] = []
        self.wait_s = self.train_s = 0.0

    def begin(self) -> None:
        self._start = time.perf_counter()
        self._wait0 = self.batches.wait_seconds if self.batches is not None else 0.0

    def end(self) -> None:
        if self.batches is None:
            return
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


def recompute_batchnorm(model: keras.Model, batches: ImageBatches, max_batches: int = 16) -> None:
    """Set every BatchNorm layer's moving statistics to their average over ``batches``.

    With small folders an epoch is a handful of steps, and BatchNorm's moving averages
    (momentum 0.99) still remember their initial values after many epochs: validation and
    predictions then run on stale statistics (on the demo's faces, test accuracy 0.58 instead
    of 0.95). So the statistics are recomputed exactly, training mode with dropout off, as a
    cumulative average ("precise BN", as in pycls). Works on every backend.
    """
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


def _moving_averages(optimizer: Any) -> list | None:
    """The optimizer's moving average of the weights, one per trainable variable (or None).

    One of the two places simplecnn reads Keras private attributes (the other:
    :func:`~simplecnn.training.budget.learning_rate_schedule`): Keras keeps the average
    (``use_ema``) in ``_model_variables_moving_average``, in the order of
    ``_trainable_variables``, and has no public accessor; it copies the average into the model
    only when ``fit`` ends, while simplecnn needs it at every epoch end. Checked by
    tests/test_recipe.py against Keras's own end-of-fit result.
    """
    if optimizer is None or not getattr(optimizer, "use_ema", False):
        return None
    averages = getattr(optimizer, "_model_variables_moving_average", None)
    variables = getattr(optimizer, "_trainable_variables", None)
    if not averages or variables is None:
        return None
    return list(zip(variables, averages))


@contextlib.contextmanager
def averaged_weights(model: keras.Model) -> Iterator[None]:
    """Inside: the model holds its optimizer's moving average of the weights (if it keeps one);
    after: the raw weights again, which training goes on from (and backups keep)."""
    pairs = _moving_averages(getattr(model, "optimizer", None))
    if not pairs:
        yield
        return
    raw = [keras.ops.convert_to_numpy(v) for v, _ in pairs]
    for v, a in pairs:
        # A copy: on JAX, assigning the average itself would share its buffer, which the next
        # jitted step donates (and deletes).
        v.assign(keras.ops.convert_to_numpy(a))
    try:
        yield
    finally:
        for (v, _), r in zip(pairs, raw):
            v.assign(r)


def unshare_weights(model: keras.Model) -> None:
    """Give each weight its own buffer again after ``fit`` with a weight average.

    With ``use_ema``, Keras's ``fit`` ends by assigning the optimizer's averages to the weights;
    on JAX that shares their buffers, and a later ``fit`` donates one and finds the other
    deleted ("Buffer has been deleted or donated").
    """
    for v in model.trainable_variables:
        v.assign(keras.ops.convert_to_numpy(v))


def tensorboard(log_dir: str) -> list[keras.callbacks.Callback]:
    """Keras's TensorBoard callback, which writes through TensorFlow's summary API.

    On the JAX and PyTorch backends without TensorFlow installed, training goes on without
    TensorBoard logs (the rest of the pipeline does not use TensorFlow).
    """
    try:
        import tensorboard as _  # noqa: F401
        import tensorflow as _tf  # noqa: F401
    except ImportError:
        return []
    return [keras.callbacks.TensorBoard(log_dir, write_graph=False)]
