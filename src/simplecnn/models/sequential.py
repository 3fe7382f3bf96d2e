"""The Sequential style: one flat list of layers."""

from __future__ import annotations

import keras

from simplecnn.config import ModelConfig
from simplecnn.models.layers import block_layers, head_layers

__all__ = ["build_sequential"]


def build_sequential(config: ModelConfig) -> keras.Model:
    """The seed's model as a ``keras.Sequential``; built (it starts with an Input)."""
    stack: list = [keras.Input(shape=config.input_shape, name="image")]
    for i in range(config.num_blocks):
        stack += block_layers(config, i)
    stack += head_layers(config)
    return keras.Sequential(stack, name="simplecnn_sequential")
