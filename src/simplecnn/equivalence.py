"""Proof that the three styles are one model: weight transfer and the checks behind ``compare``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import keras
import numpy as np

from simplecnn.config import ModelConfig
from simplecnn.models import STYLES, build_model, leaf_layers

__all__ = [
    "transfer_weights",
    "sync_random_state",
    "randomize_weights",
    "gradients",
    "param_counts",
    "StyleCheck",
    "compare_styles",
    "compare_backends",
    "format_compare",
    "TOLERANCE",
]

# The largest |difference| compare accepts between styles (outputs and gradients).
TOLERANCE = 1e-6


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


def _max_abs_diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64"))))


@contextlib.contextmanager
def _dot_on_path() -> Iterator[None]:
    """graphviz's `dot` may live beside this interpreter (a virtual environment's bin/): put
    that folder on PATH while plot_model runs, and restore PATH after."""
    saved = os.environ.get("PATH", "")
    bindir = os.path.dirname(sys.executable)
    if bindir not in saved.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + saved
    try:
        yield
    finally:
        os.environ["PATH"] = saved


def _can_plot(model: keras.Model, path: str) -> tuple[bool, str]:
    """Whether ``keras.utils.plot_model`` can draw the model (into ``path``, as a PNG signed
    as simplecnn's); the reason if not."""
    from PIL import Image, PngImagePlugin

    from simplecnn.outputs import PNG_METADATA, atomic_write

    try:
        with atomic_write(path, suffix=".png") as tmp:
            with _dot_on_path():
                keras.utils.plot_model(model, to_file=tmp, show_shapes=True, show_layer_names=True)
            info = PngImagePlugin.PngInfo()
            for key, value in PNG_METADATA.items():
                info.add_text(key, value)
            with Image.open(tmp) as drawn:
                drawn.load()
                drawn.save(tmp, "PNG", pnginfo=info)
    except Exception as exc:  # plot_model raises ImportError, OSError, ... by environment
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    ok = os.path.exists(path) and os.path.getsize(path) > 0
    return ok, "" if ok else "plot_model wrote no file"


@dataclass
class StyleCheck:
    """One row of ``compare``: what was measured for one style on one backend."""

    style: str
    backend: str
    total_params: int
    trainable_params: int
    non_trainable_params: int
    output_shape: tuple
    max_output_diff: float
    max_grad_diff: float
    save_load_diff: float
    plot_ok: bool
    plot_error: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        d["ok"] = self.ok
        return d


def compare_styles(
    config: ModelConfig | None = None,
    styles: list[str] | None = None,
    batch_size: int = 2,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    plot_dir: str | None = None,
) -> list[StyleCheck]:
    """Check that every style is the Functional model, on the current Keras backend.

    The Functional model gets random weights (BatchNorm statistics included); each style gets
    them by :func:`transfer_weights` and must then give the same outputs in inference mode,
    the same gradients on one batch in training mode (dropout state synchronized), the same
    predictions after a ``.keras`` save and load, and be drawable by ``plot_model``.

    Args:
        config: the architecture (the seed's by default).
        styles: which styles to check (all by default).
        batch_size: images in the random test batch.
        seed: seed of the random weights and batch.
        tolerance: the largest |difference| accepted.
        plot_dir: where ``plot_model`` drawings are kept (a temporary folder by default).

    Returns:
        One :class:`StyleCheck` per style.
    """
    config = config or ModelConfig()
    styles = list(styles or STYLES)
    if plot_dir is not None:
        _check_plot_dir(plot_dir, styles)
    from simplecnn.hardware import check_training_memory

    check_training_memory(config, batch_size)  # a training step per style, refused if too big
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (batch_size, *config.input_shape)).astype("float32")
    if config.num_classes == 1:
        y = rng.integers(0, 2, (batch_size, 1)).astype("float32")
    else:
        y = rng.integers(0, config.num_classes, (batch_size,)).astype("int32")

    keras.utils.set_random_seed(seed)
    # `source` only holds the starting state: a training-mode pass moves BatchNorm statistics
    # and dropout generators, so every model, the reference included, starts from a copy.
    source = build_model("functional", config)
    randomize_weights(source, seed)

    def run(style: str) -> tuple[keras.Model, np.ndarray, dict[str, np.ndarray]]:
        model = build_model(style, config)
        transfer_weights(source, model)
        sync_random_state(source, model)
        out = keras.ops.convert_to_numpy(model(x, training=False))
        # Unseeded Dropout on the torch backend draws from torch's global generator.
        keras.utils.set_random_seed(seed)
        return model, out, gradients(model, x, y, training=True)

    reference, ref_out, ref_grads = run("functional")

    tmp = tempfile.mkdtemp(prefix="simplecnn-compare-")
    try:
        rows = []
        for style in styles:
            model, out, grads = run(style)
            missing = sorted(set(ref_grads) ^ set(grads))
            grad_diff = (
                float("inf")
                if missing
                else max(_max_abs_diff(ref_grads[k], grads[k]) for k in ref_grads)
            )
            # The training-mode pass above moved BatchNorm statistics: compare with the model now.
            out_now = keras.ops.convert_to_numpy(model(x, training=False))
            path = os.path.join(tmp, f"{style}.keras")
            model.save(path)
            loaded = keras.models.load_model(path)
            loaded_out = keras.ops.convert_to_numpy(loaded(x, training=False))
            plot_path = os.path.join(plot_dir or tmp, f"{style}.png")
            plot_ok, plot_error = _can_plot(model, plot_path)
            total, trainable, non_trainable = param_counts(model)
            row = StyleCheck(
                style=style,
                backend=keras.backend.backend(),
                total_params=total,
                trainable_params=trainable,
                non_trainable_params=non_trainable,
                output_shape=tuple(model.compute_output_shape((None, *config.input_shape))),
                max_output_diff=_max_abs_diff(ref_out, out),
                max_grad_diff=grad_diff,
                save_load_diff=_max_abs_diff(out_now, loaded_out),
                plot_ok=plot_ok,
                plot_error=plot_error,
            )
            ref_total = param_counts(reference)
            if (total, trainable, non_trainable) != ref_total:
                row.failures.append(f"parameter counts {row.total_params} != {ref_total}")
            if row.max_output_diff > tolerance:
                row.failures.append(f"outputs differ by {row.max_output_diff:.3g}")
            if missing or row.max_grad_diff > tolerance:
                row.failures.append(
                    f"gradients differ by {row.max_grad_diff:.3g}"
                    + (f" (weights not in both: {missing})" if missing else "")
                )
            if row.save_load_diff > tolerance:
                row.failures.append(f"save/load changes outputs by {row.save_load_diff:.3g}")
            if type(loaded) is not type(model):
                row.failures.append(
                    f"load_model gave a {type(loaded).__name__}, not a {type(model).__name__}"
                )
            if not plot_ok:
                row.failures.append(f"plot_model failed ({plot_error})")
            rows.append(row)
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_plot_dir(plot_dir: str, styles: list[str]) -> None:
    """The plot folder may hold anything, but the PNGs compare writes must be new or its own."""
    from simplecnn.errors import OutputError
    from simplecnn.outputs import check_file_target, is_own_png

    if os.path.lexists(plot_dir) and not os.path.isdir(plot_dir):
        raise OutputError(f"--plot-dir {plot_dir}: exists and is not a folder")
    try:
        os.makedirs(plot_dir, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--plot-dir {plot_dir}: cannot create the folder ({exc.strerror})") from None
    for style in styles:
        check_file_target(os.path.join(plot_dir, f"{style}.png"), "--plot-dir", is_own_png)


def compare_backends(config: ModelConfig, backends: str = "current",
                     plot_dir: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`compare_styles` on each backend of ``--backends`` (others in child processes).

    Returns:
        One dict per (style, backend); a backend whose process failed gives one failing row.
    """
    from simplecnn.backends import current, parse_backends, run_in_backend
    from simplecnn.errors import BackendError

    rows: list[dict[str, Any]] = []
    for backend in parse_backends(backends):
        if backend == current():
            rows += [c.to_dict() for c in compare_styles(config, plot_dir=plot_dir)]
            continue
        try:
            rows += run_in_backend(backend, "simplecnn.equivalence", [json.dumps(config.to_dict())])
        except BackendError as exc:
            rows.append({"style": "-", "backend": backend, "ok": False, "failures": [str(exc)]})
    return rows


def format_compare(rows: list[dict[str, Any]]) -> str:
    """``compare``'s table: one line per style and backend, then every failure."""
    header = ("style", "backend", "total", "trainable", "non-train", "output", "max|dout|",
              "max|dgrad|", "save/load", "plot_model", "ok")  # fmt: skip
    table = [header]
    for r in rows:
        if "total_params" not in r:
            table.append((r["style"], r["backend"], *["-"] * 8, "FAIL"))
            continue
        shape = "(" + ", ".join("None" if d is None else str(d) for d in r["output_shape"]) + ")"
        table.append((r["style"], r["backend"], f"{r['total_params']:,}", f"{r['trainable_params']:,}",
                      f"{r['non_trainable_params']:,}", shape, f"{r['max_output_diff']:.2e}",
                      f"{r['max_grad_diff']:.2e}", f"{r['save_load_diff']:.2e}",
                      "yes" if r["plot_ok"] else "NO", "ok" if r["ok"] else "FAIL"))  # fmt: skip
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in table]
    lines.insert(1, "-" * len(lines[0]))
    for r in rows:
        for failure in r.get("failures", []):
            lines.append(f"FAIL {r['style']} on {r['backend']}: {failure}")
    return "\n".join(lines)


if __name__ == "__main__":  # one backend's rows for compare_backends: python -m simplecnn.equivalence CONFIG_JSON
    print(json.dumps([c.to_dict() for c in compare_styles(ModelConfig.from_dict(json.loads(sys.argv[1])))]))
