"""Multi-process data-parallel training on JAX with Keras's distribution API.

``tf.distribute.MultiWorkerMirroredStrategy`` does not work with Keras 3 (keras-team/keras#20585),
so simplecnn uses Keras's own ``keras.distribution.DataParallel`` on the JAX backend: every process
holds a replica of the model, reads its own slice of each global batch, and XLA all-reduces the
gradients (over gloo on CPU). Process 0 alone writes the run directory.

Settings come from flags (``--coordinator HOST:PORT --num-processes N --process-id I``) or the
environment (``SIMPLECNN_COORDINATOR``, ``SIMPLECNN_NUM_PROCESSES``, ``SIMPLECNN_PROCESS_ID``),
so a cluster launcher can start the same command everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from simplecnn.errors import UsageError

__all__ = ["DistConfig", "from_env", "initialize", "current", "is_chief", "TIMEOUT_S"]

# Seconds to wait for all processes to join, and without a heartbeat before a process that
# died is declared dead and the others stop ($SIMPLECNN_DIST_TIMEOUT_S overrides).
TIMEOUT_S = int(os.environ.get("SIMPLECNN_DIST_TIMEOUT_S", "60"))

ENV = {
    "coordinator": "SIMPLECNN_COORDINATOR",
    "num_processes": "SIMPLECNN_NUM_PROCESSES",
    "process_id": "SIMPLECNN_PROCESS_ID",
}


@dataclass(frozen=True)
class DistConfig:
    """Where this process stands in a multi-process job."""

    coordinator: str  # HOST:PORT of process 0's coordination service
    num_processes: int
    process_id: int

    def __post_init__(self) -> None:
        host, _, port = self.coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(
                f"coordinator must be HOST:PORT (for example 127.0.0.1:12345). "
                f"Received: {self.coordinator!r}"
            )
        if self.num_processes < 1:
            raise UsageError(f"num_processes must be >= 1. Received: {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise UsageError(
                f"process_id must be in [0, {self.num_processes}). Received: {self.process_id}"
            )


def from_env(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> DistConfig | None:
    """Flags first, then SIMPLECNN_* environment variables; None for a single process."""
    coordinator = coordinator or os.environ.get(ENV["coordinator"])
    try:
        if num_processes is None and os.environ.get(ENV["num_processes"]):
            num_processes = int(os.environ[ENV["num_processes"]])
        if process_id is None and os.environ.get(ENV["process_id"]):
            process_id = int(os.environ[ENV["process_id"]])
    except ValueError as exc:
        raise UsageError(f"bad {ENV['num_processes']} or {ENV['process_id']}: {exc}") from None
    if num_processes in (None, 1) and coordinator is None:
        return None
    if coordinator is None or num_processes is None or process_id is None:
        raise UsageError(
            "multi-process training needs --coordinator HOST:PORT, --num-processes N and "
            "--process-id I (or the SIMPLECNN_* environment variables), all three"
        )
    return DistConfig(coordinator, num_processes, process_id)


_CURRENT: DistConfig | None = None


def initialize(config: DistConfig) -> None:
    """Join the job and make Keras replicate models across every process's devices."""
    global _CURRENT
    import keras

    if keras.backend.backend() != "jax":
        raise UsageError(
            "multi-process training runs on the JAX backend (Keras's distribution API); pass "
            "--backend jax or set KERAS_BACKEND=jax"
        )
    import jax

    # CPU devices all-reduce over gloo (no effect on GPUs). It must be set before JAX starts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=config.coordinator,
        num_processes=config.num_processes,
        process_id=config.process_id,
        initialization_timeout=TIMEOUT_S,
        heartbeat_timeout_seconds=TIMEOUT_S,
        shutdown_timeout_seconds=TIMEOUT_S,
    )
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )
    _CURRENT = config


def current() -> DistConfig | None:
    """The job this process joined, or None."""
    return _CURRENT


def is_chief() -> bool:
    """True in a single process, and in process 0 of a job: the one that writes files."""
    return _CURRENT is None or _CURRENT.process_id == 0
