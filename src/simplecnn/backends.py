"""The Keras backends: which are installed, running simplecnn under another one, and the one
computation that needs the backend itself, a gradient.

Keras picks its backend once per process, so work on another backend runs in a child process
(:func:`run_in_backend`). Everything else in simplecnn is ``keras.ops`` and runs anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any, Callable, Sequence

import numpy as np

from simplecnn.errors import BackendError, UsageError

__all__ = ["BACKENDS", "current", "installed", "parse_backends", "run_in_backend", "gradients"]

BACKENDS = ("tensorflow", "jax", "torch")


def current() -> str:
    """The backend this process uses (or will, once Keras is imported)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def installed() -> list[str]:
    """The backends whose package is installed, in BACKENDS order."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def parse_backends(text: str) -> list[str]:
    """``--backends``: "current", "all" / "installed", or a comma list of backend names."""
    if text == "current":
        return [current()]
    if text in ("all", "installed"):
        return installed()
    backends = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise UsageError(
            f"Unknown backend(s) {unknown or [text]} in --backends. Allowed: "
            f"{', '.join(BACKENDS)}, all (or installed), current"
        )
    missing = [b for b in backends if b not in installed()]
    if missing:
        raise UsageError(
            f"backend(s) {missing} not installed; install the extra, e.g. pip install "
            f"'simplecnn[{missing[0]}]'"
        )
    return backends


def run_in_backend(backend: str, module: str, args: Sequence[str]) -> Any:
    """Run ``python -m module ARGS`` under ``backend``; return the JSON its last stdout line holds.

    Raises:
        BackendError: the child failed or printed no JSON; its last stderr line says why.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise BackendError(f"{module} on the {backend} backend failed (exit {proc.returncode}): {last}")


def gradients(fn: Callable[[list], Any], values: Sequence[Any]) -> list[np.ndarray]:
    """d fn(values) / d values, as NumPy arrays, on the current Keras backend.

    ``fn`` takes the list of tensors and returns a scalar (a loss, or a sum of scores) computed
    with ``keras.ops`` or a model's ``stateless_call``, so it is differentiable everywhere:
    ``tf.GradientTape``, ``jax.grad`` and torch autograd are the only backend-specific lines.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        xs = [tf.convert_to_tensor(v) for v in values]
        with tf.GradientTape() as tape:
            for x in xs:
                tape.watch(x)
            total = fn(xs)
        return [g.numpy() for g in tape.gradient(total, xs)]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        return [np.asarray(g) for g in jax.grad(fn)([jnp.asarray(v) for v in values])]
    if backend == "torch":
        import torch

        xs = [v.detach().clone().requires_grad_(True) if torch.is_tensor(v)
              else torch.tensor(np.asarray(v), requires_grad=True) for v in values]  # fmt: skip
        with torch.enable_grad():
            fn(xs).backward()
        return [x.grad.detach().cpu().numpy() for x in xs]
    raise UsageError(f"gradients are not available on the {backend!r} backend")
