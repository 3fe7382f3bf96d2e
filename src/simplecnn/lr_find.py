"""``lr-find``: a short run with an exponentially growing learning rate, as fastai's ``lr_find``."""

from __future__ import annotations

import math
import os
from typing import Any

import keras
import numpy as np

from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.errors import ConfigError, TrainingError
from simplecnn.training.setup import prepare

__all__ = ["lr_find"]


class _Sweep(keras.callbacks.Callback):
    """Set the learning rate of each step and record that step's loss; stop on divergence."""

    def __init__(self, lrs: np.ndarray) -> None:
        super().__init__()
        self.lrs, self.losses, self.step = lrs, [], 0
        self._prev_mean, self._in_epoch = 0.0, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._prev_mean, self._in_epoch = 0.0, 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(float(self.lrs[self.step]))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # Keras logs the running mean over the epoch; recover this step's loss from it.
        mean = float((logs or {})["loss"])
        self._in_epoch += 1
        loss = self._in_epoch * mean - (self._in_epoch - 1) * self._prev_mean
        self._prev_mean = mean
        self.losses.append(loss)
        self.step += 1
        smooth = _smooth(self.losses) if math.isfinite(loss) else None
        if (
            self.step >= len(self.lrs)
            or smooth is None
            or (len(smooth) > 10 and smooth[-1] > 4 * smooth.min())
        ):
            self.model.stop_training = True


def _smooth(values: list[float], beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average, as fastai smooths lr_find's losses."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return np.array(out)


def _valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's 'valley' suggestion: two thirds into the longest stretch of falling loss."""
    n = len(losses)
    run = [1] * n  # length of the longest decreasing subsequence ending at i
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[end] < run[i]:
            end, start = i, i - run[i]
    third = (end - start) / 3
    return float(lrs[min(n - 1, max(0, start + int(third) + int(third / 2)))])


def lr_find(
    data_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    png: str | None = None,
    architecture: ModelConfig | None = None,
) -> dict[str, Any]:
    """Train briefly with the learning rate growing from ``start_lr`` to ``end_lr``.

    The model is the recipe's (style, image size, batch size, augmentation, optimizer without
    its schedule); it is thrown away afterwards. The losses are smoothed (moving average, 0.98)
    and the suggestion is fastai's "valley": two thirds into the longest stretch of falling
    loss, to pass to ``train --learning-rate``.

    Returns:
        ``lrs``, ``losses`` (smoothed), ``suggested``, ``steepest``, ``min_loss_lr`` and ``png``.
    """
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"need 0 < start_lr < end_lr. Received: {start_lr}, {end_lr}")
    if png:
        from simplecnn.files import check_file_target, is_own_png
        from simplecnn.outputs import check_place

        check_place(png, "--out", data=[data_dir])
        check_file_target(png, "--out", is_own_png)
    setup = prepare(data_dir, config, architecture)
    optimizer = (keras.optimizers.AdamW(start_lr, weight_decay=setup.config.weight_decay)
                 if setup.config.optimizer == "adamw" else keras.optimizers.Adam(start_lr))  # fmt: skip
    model = setup.build_model(optimizer)  # the recipe's model and precision; no schedule
    data = setup.train_batches
    lrs = np.geomspace(start_lr, end_lr, steps)
    sweep = _Sweep(lrs)
    model.fit(data, epochs=math.ceil(steps / len(data)), callbacks=[sweep], shuffle=False, verbose=0)
    losses = sweep.losses
    tried = lrs[: len(losses)]
    finite = np.array([math.isfinite(l) for l in losses])
    if finite.sum() < 5:
        raise TrainingError("the loss diverged within 5 steps; try a smaller --start-lr")
    tried, smooth = tried[finite], _smooth([l for l in losses if math.isfinite(l)])
    min_loss_lr = float(tried[int(np.argmin(smooth))])
    upto = int(np.argmin(smooth)) + 1  # steepest fall of the loss against log(lr), before the minimum
    grads = np.gradient(smooth[:upto], np.log(tried[:upto])) if upto > 2 else np.array([0.0])
    steepest = float(tried[int(np.argmin(grads))])
    suggested = _valley(tried, smooth)
    result = {
        "lrs": tried.tolist(),
        "losses": smooth.tolist(),
        "suggested": suggested,
        "steepest": steepest,
        "min_loss_lr": min_loss_lr,
        "png": None,
    }
    if png:
        from simplecnn.reports import plot_lr_find

        result["png"] = plot_lr_find(tried, smooth, suggested, png)
    return result
