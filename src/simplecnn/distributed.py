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

__all__ = ["DistConfig", "agree", "from_env", "initialize", "process_slice", "launch", "timeout_s"]

# Seconds to wait for all processes to join, and without a heartbeat before a process that
# died is declared dead and the others stop ($SIMPLECNN_DIST_TIMEOUT_S overrides).
TIMEOUT_S = 60


def timeout_s() -> int:
    """The coordination timeout: $SIMPLECNN_DIST_TIMEOUT_S (read when a job starts), else 60."""
    text = os.environ.get("SIMPLECNN_DIST_TIMEOUT_S", "")
    if not text:
        return TIMEOUT_S
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"SIMPLECNN_DIST_TIMEOUT_S must be a positive integer. Received: {text!r}")
    return int(text)

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


def initialize(config: DistConfig) -> None:
    """Join the job and make Keras replicate models across every process's devices.

    What changes is Keras's own distribution setting (``keras.distribution.set_distribution``),
    which every model built afterwards follows; :func:`process_slice` reads it back.
    """
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
        initialization_timeout=timeout_s(),
        heartbeat_timeout_seconds=timeout_s(),
        shutdown_timeout_seconds=timeout_s(),
    )
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )


def process_slice() -> tuple[int, int]:
    """``(this process's index, number of processes)`` of the job Keras's distribution setting
    spans; ``(0, 1)`` without one. Process 0 is the chief, the one that writes files."""
    import keras

    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def agree(value: float) -> float:
    """Process 0's ``value`` in every process of a multi-process job (``value`` without one).

    Decisions taken from measured time (the time budget's plan) must be the same in every
    process, or their collective steps stop matching.
    """
    if process_slice()[1] == 1:
        return float(value)
    import numpy as np
    from jax.experimental import multihost_utils

    return float(multihost_utils.broadcast_one_to_all(np.float64(value)))


def launch(num_processes: int, argv: list[str], port: int | None = None, debug: bool = False,
           poll_s: float = 0.2) -> tuple[int, int] | None:  # fmt: skip
    """Run ``simplecnn ARGV`` as ``num_processes`` local processes of one job and watch them.

    If one exits with an error, the others are stopped at once (SIGTERM, then SIGKILL after
    10 s). Returns None when all finished, else ``(process index, exit code)`` of the first
    that failed.
    """
    import signal
    import socket
    import subprocess
    import sys
    import time

    if not argv or argv[0] != "train":
        raise UsageError("launch runs a train command: simplecnn launch --num-processes 2 train DATA --out RUN")
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    procs = []
    for i in range(num_processes):
        env = {**os.environ, "KERAS_BACKEND": "jax", ENV["coordinator"]: f"127.0.0.1:{port}",
               ENV["num_processes"]: str(num_processes), ENV["process_id"]: str(i)}  # fmt: skip
        cmd = [sys.executable, "-m", "simplecnn", *(["--debug"] if debug else []), *argv]
        procs.append(subprocess.Popen(cmd, env=env))
    failed = None
    try:
        while True:
            codes = [p.poll() for p in procs]  # poll every process, each time
            failed = next(((i, c) for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed or all(c == 0 for c in codes):
                break
            time.sleep(poll_s)
    finally:
        if failed or any(p.poll() is None for p in procs):
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.time() + 10
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    p.kill()
    return failed
