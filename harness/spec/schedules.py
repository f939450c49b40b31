"""Learning-rate schedules of a phase (`cosine`, `one_cycle`) and the phase's other training knobs.

A schedule here only declares its shape: the number of optimizer steps is known at run time
(the training split's size over the batch size), so the engine builds the Keras schedule
(`harness.training_options`). The phase's `learning_rate` is the peak rate of its schedule.

`training_knobs` checks a phase's `schedule`, `label_smoothing` and `weight_decay` against the
rest of the phase; `phase_config` is what the metrics JSON records of a phase's declaration.
TensorFlow-free, as every spec module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.spec.callbacks import CheckpointBest, ReduceLROnPlateau
from harness.spec.validators import _check, _is_number, _learning_rate, _non_negative_int


@dataclass(frozen=True)
class Cosine:
    """Linear warm-up from 0 to the phase's learning rate, then cosine decay to `min_learning_rate`."""

    warmup_epochs: int = 0
    min_learning_rate: float = 0.0


@dataclass(frozen=True)
class OneCycle:
    """fastai's / PyTorch's one-cycle policy (`OneCycleLR`, cosine annealing, two phases)."""

    max_learning_rate: float | None = None  # None: the phase's learning_rate
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e4


Schedule = Cosine | OneCycle


def cosine(*, warmup_epochs: int = 0, min_learning_rate: float = 0.0) -> Cosine:
    """Cosine decay with an optional linear warm-up, per optimizer step (`keras.optimizers.schedules.CosineDecay`).

    Over the first `warmup_epochs` epochs the rate rises linearly from 0 to the phase's
    `learning_rate`; over the remaining epochs it follows half a cosine down to
    `min_learning_rate`.

    Args:
        warmup_epochs: Epochs of linear warm-up, >= 0 and fewer than the phase's epochs.
            Defaults to 0.
        min_learning_rate: The rate at the end of the phase, in [0, 1) and below the phase's
            `learning_rate`. Defaults to 0.0 (Keras's `alpha=0`).
    """
    _check(
        _is_number(min_learning_rate) and 0 <= min_learning_rate < 1,
        "cosine.min_learning_rate",
        "must be a learning rate in [0, 1)",
        min_learning_rate,
    )
    return Cosine(_non_negative_int(warmup_epochs, "cosine.warmup_epochs"), float(min_learning_rate))


def one_cycle(
    *,
    max_learning_rate: float | None = None,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> OneCycle:
    """The one-cycle policy (fastai's `fit_one_cycle`, PyTorch's `OneCycleLR` with cosine annealing).

    The rate rises from `max_learning_rate / div_factor` to `max_learning_rate` over the first
    `pct_start` of the phase's steps, then falls to `max_learning_rate / (div_factor *
    final_div_factor)` at the last step, both along half a cosine.

    Args:
        max_learning_rate: The peak rate, in (0, 1]. Defaults to None: the phase's `learning_rate`.
        pct_start: The fraction of the steps spent rising, in (0, 1). Defaults to 0.25 (fastai's
            default; PyTorch's is 0.3).
        div_factor: The starting rate is `max_learning_rate / div_factor`, >= 1. Defaults to 25.
        final_div_factor: The final rate is the starting rate divided by this, >= 1. Defaults to 1e4.
    """
    peak = None if max_learning_rate is None else _learning_rate(max_learning_rate, "one_cycle.max_learning_rate")
    _check(_is_number(pct_start) and 0 < pct_start < 1, "one_cycle.pct_start", "must be a number in (0, 1)", pct_start)
    for field, value in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
        _check(_is_number(value) and value >= 1, f"one_cycle.{field}", "must be a number >= 1", value)
    return OneCycle(peak, float(pct_start), float(div_factor), float(final_div_factor))


def training_knobs(
    kind: str,
    *,
    schedule: Any,
    label_smoothing: Any,
    weight_decay: Any,
    epochs: int,
    learning_rate: float,
    callbacks: Sequence[Any],
) -> dict[str, Any]:
    """Checks a phase's `schedule`, `label_smoothing` and `weight_decay`; returns them as Phase fields.

    `epochs`, `learning_rate` and `callbacks` are the phase's, already checked.
    """
    _check(
        schedule is None or isinstance(schedule, (Cosine, OneCycle)),
        f"{kind}.schedule",
        "must be None, cosine(...) or one_cycle(...)",
        schedule,
    )
    if isinstance(schedule, Cosine):
        _check(
            schedule.warmup_epochs < epochs,
            f"{kind}.schedule.warmup_epochs",
            f"must be fewer than the phase's epochs ({epochs}), or the rate never decays",
            schedule.warmup_epochs,
        )
        _check(
            schedule.min_learning_rate < learning_rate,
            f"{kind}.schedule.min_learning_rate",
            f"must be below the phase's learning_rate ({learning_rate:g})",
            schedule.min_learning_rate,
        )
    if schedule is not None:
        for i, c in enumerate(callbacks):
            _check(
                not isinstance(c, ReduceLROnPlateau),
                f"{kind}.callbacks[{i}]",
                "must not be reduce_lr_on_plateau(...) in a phase with a schedule (Keras cannot set a scheduled rate)",
                c,
                hint="Drop one of the two.",
            )
    _check(
        sum(isinstance(c, CheckpointBest) for c in callbacks) <= 1,
        f"{kind}.callbacks",
        "must hold checkpoint_best(...) at most once",
        list(callbacks),
    )
    _check(
        _is_number(label_smoothing) and 0 <= label_smoothing < 1,
        f"{kind}.label_smoothing",
        "must be a number in [0, 1), such as 0.1",
        label_smoothing,
    )
    _check(
        weight_decay is None or (_is_number(weight_decay) and weight_decay >= 0),
        f"{kind}.weight_decay",
        "must be None or a number >= 0, such as 1e-4",
        weight_decay,
    )
    return {
        "schedule": schedule,
        "label_smoothing": float(label_smoothing),
        "weight_decay": None if weight_decay is None else float(weight_decay),
    }


def describe(schedule: Schedule | None) -> dict[str, Any] | None:
    """A schedule as JSON: its kind ("cosine", "one_cycle") and its arguments."""
    if schedule is None:
        return None
    kind = "cosine" if isinstance(schedule, Cosine) else "one_cycle"
    return {"kind": kind, **dataclasses.asdict(schedule)}


def phase_config(phase: Any) -> dict[str, Any]:
    """What the metrics JSON records of a `Phase`'s declared training arguments (typed Any: no import circle)."""
    best = next((c for c in phase.callbacks if isinstance(c, CheckpointBest)), None)
    return {
        "optimizer": phase.optimizer,
        "learning_rate": phase.learning_rate,
        "backbone_learning_rate": phase.backbone_learning_rate,
        "batch_size": phase.batch_size,
        "schedule": describe(phase.schedule),
        "label_smoothing": phase.label_smoothing,
        "weight_decay": phase.weight_decay,
        "checkpoint_best": None if best is None else dataclasses.asdict(best),
    }
