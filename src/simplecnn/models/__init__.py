"""One architecture spec, three Keras builders: the ``STYLES`` registry and ``build_model``."""

from __future__ import annotations

from typing import Callable

import keras

from simplecnn.config import STYLE_NAMES, ModelConfig
from simplecnn.errors import ConfigError
from simplecnn.models.functional import build_functional
from simplecnn.models.layers import last_conv_name
from simplecnn.models.sequential import build_sequential
from simplecnn.models.subclassing import SimpleCNN, build_subclassing

__all__ = ["STYLES", "build_model", "SimpleCNN", "leaf_layers", "last_conv_name", "check_style"]

# style name -> builder(config) -> built keras.Model. Tests parametrize over this.
STYLES: dict[str, Callable[[ModelConfig], keras.Model]] = {
    "sequential": build_sequential,
    "functional": build_functional,
    "subclassing": build_subclassing,
}
assert tuple(STYLES) == STYLE_NAMES, "config.STYLE_NAMES lists the styles the CLI offers"


def check_style(style: str) -> str:
    """Return ``style`` if registered, else raise a ``ValueError`` listing the styles."""
    if style not in STYLES:
        raise ConfigError(f"Unknown style {style!r}. Allowed: {', '.join(STYLES)}")
    return style


def build_model(style: str, config: ModelConfig | None = None) -> keras.Model:
    """Build the seed's classifier in one of the three Keras styles.

    Args:
        style: ``"sequential"``, ``"functional"`` or ``"subclassing"``.
        config: the architecture; ``ModelConfig()`` (the seed's model) when ``None``.

    Returns:
        A built ``keras.Model`` (weights created, summary complete).
    """
    check_style(style)
    if config is None:
        config = ModelConfig()
    elif not isinstance(config, ModelConfig):
        raise ConfigError(f"config must be a ModelConfig. Received: {type(config).__name__}")
    return STYLES[style](config)


def leaf_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The model's layers with nested containers (the subclassed blocks) flattened, in order."""
    out = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            out += leaf_layers(layer)
        else:
            out.append(layer)
    return out
