"""The default recipe's parts, the plain (seed) recipe, the time budget, and lr-find."""

import json

import keras
import numpy as np
import pytest
from imagegen import make_folder

from simplecnn.cli import main
from simplecnn.config import AUGMENT_BELOW, PLAIN_RECIPE, TrainConfig
from simplecnn.lr_find import _valley, lr_find
from simplecnn.data import ImageBatches
from simplecnn.data.images import mix_batch
from simplecnn.heads import encode_labels, one_hot_targets
from simplecnn.training import make_loss, make_optimizer, train
from simplecnn.training.setup import MixedBinaryAccuracy


def test_augmentation_is_on_for_small_folders_only():
    assert TrainConfig().augment_for(245) is True
    assert TrainConfig().augment_for(AUGMENT_BELOW) is False
    assert TrainConfig(augment=False).augment_for(10) is False
    assert TrainConfig(augment=True).augment_for(10**6) is True


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"optimizer": "sgd"}, "optimizer must be one of"), ({"schedule": "step"}, "schedule must be"),
     ({"warmup_epochs": -1}, "warmup_epochs"), ({"time_budget": 0}, "time_budget"),
     ({"weight_decay": -1.0}, "weight_decay")],
)  # fmt: skip
def test_recipe_fields_are_validated(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**kwargs)


def test_warmup_then_cosine_schedule():
    opt = make_optimizer(TrainConfig(learning_rate=1e-3, epochs=10, warmup_epochs=1), steps_per_epoch=10)
    schedule = opt._learning_rate
    at = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 5, 10, 55, 99)]
    assert at[0] == pytest.approx(1e-5) and at[0] < at[1] < at[2]
    assert at[2] == pytest.approx(1e-3, rel=1e-5)
    assert at[2] > at[3] > at[4] >= 1e-5
    plain = make_optimizer(TrainConfig(**{**PLAIN_RECIPE}), steps_per_epoch=10)
    assert isinstance(plain, keras.optimizers.Adam) and float(plain.learning_rate) == pytest.approx(1e-3)
    assert isinstance(make_optimizer(TrainConfig(optimizer="adamw"), 10), keras.optimizers.AdamW)


