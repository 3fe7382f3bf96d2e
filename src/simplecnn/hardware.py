"""What this machine computes fast, and the settings simplecnn picks from it.

Every choice here was measured on the seed's model with ``benchmarks/defaults_sweep.py``
(recorded in ``benchmarks/results/defaults_sweep.txt``; 2-core AVX-512 CPU with AVX512_BF16;
``simplecnn bench`` shows the result against Keras's defaults):

* **Precision.** Keras's ``mixed_bfloat16`` policy (bfloat16 compute, float32 weights) trains
  about twice as fast as float32 on CPUs with AVX512_BF16 or AMX on the TensorFlow and PyTorch
  backends (TensorFlow at 256 px: 6.2 vs 3.1 img/s; 64 px: 98-108 vs 50-77; PyTorch at 64 px:
  83-85 vs 50-53) and brings nothing on JAX's CPU backend, so ``"auto"`` picks it only where it
  was measured to help (and on GPUs of compute capability 8.0 or newer, bfloat16's fast path
  there; no GPU was measured). On hymenoptera at 64 px it reached the same validation accuracy
  as float32 within one image of 153 (README, "the training recipe"). It is a *training*
  setting: the model a run keeps is saved in float32 (bfloat16 only rounds the computation, the
  weights stay float32), so evaluation, prediction and exports are float32 and give the same
  numbers on every machine.
* **XLA.** On TensorFlow's CPU backend ``jit_compile=True`` trained 2.3-8x slower than without
  (256 px float32: 1.3-1.4 vs 3.1 img/s; 64 px: 12.5 vs 50-77): simplecnn compiles without it
  there, and leaves Keras's ``"auto"`` everywhere else (JAX always compiles; PyTorch's ``auto``
  runs eagerly; on a GPU XLA is Keras's own choice).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator

from simplecnn.config import PRECISIONS
from simplecnn.errors import ConfigError, UsageError

__all__ = ["PRECISIONS", "cpu_flags", "fast_bfloat16", "training_precision", "jit_compile",
           "dtype_policy", "available_memory_bytes", "training_memory_bytes",
           "check_training_memory"]  # fmt: skip

@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _gpu_capability(backend: str) -> tuple[int, int] | None:
    """Compute capability of the first GPU the backend sees, or None (no GPU, or unknown)."""
    try:
        if backend == "torch":
            import torch

            return tuple(torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else None
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            cap = getattr(gpus[0], "compute_capability", None) if gpus else None
            return tuple(int(p) for p in str(cap).split(".")[:2]) if cap else None
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                cap = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
                return tuple(cap) if cap else None
    except Exception:  # a broken driver: behave as on a CPU
        return None
    return None


def has_gpu(backend: str | None = None) -> bool:
    import keras

    return _gpu_capability(backend or keras.backend.backend()) is not None


def fast_bfloat16(backend: str | None = None) -> bool:
    """Whether bfloat16 compute is measured (or known) to be fast on this machine and backend."""
    import keras

    backend = backend or keras.backend.backend()
    cap = _gpu_capability(backend)
    if cap is not None:
        return cap >= (8, 0)
    if backend == "jax":  # measured: XLA's CPU backend gains nothing from bfloat16
        return False
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def training_precision(setting: str = "auto", backend: str | None = None) -> str:
    """The Keras dtype policy training uses: ``setting`` itself, or the measured choice for auto."""
    if setting not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}. Received: {setting!r}")
    if setting == "auto":
        return "mixed_bfloat16" if fast_bfloat16(backend) else "float32"
    return setting


def jit_compile(backend: str | None = None) -> bool | str:
    """``jit_compile`` for ``model.compile``: off for TensorFlow on a CPU, Keras's auto otherwise."""
    import keras

    backend = backend or keras.backend.backend()
    if backend == "tensorflow" and not has_gpu(backend):
        return False
    return "auto"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build models under Keras dtype policy ``name`` inside; the previous policy after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# --- memory ---------------------------------------------------------------------------------

# What a training process holds besides the activations of a step: the backend, the model
# and its optimizer, read-ahead decoding. Measured peak resident memory of `simplecnn train`
# (TensorFlow, batch 16, bfloat16) was 0.9 GiB at 64 px, where activations are 66 MiB.
TRAIN_BASE_BYTES = 1 << 30
# A training step keeps every layer's forward output for the backward pass and the
# gradients flowing back: about twice the forward activations, counted as float32.
ACTIVATION_FACTOR = 2 * 4


def available_memory_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, or a cgroup limit if lower."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            used = int(f.read().strip())
        if limit.isdigit():
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def training_memory_bytes(model_config: Any, batch_size: int) -> int:
    """Estimated peak memory of training ``model_config`` at ``batch_size`` images a step."""
    return TRAIN_BASE_BYTES + ACTIVATION_FACTOR * batch_size * model_config.activation_elements()


def check_training_memory(model_config: Any, batch_size: int, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a step that would not fit in this machine's memory.

    Raises:
        UsageError: one line with the estimate, the memory available and what would fit.
    """
    available = available_memory_bytes() if available is None else available
    need = training_memory_bytes(model_config, batch_size)
    if available is None or need <= available:
        return
    h, w, c = model_config.input_shape
    side = max(h, w)
    fits = [s for s in _sides(side) if training_memory_bytes(
        model_config.replace(input_shape=(s, s, c)), batch_size) <= available]  # fmt: skip
    per_image = ACTIVATION_FACTOR * model_config.activation_elements()
    batch = max(0, (available - TRAIN_BASE_BYTES) // per_image)
    hint = [f"an image size of at most {max(fits)}" if fits else None,
            f"a batch size of at most {batch}" if batch >= 1 else None]  # fmt: skip
    hint_text = " or ".join(h for h in hint if h) or "a machine with more memory"
    raise UsageError(
        f"training at {h}x{w} px with batch size {batch_size} needs about {_gib(need)} of memory "
        f"(estimate), and this machine has {_gib(available)} available; use {hint_text}"
    )


def _sides(limit: int) -> list[int]:
    """Candidate image sides below ``limit`` (multiples of 8, and the small ones)."""
    return sorted({s for s in [*range(8, min(limit, 8193), 8), 4] if s < limit})


def _gib(n: float) -> str:
    if n >= 1 << 40:
        return f"{n / (1 << 40):,.1f} TiB"
    return f"{n / (1 << 30):.1f} GiB"
