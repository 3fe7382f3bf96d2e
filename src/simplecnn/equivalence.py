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
from simplecnn.models import STYLES, build_model
from simplecnn.models.weights import (
    gradients,
    param_counts,
    randomize_weights,
    sync_random_state,
    transfer_weights,
)  # fmt: skip

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

    from simplecnn.files import PNG_METADATA, atomic_write

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
    from simplecnn.hardware import check_training_memory

    config = config or ModelConfig()
    styles = list(styles or STYLES)
    if plot_dir is not None:
        _check_plot_dir(plot_dir, styles)
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
    reference = _Trial(source, "functional", config, x, y, seed)
    tmp = tempfile.mkdtemp(prefix="simplecnn-compare-")
    try:
        return [_check(reference, _Trial(source, style, config, x, y, seed), tolerance,
                       tmp, plot_dir or tmp) for style in styles]  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Trial:
    """One style given ``source``'s weights and dropout state: its inference outputs and its
    gradients of one training-mode batch."""

    def __init__(self, source: keras.Model, style: str, config: ModelConfig, x: np.ndarray,
                 y: np.ndarray, seed: int) -> None:  # fmt: skip
        self.style, self.x = style, x
        self.model = build_model(style, config)
        transfer_weights(source, self.model)
        sync_random_state(source, self.model)
        self.out = keras.ops.convert_to_numpy(self.model(x, training=False))
        keras.utils.set_random_seed(seed)  # unseeded Dropout on torch draws from torch's generator
        self.grads = gradients(self.model, x, y, training=True)


def _check(ref: _Trial, trial: _Trial, tolerance: float, tmp: str, plot_dir: str) -> StyleCheck:
    """``trial`` measured against the reference: counts, outputs, gradients, save/load, plot."""
    model, x = trial.model, trial.x
    missing = sorted(set(ref.grads) ^ set(trial.grads))
    grad_diff = float("inf") if missing else max(_max_abs_diff(ref.grads[k], trial.grads[k]) for k in ref.grads)
    # The training-mode pass moved BatchNorm statistics: compare with the model as it is now.
    out_now = keras.ops.convert_to_numpy(model(x, training=False))
    path = os.path.join(tmp, f"{trial.style}.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    plot_ok, plot_error = _can_plot(model, os.path.join(plot_dir, f"{trial.style}.png"))
    counts = param_counts(model)
    row = StyleCheck(trial.style, keras.backend.backend(), *counts,
                     output_shape=tuple(model.compute_output_shape((None, *x.shape[1:]))),
                     max_output_diff=_max_abs_diff(ref.out, trial.out), max_grad_diff=grad_diff,
                     save_load_diff=_max_abs_diff(out_now, keras.ops.convert_to_numpy(loaded(x, training=False))),
                     plot_ok=plot_ok, plot_error=plot_error)  # fmt: skip
    checks = [
        (counts != param_counts(ref.model), f"parameter counts {counts} != {param_counts(ref.model)}"),
        (row.max_output_diff > tolerance, f"outputs differ by {row.max_output_diff:.3g}"),
        (bool(missing) or grad_diff > tolerance, f"gradients differ by {grad_diff:.3g}"
         + (f" (weights not in both: {missing})" if missing else "")),
        (row.save_load_diff > tolerance, f"save/load changes outputs by {row.save_load_diff:.3g}"),
        (type(loaded) is not type(model),
         f"load_model gave a {type(loaded).__name__}, not a {type(model).__name__}"),
        (not plot_ok, f"plot_model failed ({plot_error})"),
    ]  # fmt: skip
    row.failures += [message for failed, message in checks if failed]
    return row


def _check_plot_dir(plot_dir: str, styles: list[str]) -> None:
    """The plot folder may hold anything, but the PNGs compare writes must be new or its own."""
    from simplecnn.errors import OutputError
    from simplecnn.files import check_file_target, is_own_png

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
