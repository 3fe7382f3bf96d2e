"""Shared fixtures. Tests use small images unless 256x256 is what they are about."""

import os
import socket

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

from simplecnn.config import ModelConfig  # noqa: E402

BACKEND = keras.backend.backend()


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
