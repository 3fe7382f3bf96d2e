"""``--image-size auto``: the side images are trained at, chosen for the clock.

Under a time budget the image side is what the budget buys: a training image at 256 px costs
about 16 times one at 64 px, and too few epochs cost more accuracy than a smaller image does.
Measured on this project's development sets (docs/recipe.md, "Image size"): hymenoptera in
5 minutes reached 0.725 at 128 px (28 epochs) and 0.719 at 64 px (56), but 0.529 at the seed's
256 px (6 epochs, a model that answers one class); flower_photos in 5 minutes 0.717 at 64 px
(9 epochs) and 0.386 at 128 px (3).

So ``auto`` takes the largest side in :data:`SIDES` at which the budget still fits
:data:`MIN_EPOCHS` epochs (or the epochs asked for, when fewer), and the smallest side when none
does. The epochs that fit are estimated before training from a few timed training steps of the
real model at :data:`PROBE_SIDE` (random pixels, so nothing is decoded), scaled to each side by
its pixels (the convolutions' cost; measured 3.3-4.2x per doubling of the side here) and by
:data:`EPOCH_OVERHEAD` for what an epoch does besides training steps. The probe's seconds count
against the budget. No side is chosen above the smallest of :data:`SIDES` that holds the
training images' median shorter side (:func:`native_side`): a 25 px face resized to 192 px costs
nine times what 64 px does and adds no detail. Without a budget (``--epochs`` alone) there is no
clock to fit, and ``auto`` is the seed's 256 px.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import keras
import numpy as np
from PIL import Image

from simplecnn import hardware
from simplecnn.config import BN_BATCHES, ModelConfig, TrainConfig
from simplecnn.data.images import scale_pixels
from simplecnn.errors import UsageError
from simplecnn.heads import encode_labels, head_units, one_hot_targets
from simplecnn.training.budget import format_seconds, length_of

__all__ = ["SIDES", "SEED_SIDE", "MIN_EPOCHS", "choose_side", "epochs_that_fit", "native_side"]

# The sides auto chooses from, largest first (the seed's 256 is the largest).
SIDES = (256, 192, 128, 96, 64)
SEED_SIDE = 256
# The fewest epochs auto trains a larger side for: below this, a smaller side wins (the
# measurements in the module docstring).
MIN_EPOCHS = 20
# The side the training step is timed at, and the steps timed after the first (which compiles).
PROBE_SIDE = 128
PROBE_STEPS = 3
# Training images whose shorter sides are measured for native_side (their headers: ~0.1 ms each).
NATIVE_SAMPLE = 200
# An epoch's seconds over its training and validation steps' (loading, augmentation, the
# epoch-end work), measured on hymenoptera at 128 px (1.27) and flower_photos at 64 px (1.4).
EPOCH_OVERHEAD = 1.3


def epochs_that_fit(budget: float, step_seconds: float, side: int, train_steps: int,
                    val_steps: int) -> float:  # fmt: skip
    """Epochs of ``train_steps`` training and ``val_steps`` validation batches that fit in
    ``budget`` seconds at ``side`` px, from a training step of ``step_seconds`` at
    :data:`PROBE_SIDE`. Forward-only batches (validation, precise BN) cost a third of a step."""
    step = step_seconds * (side / PROBE_SIDE) ** 2
    epoch = EPOCH_OVERHEAD * step * (train_steps + (val_steps + BN_BATCHES) / 3)
    return budget / epoch


def choose_side(
    config: TrainConfig, architecture: ModelConfig, num_classes: int, n_train: int, n_val: int,
    agree: Callable[[float], float] = float, paths: Sequence[str] = (),
) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """The side ``config.image_size=None`` ("auto") trains at, and run.json's account of why.

    ``paths`` are the training images: no side above the smallest of :data:`SIDES` that holds
    their median shorter side is chosen (see :func:`native_side`). Returns ``(side, record)``;
    ``record["probe_s"]`` is the time the measurement took (it counts against the budget).
    ``agree`` makes every process of a job take process 0's side.
    """
    length = length_of(config)
    if length.budget is None:
        return SEED_SIDE, {"asked": "auto", "side": SEED_SIDE, "probe_s": 0.0,
                           "why": "no time budget: the seed's side"}  # fmt: skip
    start = time.perf_counter()
    native = native_side(paths, config.seed)
    largest = SIDES[0] if native is None else next((s for s in reversed(SIDES) if s >= native), SIDES[0])
    step = _step_seconds(config, architecture, num_classes)
    probe_s = time.perf_counter() - start
    budget = length.budget - probe_s
    batch = config.batch_size
    train_steps, val_steps = -(-n_train // batch), -(-n_val // batch) if n_val else 0
    needed = min(MIN_EPOCHS, length.epochs)
    fit = {s: epochs_that_fit(budget, step, s, train_steps, val_steps) for s in SIDES}
    fitting = [s for s in SIDES if fit[s] >= needed and _fits_memory(architecture, s, config)]
    side = fitting[0] if fitting else SIDES[-1]
    budget_text = f"{format_seconds(length.budget)} of training"
    why = (f"the largest side that fits {needed} epochs in {budget_text}" if fitting
           else f"no side fits {needed} epochs in {budget_text}, so the smallest")  # fmt: skip
    if side > largest:
        why = (f"the images' own size: {native} px (their median shorter side), so at most {largest} "
               f"px, where {side} px would fit {needed} epochs in {budget_text}")  # fmt: skip
        side = largest
    side = int(agree(side))  # one collective call, whatever this process found
    record = {"asked": "auto", "side": side, "probe_s": round(probe_s, 2), "why": why,
              "native_side": native, "step_seconds_at_128": round(step, 4),
              "epochs_that_fit": {str(s): round(min(fit[s], length.epochs), 1) for s in SIDES}}  # fmt: skip
    return side, record


def native_side(paths: Sequence[str], seed: int = 0) -> int | None:
    """The median shorter side, in pixels, of up to :data:`NATIVE_SAMPLE` of ``paths`` (chosen
    by ``seed``; headers only, nothing decoded); None when there are none or none opens.

    Resizing a 25 px face to 192 px costs nine times the compute of 64 px and adds no detail:
    on the lfw faces (25 px) in 5 minutes, auto without this bound chose 192 and 128 px and
    reached 0.875-0.950 over three seeds, 64 px 0.950 (docs/recipe.md, "Measurements").
    """
    if not paths:
        return None
    rng = np.random.default_rng(seed)
    picks = range(len(paths)) if len(paths) <= NATIVE_SAMPLE else rng.choice(len(paths), NATIVE_SAMPLE, replace=False)
    sample = [paths[i] for i in picks]
    sides = []
    for path in sample:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except (OSError, ValueError, Image.DecompressionBombError):  # the scan reports those
            continue
    return int(np.median(sides)) if sides else None


def describe(record: dict[str, Any]) -> str:
    """One line for the output: the side chosen, and what the others would have given."""
    side, fit = record["side"], record.get("epochs_that_fit")
    if not fit:
        return f"image size {side} px ({record['why']})"
    others = ", ".join(f"{s} px {fit[str(s)]:.0f}" for s in SIDES if s != side)
    return (f"image size {side} px: {record['why']} (epochs that fit, timed in "
            f"{format_seconds(record['probe_s'])}: {side} px {fit[str(side)]:.0f}, {others}); "
            "--image-size N sets it")  # fmt: skip


def _fits_memory(architecture: ModelConfig, side: int, config: TrainConfig) -> bool:
    try:
        hardware.check_training_memory(architecture.replace(input_shape=(side, side, config.channels)),
                                       config.batch_size)  # fmt: skip
    except UsageError:
        return False
    return True


def _step_seconds(config: TrainConfig, architecture: ModelConfig, num_classes: int) -> float:
    """Median seconds of a training step of the recipe's model at :data:`PROBE_SIDE`, on
    random pixels, run on this process's devices alone (no multi-process distribution)."""
    from simplecnn.training.setup import build_training_model

    model_config = architecture.replace(input_shape=(PROBE_SIDE, PROBE_SIDE, config.channels),
                                        num_classes=head_units(num_classes))  # fmt: skip
    rng = np.random.default_rng(config.seed)
    x = scale_pixels(rng.integers(0, 256, (config.batch_size, PROBE_SIDE, PROBE_SIDE, config.channels)))
    units = model_config.num_classes
    y = encode_labels(rng.integers(0, max(2, units), config.batch_size), units,
                      one_hot_targets(units, config.soft_targets))  # fmt: skip
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        model = build_training_model(config.style, model_config, config, steps_per_epoch=100)
        model.train_on_batch(x, y)  # compiles
        times = []
        for _ in range(PROBE_STEPS):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
    finally:
        keras.distribution.set_distribution(distribution)
    return float(np.median(times))