def test_plain_recipe_from_the_command_line(tmp_path):
    data = make_folder(str(tmp_path / "data"), per_class=24)
    assert main(["train", data, "--recipe", "plain", "--image-size", "32", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet-progress"]) == 0  # fmt: skip
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    cfg = meta["train_config"]
    assert cfg["schedule"] == "constant" and cfg["batch_size"] == 32
    assert cfg["precise_bn"] is False and meta["augment"] is False
    assert meta["train_config"]["epochs"] == 1  # an explicit flag beats the recipe


@pytest.mark.multibackend
def test_label_smoothing_is_keras_own_loss_on_the_targets_the_batches_give():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    eps = 0.2
    assert one_hot_targets(3, eps) and not one_hot_targets(3, 0.0) and not one_hot_targets(1, eps)
    targets = encode_labels([0, 2], 3, one_hot=True)
    smoothed = (1 - eps) * np.eye(3)[[0, 2]] + eps / 3  # the true class 1 - eps + eps/K, others eps/K
    expected = np.mean(-(smoothed * np.log(probs)).sum(axis=1))
    got = float(keras.ops.convert_to_numpy(make_loss(3, eps)(targets, probs)))
    assert got == pytest.approx(expected, rel=1e-5)
    p = np.array([[0.9], [0.2]], np.float32)
    y = encode_labels([1, 0], 1)
    t = y * (1 - eps) + eps / 2
    expected = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    assert float(keras.ops.convert_to_numpy(make_loss(1, eps)(y, p))) == pytest.approx(expected, rel=1e-4)
    assert make_loss(3) == "sparse_categorical_crossentropy" and make_loss(1) == "binary_crossentropy"


@pytest.mark.parametrize("classes", [("cats", "dogs", "eels"), ("cats", "dogs")])
def test_a_label_smoothed_run_keeps_a_model_keras_loads_alone(tmp_path, classes):
    data = make_folder(str(tmp_path / "data"), classes=classes, per_class=8)
    result = train(data, str(tmp_path / "run"), TrainConfig(image_size=32, epochs=2, batch_size=8,
                                                            label_smoothing=0.1), verbose=0)  # fmt: skip
    assert all(np.isfinite(result.history["val_loss"])) and len(result.history["val_accuracy"]) == 2
    model = keras.models.load_model(str(tmp_path / "run" / "model.keras"))  # no simplecnn class in it
    kind = keras.losses.BinaryCrossentropy if len(classes) == 2 else keras.losses.CategoricalCrossentropy
    assert isinstance(model.loss, kind) and model.loss.label_smoothing == pytest.approx(0.1)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["train_config"]["label_smoothing"] == 0.1


def test_the_size_probe_takes_the_smoothed_targets():
    from simplecnn.config import ModelConfig
    from simplecnn.training.sizing import _step_seconds

    assert _step_seconds(TrainConfig(batch_size=2, label_smoothing=0.1), ModelConfig(), 3) > 0


def test_valley_is_inside_the_longest_fall():
    lrs = np.geomspace(1e-6, 1, 60)
    losses = np.concatenate([np.full(10, 1.0), np.linspace(1.0, 0.2, 40), np.linspace(0.2, 3, 10)])
    v = _valley(lrs, losses)
    assert lrs[10] < v < lrs[49]


def test_lr_find_suggests_a_rate_and_draws_it(tmp_path, capsys):
    data = make_folder(str(tmp_path / "data"), per_class=16)
    result = lr_find(data, TrainConfig(image_size=32, batch_size=8), steps=40, png=str(tmp_path / "lr.png"))
    assert result["lrs"][0] == pytest.approx(1e-7)
    assert min(result["lrs"]) <= result["suggested"] <= max(result["lrs"])
    assert (tmp_path / "lr.png").stat().st_size > 0
    assert main(["lr-find", data, "--image-size", "32", "--batch-size", "8", "--steps", "30",
                 "--out", str(tmp_path / "cli.png")]) == 0  # fmt: skip
    assert "suggested: --learning-rate" in capsys.readouterr().out


def test_weight_average_is_swapped_in_and_out_exactly(small_config):
    from simplecnn.models import build_model
    from simplecnn.training import averaged_weights

    model = build_model("functional", small_config)
    model.compile(optimizer=make_optimizer(TrainConfig(ema_epochs=1), steps_per_epoch=4),
                  loss="binary_crossentropy")  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.random((8, *small_config.input_shape), dtype=np.float32)
    y = rng.integers(0, 2, (8, 1)).astype(np.float32)
    for _ in range(5):
        model.train_on_batch(x, y)
    raw = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    everything = [np.array(w) for w in model.get_weights()]
    averages = [keras.ops.convert_to_numpy(a) for a in model.optimizer._model_variables_moving_average]
    with averaged_weights(model):
        inside = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    for got, want in zip(inside, averages):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(a, r) for a, r in zip(inside, raw))  # the average lags
    for got, want in zip(model.get_weights(), everything):  # and the raw weights are back
        np.testing.assert_array_equal(got, want)


def test_kept_checkpoint_is_the_validated_average(tmp_path):
    from simplecnn.runs import load_run

    data = make_folder(str(tmp_path / "data"), per_class=24)
    # float32: the validation figures and the kept model then share their arithmetic exactly.
    config = TrainConfig(image_size=32, epochs=3, batch_size=8, ema_epochs=1, patience=100,
                         precision="float32")
    result = train(data, tmp_path / "run", config, verbose=0)
    run = load_run(tmp_path / "run")
    from simplecnn.data import ImageBatches, scan_folder

    val = scan_folder(data, config.validation_split, config.seed).val
    batches = ImageBatches(val, image_size=(32, 32), channels=3, batch_size=8, num_classes=1)
    got = run.model.evaluate(batches, verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(result.best["val_loss"], abs=1e-5)


def test_tta_averages_an_image_and_its_mirror(tmp_path):
    from PIL import Image

    from simplecnn.training import predict

    data = make_folder(str(tmp_path / "data"), per_class=16)
    train(data, tmp_path / "run", TrainConfig(image_size=32, epochs=1, batch_size=8), verbose=0)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    img.save(tmp_path / "a.png")
    img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "b.png")
    plain, _ = predict(tmp_path / "run", [str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    p_a, p_b = (r["probabilities"]["dogs"] for r in plain)
    assert p_a != pytest.approx(p_b, abs=1e-7)  # the model is not mirror-symmetric
    tta, _ = predict(tmp_path / "run", [str(tmp_path / "a.png")], tta=True)
    assert tta[0]["probabilities"]["dogs"] == pytest.approx((p_a + p_b) / 2, abs=1e-6)


@pytest.mark.parametrize("patience, stops_after", [(2, 4), (None, None)])
def test_early_stopping_counts_epochs_without_a_better_validation_loss(
    small_config, tmp_path, patience, stops_after
):
    from simplecnn.models import build_model
    from simplecnn.training import EpochEnd

    model = build_model("functional", small_config)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    # Without validation images the training loss is monitored: fed here epoch by epoch.
    keeper = EpochEnd(str(tmp_path), bn_batches=None, val_batches=None, precise_bn=False,
                      patience=patience)  # fmt: skip
    keeper.set_model(model)
    stopped_at = None
    for epoch, val_loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.95, 0.99]):
        model.stop_training = False
        keeper.on_epoch_end(epoch, {"loss": val_loss})
        if model.stop_training and stopped_at is None:
            stopped_at = epoch + 1
    assert stopped_at == stops_after
    assert keeper.best_epoch == 1 and keeper.best == pytest.approx(0.8)
    assert (tmp_path / "model.keras").is_file()


def _partner_share(mixed: np.ndarray, x: np.ndarray, i: int, j: int) -> float | None:
    """The share of image ``i`` that is its own if ``mixed[i]`` blends ``x[i]`` with ``x[j]``."""
    a, b = (x[i] - x[j]).ravel(), (mixed[i] - x[j]).ravel()
    lam = float(a @ b / (a @ a))
    return lam if np.allclose(lam * x[i] + (1 - lam) * x[j], mixed[i], atol=1e-5) else None


def test_mixup_blends_each_image_with_one_partner_and_its_target_in_the_same_share():
    x = np.random.default_rng(0).random((8, 12, 10, 3)).astype(np.float32)
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    y = encode_labels(labels, 3, one_hot=True)
    mixed, t = mix_batch(x, y, "mixup", np.random.default_rng(5))
    again = mix_batch(x, y, "mixup", np.random.default_rng(5))
    assert np.array_equal(mixed, again[0]) and np.array_equal(t, again[1])  # the generator fixes it
    assert mixed.dtype == np.float32 and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)
    shares = set()
    for i in range(8):
        if np.allclose(mixed[i], x[i]):  # paired with itself: unchanged
            assert np.allclose(t[i], y[i])
            continue
        found = [(j, lam) for j in range(8) if j != i and (lam := _partner_share(mixed, x, i, j)) is not None]
        (j, lam), = found
        np.testing.assert_allclose(t[i], lam * y[i] + (1 - lam) * y[j], atol=1e-5)
        shares.add(round(lam, 4))
    assert len(shares) == 1 and 0 < shares.pop() < 1  # one proportion per batch


