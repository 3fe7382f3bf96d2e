"""How long ``train`` trains: a number of epochs, or a time budget that shapes the schedule.

Keras's ``CosineDecay`` is planned in optimizer steps, which a time budget does not give. The
:class:`Plan` turns the budget into a number of epochs from the measured time of the epochs so
far; :class:`PlannedLength`, which :class:`~simplecnn.training.callbacks.EpochEnd` drives,
measures, re-plans (it sets the decay's length, so the last epoch that fits ends fully decayed
and the kept model is the best of a complete schedule) and says when the plan is done.

- After the first few steps it checks that two epochs fit at all, and stops with a
  :class:`~simplecnn.errors.BudgetError` (nothing kept) when they do not.
- After epoch 1 (the warm-up, whose learning rates do not depend on the plan) it plans; after
  each later epoch it shortens the plan when the epochs so far say it would overrun, and
  lengthens it when 10% slower epochs would still fit: freely in the plan's first half, one
  epoch per re-plan after it (epoch times here swing by 2x, and a plan only ever shortened left
  13-18% of 900 s budgets unused).
- The weight average's window is kept to at most a tenth of the planned epochs (:func:`ema_window`).
- Each change of plan re-traces the training step (the schedule's length and the average's
  momentum are constants in it).

With neither ``epochs`` nor ``time_budget`` given, the length is the default: as many epochs
as fit in :data:`DEFAULT_BUDGET_S` seconds, at most :data:`DEFAULT_EPOCHS` (the measurements
behind both are in docs/recipe.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import keras

from simplecnn.config import BN_BATCHES, DEFAULT_BUDGET_S, DEFAULT_EPOCHS
from simplecnn.errors import BudgetError

__all__ = ["DEFAULT_BUDGET_S", "DEFAULT_EPOCHS", "Length", "Plan", "PlannedLength", "PlannedProgbar",
           "length_of", "learning_rate_schedule", "ema_window", "ema_momentum", "format_seconds"]  # fmt: skip

# A budget without --epochs plans at most this many epochs (a bound fit() needs; never reached
# in practice: 10,000 epochs of one step each).
BUDGET_MAX_EPOCHS = 10_000
# Fewer epochs than this are not a schedule (warm-up, then at least one epoch of decay).
MIN_EPOCHS = 2
# The plan leaves this fraction of an epoch unused at the end of the budget.
SPARE = 0.25
# The last epoch of a plan is given room to be as slow as the slowest of this many recent epochs
# (a host that swings between two speeds overran a 300 s budget by 1 s when it was given the mean
# and SPARE: benchmarks/results/recipe_candidates_flowers_300, b32 seed 2; tests/test_budget.py).
SLOW_WINDOW = 10
# Lengthen the plan only when the extra epochs fit with this much time to spare.
GROW_MARGIN = 1.10
# The weight average covers at most this share of the planned epochs.
EMA_SHARE = 0.1
# Steps of the first epoch timed (after the first, which compiles) before checking the budget.
PROBE_STEPS = 4


def now() -> float:
    """The clock the plan is made with (seconds; a test may replace it)."""
    return time.perf_counter()


@dataclass(frozen=True)
class Length:
    """What the recipe asks for: at most ``epochs``, within ``budget`` seconds (None: no limit)."""

    epochs: int
    budget: float | None
    default: bool = False  # neither epochs nor time_budget was given

    def describe(self) -> str:
        if self.budget is None:
            return f"{self.epochs} epochs"
        bound = "" if self.epochs >= BUDGET_MAX_EPOCHS else f", at most {self.epochs} epochs"
        return f"a {format_seconds(self.budget)} budget{bound}" + (" (the default length)" if self.default else "")


def length_of(config: Any) -> Length:
    """The :class:`Length` a :class:`~simplecnn.config.TrainConfig` asks for."""
    if config.epochs is None and config.time_budget is None:
        return Length(DEFAULT_EPOCHS, DEFAULT_BUDGET_S, default=True)
    if config.epochs is None:
        return Length(BUDGET_MAX_EPOCHS, float(config.time_budget))
    return Length(int(config.epochs), None if config.time_budget is None else float(config.time_budget))


def ema_window(ema_epochs: float, planned_epochs: int) -> float:
    """The weight average's window in epochs: ``ema_epochs``, but at most :data:`EMA_SHARE` of
    the planned epochs (a 5-epoch average over a 6-epoch run would keep mostly its early weights)."""
    return min(ema_epochs, EMA_SHARE * planned_epochs)


def ema_momentum(window_epochs: float, steps_per_epoch: int) -> float:
    """The momentum of a moving average over about ``window_epochs`` epochs: 1 - 1 / steps."""
    return 1.0 - 1.0 / max(2.0, window_epochs * steps_per_epoch)


def format_seconds(seconds: float) -> str:
    """``42 s``, ``14m05s``, ``2h03m``."""
    seconds = max(0.0, seconds)
    if seconds < 100:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 100:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


@dataclass
class Plan:
    """The number of epochs to run, planned from a :class:`Length` and the epochs' times.

    Pure arithmetic (no Keras), so that the planning rules are tested on their own.
    """

    length: Length
    epochs: int = 0  # the current plan
    times: list[float] = field(default_factory=list)  # seconds of each finished epoch (this process)
    changes: list[tuple[int, int]] = field(default_factory=list)  # (after epoch, new plan)
    warmup_epochs: int = 0  # the plan keeps at least one epoch of decay after the warm-up
    decays: bool = True  # False (a constant learning rate): the plan follows the time freely

    def __post_init__(self) -> None:
        self.epochs = self.epochs or self.length.epochs

    @property
    def min_epochs(self) -> int:
        """The shortest plan: :data:`MIN_EPOCHS`, and one epoch of decay after the warm-up."""
        return min(self.length.epochs, max(MIN_EPOCHS, self.warmup_epochs + 1))

    def epoch_seconds(self) -> float:
        """The next epochs' expected seconds: the mean of the last five, leaving out the first
        epoch (compilation, first decoding) once another is measured. A mean, not the slowest:
        epoch times here swing by up to 2x between two speeds, and the plan is re-made after
        every epoch from the time actually left, so only the last epoch's swing is at risk
        (:meth:`fits` keeps room for it)."""
        recent = self._recent()
        return sum(recent) / len(recent)

    def _recent(self, n: int = 5) -> list[float]:
        """The last ``n`` epochs' times, leaving out the first once another is measured."""
        return (self.times[1:] if len(self.times) > 1 else self.times)[-n:]

    def fits(self, done: int, elapsed: float, margin: float = 1.0) -> int:
        """How many epochs in all fit in the budget, from ``done`` epochs after ``elapsed`` s:
        all but the last at the estimate, the last as slow as the slowest recent epoch (and at
        least :data:`SPARE` of an epoch kept), so a slow spell at the end does not overrun."""
        assert self.length.budget is not None
        per_epoch = self.epoch_seconds() * margin
        slowest = max(self._recent(SLOW_WINDOW)) * margin
        reserve = max(SPARE * per_epoch, slowest - per_epoch)
        more = math.floor((self.length.budget - elapsed - reserve) / per_epoch)
        return done + max(0, more)

    def update(self, done: int, elapsed: float, seconds: float) -> bool:
        """Record an epoch of ``seconds`` that ended after ``elapsed`` s of training, ``done``
        epochs in all, and re-plan. True when the plan changed."""
        self.times.append(seconds)
        if self.length.budget is None:
            return False
        new = min(self.length.epochs, self.fits(done, elapsed))
        if new >= self.epochs:  # no need to shorten: lengthen only with room to spare
            grown = min(self.length.epochs, self.fits(done, elapsed, GROW_MARGIN))
            early = not self.changes or done < self.epochs / 2 or not self.decays
            # Late in a decay, one epoch at a time: a longer decay raises the learning rate
            # again, by at most a few percent of the peak for one epoch in the second half.
            new = self.epochs if grown <= self.epochs else grown if early else self.epochs + 1
        new = max(new, done, self.min_epochs)
        if new == self.epochs:
            return False
        self.changes.append((done, new))
        self.epochs = new
        return True

    def too_short(self, epoch_estimate: float) -> bool:
        """Whether fewer than :attr:`min_epochs` epochs of ``epoch_estimate`` s fit."""
        return self.length.budget is not None and self.min_epochs * epoch_estimate > self.length.budget


