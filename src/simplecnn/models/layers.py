"""The layer factories the three builders share, so each style builds the same layers.

Layer names are part of the contract: they are identical in every style
(``block1_conv1`` ... ``block1_pool``, ``block1_bn``, ``block1_dropout``, ``head_pool``,
``head_dense``, ``predictions``), so weights, summaries and Grad-CAM can name a layer
whatever the style. Layers are created in the same order everywhere, so
``keras.utils.set_random_seed`` gives every style the same initial weights and dropout masks.
"""

from __future__ import annotations

import keras
from keras import layers

from simplecnn.config import ModelConfig

__all__ = ["block_layers", "head_layers", "block_name", "LAST_CONV_LAYER"]


def block_name(index: int) -> str:
    """Name of conv block ``index`` (0-based) as a container: ``conv_block1``."""
    return f"conv_block{index + 1}"


def block_layers(config: ModelConfig, index: int) -> list[keras.layers.Layer]:
    """The layers of conv block ``index`` (0-based), in order.

    Shapes for the seed's block 1: (None, 256, 256, 3) -> conv x2 -> (None, 256, 256, 64)
    -> pool/bn/dropout -> (None, 128, 128, 64).
    """
    prefix = f"block{index + 1}"
    out: list[keras.layers.Layer] = [
        layers.Conv2D(
            config.filters[index],
            config.kernel_size,
            strides=1,
            padding="same",
            activation="relu",
            name=f"{prefix}_conv{j + 1}",
        )
        for j in range(config.convs[index])
    ]
    out += [
        layers.MaxPool2D(name=f"{prefix}_pool"),
        layers.BatchNormalization(name=f"{prefix}_bn"),
        layers.Dropout(config.dropout[index], name=f"{prefix}_dropout"),
    ]
    return out


def head_layers(config: ModelConfig) -> list[keras.layers.Layer]:
    """The classifier head: GlobalMaxPool -> Dense(relu) -> sigmoid (1 unit) or softmax."""
    activation = "sigmoid" if config.num_classes == 1 else "softmax"
    return [
        layers.GlobalMaxPool2D(name="head_pool"),
        layers.Dense(config.dense_units, activation="relu", name="head_dense"),
        # float32 under any dtype policy: probabilities and the loss need its precision
        # (Keras's mixed-precision advice for the last layer).
        layers.Dense(config.output_units, activation=activation, dtype="float32", name="predictions"),
    ]


def last_conv_name(config: ModelConfig) -> str:
    """Name of the last convolution (Grad-CAM's default layer)."""
    return f"block{config.num_blocks}_conv{config.convs[-1]}"


LAST_CONV_LAYER = last_conv_name(ModelConfig())
