"""Shared fixtures. Tests use small images unless 256x256 is what they are about."""

import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# simplecnn check caches image hashes in the user's cache folder: the tests use their own.
os.environ["XDG_CACHE_HOME"] = __import__("tempfile").mkdtemp(prefix="simplecnn-test-cache-")

import keras  # noqa: E402
import pytest  # noqa: E402

from simplecnn.config import ModelConfig  # noqa: E402

BACKEND = keras.backend.backend()


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, str]:
    """For the adversarial suite (tests/adversarial/): ROOT/photos (DATA: cats/, dogs/),
    ROOT/runs/run (RUN, a finished run), ROOT/mine (MINE: notes and a functional.png of the
    user's), ROOT/mine.csv and ROOT/mine.png."""
    from imagegen import make_folder
    from PIL import Image

    from simplecnn.config import TrainConfig
    from simplecnn.training import train

    root = tmp_path_factory.mktemp("world")
    data = make_folder(str(root / "photos"), per_class=10)
    run = root / "runs" / "run"
    train(data, run, TrainConfig(image_size=32, epochs=1, batch_size=8), verbose=0)
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("my notes")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "mine" / "functional.png")
    (root / "mine.csv").write_text("my,own,table\n")
    Image.new("RGB", (8, 8), (4, 5, 6)).save(root / "mine.png")
    return {"ROOT": str(root), "DATA": data, "CLASS": os.path.join(data, "cats"),
            "IMAGE": os.path.join(data, "cats", "img_000.jpg"), "RUN": str(run),
            "RUNS": str(root / "runs"), "MINE": str(root / "mine"),
            "MINEFILE": str(root / "mine.csv"), "MINEPNG": str(root / "mine.png")}  # fmt: skip


@pytest.fixture
def small_config() -> ModelConfig:
    """The seed's architecture on 32x32 images: same parameters, 64x less compute."""
    return ModelConfig(input_shape=(32, 32, 3))


def train_small_run(
    tmp_path_factory, style: str = "functional", classes: tuple[str, ...] = ("cats", "dogs"),
    per_class: int = 12, epochs: int = 1,
) -> tuple[str, str]:
    """A folder of test images and a run trained on it at 32x32: ``(data_dir, run_dir)``."""
    from imagegen import make_folder

    from simplecnn.config import TrainConfig
    from simplecnn.training import train

    data = make_folder(str(tmp_path_factory.mktemp("data") / "pets"), classes=classes, per_class=per_class)
    run_dir = str(tmp_path_factory.mktemp("runs") / style)
    train(data, run_dir, TrainConfig(style=style, image_size=32, epochs=epochs, batch_size=8), verbose=0)
    return data, run_dir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _SmallDisk(type(__import__("pathlib").Path())):
    """A folder on a 1 MiB filesystem; ``run`` runs a command that writes there."""

    def run(self, cmd):
        import subprocess

        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        return subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=self._limit)

    _limit = None


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs where the machine allows mounting one (root, as on this project's
    machines and CI); elsewhere the same folder with a 1 MiB file-size limit on the command
    (RLIMIT_FSIZE: writes fail with EFBIG instead of ENOSPC, the same path in simplecnn)."""
    import resource
    import signal
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0  # fmt: skip
    disk = _SmallDisk(folder)
    if not mounted:

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

        disk._limit = limit
    yield disk
    if mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)
