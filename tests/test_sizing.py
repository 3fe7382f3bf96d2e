"""``--image-size auto``: the side is chosen for the time budget from a timed training step
(issue 17), recorded in run.json, counted against the budget, and kept when a run resumes."""

import json
import math

import keras
import pytest

from simplecnn.cli.parser import build_parser, train_config
from simplecnn.config import ModelConfig, TrainConfig
from simplecnn.training import sizing, train
from simplecnn.training.sizing import MIN_EPOCHS, SEED_SIDE, SIDES, choose_side, epochs_that_fit

pytestmark = pytest.mark.multibackend

FAST = dict(batch_size=8, seed=3)


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    from imagegen import make_folder

    return make_folder(str(tmp_path_factory.mktemp("sizing") / "pets"), per_class=20)


def _timed_step(monkeypatch, seconds, calls=None):
    """Make the probe report a training step of ``seconds`` at 128 px without running one."""

    def fake(config, architecture, num_classes):
        if calls is not None:
            calls.append(num_classes)
        return seconds

    monkeypatch.setattr(sizing, "_step_seconds", fake)


def test_epochs_that_fit_scale_with_the_pixels():
    at_128 = epochs_that_fit(300.0, 0.2, 128, train_steps=16, val_steps=10)
    # 0.2 s steps, 16 of them and 10 + 16 forward-only batches at a third of a step, 1.3x overhead.
    assert at_128 == pytest.approx(300.0 / (1.3 * 0.2 * (16 + 26 / 3)))
    assert epochs_that_fit(300.0, 0.2, 64, 16, 10) == pytest.approx(4 * at_128)
    assert epochs_that_fit(300.0, 0.2, 256, 16, 10) == pytest.approx(at_128 / 4)
    assert epochs_that_fit(600.0, 0.2, 128, 16, 10) == pytest.approx(2 * at_128)


def _expected(budget, step, n_train, n_val, batch, needed):
    train_steps, val_steps = math.ceil(n_train / batch), math.ceil(n_val / batch)
    for side in SIDES:  # largest first
        if epochs_that_fit(budget, step, side, train_steps, val_steps) >= needed:
            return side
    return SIDES[-1]


@pytest.mark.parametrize("step", [0.002, 0.05, 0.2, 0.5, 2.0, 30.0])
def test_auto_takes_the_largest_side_that_fits_twenty_epochs(monkeypatch, step):
    _timed_step(monkeypatch, step)
    config = TrainConfig(time_budget=300.0, batch_size=16)
    side, record = choose_side(config, ModelConfig(), 2, n_train=245, n_val=153)
    assert side == record["side"] == _expected(300.0, step, 245, 153, 16, MIN_EPOCHS)
    fit = record["epochs_that_fit"]
    assert fit[str(side)] >= MIN_EPOCHS or side == SIDES[-1]
    assert all(fit[str(s)] < MIN_EPOCHS for s in SIDES if s > side)  # no larger side fits
    if side == SIDES[-1] and fit[str(side)] < MIN_EPOCHS:
        assert record["why"].startswith("no side fits 20 epochs")
    assert "--image-size N sets it" in sizing.describe(record)


def _images(folder, sizes):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        paths.append(str(folder / f"img_{i}.png"))
        Image.new("RGB", size).save(paths[-1])
    return paths


def test_auto_is_no_larger_than_the_images(tmp_path, monkeypatch):
    faces = _images(tmp_path / "faces", [(25, 25), (30, 20), (25, 40), (500, 300)])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert sizing.native_side(faces + [str(tmp_path / "broken.png")]) == 25  # median of 25, 20, 25, 300
    assert sizing.native_side([]) is None
    _timed_step(monkeypatch, 0.002)  # every side fits the budget many times over
    config = TrainConfig(time_budget=300.0, batch_size=16)
    side, record = choose_side(config, ModelConfig(), 2, n_train=245, n_val=153, paths=faces)
    assert side == 64 and record["native_side"] == 25 and "25 px" in record["why"]
    icons = _images(tmp_path / "icons", [(100, 120)] * 3)
    assert choose_side(config, ModelConfig(), 2, 245, 153, paths=icons)[0] == 128  # the side that holds 100
    photos = _images(tmp_path / "photos", [(400, 300)] * 3)
    side, record = choose_side(config, ModelConfig(), 2, 245, 153, paths=photos)
    assert side == 256 and record["native_side"] == 300 and "images" not in record["why"]
    # The bound only lowers the side: a budget that fits 64 px alone still gets 64 px.
    _timed_step(monkeypatch, 30.0)
    assert choose_side(config, ModelConfig(), 2, 245, 153, paths=photos)[0] == 64


