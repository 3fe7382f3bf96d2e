"""The length of training: a time budget plans the schedule (issue 17), the default length, and
the hints a finished run gives."""

import json
import os

import keras
import numpy as np
import pytest

from simplecnn.config import DEFAULT_BUDGET_S, DEFAULT_EPOCHS, TrainConfig
from simplecnn.errors import BudgetError
from simplecnn.training import budget, train
from simplecnn.training.budget import (
    BUDGET_MAX_EPOCHS, Length, Plan, ema_momentum, ema_window, format_seconds, length_of,
)  # fmt: skip
from simplecnn.training.hints import after_training, still_improving

pytestmark = pytest.mark.multibackend

FAST = dict(image_size=32, batch_size=8, seed=3)


@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    from imagegen import make_folder

    return make_folder(str(tmp_path_factory.mktemp("budget") / "pets"), per_class=20)


# --- the plan's arithmetic -------------------------------------------------------------------


def test_the_length_asked_for():
    assert length_of(TrainConfig()) == Length(DEFAULT_EPOCHS, DEFAULT_BUDGET_S, default=True)
    assert length_of(TrainConfig(epochs=7)) == Length(7, None)
    assert length_of(TrainConfig(time_budget=300)) == Length(BUDGET_MAX_EPOCHS, 300.0)
    assert length_of(TrainConfig(epochs=7, time_budget=300)) == Length(7, 300.0)
    assert "15m00s budget, at most 60 epochs (the default length)" in length_of(TrainConfig()).describe()
    assert [format_seconds(s) for s in (42, 845, 7380)] == ["42 s", "14m05s", "2h03m"]
    assert ema_window(5.0, 6) == pytest.approx(0.6) and ema_window(5.0, 60) == 5.0
    assert ema_momentum(2.0, 50) == pytest.approx(0.99)


def test_a_plan_fits_the_budget_and_shortens_when_the_machine_slows():
    plan = Plan(Length(BUDGET_MAX_EPOCHS, 100.0), warmup_epochs=1)
    assert plan.update(1, 10.0, 10.0) and plan.epochs == 9  # 1 + floor((100 - 10 - 2.5) / 10)
    # Epoch 2 is faster (the first compiles and decodes): lengthened, early on.
    assert plan.update(2, 18.0, 8.0) and plan.epochs == 11  # 2 + floor((100 - 18 - 2.2) / 8.8)
    assert plan.update(3, 38.0, 20.0) and plan.epochs == 7  # slower: shortened at once
    assert 38.0 + (plan.epochs - 3) * (8.0 + 20.0) / 2 <= 100.0  # at the mean since epoch 1
    # Late in the plan it is lengthened one epoch at a time (the decay is well under way), and
    # not at all when 10% slower epochs would not fit.
    plan.epochs, plan.times = 8, [10.0] * 6
    assert plan.update(6, 60.0, 1.0) and plan.epochs == 9  # 4 more would fit; one is added
    plan.epochs, plan.times = 8, [10.0] * 6
    assert not plan.update(6, 75.0, 10.0) and plan.epochs == 8  # 6 + floor((25 - 2.75) / 11) = 8
    # A constant learning rate has no decay to keep: its plan follows the time either way.
    plan = Plan(Length(BUDGET_MAX_EPOCHS, 100.0), epochs=8, times=[10.0] * 6, changes=[(1, 8)], decays=False)
    assert plan.update(6, 60.0, 1.0) and plan.epochs == 10


def test_a_slow_last_epoch_does_not_overrun_the_budget():
    # The epoch times of a recorded 300 s run on a host that swings between two speeds
    # (benchmarks/results/recipe_candidates_flowers_300, b32 seed 2; 6.2 s of image-size probe
    # first). Planned from the mean and a quarter of an epoch, its plan grew to 10 epochs in a
    # fast spell and the 10th, a slow one, ended at 300.7 s.
    times = [32.6, 38.2, 39.9, 23.1, 24.8, 25.0, 24.6, 22.2, 23.8, 40.3]
    plan = Plan(Length(BUDGET_MAX_EPOCHS, 300.0), warmup_epochs=1)
    elapsed, done = 6.2, 0
    while done < plan.epochs:
        elapsed += times[done]
        done += 1
        plan.update(done, elapsed, times[done - 1])
    assert done == 9 and elapsed <= 300.0
    # Any order of epochs no slower than one already seen in the last ten ends within the budget.
    rng = np.random.default_rng(0)
    for _ in range(200):
        plan, elapsed, done = Plan(Length(BUDGET_MAX_EPOCHS, 300.0), warmup_epochs=1), 0.0, 0
        while done < plan.epochs:
            seconds = 30.0 if done == 0 else (24.0, 40.0)[int(done in (1, 2) or rng.random() < 0.3)]
            elapsed, done = elapsed + seconds, done + 1
            plan.update(done, elapsed, seconds)
        assert elapsed <= 300.0 and done >= 6


