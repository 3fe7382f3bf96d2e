"""Grad-CAM: every style, the same heatmap for the same weights, models loaded from files, CLI."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import BACKEND, train_small_run
from PIL import Image

from simplecnn.cli import main
from simplecnn.equivalence import randomize_weights, transfer_weights
from simplecnn.explain import conv_layer_names, gradcam
from simplecnn.models import STYLES, build_model


def _same_weights(config):
    models = {style: build_model(style, config) for style in STYLES}
    randomize_weights(models["functional"], seed=3)
    for style in ("sequential", "subclassing"):
        transfer_weights(models["functional"], models[style])
    return models


def _images(config, n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *config.input_shape), dtype=np.uint8)


@pytest.mark.multibackend
@pytest.mark.parametrize("num_classes", [1, 3])
def test_gradcam_is_the_same_for_every_style(small_config, num_classes):
    config = small_config.replace(num_classes=num_classes)
    models = _same_weights(config)
    x = _images(config)
    cams = {style: gradcam(model, x) for style, model in models.items()}
    ref = cams["functional"]
    assert ref.layer == "block2_conv2"
    assert ref.heatmaps.shape == (4, 16, 16)  # the last conv's resolution at 32 px input
    assert ref.heatmaps.min() >= 0 and ref.heatmaps.max() <= 1
    tops = ref.heatmaps.reshape(4, -1).max(axis=1)
    assert set(np.round(tops, 6)) <= {0.0, 1.0} and tops.max() == 1.0  # scaled to its max (or all 0)
    for style, cam in cams.items():
        np.testing.assert_allclose(cam.heatmaps, ref.heatmaps, atol=1e-5, err_msg=style)
        np.testing.assert_array_equal(cam.class_indices, ref.class_indices)
    # Probabilities agree with the model's own predict().
    p = np.asarray(models["subclassing"].predict(x / np.float32(255), verbose=0), np.float64)
    expected = np.concatenate([1 - p, p], axis=1) if num_classes == 1 else p
    np.testing.assert_allclose(ref.probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(ref.class_indices, expected.argmax(axis=1))


@pytest.mark.multibackend
@pytest.mark.parametrize("style", ["sequential", "subclassing"])
def test_gradcam_on_a_model_loaded_from_file(small_config, style, tmp_path):
    """The styles Keras's sub-model recipe breaks on, after a save/load round trip."""
    models = _same_weights(small_config)
    path = str(tmp_path / f"{style}.keras")
    models[style].save(path)
    loaded = keras.models.load_model(path)
    x = _images(small_config, seed=1)
    np.testing.assert_allclose(
        gradcam(loaded, x).heatmaps, gradcam(models["functional"], x).heatmaps, atol=1e-5
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the reference uses tf.GradientTape")
def test_gradcam_matches_keras_submodel_recipe(small_config):
    """On a Functional model, the Keras example's sub-model + GradientTape gives the same map."""
    import tensorflow as tf

    model = _same_weights(small_config)["functional"]
    x = _images(small_config, n=3, seed=2)
    sub = keras.Model(model.inputs, [model.get_layer("block1_conv2").output, model.get_layer("head_dense").output])
    dense = model.get_layer("predictions")
    with tf.GradientTape() as tape:
        features, hidden = sub([x / np.float32(255)], training=False)
        logit = tf.matmul(hidden, dense.kernel) + dense.bias
        sign = tf.where(logit >= 0, 1.0, -1.0)  # explain the predicted class
        score = tf.reduce_sum(logit * tf.stop_gradient(sign))
    grads = tape.gradient(score, features).numpy()
    cam = np.maximum(np.einsum("nhwk,nk->nhw", features.numpy(), grads.mean(axis=(1, 2))), 0)
    cam /= cam.reshape(3, -1).max(axis=1)[:, None, None]
    ours = gradcam(model, x, layer="block1_conv2")
    assert ours.heatmaps.shape == (3, 32, 32)
    np.testing.assert_allclose(ours.heatmaps, cam, atol=1e-4)


def test_gradcam_explains_the_class_asked_for(small_config):
    model = _same_weights(small_config.replace(num_classes=3))["functional"]
    x = _images(small_config, n=2)
    maps = [gradcam(model, x, class_index=c).heatmaps for c in range(3)]
    assert not np.allclose(maps[0], maps[1]) or not np.allclose(maps[1], maps[2])
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 3\)"):
        gradcam(model, x, class_index=3)


def test_unknown_layer_names_the_allowed_ones(small_config):
    model = build_model("sequential", small_config)
    assert conv_layer_names(model)[:2] == ["block1_conv1", "block1_conv2"]
    assert "head_dense" not in conv_layer_names(model)
    with pytest.raises(ValueError, match="Unknown layer 'head_dense'.*block2_conv2"):
        gradcam(model, _images(small_config, n=1), layer="head_dense")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    found = {style: train_small_run(tmp_path_factory, style) for style in STYLES}
    return found["functional"][0], {style: run_dir for style, (_, run_dir) in found.items()}


@pytest.mark.parametrize("style", STYLES)
def test_explain_command_for_a_run_of_each_style(runs, style, tmp_path, capsys):
    data, run_dirs = runs
    images = [os.path.join(data, "cats", "img_000.jpg"), os.path.join(data, "dogs", "img_001.png")]
    out = tmp_path / "cams"
    assert main(["explain", run_dirs[style], *images, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "explain.json").read_text())
    assert [r["path"] for r in rows] == images
    for row in rows:
        assert row["label"] in ("cats", "dogs") and 0.5 <= row["probability"] <= 1
        assert row["layer"] == "block2_conv2" and row["path"] in printed
        with Image.open(row["png"]) as im:  # image and overlay side by side, caption above
            assert im.format == "PNG" and im.width > 2 * 40 and im.height > 48


def test_explain_command_errors_are_one_line(runs, tmp_path, capsys):
    data, run_dirs = runs
    image = os.path.join(data, "cats", "img_000.jpg")
    assert main(["explain", run_dirs["functional"], image, "--layer", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Unknown layer 'nope'" in err
    assert main(["explain", run_dirs["functional"], image, "--class", "eels"]) == 2
    assert "unknown class 'eels'" in capsys.readouterr().err
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    assert main(["explain", run_dirs["functional"], str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg" in err and "no readable image" in err