def test_the_extremes_and_the_epochs_asked_for(monkeypatch):
    calls = []
    # A fast machine trains at the seed's side; a slow one at the smallest.
    _timed_step(monkeypatch, 1e-4, calls)
    assert choose_side(TrainConfig(time_budget=300.0), ModelConfig(), 2, 245, 153)[0] == 256
    _timed_step(monkeypatch, 100.0, calls)
    assert choose_side(TrainConfig(time_budget=300.0), ModelConfig(), 2, 245, 153)[0] == 64
    # Fewer epochs asked for than MIN_EPOCHS: a side needs to fit only those.
    _timed_step(monkeypatch, 0.3, calls)
    few = choose_side(TrainConfig(time_budget=300.0, epochs=5), ModelConfig(), 2, 245, 153)
    many = choose_side(TrainConfig(time_budget=300.0), ModelConfig(), 2, 245, 153)
    assert few[0] > many[0] and "fits 5 epochs" in few[1]["why"]
    # No budget (--epochs alone): the seed's side, and nothing is timed.
    calls.clear()
    side, record = choose_side(TrainConfig(epochs=3), ModelConfig(), 2, 245, 153)
    assert side == SEED_SIDE and record["probe_s"] == 0.0 and calls == []
    # The default length is a budget too: the side is chosen for it.
    assert choose_side(TrainConfig(), ModelConfig(), 2, 245, 153)[1]["epochs_that_fit"]


def test_the_probe_times_the_real_step_and_leaves_the_distribution_as_it_was():
    before = keras.distribution.distribution()
    seconds = sizing._step_seconds(TrainConfig(batch_size=4), ModelConfig(), 3)
    assert 0 < seconds < 60
    assert keras.distribution.distribution() is before


def test_auto_trains_at_the_chosen_side_and_counts_the_probe_against_the_budget(pets, tmp_path, monkeypatch):
    import time

    def slow_probe(config, architecture, num_classes):
        time.sleep(2.0)
        return 0.3  # at 0.3 s per 128 px step, only 64 px fits 20 epochs of this folder in 28 s

    monkeypatch.setattr(sizing, "_step_seconds", slow_probe)
    config = TrainConfig(**FAST, time_budget=30.0)
    result = train(pets, tmp_path / "run", config, verbose=0)
    assert result.image_size["side"] == 64 and result.image_size["probe_s"] >= 2.0
    assert result.model.input_shape[1:3] == (64, 64)
    assert result.image_size["probe_s"] <= result.seconds <= config.time_budget
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["image_size"]["asked"] == "auto" and record["image_size"]["side"] == 64
    assert record["train_config"]["image_size"] == 64
    assert record["model_config"]["input_shape"] == [64, 64, 3]


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("interrupted")


def test_a_resumed_run_keeps_the_side_it_chose(pets, tmp_path, monkeypatch):
    _timed_step(monkeypatch, 30.0)  # a slow machine: only 64 px fits 3 epochs in 600 s
    monkeypatch.setattr(sizing, "native_side", lambda paths, seed=0: None)  # 40x48 px would cap at 64
    config = TrainConfig(**FAST, epochs=3, time_budget=600.0)
    with pytest.raises(RuntimeError, match="interrupted"):
        train(pets, tmp_path / "run", config, verbose=0, callbacks=[_Interrupt()])
    chosen = json.loads((tmp_path / "run" / "run.json").read_text())["image_size"]
    assert chosen["side"] == 64
    # The machine now looks fast (auto would choose 256), but the run goes on at its own side.
    _timed_step(monkeypatch, 1e-4)
    result = train(pets, tmp_path / "run", config, verbose=0)
    assert result.resumed_from == 1 and result.image_size == chosen
    assert result.model.input_shape[1:3] == (chosen["side"], chosen["side"])
    # A new run in another folder would choose again.
    assert train(pets, tmp_path / "new", TrainConfig(**FAST, epochs=1, time_budget=600.0),
                 verbose=0).image_size["side"] == 256  # fmt: skip


def test_the_flag_takes_auto_or_a_number():
    parser = build_parser()
    assert train_config(parser.parse_args(["train", "DATA", "--image-size", "auto"])).image_size is None
    assert train_config(parser.parse_args(["train", "DATA"])).image_size is None
    assert train_config(parser.parse_args(["train", "DATA", "--image-size", "96"])).image_size == 96
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["train", "DATA", "--image-size", "big"])
    assert exc.value.code == 2