def test_cutmix_pastes_one_box_and_mixes_the_targets_by_its_area():
    x = np.random.default_rng(1).random((6, 16, 20, 3)).astype(np.float32)
    y = encode_labels([0, 1, 1, 0, 1, 0], 1)  # the sigmoid head's 0/1 column
    for seed in range(20):
        mixed, t = mix_batch(x, y, "cutmix", np.random.default_rng(seed))
        boxes = set()
        for i in range(6):
            changed = (mixed[i] != x[i]).any(axis=-1)
            if not changed.any():
                continue
            rows, cols = np.nonzero(changed)
            box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
            assert changed.sum() == (box[1] - box[0]) * (box[3] - box[2])  # a rectangle
            j = next(j for j in range(6) if np.array_equal(mixed[i][changed], x[j][changed]))
            area = changed.mean()
            np.testing.assert_allclose(t[i], (1 - area) * y[i] + area * y[j], atol=1e-6)
            boxes.add(box)
        assert len(boxes) <= 1  # the same box for the whole batch


def test_mixed_batches_are_fixed_by_seed_and_epoch(tmp_path):
    data = make_folder(str(tmp_path / "data"), per_class=8)
    items = [(str(p), int(p.parent.name == "dogs")) for p in sorted((tmp_path / "data").rglob("img_*"))]
    assert len(items) == 16, data

    def batches(seed):
        return ImageBatches(items, (24, 24), batch_size=8, shuffle=True, mix="mixup", seed=seed, workers=1)

    a, b = batches(3), batches(3)
    x, t = a[0]
    assert np.array_equal(x, b[0][0]) and np.array_equal(t, b[0][1])
    assert t.dtype == np.float32 and ((t > 0) & (t < 1)).any()  # some targets are mixed
    a.on_epoch_end()
    assert not np.array_equal(a[0][0], x)
    with pytest.raises(ValueError, match="float targets"):  # a softmax's class indices can't be mixed
        mix_batch(x, np.zeros(8, np.int32), "mixup", np.random.default_rng(0))


def test_mixed_binary_accuracy_counts_the_larger_share():
    y_true = np.array([[0.7], [0.2], [1.0], [0.45]], np.float32)
    y_pred = np.array([[0.9], [0.6], [0.8], [0.3]], np.float32)
    metric = MixedBinaryAccuracy()
    metric.update_state(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(0.75) and metric.name == "accuracy"
    keras_own = keras.metrics.BinaryAccuracy()
    keras_own.update_state(y_true, y_pred)
    assert float(keras_own.result()) == pytest.approx(0.25)  # why it is needed: only exact 0/1 count


@pytest.mark.multibackend
@pytest.mark.parametrize("classes, kind", [(("cats", "dogs"), "mixup"), (("cats", "dogs", "eels"), "cutmix")])
def test_a_mixed_run_trains_and_keeps_a_model_keras_loads_alone(tmp_path, classes, kind):
    import zipfile

    data = make_folder(str(tmp_path / "data"), classes=classes, per_class=8)
    result = train(data, str(tmp_path / "run"), TrainConfig(image_size=32, epochs=2, batch_size=8, mix=kind,
                                                            precision="float32"), verbose=0)  # fmt: skip
    assert all(np.isfinite(result.history["loss"])) and all(np.isfinite(result.history["val_loss"]))
    assert all(0 <= a <= 1 for a in result.history["accuracy"]) and len(result.history["accuracy"]) == 2
    with zipfile.ZipFile(tmp_path / "run" / "model.keras") as archive:
        assert "simplecnn>" not in archive.read("config.json").decode()  # no class registered by simplecnn
    model = keras.models.load_model(str(tmp_path / "run" / "model.keras"))
    assert model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0).shape[-1] == (1 if len(classes) == 2 else 3)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["train_config"]["mix"] == kind