class PlannedLength:
    """Plans the schedule's length in a time budget; :class:`~simplecnn.training.callbacks.EpochEnd`
    calls it at the points of the epoch it needs (it is part of the end-of-epoch sequence).

    Args:
        plan: the :class:`Plan`.
        steps_per_epoch: training steps per epoch.
        val_steps: validation batches per epoch (their time is estimated before epoch 1 ends).
        state: what :meth:`state` returned in a resumed run's backup.
        agree: makes every process of a multi-process job use process 0's number.
        ema_epochs: the recipe's weight-average window, shortened to fit a short plan.

    Its planning decisions are collected in :attr:`notes` (:class:`PlannedProgbar` prints them
    after the epoch's progress line) and :attr:`plan`'s ``changes``.
    """

    def __init__(self, plan: Plan, steps_per_epoch: int, val_steps: int = 0,
                 state: dict[str, Any] | None = None, agree: Callable[[float], float] = float,
                 ema_epochs: float = 0.0) -> None:  # fmt: skip
        state = state or {}
        self.plan, self.steps, self.val_steps, self.agree = plan, steps_per_epoch, val_steps, agree
        self.ema_epochs = ema_epochs
        self.notes: list[str] = []
        self.plan.epochs = int(state.get("planned_epochs", plan.epochs))
        self.plan.times = [float(t) for t in state.get("epoch_seconds", [])]
        self.before = float(state.get("seconds", 0.0))  # training time of earlier processes
        self.model: keras.Model | None = None
        self.start = self._epoch_start = self._step1 = now()
        self.checked = plan.length.budget is None or bool(self.plan.times)

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, resumed processes included."""
        return self.before + now() - self.start

    def state(self) -> dict[str, Any]:
        """What a backup keeps, so that a resumed run goes on with the same plan."""
        return {"planned_epochs": self.plan.epochs, "epoch_seconds": list(self.plan.times),
                "seconds": self.elapsed}  # fmt: skip

    def start_clock(self, spent: float = 0.0) -> None:
        """Training starts now (``train`` calls this where it starts timing), ``spent`` seconds
        of the budget having gone to preparing it (choosing the image side)."""
        self.start = now() - spent

    def begin(self, model: keras.Model) -> None:
        self.model = model
        self._schedule_to(self.plan.epochs)

    def epoch_begin(self) -> None:
        self._epoch_start = now()

    def batch_end(self, batch: int) -> None:
        """Before the first epoch is far along, check that the budget fits two epochs."""
        if self.checked or self.steps < PROBE_STEPS + 1:
            return
        if batch == 0:
            self._step1 = now()
        elif batch == PROBE_STEPS:
            step = (now() - self._step1) / PROBE_STEPS
            # Validation and precise BN run forward passes only: about a third of a step each.
            estimate = self.agree((self._step1 - self._epoch_start) + step * (self.steps - 1)
                                  + step * (self.val_steps + BN_BATCHES) / 3)  # fmt: skip
            self.checked = True
            self._refuse_if_too_short(estimate, f"measured on its first {PROBE_STEPS + 1} steps")

    def epoch_end(self, epoch: int) -> None:
        """After epoch ``epoch`` (0-based) and its validation: measure and re-plan."""
        seconds, done = now() - self._epoch_start, epoch + 1
        if not self.checked:  # epochs too short to probe: check on the first whole one
            self.checked = True
            self._refuse_if_too_short(self.agree(seconds), "measured")
        # The plan is arithmetic on agreed numbers, so every process makes the same one.
        if self.plan.update(done, self.agree(self.elapsed), self.agree(seconds)):
            self._schedule_to(self.plan.epochs, retrace=True)
            left = self.plan.length.budget - self.elapsed
            self.notes.append(f"planned {self.plan.epochs} epochs in {self.plan.length.describe()} (about "
                              f"{format_seconds(self.plan.epoch_seconds())} each; {format_seconds(left)} left)")  # fmt: skip

    def finished(self, epoch: int) -> bool:
        """Whether the plan ends with epoch ``epoch`` (0-based)."""
        return epoch + 1 >= self.plan.epochs

    def _refuse_if_too_short(self, estimate: float, how: str) -> None:
        if self.plan.too_short(estimate):
            budget, needed = self.plan.length.budget, math.ceil(self.plan.min_epochs * estimate * 1.2)
            raise BudgetError(
                f"--time-budget {budget:g} does not fit {self.plan.min_epochs} epochs: one takes "
                f"about {format_seconds(estimate)} here ({how}); give --time-budget {needed} or "
                "more, or a smaller --image-size", needed=needed)  # fmt: skip

    def _schedule_to(self, epochs: int, retrace: bool = False) -> None:
        """Make the learning-rate schedule's decay end after ``epochs`` epochs, and the weight
        average's window fit them (:func:`ema_window`)."""
        optimizer = self.model.optimizer
        changed = False
        schedule = learning_rate_schedule(optimizer)
        if isinstance(schedule, keras.optimizers.schedules.CosineDecay):
            decay = max(1, epochs * self.steps - int(schedule.warmup_steps))
            changed, schedule.decay_steps = decay != schedule.decay_steps, decay
        if getattr(optimizer, "use_ema", False) and self.ema_epochs:
            momentum = ema_momentum(ema_window(self.ema_epochs, epochs), self.steps)
            changed, optimizer.ema_momentum = changed or momentum != optimizer.ema_momentum, momentum
        if changed and retrace:  # both are constants in the compiled training step
            self.model.make_train_function(force=True)


