"""The three builders: the seed's numbers pinned, identical layer names, a first-class subclass."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from simplecnn.config import ModelConfig
from simplecnn.equivalence import param_counts
from simplecnn.models import STYLES, SimpleCNN, build_model, leaf_layers

SEED_PARAMS = (277_569, 277_185, 384)
LAYER_NAMES = [
    "block1_conv1", "block1_conv2", "block1_pool", "block1_bn", "block1_dropout",
    "block2_conv1", "block2_conv2", "block2_pool", "block2_bn", "block2_dropout",
    "head_pool", "head_dense", "predictions",
]  # fmt: skip


@pytest.mark.multibackend
@pytest.mark.parametrize("style", STYLES)
def test_seed_parameter_counts_and_output_shape(style):
    model = build_model(style)
    assert param_counts(model) == SEED_PARAMS
    assert model.count_params() == SEED_PARAMS[0]
    assert tuple(model.compute_output_shape((None, 256, 256, 3))) == (None, 1)


@pytest.mark.parametrize("style", STYLES)
def test_summary_matches_seed_and_is_fully_built(style, capsys):
    build_model(style).summary()
    text = capsys.readouterr().out
    assert "Total params: 277,569" in text
    assert "Trainable params: 277,185" in text
    assert "Non-trainable params: 384" in text
    for bad in ("unbuilt", "?", "multiple"):
        assert bad not in text
    assert "(None, 128, 128, 64)" in text
    assert "(None, 64, 64, 128)" in text


def test_subclassing_summary_shows_blocks_with_none_batch(capsys):
    model = build_model("subclassing")
    model(np.zeros((3, 256, 256, 3), "float32"))  # a real call must not pin the batch size
    model.summary()
    text = capsys.readouterr().out
    for row in ("conv_block1 (Sequential)", "conv_block2 (Sequential)", "classifier (Sequential)"):
        assert row in text
    assert "(None, 128, 128, 64)" in text and "(3, " not in text


def test_seed_subclassed_code_is_unbuilt_on_keras3(capsys):
    """Why the subclassing style needed fixing: the seed's code, as written, summarizes empty."""
    from seed_models import SeedSimpleCNN

    model = SeedSimpleCNN()
    model.build((None, 256, 256, 3))
    model.summary()
    assert "unbuilt" in capsys.readouterr().out


@pytest.mark.parametrize("style", STYLES)
def test_layer_names_are_identical_across_styles(style):
    assert [layer.name for layer in leaf_layers(build_model(style))] == LAYER_NAMES


@pytest.mark.multibackend
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("num_classes", [3, 10])
def test_softmax_head_for_several_classes(style, num_classes, small_config):
    model = build_model(style, small_config.replace(num_classes=num_classes))
    out = keras.ops.convert_to_numpy(model(np.random.rand(2, 32, 32, 3).astype("float32")))
    assert out.shape == (2, num_classes)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert leaf_layers(model)[-1].activation.__name__ == "softmax"


def test_unknown_style_is_a_value_error_listing_the_styles():
    with pytest.raises(ValueError, match=r"'recurrent'.*sequential, functional, subclassing"):
        build_model("recurrent")
    with pytest.raises(ValueError, match="ModelConfig"):
        build_model("functional", {"num_classes": 2})  # type: ignore[arg-type]


@pytest.mark.multibackend
def test_subclassing_training_flag_reaches_batchnorm_and_dropout(small_config):
    model = build_model("subclassing", small_config)
    x = np.random.default_rng(0).uniform(size=(8, 32, 32, 3)).astype("float32")
    infer = [keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(infer[0], infer[1])  # inference is deterministic
    train = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.abs(train - infer[0]).max() > 1e-4  # dropout + batch statistics act
    bn = next(l for l in leaf_layers(model) if l.name == "block1_bn")
    before = keras.ops.convert_to_numpy(bn.moving_mean).copy()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, np.ones((8, 1), "float32"), epochs=1, batch_size=4, verbose=0)
    assert np.abs(keras.ops.convert_to_numpy(bn.moving_mean) - before).max() > 0  # fit trains BN
    p1 = model.predict(x, verbose=0)
    np.testing.assert_array_equal(p1, model.predict(x, verbose=0))  # predict is inference


@pytest.mark.multibackend
@pytest.mark.parametrize("style", STYLES)
def test_keras_save_load_without_custom_objects(style, small_config, tmp_path):
    """A .keras file loads in a fresh process with plain keras.models.load_model."""
    model = build_model(style, small_config.replace(num_classes=3))
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    code = (
        "import sys, numpy as np, keras, simplecnn.models\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "x = np.load(sys.argv[2]); y = np.load(sys.argv[3])\n"
        "assert type(m).__name__ == sys.argv[4], type(m)\n"
        "assert np.abs(m.predict(x, verbose=0) - y).max() == 0\n"
        "print(m.count_params())\n"
    )
    kind = {"sequential": "Sequential", "functional": "Functional", "subclassing": "SimpleCNN"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "y.npy"), kind[style]],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith(str(model.count_params()))


def test_subclassed_model_config_round_trip():
    cfg = ModelConfig(input_shape=(40, 40, 1), filters=(8, 16, 32), convs=(1, 2, 1),
                      dropout=(0.1, 0.2, 0.3), num_classes=5)  # fmt: skip
    model = SimpleCNN(cfg)
    clone = SimpleCNN.from_config(model.get_config())
    assert clone.config == cfg and clone.count_params() == model.count_params()
    assert [l.name for l in leaf_layers(clone)][:4] == [
        "block1_conv1", "block1_pool", "block1_bn", "block1_dropout"
    ]
