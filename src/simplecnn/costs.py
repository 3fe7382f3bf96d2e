"""What Keras's summary lacks: FLOPs and activation memory per layer, like torchinfo's estimates."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from simplecnn.models import leaf_layers

__all__ = ["LayerCost", "ModelCost", "model_cost", "format_cost"]


@dataclass(frozen=True)
class LayerCost:
    """Per-image cost of one layer."""

    name: str
    kind: str
    output_shape: tuple  # without the batch dimension
    params: int
    mult_adds: int  # multiply-accumulates of the forward pass
    activation_bytes: int  # size of the layer's output

    @property
    def flops(self) -> int:
        """Forward FLOPs, counted as 2 x multiply-adds."""
        return 2 * self.mult_adds


@dataclass(frozen=True)
class ModelCost:
    """Per-image totals of a model, with the per-layer rows."""

    layers: list[LayerCost]
    input_bytes: int
    param_bytes: int

    @property
    def mult_adds(self) -> int:
        return sum(layer.mult_adds for layer in self.layers)

    @property
    def forward_flops(self) -> int:
        return 2 * self.mult_adds

    @property
    def train_flops(self) -> int:
        """Forward + backward FLOPs of one training image.

        The backward pass costs two forward passes (gradient of the weights, gradient of the
        inputs), except that the first layer needs no gradient of its input.
        """
        first = next((layer.mult_adds for layer in self.layers if layer.mult_adds), 0)
        return 2 * (3 * self.mult_adds - first)

    @property
    def activation_bytes(self) -> int:
        """Forward activations of one image (every layer's output)."""
        return sum(layer.activation_bytes for layer in self.layers)


def _shape(tensor_shape: tuple) -> tuple:
    return tuple(int(d) for d in tensor_shape[1:])


def _mult_adds(layer: keras.layers.Layer, in_shape: tuple, out_shape: tuple) -> int:
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        in_ch = in_shape[-1] // layer.groups
        return int(np.prod(out_shape)) * kh * kw * in_ch
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(out_shape)) * in_shape[-1]
    return 0  # pooling, normalization, dropout: negligible next to the convolutions


def model_cost(model: keras.Model) -> ModelCost:
    """Per-layer and total per-image cost of a built simplecnn model (any style).

    Returns:
        A :class:`ModelCost`; FLOPs count 2 per multiply-add of Conv2D and Dense layers,
        activation memory the bytes of each layer's output for one image.
    """
    rows = []
    first_input = None
    for layer in leaf_layers(model):
        in_shape, out_shape = _shape(layer.input.shape), _shape(layer.output.shape)
        if first_input is None:
            first_input = in_shape
        itemsize = np.dtype(layer.compute_dtype).itemsize
        rows.append(
            LayerCost(
                name=layer.name,
                kind=type(layer).__name__,
                output_shape=out_shape,
                params=int(sum(np.prod(w.shape) for w in layer.weights)),
                mult_adds=_mult_adds(layer, in_shape, out_shape),
                activation_bytes=int(np.prod(out_shape)) * itemsize,
            )
        )
    param_bytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return ModelCost(
        layers=rows,
        input_bytes=int(np.prod(first_input or ())) * 4,
        param_bytes=param_bytes,
    )


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def format_cost(cost: ModelCost) -> str:
    """A text table of ``cost`` (per image) with torchinfo-style totals."""
    header = ("Layer (type)", "Output shape", "Params", "Mult-adds", "FLOPs", "Activations")
    rows = [
        (
            f"{c.name} ({c.kind})",
            "(" + ", ".join(map(str, c.output_shape)) + ")",
            f"{c.params:,}",
            _si(c.mult_adds, "") if c.mult_adds else "-",
            _si(c.flops, "FLOP") if c.flops else "-",
            _mb(c.activation_bytes),
        )
        for c in cost.layers
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r: tuple) -> str:
        return "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))
        )

    rule = "-" * len(line(header))
    total_params = sum(c.params for c in cost.layers)
    out = [
        "Cost per image (FLOPs = 2 x multiply-adds of Conv2D and Dense layers)",
        rule,
        line(header),
        rule,
        *map(line, rows),
        rule,
        f"Total params: {total_params:,}",
        f"Total mult-adds: {_si(cost.mult_adds, '')}",
        f"Forward FLOPs: {_si(cost.forward_flops, 'FLOP')} per image",
        f"Training FLOPs (forward + backward): {_si(cost.train_flops, 'FLOP')} per image",
        f"Input size: {_mb(cost.input_bytes)} per image",
        f"Forward activations: {_mb(cost.activation_bytes)} per image",
        f"Forward/backward pass size: {_mb(2 * cost.activation_bytes)} per image",
        f"Params size: {_mb(cost.param_bytes)}",
        f"Estimated total size (batch of 1): "
        f"{_mb(cost.input_bytes + 2 * cost.activation_bytes + cost.param_bytes)}",
    ]
    return "\n".join(out)
