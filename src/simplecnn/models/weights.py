"""Weights across styles: copy them between any two of the three, give them test values, and
take gradients of one batch, keyed by a name every style shares (``"layer/variable"``)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from simplecnn.models import leaf_layers

__all__ = ["transfer_weights", "sync_random_state", "randomize_weights", "gradients", "param_counts"]


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in leaf_layers(model) if layer.weights]


def transfer_weights(source: keras.Model, target: keras.Model) -> list[tuple[str, str]]:
    """Copy every weight of ``source`` into ``target``, whatever the two models' styles.

    Layers are paired by name when both models use the same names (all simplecnn models do),
    otherwise by position among the layers that hold weights (for example a model built from
    the seed's code, whose layers are called ``conv2d_12`` ...), in which case their types must
    match. Every shape is checked before anything is written, so a mismatch leaves ``target``
    untouched.

    Args:
        source: the model to copy from (built).
        target: the model to copy into (built).

    Returns:
        The ``(source layer, target layer)`` name pairs, in the target's order.

    Raises:
        ValueError: the two models do not have the same layers and weight shapes.
    """
    src, dst = _weighted_layers(source), _weighted_layers(target)
    if len(src) != len(dst):
        raise ValueError(
            f"Cannot transfer weights: {source.name!r} has {len(src)} layers with weights "
            f"({', '.join(l.name for l in src)}) but {target.name!r} has {len(dst)} "
            f"({', '.join(l.name for l in dst)})."
        )
    src_by_name = {layer.name: layer for layer in src}
    if len(src_by_name) == len(src) and set(src_by_name) == {layer.name for layer in dst}:
        pairs = [(src_by_name[layer.name], layer) for layer in dst]
    else:
        pairs = list(zip(src, dst))
        for s, t in pairs:
            if type(s) is not type(t):
                raise ValueError(
                    f"Cannot transfer weights: layer {s.name!r} is a {type(s).__name__} in "
                    f"{source.name!r} but its counterpart {t.name!r} is a {type(t).__name__} "
                    f"in {target.name!r}."
                )
    values = []
    for s, t in pairs:
        sw, tw = s.weights, t.weights
        if len(sw) != len(tw):
            raise ValueError(
                f"Cannot transfer weights: layer {t.name!r} has {len(tw)} weights in "
                f"{target.name!r} but {len(sw)} in {source.name!r}."
            )
        for a, b in zip(sw, tw):
            if tuple(a.shape) != tuple(b.shape):
                raise ValueError(
                    f"Cannot transfer weights: {t.name}/{b.name} has shape {tuple(b.shape)} in "
                    f"{target.name!r} but {s.name}/{a.name} has shape {tuple(a.shape)} in "
                    f"{source.name!r}. Build both models with the same ModelConfig."
                )
        values.append(s.get_weights())
    for (_, t), v in zip(pairs, values):
        t.set_weights(v)
    return [(s.name, t.name) for s, t in pairs]


def sync_random_state(source: keras.Model, target: keras.Model) -> None:
    """Give ``target``'s dropout layers the random-generator state of ``source``'s (by name)."""
    states = {
        layer.name: layer.seed_generator.state.value
        for layer in leaf_layers(source)
        if getattr(layer, "seed_generator", None) is not None
    }
    for layer in leaf_layers(target):
        if layer.name in states and getattr(layer, "seed_generator", None) is not None:
            layer.seed_generator.state.assign(states[layer.name])


def randomize_weights(model: keras.Model, seed: int = 0) -> None:
    """Give every weight, BatchNorm statistics included, random non-trivial values.

    Freshly built BatchNorm layers are the identity in inference mode (mean 0, variance 1),
    which would hide a style that mixed up its statistics; this makes them count.
    """
    rng = np.random.default_rng(seed)
    for layer in leaf_layers(model):
        if not layer.weights:
            continue
        new = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "variance" in w.name or "gamma" in w.name:
                new.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
            else:
                new.append(rng.normal(0.0, 0.1, shape).astype("float32"))
        layer.set_weights(new)


def _loss_fn(model: keras.Model) -> keras.losses.Loss:
    units = leaf_layers(model)[-1].units  # the `predictions` Dense layer
    return (
        keras.losses.BinaryCrossentropy()
        if units == 1
        else keras.losses.SparseCategoricalCrossentropy()
    )


def _weight_key(model: keras.Model) -> dict[int, str]:
    """id(variable) -> "layer/variable", a style-independent name for each weight."""
    return {
        id(v): f"{layer.name}/{v.name}" for layer in leaf_layers(model) for v in layer.weights
    }


def gradients(
    model: keras.Model, x: np.ndarray, y: np.ndarray, training: bool = True
) -> dict[str, np.ndarray]:
    """Gradients of the model's loss on one batch, keyed ``"layer/variable"``, on any backend.

    Args:
        model: a simplecnn model.
        x: images, shape ``(batch, *input_shape)``, float32.
        y: labels (0/1 floats for the sigmoid head, class indices for softmax).
        training: the mode BatchNorm and Dropout run in.

    Returns:
        One NumPy array per trainable weight.
    """
    from simplecnn.backends import gradients as backend_gradients

    loss_fn = _loss_fn(model)
    variables = model.trainable_variables
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_of(params: list) -> Any:
        y_pred, _ = model.stateless_call(params, non_trainable, x, training=training)
        return loss_fn(y, y_pred)

    grads = backend_gradients(loss_of, [v.value for v in variables])
    keys = _weight_key(model)
    return {keys[id(v)]: g for v, g in zip(variables, grads)}


def param_counts(model: keras.Model) -> tuple[int, int, int]:
    """(total, trainable, non-trainable) parameter counts, as Keras's summary reports them."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable + non_trainable, trainable, non_trainable
