"""Frozen configuration dataclasses: the only place simplecnn's defaults live."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelConfig", "TrainConfig", "PLAIN_RECIPE", "AUGMENT_BELOW", "CACHE_BELOW_BYTES", "PRECISIONS"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture as data. The defaults are the seed tutorial's model.

    Two conv blocks (``filters[i]`` filters, ``convs[i]`` 3x3 'same' ReLU convolutions,
    then MaxPool 2x2, BatchNormalization and Dropout ``dropout[i]``), then a head:
    GlobalMaxPool, Dense(``dense_units``, relu) and the output layer.
    """

    # (height, width, channels) of one image, channels last.
    input_shape: tuple[int, int, int] = (256, 256, 3)
    # Filters of each conv block; its length is the number of blocks.
    filters: tuple[int, ...] = (64, 128)
    # 3x3 convolutions in each block.
    convs: tuple[int, ...] = (2, 2)
    # Dropout rate closing each block.
    dropout: tuple[float, ...] = (0.5, 0.3)
    # Units of the hidden Dense layer of the head.
    dense_units: int = 128
    # 1: one sigmoid unit (binary, the seed); >= 2: a softmax over that many classes.
    num_classes: int = 1
    # Kernel size of every convolution.
    kernel_size: int = field(default=3)

    def __post_init__(self) -> None:
        # Accept lists (JSON round trips) but store tuples so the config stays hashable.
        for name in ("input_shape", "filters", "convs", "dropout"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
            elif not isinstance(value, tuple):
                raise ValueError(
                    f"ModelConfig.{name} must be a tuple. Received: {name}={value!r}"
                )
        shape = self.input_shape
        if len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
            raise ValueError(
                "ModelConfig.input_shape must be three positive integers "
                f"(height, width, channels). Received: input_shape={shape!r}"
            )
        n_blocks = len(self.filters)
        if n_blocks < 1:
            raise ValueError(
                f"ModelConfig.filters needs at least one block. Received: filters={self.filters!r}"
            )
        for name in ("convs", "dropout"):
            if len(getattr(self, name)) != n_blocks:
                raise ValueError(
                    f"ModelConfig.{name} needs one entry per block ({n_blocks}, as in "
                    f"filters={self.filters!r}). Received: {name}={getattr(self, name)!r}"
                )
        for name in ("filters", "convs"):
            values = getattr(self, name)
            if not all(_is_int(v) and v > 0 for v in values):
                raise ValueError(
                    f"ModelConfig.{name} must hold positive integers. Received: {name}={values!r}"
                )
        if not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and 0.0 <= r < 1.0
            for r in self.dropout
        ):
            raise ValueError(
                "ModelConfig.dropout rates must be numbers in [0, 1). "
                f"Received: dropout={self.dropout!r}"
            )
        if not (_is_int(self.dense_units) and self.dense_units > 0):
            raise ValueError(
                "ModelConfig.dense_units must be a positive integer. "
                f"Received: dense_units={self.dense_units!r}"
            )
        if not (_is_int(self.num_classes) and self.num_classes >= 1):
            raise ValueError(
                "ModelConfig.num_classes must be 1 (binary, sigmoid) or an integer >= 2 "
                f"(softmax). Received: num_classes={self.num_classes!r}"
            )
        if not (_is_int(self.kernel_size) and self.kernel_size > 0):
            raise ValueError(
                "ModelConfig.kernel_size must be a positive integer. "
                f"Received: kernel_size={self.kernel_size!r}"
            )
        # Each block halves height and width; the image must survive every pooling.
        smallest = 2**n_blocks
        if shape[0] < smallest or shape[1] < smallest:
            raise ValueError(
                f"ModelConfig.input_shape {shape!r} is too small for {n_blocks} pooling "
                f"blocks: height and width must be at least {smallest}."
            )

    @property
    def num_blocks(self) -> int:
        return len(self.filters)

    @property
    def output_units(self) -> int:
        """Units of the output layer (1 for the sigmoid head, else num_classes)."""
        return self.num_classes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown ModelConfig field(s) {unknown}. Allowed: {sorted(known)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# Folders with fewer training images than this are augmented by default.
AUGMENT_BELOW = 10_000

# TrainConfig.precision: "auto" (see simplecnn.hardware) or a Keras dtype policy.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")

# Decoded images are cached in memory by default while they take at most this many bytes.
CACHE_BELOW_BYTES = 1 << 30

# The seed tutorial's plain recipe, for comparisons: Keras defaults (Adam 1e-3, constant),
# no augmentation, batch 32, BatchNorm's own moving averages, no early stopping to speak of.
PLAIN_RECIPE = dict(
    augment=False, optimizer="adam", learning_rate=1e-3, schedule="constant", precise_bn=False,
    batch_size=32, patience=10_000, ema_epochs=0.0,
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """How ``simplecnn train`` trains: the recipe and the data handling."""

    # Which Keras style builds the model: "sequential", "functional" or "subclassing".
    style: str = "functional"
    # Images are resized to image_size x image_size (the seed's 256 by default).
    image_size: int = 256
    # 3: RGB (the seed); 1: grayscale.
    channels: int = 3
    # Upper bound on epochs; early stopping usually ends sooner.
    epochs: int = 20
    batch_size: int = 16
    # Fraction of each class held out for validation when the folder has no train/val split.
    validation_split: float = 0.2
    # Seeds weights, dropout, the validation split, shuffling and augmentation.
    seed: int = 0
    # Random flip, +-10 degree rotation and 0.9-1.1 zoom of training images.
    # None (default): on when the training set has fewer than AUGMENT_BELOW images.
    augment: bool | None = None
    # None, or "balanced": weight classes inversely to their frequency.
    class_weight: str | None = None
    # "adam" (Keras's default) or "adamw" (Adam with decoupled weight decay).
    optimizer: str = "adam"
    # Weight decay of AdamW (ignored by Adam).
    weight_decay: float = 0.004
    # Peak learning rate.
    learning_rate: float = 1e-3
    # "cosine": linear warm-up, then cosine decay to 1% over the planned epochs; "constant".
    schedule: str = "cosine"
    # Epochs of linear learning-rate warm-up (cosine schedule only).
    warmup_epochs: int = 1
    # Recompute BatchNorm statistics on training images before each validation ("precise BN").
    precise_bn: bool = True
    # Validate, keep and return an exponential moving average of the weights that spans about
    # this many epochs (0: the raw weights). Training itself runs on the raw weights.
    ema_epochs: float = 5.0
    # Early stopping: epochs without a better validation loss before stopping (None: off; the
    # default, since the cosine schedule sets the length, and validation loss on a small folder
    # stays flat and noisy for many epochs while accuracy still improves).
    patience: int | None = None
    # Keep decoded images in memory after the first epoch. None (default): on when the
    # decoded training and validation images fit in CACHE_BELOW_BYTES; beyond that, images
    # stream from disk every epoch and memory stays flat however many there are.
    cache: bool | None = None
    # "auto" (default): Keras's mixed_bfloat16 where the hardware computes bfloat16 fast (see
    # simplecnn.hardware), else float32; or "float32" / "mixed_bfloat16". Training only: the
    # kept model is float32.
    precision: str = "auto"
    # Stop at the end of the epoch after which another epoch would pass this many seconds of
    # training (None: no limit).
    time_budget: float | None = None

    def __post_init__(self) -> None:
        for name in ("image_size", "epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if name == "patience" and value is None:
                continue
            if not (_is_int(value) and value > 0):
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if self.image_size < 4:
            raise ValueError(
                f"image_size must be at least 4 (two 2x2 poolings). Received: {self.image_size}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3. Received: channels={self.channels!r}")
        if not (isinstance(self.validation_split, (int, float)) and 0 <= self.validation_split < 1):
            raise ValueError(
                "validation_split must be in [0, 1). "
                f"Received: validation_split={self.validation_split!r}"
            )
        if self.class_weight not in (None, "balanced"):
            raise ValueError(
                "class_weight must be None or 'balanced'. "
                f"Received: class_weight={self.class_weight!r}"
            )
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(
                f"learning_rate must be positive. Received: learning_rate={self.learning_rate!r}"
            )
        if not _is_int(self.seed):
            raise ValueError(f"seed must be an integer. Received: seed={self.seed!r}")
        choices = {"optimizer": ("adam", "adamw"), "schedule": ("cosine", "constant"),
                   "precision": PRECISIONS}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {allowed}. Received: {name}={getattr(self, name)!r}"
                )
        if not (_is_int(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise ValueError(
                f"warmup_epochs must be an integer >= 0. Received: {self.warmup_epochs!r}"
            )
        if not (isinstance(self.ema_epochs, (int, float)) and not isinstance(self.ema_epochs, bool)
                and self.ema_epochs >= 0):  # fmt: skip
            raise ValueError(f"ema_epochs must be >= 0. Received: ema_epochs={self.ema_epochs!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0. Received: {self.weight_decay!r}")
        if self.time_budget is not None and not (
            isinstance(self.time_budget, (int, float)) and self.time_budget > 0
        ):
            raise ValueError(f"time_budget must be positive seconds. Received: {self.time_budget!r}")

    def augment_for(self, n_train: int) -> bool:
        """Whether to augment a training set of ``n_train`` images."""
        return n_train < AUGMENT_BELOW if self.augment is None else bool(self.augment)

    def cache_for(self, n_images: int) -> bool:
        """Whether to keep ``n_images`` decoded images in memory."""
        if self.cache is not None:
            return bool(self.cache)
        return n_images * self.image_size**2 * self.channels <= CACHE_BELOW_BYTES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
