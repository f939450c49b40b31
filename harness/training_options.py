"""The Keras objects behind a phase's training knobs (schedule, weight decay, label smoothing, best
epoch), and the callback that prints its progress lines.

`harness.spec.schedules` declares them; the engine builds them here once the number of steps per
epoch is known. At their defaults (`schedule=None`, `weight_decay=None`, `label_smoothing=0.0`,
no `checkpoint_best`) `optimizer` and `loss` return exactly what the engine compiled before
these knobs existed: the optimizer class with `learning_rate=<float>` only, and the loss string
"sparse_categorical_crossentropy" (tested by comparing configs).

- `cosine(...)` is `keras.optimizers.schedules.CosineDecay` (with its linear warm-up);
- `one_cycle(...)` is `OneCycle`, a `LearningRateSchedule` with PyTorch's `OneCycleLR` formula;
- `label_smoothing > 0` trains on `SmoothedSparseCrossentropy`: the labels stay sparse (so the
  input pipelines, `class_weight` and the accuracy metric are unchanged), one-hot inside the loss;
- `checkpoint_best(...)` is `BestEpoch`, an in-memory snapshot restored when training ends;
- `LearningRateLog` puts the rate in each epoch's logs, so `history` and the progress lines show it;
- `Progress` writes one line per epoch (`--metrics-json` users see the same figures in `history`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from harness import spec


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Optimizer steps in one epoch: the last, partial batch counts."""
    return max(1, math.ceil(train_size / batch_size))


