"""The three styles are one model: compare's checks, weight transfer, same seed -> same training."""

import keras
import numpy as np
import pytest
from seed_models import functional_model, sequential_model

from simplecnn.config import ModelConfig
from simplecnn.equivalence import (
    compare_styles,
    randomize_weights,
    sync_random_state,
    transfer_weights,
)
from simplecnn.models import STYLES, build_model, leaf_layers


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.multibackend
@pytest.mark.parametrize("num_classes", [1, 3])
def test_compare_all_styles_pass(small_config, num_classes):
    rows = compare_styles(small_config.replace(num_classes=num_classes))
    assert [r.style for r in rows] == list(STYLES)
    for r in rows:
        assert r.ok, r.failures
        assert (r.total_params, r.trainable_params) == (
            277_569 + 129 * (num_classes - 1) * (num_classes > 1),
            277_185 + 129 * (num_classes - 1) * (num_classes > 1),
        )
        assert r.non_trainable_params == 384
        assert r.max_output_diff <= 1e-6 and r.max_grad_diff <= 1e-6
        assert r.save_load_diff <= 1e-6 and r.plot_ok


def test_compare_catches_a_style_that_is_not_the_same_model(small_config, monkeypatch):
    """compare must be able to fail: a style with other dropout rates differs in gradients only."""

    def wrong_dropout(config: ModelConfig) -> keras.Model:
        return STYLES["functional"](config.replace(dropout=(0.1, 0.1)))

    def wrong_activation(config: ModelConfig) -> keras.Model:
        model = STYLES["functional"](config)
        model.get_layer("head_dense").activation = keras.activations.linear
        return model

    monkeypatch.setitem(STYLES, "wrong_dropout", wrong_dropout)
    monkeypatch.setitem(STYLES, "wrong_activation", wrong_activation)
    rows = {r.style: r for r in compare_styles(small_config, styles=list(STYLES))}
    assert rows["functional"].ok
    bad = rows["wrong_dropout"]
    assert not bad.ok and bad.max_output_diff == 0 and bad.max_grad_diff > 1e-3
    assert any("gradients" in f for f in bad.failures)
    assert not rows["wrong_activation"].ok and rows["wrong_activation"].max_output_diff > 1e-6


@pytest.mark.multibackend
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("seed_builder", [functional_model, sequential_model])
def test_seed_model_weights_give_seed_outputs_in_every_style(style, seed_builder):
    """The seed's own models (auto-named layers) transfer into each style at 256x256."""
    seed = seed_builder((256, 256, 3))
    randomize_weights(seed, seed=3)
    x = np.random.default_rng(3).uniform(size=(2, 256, 256, 3)).astype("float32")
    model = build_model(style)
    pairs = transfer_weights(seed, model)
    assert [t for _, t in pairs][0] == "block1_conv1" and pairs[0][0].startswith("conv2d")
    np.testing.assert_allclose(
        _np(model(x, training=False)), _np(seed(x, training=False)), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("source", STYLES)
@pytest.mark.parametrize("target", STYLES)
def test_transfer_weights_between_styles(source, target, small_config):
    a = build_model(source, small_config)
    randomize_weights(a, seed=5)
    b = build_model(target, small_config)
    transfer_weights(a, b)
    for la, lb in zip(leaf_layers(a), leaf_layers(b)):
        for wa, wb in zip(la.get_weights(), lb.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_transfer_weights_mismatch_is_clear_and_changes_nothing(small_config):
    source = build_model("functional", small_config.replace(num_classes=3))
    target = build_model("subclassing", small_config)
    before = [w.copy() for w in target.get_weights()]
    with pytest.raises(ValueError, match=r"predictions/kernel has shape \(128, 1\)"):
        transfer_weights(source, target)
    for w0, w1 in zip(before, target.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    wider = build_model("functional", small_config.replace(filters=(64, 128, 256),
                                                           convs=(2, 2, 1), dropout=(0.5, 0.3, 0.1)))
    with pytest.raises(ValueError, match="has 10 layers with weights"):
        transfer_weights(wider, target)


@pytest.mark.multibackend
def test_same_seed_same_training_in_every_style(small_config):
    """set_random_seed(s) + the same batches: a few fit steps end at the same weights, dropout on."""
    rng = np.random.default_rng(7)
    x = rng.uniform(size=(24, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, (24, 1)).astype("float32")
    final = {}
    for style in STYLES:
        keras.utils.set_random_seed(11)
        model = build_model(style, small_config)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        final[style] = {
            f"{l.name}/{w.name}": _np(w) for l in leaf_layers(model) for w in l.weights
        }
    ref = final["functional"]
    for style, weights in final.items():
        assert weights.keys() == ref.keys()
        worst = max(np.abs(weights[k] - ref[k]).max() for k in ref)
        assert worst <= 1e-5, f"{style}: weights differ by {worst}"
    # Dropout really acted: the same run without dropout ends elsewhere.
    keras.utils.set_random_seed(11)
    plain = build_model("functional", small_config.replace(dropout=(0.0, 0.0)))
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    plain.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert np.abs(_np(plain.get_layer("block1_conv1").kernel) - ref["block1_conv1/kernel"]).max() > 1e-4


def test_sync_random_state_copies_dropout_generators(small_config):
    a, b = build_model("functional", small_config), build_model("subclassing", small_config)
    sync_random_state(a, b)
    for la, lb in zip(leaf_layers(a), leaf_layers(b)):
        if hasattr(la, "seed_generator"):
            np.testing.assert_array_equal(
                _np(la.seed_generator.state.value), _np(lb.seed_generator.state.value)
            )
