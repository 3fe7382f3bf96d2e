"""Frozen configuration dataclasses: the only place simplecnn's defaults live."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from simplecnn.errors import ConfigError

__all__ = [
    "ModelConfig", "TrainConfig", "PLAIN_RECIPE", "AUGMENT_BELOW", "CACHE_BELOW_BYTES", "PRECISIONS",
    "STYLE_NAMES", "MAX_SIDE", "MIX_ALPHA", "flag_fields",
]  # fmt: skip

# The model styles (simplecnn.models.STYLES builds them, in this order).
STYLE_NAMES = ("sequential", "functional", "subclassing")

# Largest image side (and model input side) simplecnn accepts; memory is checked separately
# against the machine before training (simplecnn.hardware.check_training_memory).
MAX_SIDE = 8192


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
                raise ConfigError(
                    f"ModelConfig.{name} must be a tuple. Received: {name}={value!r}"
                )
        shape = self.input_shape
        if len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
            raise ConfigError(
                "ModelConfig.input_shape must be three positive integers "
                f"(height, width, channels). Received: input_shape={shape!r}"
            )
        if max(shape[:2]) > MAX_SIDE or shape[2] > 4:
            raise ConfigError(
                f"ModelConfig.input_shape must have sides of at most {MAX_SIDE} and at most 4 "
                f"channels. Received: input_shape={shape!r}"
            )
        n_blocks = len(self.filters)
        if not 1 <= n_blocks <= 8:
            raise ConfigError(
                f"ModelConfig.filters needs 1 to 8 blocks. Received: filters={self.filters!r}"
            )
        for name in ("convs", "dropout"):
            if len(getattr(self, name)) != n_blocks:
                raise ConfigError(
                    f"ModelConfig.{name} needs one entry per block ({n_blocks}, as in "
                    f"filters={self.filters!r}). Received: {name}={getattr(self, name)!r}"
                )
        self._check_values()
        # Each block halves height and width; the image must survive every pooling.
        smallest = 2**n_blocks
        if shape[0] < smallest or shape[1] < smallest:
            raise ConfigError(
                f"ModelConfig.input_shape {shape!r} is too small for {n_blocks} pooling "
                f"blocks: height and width must be at least {smallest}."
            )

    def _check_values(self) -> None:
        """Each number within its stated range (one line naming the field and the value)."""
        rules = [
            ("filters", all(_is_int(v) and 0 < v <= 4096 for v in self.filters), "hold integers in [1, 4096]"),
            ("convs", all(_is_int(v) and 0 < v <= 4096 for v in self.convs), "hold integers in [1, 4096]"),
            ("dropout", all(_is_number(r) and 0.0 <= r < 1.0 for r in self.dropout),
             "hold rates, numbers in [0, 1)"),
            ("dense_units", _is_int(self.dense_units) and 0 < self.dense_units <= 65536,
             "be an integer in [1, 65536]"),
            ("num_classes", _is_int(self.num_classes) and 1 <= self.num_classes <= 100_000,
             "be 1 (binary, sigmoid) or an integer in [2, 100000] (softmax)"),
            ("kernel_size", _is_int(self.kernel_size) and 0 < self.kernel_size <= 31,
             "be an integer in [1, 31]"),
        ]  # fmt: skip
        for name, ok, allowed in rules:
            if not ok:
                raise ConfigError(f"ModelConfig.{name} must {allowed}. Received: {name}={getattr(self, name)!r}")

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
            raise ConfigError(
                f"Unknown ModelConfig field(s) {unknown}. Allowed: {sorted(known)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


    def activation_elements(self) -> int:
        """Forward activations of one image, in elements: the sum of every layer's output size
        (what :func:`simplecnn.costs.model_cost` counts from the built model, without Keras)."""
        h, w, _ = self.input_shape
        total = 0
        for filters, convs in zip(self.filters, self.convs):
            total += convs * h * w * filters  # the convolutions, at this block's resolution
            h, w = h // 2, w // 2
            total += 3 * h * w * filters  # pool, BatchNorm, dropout
        return total + self.filters[-1] + self.dense_units + self.num_classes


# Folders with fewer training images than this are augmented by default.
AUGMENT_BELOW = 10_000

# TrainConfig.mix: each kind of image mixing (simplecnn.data.images.mix_batch) and the
# Beta(alpha, alpha) it draws its proportion from: mixup's 0.2 (Zhang et al. 2018, their
# ImageNet setting) and CutMix's 1.0 (Yun et al. 2019: a uniform proportion).
MIX_ALPHA = {"mixup": 0.2, "cutmix": 1.0}

# TrainConfig.precision: "auto" (see simplecnn.hardware) or a Keras dtype policy.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")

# The default length of training, when neither epochs nor time_budget is given: as many epochs
# as fit in DEFAULT_BUDGET_S seconds of training, at most DEFAULT_EPOCHS (docs/recipe.md).
DEFAULT_EPOCHS = 60
DEFAULT_BUDGET_S = 900.0

# Fixed training images whose BatchNorm statistics are recomputed each epoch ("precise BN"):
# this many batches.
BN_BATCHES = 16

# Decoded images are cached in memory by default while they take at most this many bytes.
CACHE_BELOW_BYTES = 1 << 30


def _option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            choices: tuple | None = None, metavar: str | None = None, auto: bool = False) -> Any:  # fmt: skip
    """A TrainConfig field with what the command line and validation need: help, bounds, choices
    (``auto``: the flag also takes the word ``auto``, which is the field's None)."""
    meta = {"help": help, "low": low, "high": high, "choices": choices, "metavar": metavar, "auto": auto}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """How ``simplecnn train`` trains: the recipe and the data handling.

    Each field's ``metadata`` holds its help text, bounds and choices; ``__post_init__`` checks
    them and the command line builds its flags from them (:func:`flag_fields`), so a default,
    a bound or a help text is written once, here.
    """

    style: str = _option("functional", "which Keras style builds the model", choices=STYLE_NAMES)
    image_size: int | None = _option(
        None, "images are resized to this side in pixels; auto (the default): the largest of "
        "256 (the seed's), 192, 128, 96 and 64 at which the time budget fits 20 epochs, timed "
        "on a few steps before training, and no larger than the images need (256 when --epochs "
        "is given without --time-budget)",
        low=4, high=MAX_SIDE, metavar="PIXELS|auto", auto=True)  # fmt: skip
    channels: int = _option(3, "3: RGB (the seed); 1: grayscale", choices=(1, 3))
    epochs: int | None = _option(
        None, "epochs of the schedule (default: as many as fit in "
        f"{DEFAULT_BUDGET_S / 60:g} minutes of training, at most {DEFAULT_EPOCHS}; with "
        "--time-budget: at most this many)", low=1, high=100_000)  # fmt: skip
    batch_size: int = _option(16, "images per optimizer step", low=1, high=8192)
    validation_split: float = _option(
        0.2, "fraction of each class held out for validation when the folder has no train/val "
        "split (0: none)", low=0.0, high=0.99, metavar="FRACTION")  # fmt: skip
    seed: int = _option(0, "seeds weights, dropout, the validation split, shuffling and "
                        "augmentation", low=0, high=2**32 - 1)  # fmt: skip
    augment: bool | None = _option(
        None, "random flip, +-10 degree rotation, 0.9-1.1 zoom, +-10%% shift, brightness and "
        f"contrast of training images (default: on below {AUGMENT_BELOW:,} training images)")
    label_smoothing: float = _option(
        0.0, "label smoothing: train towards (1 - EPS) on the true class and EPS spread evenly "
        "over all classes, Keras's cross-entropy label_smoothing (0: off)",
        low=0.0, high=0.5, metavar="EPS")  # fmt: skip
    mix: str | None = _option(
        None, "mix each training batch's images in pairs, their targets in the same proportion: "
        "mixup (blend the whole images, Beta(0.2, 0.2)) or cutmix (paste a patch, Beta(1, 1)); "
        "off by default", choices=tuple(MIX_ALPHA))  # fmt: skip
    class_weight: str | None = _option(None, "weight classes inversely to their frequency",
                                       choices=("balanced",))  # fmt: skip
    optimizer: str = _option("adam", "adam, or adamw (decoupled weight decay)",
                             choices=("adam", "adamw"))  # fmt: skip
    weight_decay: float = _option(0.004, "AdamW's weight decay (ignored by Adam)", low=0.0, high=1.0)
    learning_rate: float = _option(1e-3, "peak learning rate", low=1e-9, high=10.0, metavar="LR")
    schedule: str = _option("cosine", "cosine: linear warm-up, then cosine decay to 1%% over the "
                            "planned epochs; constant", choices=("cosine", "constant"))  # fmt: skip
    warmup_epochs: int = _option(1, "epochs of linear learning-rate warm-up (cosine schedule)",
                                 low=0, high=100_000)  # fmt: skip
    precise_bn: bool = _option(True, "recompute BatchNorm statistics on training images before "
                               "each validation (\"precise BN\")")  # fmt: skip
    ema_epochs: float = _option(
        5.0, "validate, keep and return a moving average of the weights over about this many "
        "epochs, at most a tenth of the planned epochs (0: the raw weights); training itself "
        "runs on the raw weights",
        low=0.0, high=100_000.0, metavar="N")  # fmt: skip
    patience: int | None = _option(
        None, "early stopping: epochs without a better validation loss before stopping "
        "(default: off; the schedule sets the length)", low=1, high=100_000)  # fmt: skip
    cache: bool | None = _option(
        None, "keep decoded images in memory after the first epoch (default: when the decoded "
        f"training and validation images fit in {CACHE_BELOW_BYTES / 2**30:g} GiB)")
    precision: str = _option(
        "auto", "training arithmetic: auto picks mixed_bfloat16 where the hardware computes it "
        "fast (simplecnn.hardware); the kept model is float32 either way", choices=PRECISIONS)
    time_budget: float | None = _option(
        None, "seconds of training: the number of epochs, and with it the warm-up and cosine "
        "decay, is planned from the measured time of the first epochs to end within them",
        low=0.001, high=30 * 86400.0, metavar="SECONDS")  # fmt: skip
    check_data: bool = _option(True, "before training, look for exact and near copies, leaks "
                               "between training and validation and label conflicts (as "
                               "`simplecnn check`), and warn")  # fmt: skip
    drop_duplicates: bool = _option(False, "leave copies out of training: one of each group is "
                                    "kept, leaked and conflicting ones go (files are not touched)")  # fmt: skip

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        if self.image_size is not None and self.image_size < 4:
            raise ConfigError(
                f"image_size must be at least 4 (two 2x2 poolings). Received: {self.image_size}"
            )

    @property
    def soft_targets(self) -> bool:
        """Whether a training target may be spread over classes (label smoothing, mixing)."""
        return self.label_smoothing > 0 or self.mix is not None

    def augment_for(self, n_train: int) -> bool:
        """Whether to augment a training set of ``n_train`` images."""
        return n_train < AUGMENT_BELOW if self.augment is None else bool(self.augment)

    def cache_for(self, n_images: int) -> bool:
        """Whether to keep ``n_images`` decoded images in memory."""
        if self.cache is not None:
            return bool(self.cache)
        side = self.image_size or 256  # auto is resolved before this is asked (training/sizing.py)
        return n_images * side**2 * self.channels <= CACHE_BELOW_BYTES

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_field(f: dataclasses.Field, value: Any) -> None:
    """Check one TrainConfig value against its field's type, choices and bounds."""
    meta = f.metadata
    optional = f.default is None
    if value is None and optional:
        return
    kind = f.type.split(" | ")[0] if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    received = f"Received: {f.name}={value!r}"
    if meta.get("choices"):
        if value not in meta["choices"] or isinstance(value, bool) != isinstance(meta["choices"][0], bool):
            allowed = ", ".join(map(repr, meta["choices"]))
            raise ConfigError(f"Unknown {f.name} {value!r}: {f.name} must be one of {allowed}"
                              f"{' or None' if optional else ''}. {received}")  # fmt: skip
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{f.name} must be True or False{' or None' if optional else ''}. {received}")
        return
    ok = _is_int(value) if kind == "int" else _is_number(value)
    low, high = meta.get("low"), meta.get("high")
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        what = "an integer" if kind == "int" else "a finite number"
        raise ConfigError(f"{f.name} must be {what} in [{low:g}, {high:g}]. {received}")


def flag_fields() -> list[dataclasses.Field]:
    """TrainConfig's fields, in order: what ``train`` and ``lr-find`` take as flags."""
    return list(dataclasses.fields(TrainConfig))


# The seed tutorial's plain recipe, for comparisons: Keras defaults (Adam 1e-3, constant),
# no augmentation, batch 32, BatchNorm's own moving averages, no early stopping to speak of.
PLAIN_RECIPE = dict(
    augment=False, optimizer="adam", learning_rate=1e-3, schedule="constant", precise_bn=False,
    batch_size=32, patience=10_000, ema_epochs=0.0,
)  # fmt: skip