def learning_rate(
    phase: spec.Phase, rate: float, steps: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`rate` (the phase's `learning_rate`, or its `backbone_learning_rate`) under the phase's schedule.

    The schedule peaks at `rate`; a `one_cycle(max_learning_rate=...)` peaks there for the head,
    and the backbone's schedule keeps the ratio `backbone_learning_rate / learning_rate`.
    `steps` is the number of optimizer steps per epoch.
    """
    schedule = phase.schedule
    if schedule is None:
        return rate
    total = phase.epochs * steps
    if isinstance(schedule, spec.Cosine):
        alpha = schedule.min_learning_rate / phase.learning_rate  # the same fraction for the backbone
        if schedule.warmup_epochs == 0:
            return keras.optimizers.schedules.CosineDecay(rate, total, alpha=alpha)
        warmup = schedule.warmup_epochs * steps
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, alpha=alpha, warmup_target=rate, warmup_steps=warmup
        )
    peak = rate if schedule.max_learning_rate is None else schedule.max_learning_rate * rate / phase.learning_rate
    return OneCycle(peak, total, schedule.pct_start, schedule.div_factor, schedule.final_div_factor)


def optimizer(phase: spec.Phase, rate: float, steps: int) -> keras.optimizers.Optimizer:
    """The phase's optimizer at `rate` (see `learning_rate`), with its `weight_decay` when one is given."""
    arguments: dict[str, Any] = {"learning_rate": learning_rate(phase, rate, steps)}
    if phase.weight_decay is not None:
        arguments["weight_decay"] = phase.weight_decay
    return getattr(keras.optimizers, spec.OPTIMIZERS[phase.optimizer])(**arguments)


def loss(phase: spec.Phase) -> str | keras.losses.Loss:
    """The phase's loss: sparse categorical cross-entropy, label-smoothed when the phase asks."""
    if phase.label_smoothing == 0.0:
        return "sparse_categorical_crossentropy"
    return SmoothedSparseCrossentropy(phase.label_smoothing)


@keras.saving.register_keras_serializable(package="harness")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """The one-cycle policy over `total_steps` steps, as PyTorch's `OneCycleLR(anneal_strategy="cos")`.

    The rate rises along half a cosine from `max_learning_rate / div_factor` at step 0 to
    `max_learning_rate` at step `pct_start * total_steps - 1`, then falls along half a cosine to
    `max_learning_rate / (div_factor * final_div_factor)` at step `total_steps - 1`, and stays
    there.
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.25,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        name: str = "OneCycle",
    ):
        super().__init__()
        self.max_learning_rate, self.total_steps, self.pct_start = max_learning_rate, total_steps, pct_start
        self.div_factor, self.final_div_factor, self.name = div_factor, final_div_factor, name

    def __call__(self, step: Any) -> Any:
        peak = float(self.max_learning_rate)
        start = peak / self.div_factor
        end = start / self.final_div_factor
        last = float(max(self.total_steps - 1, 1))
        rise = float(self.pct_start * self.total_steps - 1)  # the step where the peak is reached
        step = ops.minimum(ops.cast(step, "float32"), last)
        if rise <= 0:  # fewer than one step to rise: start at the peak (PyTorch divides by zero here)
            return _cos_anneal(peak, end, step / last)
        return ops.where(
            step <= rise,
            _cos_anneal(start, peak, step / rise),
            _cos_anneal(peak, end, (step - rise) / max(last - rise, 1e-12)),
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }


def _cos_anneal(start: float, end: float, fraction: Any) -> Any:
    """From `start` at 0 to `end` at 1 along half a cosine (PyTorch's `_annealing_cos`)."""
    return end + (start - end) / 2.0 * (ops.cos(math.pi * fraction) + 1.0)


@keras.saving.register_keras_serializable(package="harness")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy with `label_smoothing`, on sparse (integer) labels.

    Keras 3's `SparseCategoricalCrossentropy` has no `label_smoothing`; this one-hots the labels
    to the prediction's width and calls `keras.losses.categorical_crossentropy`.
    """

    def __init__(
        self,
        label_smoothing: float,
        name: str = "smoothed_sparse_categorical_crossentropy",
        reduction: str = "sum_over_batch_size",
        dtype: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = label_smoothing

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        one_hot = ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class BestEpoch(keras.callbacks.Callback):
    """`checkpoint_best(...)`: keeps the weights of the best epoch by `monitor`, restores them at the end.

    The snapshot is a copy of the model's weights in memory after each epoch that strictly
    improves on the best so far (non-finite values never count); `best_epoch` is 0-based.
    """

    def __init__(self, declared: spec.CheckpointBest):
        super().__init__()
        self.monitor = declared.monitor
        maximize = declared.mode == "max" or (declared.mode == "auto" and "accuracy" in declared.monitor)
        self.sign = -1.0 if maximize else 1.0
        self.best_epoch: int | None = None

    def on_train_begin(self, logs: Any = None) -> None:
        self.best, self.best_epoch = math.inf, None
        self.weights: list[np.ndarray] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)) or self.sign * float(value) >= self.best:
            return
        self.best, self.best_epoch = self.sign * float(value), epoch
        self.weights = [np.array(v.numpy(), copy=True) for v in self.model.weights]

    def on_train_end(self, logs: Any = None) -> None:
        # Also when the best epoch is the last: an `early_stopping` restore may have run before.
        if self.best_epoch is not None:
            for variable, value in zip(self.model.weights, self.weights, strict=True):
                variable.assign(value)


def kept_epoch(callbacks: list[keras.callbacks.Callback]) -> int | None:
    """The epoch (1-based) whose weights `checkpoint_best` restored; None without one (or no finite value)."""
    best = next((c for c in callbacks if isinstance(c, BestEpoch)), None)
    return None if best is None or best.best_epoch is None else best.best_epoch + 1


class LearningRateLog(keras.callbacks.Callback):
    """Adds the optimizer's rate at the end of each epoch to the logs, as `learning_rate`."""

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


class Progress(keras.callbacks.Callback):
    """One line per epoch: experiment, phase, epoch i/n, loss, accuracy, the rate under a schedule, ETA."""

    def __init__(self, write: Callable[[str], None], experiment: str, phase: spec.Phase):
        super().__init__()
        self.write, self.experiment, self.phase = write, experiment, phase

    def on_train_begin(self, logs: Any = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        done = epoch + 1
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.phase.epochs - done)
        metrics = " ".join(f"{k}={logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
        if self.phase.schedule is not None and "learning_rate" in logs:
            metrics += f" lr={logs['learning_rate']:.1e}"
        self.write(
            f"{self.experiment} {self.phase.name} epoch {done}/{self.phase.epochs} {metrics} "
            f"elapsed={elapsed:.1f}s eta={eta:.1f}s"
        )


def callbacks(
    phase: spec.Phase, experiment: str, progress: Callable[[str], None] | None
) -> list[keras.callbacks.Callback]:
    """The Keras callbacks a phase trains with: what it declares, then the rate log and the progress lines."""
    found: list[keras.callbacks.Callback] = []
    best = [BestEpoch(c) for c in phase.callbacks if isinstance(c, spec.CheckpointBest)]
    for declared in phase.callbacks:
        if isinstance(declared, spec.CheckpointBest):
            continue
        if isinstance(declared, spec.EarlyStopping):
            found.append(
                keras.callbacks.EarlyStopping(
                    monitor=declared.monitor,
                    patience=declared.patience,
                    restore_best_weights=declared.restore_best_weights,
                )
            )
        else:
            found.append(
                keras.callbacks.ReduceLROnPlateau(
                    monitor=declared.monitor,
                    factor=declared.factor,
                    patience=declared.patience,
                    min_lr=declared.min_lr,
                )
            )
    found += best  # after early stopping: its restore comes first, checkpoint_best's last
    if phase.schedule is not None:
        found.append(LearningRateLog())
    if progress is not None:
        found.append(Progress(progress, experiment, phase))
    return found