def test_a_plan_never_exceeds_its_epochs_nor_drops_below_a_schedule():
    plan = Plan(Length(5, 1000.0), warmup_epochs=1)
    plan.update(1, 1.0, 1.0)
    assert plan.epochs == 5  # --epochs bounds the budget's plan
    plan = Plan(Length(BUDGET_MAX_EPOCHS, 10.0), warmup_epochs=3)
    plan.update(1, 9.0, 9.0)
    assert plan.epochs == 4  # a warm-up of 3 epochs and one epoch of decay: the shortest plan
    assert plan.too_short(3.0) and not plan.too_short(2.0)
    assert not Plan(Length(3, None)).update(1, 500.0, 500.0)  # no budget: the epochs asked for


# --- the plan drives the schedule ------------------------------------------------------------


class _FakeClock(keras.callbacks.Callback):
    """Every epoch takes ``seconds`` of the fake clock that simplecnn.training.budget reads."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.t = seconds, 0.0

    def __call__(self):
        return self.t

    def on_epoch_begin(self, epoch, logs=None):
        self.t += self.seconds


def _weights(run_dir):
    from simplecnn.checkpoints import load_model_file

    return load_model_file(os.path.join(run_dir, "model.keras")).get_weights()


def test_a_budget_plans_the_decay_and_the_training_step_follows_the_new_plan(pets, tmp_path, monkeypatch):
    clock = _FakeClock(10.0)
    monkeypatch.setattr(budget, "now", clock)
    config = TrainConfig(**FAST, time_budget=35.0, ema_epochs=0)
    result = train(pets, tmp_path / "budget", config, verbose=0, callbacks=[clock])
    # 10 s epochs in 35 s: planned after epoch 1 (warm-up) for 3 epochs, which all ran.
    assert result.plan["planned_epochs"] == 3 and len(result.history["loss"]) == 3
    assert result.plan["changes"] == [{"after_epoch": 1, "epochs": 3}]
    lrs = result.history["learning_rate"]
    assert lrs[1] > lrs[2] and lrs[2] < 0.05 * config.learning_rate  # decayed to its floor
    # The same as a run asked for 3 epochs: the compiled step used the shortened decay.
    fixed = train(pets, tmp_path / "fixed", TrainConfig(**FAST, epochs=3, ema_epochs=0), verbose=0)
    assert np.allclose(result.history["loss"], fixed.history["loss"], rtol=1e-4)
    for a, b in zip(_weights(result.run_dir), _weights(fixed.run_dir)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    record = json.loads((tmp_path / "budget" / "run.json").read_text())
    assert record["plan"]["planned_epochs"] == 3 and record["epochs_run"] == 3
    header = (tmp_path / "budget" / "history.csv").read_text().splitlines()[0]
    assert "learning_rate" in header.split(",")


def test_a_budget_too_short_for_two_epochs_says_so_and_keeps_nothing(pets, tmp_path, monkeypatch):
    clock = _FakeClock(10.0)
    monkeypatch.setattr(budget, "now", clock)
    with pytest.raises(BudgetError, match=r"--time-budget 15 does not fit 2 epochs: one takes about 10 s"):
        train(pets, tmp_path / "run", TrainConfig(**FAST, time_budget=15.0), verbose=0, callbacks=[clock])
    assert not (tmp_path / "run").exists()


def test_a_budget_of_n_seconds_ends_within_n_with_a_completed_decay(pets, tmp_path):
    config = TrainConfig(**FAST, time_budget=30.0)
    result = train(pets, tmp_path / "run", config, verbose=0)
    epochs = len(result.history["loss"])
    assert result.seconds <= config.time_budget
    assert epochs == result.plan["planned_epochs"] >= 2
    optimizer = result.model.optimizer
    schedule = budget.learning_rate_schedule(optimizer)
    steps = int(keras.ops.convert_to_numpy(optimizer.iterations))
    assert steps == schedule.warmup_steps + schedule.decay_steps  # the decay ended with the last step
    floor = float(keras.ops.convert_to_numpy(schedule(steps)))
    assert floor == pytest.approx(schedule.alpha * config.learning_rate, rel=1e-3)


def test_the_progress_shows_the_plan_and_the_time_left(pets, tmp_path, capsys):
    from simplecnn.cli import main

    assert main(["train", pets, "--out", str(tmp_path / "run"), "--image-size", "32", "--batch-size",
                 "8", "--time-budget", "40", "--quiet-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Epoch 1 (the number of epochs in a 40 s budget is planned from this one's time)" in out
    assert "of the budget left)" in out and "planned in a 40 s budget" in out


# --- hints ------------------------------------------------------------------------------------


def _history(val_loss, acc=0.8, val_acc=0.78):
    n = len(val_loss)
    return {"loss": [0.5] * n, "val_loss": list(val_loss), "accuracy": [acc] * n, "val_accuracy": [val_acc] * n}


def test_still_improving_needs_a_falling_validation_loss_without_overfitting():
    assert still_improving(_history([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4]))
    assert not still_improving(_history([0.9, 0.6, 0.5, 0.45, 0.45, 0.45, 0.449, 0.45]))  # flat
    assert not still_improving(_history([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4], acc=0.99, val_acc=0.8))
    # The recorded lfw runs' shapes: the loss drifts down after the accuracy peaked, or the
    # model already fits every training image.
    falling = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4]
    peaked = {**_history(falling), "val_accuracy": [0.8, 0.9, 0.95, 0.95, 0.9, 0.9, 0.9, 0.9]}
    assert not still_improving(peaked)
    assert not still_improving(_history(falling, acc=1.0, val_acc=0.95))


def test_hints_say_when_the_model_only_answers_the_largest_class_and_why():
    plan = {"budget_s": 900.0}
    history = _history([0.69] * 3, acc=0.52, val_acc=0.55)
    hints = after_training(history, {"val_accuracy": 0.55}, 800.0, plan, {"cats": 55, "dogs": 45}, 256)
    assert len(hints) == 1
    assert hints[0].startswith("the kept model is no better than always answering 'cats'")
    assert "only 3 epochs ran, too few for 256 px images; try a longer --time-budget or --image-size 128" in hints[0]
    assert after_training(history, {"val_accuracy": 0.9}, 800.0, plan, {"cats": 55, "dogs": 45}, 64) == []


def test_hints_blame_stale_batchnorm_statistics_when_precise_bn_was_off():
    # The recorded plain recipe on the lfw faces at 256 px (recipe_auto_lfw_300, seed 0): 20
    # epochs of 4 steps, training accuracy 0.975, every validation image called 'background'.
    history = _history([0.69] * 20, acc=0.975, val_acc=0.5)
    counts = {"background": 20, "person": 20}
    [hint] = after_training(history, {"val_accuracy": 0.5}, 280.0, {"budget_s": 300.0}, counts, 256, bn_updates=80)
    assert "BatchNorm statistics averaged over only 80 training steps (45% of them" in hint
    assert "drop --no-precise-bn" in hint
    # Enough steps for the averages to settle, or precise BN on: the other causes.
    for updates in (400, None):
        [hint] = after_training(history, {"val_accuracy": 0.5}, 280.0, {"budget_s": 300.0}, counts, 256, updates)
        assert "BatchNorm" not in hint and "not in a way that carries" in hint


def test_hints_say_what_a_longer_run_would_cost():
    history = _history([0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4])
    [hint] = after_training(history, {"val_accuracy": 0.78}, 400.0, {"budget_s": 450.0}, {"a": 5, "b": 5}, 64)
    assert "still falling at the end (best epoch 8 of 8)" in hint
    assert "--time-budget 900 (about 18 epochs at 50 s each)" in hint
    [hint] = after_training(history, {"val_accuracy": 0.78}, 400.0, {"budget_s": None}, {"a": 5, "b": 5}, 64)
    assert "--epochs 16 (about 14 minutes here)" in hint
