"""What must hold after training: weight invariants, parameter counts, accuracy floors, `beats`."""

from __future__ import annotations

from dataclasses import dataclass

from harness.spec.validators import _check, _fraction, _is_int, _is_number


@dataclass(frozen=True)
class FrozenWeightsUnchanged:
    """Every non-trainable variable (BatchNorm statistics of frozen BN included) is bit-for-bit unchanged."""


@dataclass(frozen=True)
class TrainableWeightsChanged:
    """Every trainable variable changed during the phase."""


@dataclass(frozen=True)
class TrainableParams:
    per_phase: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MinAccuracy:
    split: str  # "validation" or "test"
    floor: float
    phase: str | None = None  # None: after the last phase


@dataclass(frozen=True)
class LossDecreases:
    """The training loss is finite every epoch and lower at the end of each phase than at its start."""


@dataclass(frozen=True)
class Beats:
    """This experiment's metric beats another experiment's by at least `margin`."""

    other: str
    margin: float
    metric: str = "test_accuracy"


Expectation = FrozenWeightsUnchanged | TrainableWeightsChanged | TrainableParams | MinAccuracy | LossDecreases | Beats
EXPECTATIONS = (FrozenWeightsUnchanged, TrainableWeightsChanged, TrainableParams, MinAccuracy, LossDecreases, Beats)


def reads_test_accuracy(expectation: Expectation) -> bool:
    """Whether `expectation` reads test accuracy: a test floor, or `beats` on test accuracy."""
    if isinstance(expectation, MinAccuracy):
        return expectation.split == "test"
    return isinstance(expectation, Beats) and expectation.metric == "test_accuracy"


def frozen_weights_unchanged() -> FrozenWeightsUnchanged:
    """Frozen weights must be bit-for-bit unchanged by every phase (BatchNorm statistics included)."""
    return FrozenWeightsUnchanged()


def trainable_weights_changed() -> TrainableWeightsChanged:
    """Every trainable weight must change during each phase."""
    return TrainableWeightsChanged()


def trainable_params(**per_phase: int) -> TrainableParams:
    """The exact trainable-parameter count per phase, e.g. `trainable_params(feature_extraction=1281)`.

    Args:
        **per_phase: Phase name = expected count of trainable parameters (an int >= 0).
    """
    _check(bool(per_phase), "trainable_params", "needs at least one phase=count", per_phase)
    for phase, count in per_phase.items():
        _check(_is_int(count) and count >= 0, f"trainable_params.{phase}", "must be a non-negative integer", count)
    return TrainableParams(tuple(per_phase.items()))


def _phase(phase: object, field: str) -> str | None:
    _check(phase is None or isinstance(phase, str), field, "must be a phase name, or None for the last phase", phase)
    return phase  # type: ignore[return-value]


def min_val_accuracy(floor: float, *, phase: str | None = None) -> MinAccuracy:
    """Validation accuracy after `phase` must be at least `floor`.

    Args:
        floor: The lowest accepted accuracy, in [0, 1].
        phase: A phase name. Defaults to None: after the last phase.
    """
    return MinAccuracy(
        "validation", _fraction(floor, "min_val_accuracy.floor"), _phase(phase, "min_val_accuracy.phase")
    )


def min_test_accuracy(floor: float, *, phase: str | None = None) -> MinAccuracy:
    """Test accuracy after `phase` must be at least `floor` (the data set needs a test split).

    Args:
        floor: The lowest accepted accuracy, in [0, 1].
        phase: A phase name. Defaults to None: after the last phase.
    """
    return MinAccuracy("test", _fraction(floor, "min_test_accuracy.floor"), _phase(phase, "min_test_accuracy.phase"))


def loss_decreases() -> LossDecreases:
    """Training loss must be finite every epoch and lower at the end of each phase than at its start."""
    return LossDecreases()


def beats(other: str, *, margin: float, metric: str = "test_accuracy") -> Beats:
    """This experiment's final `metric` must exceed `other`'s by at least `margin`.

    `other` runs first when both are selected; otherwise its recorded baseline stands in.

    Args:
        other: The name of another experiment of the session (or of the baseline file).
        margin: The least difference, in [-1, 1].
        metric: "test_accuracy" or "val_accuracy". Defaults to "test_accuracy".
    """
    _check(isinstance(other, str) and other != "", "beats.other", "must be another experiment's name", other)
    _check(
        metric in ("test_accuracy", "val_accuracy"), "beats.metric", "must be 'test_accuracy' or 'val_accuracy'", metric
    )
    _check(_is_number(margin) and -1 <= margin <= 1, "beats.margin", "must be a number in [-1, 1]", margin)
    return Beats(other, float(margin), metric)