def learning_rate_schedule(optimizer: Any) -> Any:
    """The optimizer's learning-rate schedule (or its learning-rate variable).

    Keras has no public accessor for the schedule object an optimizer holds: this reads
    ``_learning_rate``, which ``Optimizer.learning_rate``'s getter and setter use. Checked by
    tests/test_budget.py (a planned run's last epoch ends at the decay's floor).
    """
    return getattr(optimizer, "_learning_rate", None)


class PlannedProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, headed with the planned epochs and the time left in the budget."""

    def __init__(self, plan: Plan, clock: "PlannedLength") -> None:
        super().__init__()
        self.plan, self.clock = plan, clock

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs = 1  # Keras prints "Epoch k/N" only when N > 1: the line below replaces it
        super().on_epoch_begin(epoch, logs)
        if not self.verbose:
            return
        budget = self.plan.length.budget
        if budget is None:
            line = f"Epoch {epoch + 1}/{self.plan.epochs}"
        elif not self.plan.times:
            line = f"Epoch {epoch + 1} (the number of epochs in {self.plan.length.describe()} is planned from this one's time)"
        else:
            line = (f"Epoch {epoch + 1}/{self.plan.epochs} ({format_seconds(budget - self.clock.elapsed)} "
                    "of the budget left)")  # fmt: skip
        print(line, flush=True)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        for note in self.clock.notes:
            if self.verbose:
                print(note, flush=True)
        self.clock.notes.clear()
