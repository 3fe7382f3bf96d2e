"""The Subclassing style: a ``keras.Model`` subclass that owns its blocks and writes ``call``.

The seed's version is unbuilt after ``model.build(...)`` on Keras 3 (build no longer traces
``call``). This one builds every block with the symbolic batch size in ``__init__``, so it is
usable, summarizable and savable as soon as it is constructed.
"""

from __future__ import annotations

from typing import Any

import keras

from simplecnn.config import ModelConfig
from simplecnn.models.layers import block_layers, block_name, head_layers

__all__ = ["SimpleCNN", "build_subclassing"]


@keras.saving.register_keras_serializable(package="simplecnn")
class SimpleCNN(keras.Model):
    """The seed's classifier: ``conv_block1`` -> ``conv_block2`` -> ``classifier``.

    Args:
        config: the architecture (a ``ModelConfig`` or its dict); the seed's by default.
        **kwargs: passed to ``keras.Model`` (``name``, ``dtype``, ...).
    """

    def __init__(self, config: ModelConfig | dict | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("name", "simplecnn_subclassing")
        super().__init__(**kwargs)
        if config is None:
            config = ModelConfig()
        elif isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        self.config = config
        self.blocks = [
            keras.Sequential(block_layers(config, i), name=block_name(i))
            for i in range(config.num_blocks)
        ]
        self.classifier = keras.Sequential(head_layers(config), name="classifier")
        self.build((None, *config.input_shape))

    def build(self, input_shape: tuple) -> None:
        # Build each block on the symbolic shape, batch None, so that summaries show
        # (None, 128, 128, 64) and not "unbuilt" or the batch size of a first call.
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.classifier.build(shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        # `training` is declared so Keras routes fit/predict's mode to BatchNorm and Dropout.
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return self.classifier(x, training=training)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.config.output_units)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable, "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SimpleCNN":
        config = dict(config)
        model_config = ModelConfig.from_dict(config.pop("config"))
        config.pop("dtype", None)
        return cls(model_config, **config)


def build_subclassing(config: ModelConfig) -> keras.Model:
    """The seed's model as a built :class:`SimpleCNN`."""
    return SimpleCNN(config)
