"""ModelConfig: the seed's defaults, validation that names the bad value, JSON round trips."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simplecnn.config import ModelConfig


def test_defaults_are_the_seed_model():
    c = ModelConfig()
    assert c.input_shape == (256, 256, 3)
    assert c.filters == (64, 128)
    assert c.convs == (2, 2)
    assert c.dropout == (0.5, 0.3)
    assert c.dense_units == 128
    assert c.num_classes == 1


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().num_classes = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"input_shape": (256, 256)}, "input_shape=(256, 256)"),
        ({"input_shape": (0, 256, 3)}, "input_shape=(0, 256, 3)"),
        ({"input_shape": (2, 2, 3)}, "at least 4"),
        ({"filters": ()}, "filters=()"),
        ({"filters": (64, -1)}, "filters=(64, -1)"),
        ({"convs": (2,)}, "convs=(2,)"),
        ({"dropout": (0.5, 1.0)}, "dropout=(0.5, 1.0)"),
        ({"dense_units": 0}, "dense_units=0"),
        ({"num_classes": 0}, "num_classes=0"),
        ({"num_classes": 2.5}, "num_classes=2.5"),
        ({"num_classes": True}, "num_classes=True"),
        ({"input_shape": "256"}, "input_shape='256'"),
    ],
)
def test_bad_config_raises_value_error_naming_the_value(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        ModelConfig(**kwargs)
    assert fragment in str(info.value)


def test_dict_round_trip_and_unknown_keys():
    c = ModelConfig(input_shape=(64, 48, 1), num_classes=4)
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="Unknown ModelConfig field"):
        ModelConfig.from_dict({"filterz": [1]})


@given(
    h=st.integers(-5, 600),
    w=st.integers(-5, 600),
    c=st.integers(-1, 5),
    classes=st.one_of(st.integers(-3, 50), st.floats(), st.none(), st.text(max_size=3)),
    units=st.integers(-3, 300),
    rate=st.floats(allow_nan=True, allow_infinity=True),
)
def test_config_validation_accepts_or_raises_value_error(h, w, c, classes, units, rate):
    """Whatever is passed, ModelConfig is valid or raises ValueError, never anything else."""
    try:
        cfg = ModelConfig(
            input_shape=(h, w, c), num_classes=classes, dense_units=units, dropout=(rate, 0.3)
        )
    except ValueError:
        return
    assert min(cfg.input_shape) > 0 and cfg.input_shape[0] >= 4
    assert isinstance(cfg.num_classes, int) and cfg.num_classes >= 1
    assert 0.0 <= cfg.dropout[0] < 1.0
