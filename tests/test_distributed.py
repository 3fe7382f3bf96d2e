"""Multi-process data-parallel training (JAX + Keras's distribution API) on 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import free_port
from imagegen import make_folder

HERE = os.path.dirname(__file__)
EXE = os.path.join(os.path.dirname(sys.executable), "simplecnn")
ENV = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
# 2 processes vs 1 with the same global batches: the all-reduce sums the two half-batch
# gradients in another order than one process does, and Adam turns such float rounding in
# near-zero gradients into update differences of up to about one step. Measured here after
# 8 steps at lr 3e-4 (see dist_worker.py): 3.0e-4, BatchNorm statistics included. Epoch
# losses agree within 5e-4 relative (measured 8.3e-5).
WEIGHT_TOLERANCE = 3e-3
LOSS_RTOL = 5e-4


class _Worker:
    """One dist_worker.py process. Its output goes to a file: a full pipe that nobody reads
    would block it, and the other process would then wait for it at a collective."""

    def __init__(self, data, out, weights, n, i, port, epochs=2, env=ENV):
        cmd = [sys.executable, os.path.join(HERE, "dist_worker.py"), data, str(out), str(weights),
               str(n), str(i), str(port), str(epochs)]  # fmt: skip
        self.log = f"{weights}.log"
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, env=env)

    def wait(self, timeout=300) -> str:
        self.proc.wait(timeout=timeout)
        with open(self.log) as f:
            return f.read()

    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        return self.proc.poll()

    def kill(self):
        self.proc.kill()


def _worker(*args, **kwargs) -> _Worker:
    return _Worker(*args, **kwargs)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 32 training images: 4 global batches of 8, nothing dropped.
    return make_folder(str(tmp_path_factory.mktemp("dist") / "data"), per_class=16)


def test_two_processes_end_identical_and_match_one_process(data, tmp_path):
    port = free_port()
    procs = [_worker(data, tmp_path / "run2", tmp_path / f"w{i}.npz", 2, i, port) for i in (0, 1)]
    outs = [p.wait() for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    single = _worker(data, tmp_path / "run1", tmp_path / "ws.npz", 1, 0, 0)
    out1 = single.wait()
    assert single.returncode == 0, out1[-3000:]
    w0, w1, ws = (np.load(tmp_path / f"{n}.npz") for n in ("w0", "w1", "ws"))
    assert set(w0) == set(ws) and len(w0) == 20  # BatchNorm statistics included
    assert max(np.abs(w0[k] - w1[k]).max() for k in w0) == 0.0  # replicas stay identical
    assert max(np.abs(w0[k] - ws[k]).max() for k in w0) <= WEIGHT_TOLERANCE
    loss2 = json.loads(outs[0].split("\nloss ", 1)[1].splitlines()[0])
    loss1 = json.loads(out1.split("\nloss ", 1)[1].splitlines()[0])
    np.testing.assert_allclose(loss2, loss1, rtol=LOSS_RTOL, atol=1e-6)
    # Only process 0 wrote the run directory.
    meta = json.loads((tmp_path / "run2" / "run.json").read_text())
    assert meta["processes"] == 2 and meta["status"] == "done" and meta["backend"] == "jax"


def _children(pid: int) -> dict[int, int]:
    """{process id in the job: pid} of the launcher's child processes."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
            out[int(env[b"SIMPLECNN_PROCESS_ID"])] = int(entry)
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return out


def test_launch_stops_all_when_a_worker_dies_and_resumes(data, tmp_path):
    out = tmp_path / "run"
    cmd = [EXE, "launch", "--num-processes", "2", "train", data, "--out", str(out), "--image-size",
           "32", "--epochs", "4", "--batch-size", "8", "--validation-split", "0", "--quiet-progress"]  # fmt: skip
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 240
    while not (out / "backup" / "epoch-0001").exists():
        assert launcher.poll() is None and time.time() < deadline, launcher.communicate()[1][-3000:]
        time.sleep(0.1)
    os.kill(_children(launcher.pid)[1], signal.SIGKILL)
    start = time.time()
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 1 and time.time() - start < 30
    assert "process 1 of 2 exited with code -9; stopped the others" in err
    assert not _children(launcher.pid)

    again = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {out} after epoch" in again.stdout
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "done" and meta["resumed_from"] >= 1 and meta["epochs_run"] == 4


def test_without_the_launcher_a_dead_worker_stops_the_other_within_the_timeout(data, tmp_path):
    env = {**ENV, "SIMPLECNN_DIST_TIMEOUT_S": "10"}
    port = free_port()
    procs = [_worker(data, tmp_path / "run", tmp_path / f"w{i}.npz", 2, i, port, 8, env) for i in (0, 1)]
    deadline = time.time() + 240
    while not (tmp_path / "run" / "backup" / "epoch-0001").exists():
        assert time.time() < deadline and procs[0].poll() is None
        time.sleep(0.1)
    procs[1].kill()
    start = time.time()
    err = procs[0].wait(timeout=90)
    assert procs[0].returncode != 0 and time.time() - start < 60
    assert "another task died" in err or "heartbeat timeout" in err


def test_multi_process_needs_the_jax_backend(data, tmp_path):
    done = subprocess.run(
        [EXE, "--backend", "tensorflow", "train", data, "--out", str(tmp_path / "r"),
         "--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "0"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "runs on the JAX backend" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
