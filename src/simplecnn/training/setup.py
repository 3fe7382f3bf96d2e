"""One setup for everything that trains: the data, the model config, the batches and the
compiled model, built the same way for ``train``, ``lr-find`` and ``bench``.

:func:`prepare` does the work that does not depend on a run directory (scan the folder, choose
the architecture for its classes, check the memory, make the batches); :meth:`Setup.build_model`
builds and compiles the model in the recipe's precision with its optimizer.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from simplecnn import distributed, hardware
from simplecnn.config import BN_BATCHES, ModelConfig, TrainConfig
from simplecnn.data import Dataset, ImageBatches, scan_folder
from simplecnn.errors import DataError
from simplecnn.heads import head_units, loss_name, one_hot_targets
from simplecnn.models import build_model
from simplecnn.training.budget import ema_momentum, ema_window, length_of
from simplecnn.training.sizing import choose_side

__all__ = ["Setup", "prepare", "make_optimizer", "make_loss", "build_training_model", "float32_model",
           "training_accuracy", "keeps_a_twin", "MixedBinaryAccuracy"]


@dataclass
class Setup:
    """What training a folder needs, before any run directory is involved."""

    dataset: Dataset
    config: TrainConfig
    model_config: ModelConfig
    train_batches: ImageBatches  # shuffled, augmented per the recipe; this process's shard
    val_batches: ImageBatches | None
    bn_batches: ImageBatches  # fixed, un-augmented training images (precise BN)
    augment: bool
    cache: bool
    class_weight: dict[int, float] | None
    check: dict[str, Any] | None = None  # the check of copies, leaks and conflicts (check.json)
    size_choice: dict[str, Any] | None = None  # how --image-size auto chose (run.json "image_size")

    @property
    def precision(self) -> str:
        """The Keras dtype policy the model trains in (the recipe's choice for this machine)."""
        return hardware.training_precision(self.config.precision)

    def build_model(self, optimizer: keras.optimizers.Optimizer | None = None) -> keras.Model:
        """The model built in :attr:`precision` and compiled with the recipe's optimizer (or
        ``optimizer``), seeded by the recipe's seed."""
        keras.utils.set_random_seed(self.config.seed)
        return build_training_model(self.config.style, self.model_config, self.config,
                                    len(self.train_batches), optimizer)  # fmt: skip


def prepare(
    data_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    architecture: ModelConfig | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Setup:
    """Scan ``data_dir`` and make everything training it with ``config`` needs.

    Args:
        data_dir: one sub-folder per class, or ``train/`` and ``val/`` folders of that form.
        config: the recipe (:class:`TrainConfig` defaults when ``None``); an ``image_size``
            of None ("auto") is chosen here (:func:`~simplecnn.training.sizing.choose_side`),
            and :attr:`Setup.config` holds the side chosen.
        architecture: the model's blocks and head (the seed's when ``None``); its input shape
            and classes are set from ``config`` and the data.
        shard: ``(index, count)`` of this process in a multi-process job.

    Raises:
        DataError: the folder cannot be trained on (see :func:`simplecnn.data.scan_folder`), or
            the batch is larger than the training set.
        UsageError: a training step would not fit in this machine's memory.
    """
    config = config or TrainConfig()
    dataset = scan_folder(data_dir, config.validation_split, config.seed)
    check = None
    if config.check_data or config.drop_duplicates:
        from simplecnn.check import check_before_training

        check, warnings = check_before_training(dataset, drop=config.drop_duplicates)
        dataset.warnings += warnings
    if config.batch_size > len(dataset.train):
        raise DataError(
            f"--batch-size {config.batch_size} is larger than the {len(dataset.train)} training "
            f"images in {data_dir}; use a batch size of at most {len(dataset.train)}"
        )
    architecture = architecture or ModelConfig()
    size_choice = None
    if config.image_size is None:  # auto: the side the time budget fits (training/sizing.py)
        side, size_choice = choose_side(config, architecture, len(dataset.class_names),
                                        len(dataset.train), len(dataset.val), distributed.agree,
                                        [path for path, _ in dataset.train])  # fmt: skip
        config = dataclasses.replace(config, image_size=side)
    model_config = architecture.replace(
        input_shape=(config.image_size, config.image_size, config.channels),
        num_classes=head_units(len(dataset.class_names)),
    )
    hardware.check_training_memory(model_config, config.batch_size)
    cache = config.cache_for(len(dataset.train) + len(dataset.val))
    common = dict(image_size=(config.image_size, config.image_size), channels=config.channels,
                  batch_size=config.batch_size, num_classes=model_config.num_classes,
                  seed=config.seed,
                  one_hot=one_hot_targets(model_config.num_classes, config.soft_targets))  # fmt: skip
    augment = config.augment_for(len(dataset.train))
    train_batches = ImageBatches(dataset.train, shuffle=True, augment=augment, shard=shard,
                                 cache=cache, mix=config.mix, **common)  # fmt: skip
    val_batches = ImageBatches(dataset.val, shard=shard, cache=cache, **common) if dataset.val else None
    order = np.random.default_rng(config.seed).permutation(len(dataset.train))
    bn_batches = ImageBatches([dataset.train[i] for i in order[: BN_BATCHES * config.batch_size]],
                              cache=True, **common)  # fmt: skip
    return Setup(dataset, config, model_config, train_batches, val_batches, bn_batches, augment,
                 cache, _class_weight(config, dataset), check, size_choice)  # fmt: skip


def _class_weight(config: TrainConfig, dataset: Dataset) -> dict[int, float] | None:
    if config.class_weight != "balanced":
        return None
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.array([label for _, label in dataset.train])
    classes = np.arange(len(dataset.class_names))
    return {i: float(w) for i, w in enumerate(compute_class_weight("balanced", classes=classes, y=labels))}


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The recipe's optimizer: Adam or AdamW, constant or warm-up + cosine learning rate."""
    lr: Any = config.learning_rate
    if config.schedule == "cosine":
        # Planned for the most epochs the recipe allows; a time budget shortens the decay once
        # the first epoch is timed (simplecnn.training.budget).
        total = max(1, steps_per_epoch * length_of(config).epochs)
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
        epochs = ema_window(config.ema_epochs, length_of(config).epochs)
        ema = {"use_ema": True, "ema_momentum": ema_momentum(epochs, steps_per_epoch)}
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **ema)
    return keras.optimizers.Adam(lr, **ema)


def build_training_model(
    style: str, model_config: ModelConfig, config: TrainConfig, steps_per_epoch: int,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> keras.Model:  # fmt: skip
    """The model as ``train`` trains it: built in the recipe's precision, compiled with its
    optimizer (schedule, weight average; or ``optimizer``) and the machine's ``jit_compile``."""
    with hardware.dtype_policy(hardware.training_precision(config.precision)):
        model = build_model(style, model_config)
    model.compile(optimizer=optimizer or make_optimizer(config, steps_per_epoch),
                  loss=make_loss(model_config.num_classes, config.label_smoothing, config.soft_targets),
                  metrics=[training_accuracy(model_config.num_classes, config)],
                  jit_compile=hardware.jit_compile())  # fmt: skip
    return model


def make_loss(units: int, label_smoothing: float = 0.0, soft: bool = False) -> str | keras.losses.Loss:
    """The cross-entropy for an output layer of ``units`` units: Keras's own, by name, or with
    ``label_smoothing`` (a Keras class, so ``model.keras`` loads without simplecnn); a softmax
    head whose targets are ``soft`` (smoothed or mixed) takes one-hot targets
    (:func:`simplecnn.heads.one_hot_targets`), and Keras's categorical cross-entropy."""
    if not label_smoothing and not one_hot_targets(units, soft):
        return loss_name(units)
    if units == 1:
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)


def training_accuracy(units: int, config: TrainConfig) -> str | keras.metrics.Metric:
    """The accuracy the training model reports: Keras's own, except for a sigmoid head trained
    on mixed images, whose float targets Keras's binary accuracy would compare for equality
    with the 0/1 answer (so a mixed pair would never count as right): there it is the answer
    against the larger share of the target, as Keras's categorical accuracy takes the largest
    one of a mixed one-hot row. ``model.keras`` is written from a twin compiled with
    ``"accuracy"`` (:func:`keeps_a_twin`), so it loads without simplecnn."""
    return MixedBinaryAccuracy() if _mixed_binary(units, config) else "accuracy"


def keeps_a_twin(units: int, config: TrainConfig, precision: str) -> bool:
    """Whether ``model.keras`` is written from a float32 twin of the training model: when
    training runs in another precision, or reports :class:`MixedBinaryAccuracy`."""
    return precision != "float32" or _mixed_binary(units, config)


def _mixed_binary(units: int, config: TrainConfig) -> bool:
    return units == 1 and config.mix is not None


def _larger_share_accuracy(y_true, y_pred):
    return keras.metrics.binary_accuracy(keras.ops.round(y_true), y_pred)


@keras.saving.register_keras_serializable(package="simplecnn")
class MixedBinaryAccuracy(keras.metrics.MeanMetricWrapper):
    """Binary accuracy against the rounded target (the larger share of a mixed pair); named
    ``accuracy``, as Keras names its own, so history.csv keeps its columns."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(fn=_larger_share_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype}


def float32_model(style: str, model_config: ModelConfig) -> keras.Model:
    """The model built in float32 whatever the global dtype policy (what a run keeps)."""
    with hardware.dtype_policy("float32"):
        return build_model(style, model_config)
