"""The Functional style: layers called on symbolic tensors from ``keras.Input``."""

from __future__ import annotations

import keras

from simplecnn.config import ModelConfig
from simplecnn.models.layers import block_layers, head_layers

__all__ = ["build_functional"]


def build_functional(config: ModelConfig) -> keras.Model:
    """The seed's model as a Functional ``keras.Model``."""
    inputs = keras.Input(shape=config.input_shape, name="image")
    x = inputs
    for i in range(config.num_blocks):
        for layer in block_layers(config, i):
            x = layer(x)
    for layer in head_layers(config):
        x = layer(x)
    return keras.Model(inputs, x, name="simplecnn_functional")
