"""Shared fixtures. Tests use small images unless 256x256 is what they are about."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402

from simplecnn.config import ModelConfig  # noqa: E402

BACKEND = keras.backend.backend()


@pytest.fixture
def small_config() -> ModelConfig:
    """The seed's architecture on 32x32 images: same parameters, 64x less compute."""
    return ModelConfig(input_shape=(32, 32, 3))
