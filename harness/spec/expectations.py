"""What must hold after training: weight invariants, parameter counts, accuracy floors, `beats`,
and the exported model's agreement with the trained one."""

from __future__ import annotations

from dataclasses import dataclass

from harness.spec.validators import SpecError, _check, _fraction, _is_int, _is_number
from harness.spec.vocabulary import EXPORT_FORMATS


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
    runtime: str | None = None  # an export format (`EXPORT_FORMATS`): that export's accuracy; None: Keras's
    slice: str | None = None  # a value of the data set's `slices` feature: that slice's accuracy; None: all


@dataclass(frozen=True)
class LossDecreases:
    """The training loss is finite every epoch and lower at the end of each phase than at its start."""


@dataclass(frozen=True)
class Beats:
    """This experiment's metric beats another experiment's by at least `margin`."""

    other: str
    margin: float
    metric: str = "test_accuracy"


@dataclass(frozen=True)
class ExportMatches:
    """The model exported as `format` reproduces the trained model's class probabilities within
    `max_abs_diff` on every example of the test split (validation where there is none)."""

    format: str
    max_abs_diff: float


@dataclass(frozen=True)
class ClassFloor:
    """One class's recall or precision on a split, after the last phase, is at least `floor`."""

    metric: str  # "recall" or "precision"
    class_name: str | int  # a class name as the data set names it, or its index
    floor: float
    split: str = "test"


@dataclass(frozen=True)
class MacroF1Floor:
    """The unweighted mean of the classes' F1 scores on a split, after the last phase, is at least `floor`."""

    floor: float
    split: str = "test"


Expectation = (
    FrozenWeightsUnchanged
    | TrainableWeightsChanged
    | TrainableParams
    | MinAccuracy
    | LossDecreases
    | Beats
    | ExportMatches
    | ClassFloor
    | MacroF1Floor
)
EXPECTATIONS = (
    FrozenWeightsUnchanged,
    TrainableWeightsChanged,
    TrainableParams,
    MinAccuracy,
    LossDecreases,
    Beats,
    ExportMatches,
    ClassFloor,
    MacroF1Floor,
)


def reads_test_split(expectation: Expectation) -> bool:
    """Whether `expectation` reads the test split: a test floor (of accuracy, a class, macro F1),
    or `beats` on test accuracy."""
    if isinstance(expectation, (MinAccuracy, ClassFloor, MacroF1Floor)):
        return expectation.split == "test"
    return isinstance(expectation, Beats) and expectation.metric == "test_accuracy"


def field_name(expectation: Expectation) -> str:
    """The name a spec writes `expectation` by: `min_test_accuracy`, `min_recall`, `beats`, ..."""
    if isinstance(expectation, MinAccuracy):
        return "min_val_accuracy" if expectation.split == "validation" else "min_test_accuracy"
    if isinstance(expectation, ClassFloor):
        return f"min_{expectation.metric}"
    if isinstance(expectation, MacroF1Floor):
        return "min_macro_f1"
    return {Beats: "beats", ExportMatches: "export_matches"}.get(type(expectation), type(expectation).__name__)


def exported_formats(expectations: tuple[Expectation, ...]) -> tuple[str, ...]:
    """The export formats that `expectations` read, in `EXPORT_FORMATS` order."""
    read = {e.format for e in expectations if isinstance(e, ExportMatches)}
    read |= {e.runtime for e in expectations if isinstance(e, MinAccuracy) and e.runtime is not None}
    return tuple(f for f in EXPORT_FORMATS if f in read)


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


def _slice(slice: object, field: str, **exclusive: object) -> str | None:
    """A slice value (a non-empty string), or None; never with `phase` or `runtime`."""
    _check(
        slice is None or (isinstance(slice, str) and slice != ""),
        field,
        "must be a value of the data set's slices feature (a non-empty string such as 'mono'), or None",
        slice,
    )
    if slice is not None:
        for name, value in exclusive.items():
            if value is not None:
                why = {
                    "phase": "slice accuracies are measured after the last phase only",
                    "runtime": "slice accuracies are the trained Keras model's",
                }[name]
                raise SpecError(
                    field, f"must be None with a {name}: {why}", slice, shown=f"slice={slice!r}, {name}={value!r}"
                )
    return slice  # type: ignore[return-value]


def min_val_accuracy(floor: float, *, phase: str | None = None, slice: str | None = None) -> MinAccuracy:
    """Validation accuracy after `phase` must be at least `floor`.

    Args:
        floor: The lowest accepted accuracy, in [0, 1].
        phase: A phase name. Defaults to None: after the last phase.
        slice: A value of the data set's slices feature (`tfds_dataset(slices="cell_type")`):
            the accuracy on the validation examples of that slice only, after the last phase,
            e.g. `min_val_accuracy(0.8, slice="mono")`. Defaults to None: every example.
    """
    return MinAccuracy(
        "validation",
        _fraction(floor, "min_val_accuracy.floor"),
        _phase(phase, "min_val_accuracy.phase"),
        slice=_slice(slice, "min_val_accuracy.slice", phase=phase),
    )


def min_test_accuracy(
    floor: float, *, phase: str | None = None, runtime: str | None = None, slice: str | None = None
) -> MinAccuracy:
    """Test accuracy after `phase` must be at least `floor` (the data set needs a test split).

    Args:
        floor: The lowest accepted accuracy, in [0, 1].
        phase: A phase name. Defaults to None: after the last phase.
        runtime: None (the trained Keras model, the default) or an export format
            (`"keras"`, `"saved_model"`, `"litert"`, `"litert_int8"`): the accuracy of the final
            model exported as that format, read back from its file, e.g.
            `min_test_accuracy(0.85, runtime="litert_int8")` for the quantized model.
        slice: A value of the data set's slices feature (`tfds_dataset(slices="cell_type")`):
            the accuracy on the test examples of that slice only, after the last phase, e.g.
            `min_test_accuracy(0.85, slice="mono")`. Defaults to None: every example.
    """
    _check(
        runtime is None or runtime in EXPORT_FORMATS,
        "min_test_accuracy.runtime",
        f"must be None (the Keras model) or an export format: {', '.join(map(repr, EXPORT_FORMATS))}",
        runtime,
    )
    _check(
        runtime is None or phase is None,
        "min_test_accuracy.phase",
        "must be None with a runtime: the export is of the model after the last phase",
        phase,
    )
    return MinAccuracy(
        "test",
        _fraction(floor, "min_test_accuracy.floor"),
        _phase(phase, "min_test_accuracy.phase"),
        runtime,
        _slice(slice, "min_test_accuracy.slice", phase=phase, runtime=runtime),
    )


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


def export_matches(format: str = "litert", *, max_abs_diff: float = 1e-4) -> ExportMatches:
    """The model exported as `format` must reproduce the trained model's class probabilities.

    The export is read back from its file and run on every image of the test split (the
    validation split where the data set has none); the largest absolute difference of any class
    probability must be at most `max_abs_diff`. The check reports it and the argmax agreement.

    Args:
        format: `"keras"`, `"saved_model"`, `"litert"` (float32, the default) or `"litert_int8"`.
        max_abs_diff: The largest accepted difference of a probability, in (0, 1]. Defaults to
            1e-4 (float round-off; the int8 model needs a few hundredths).
    """
    _check(
        format in EXPORT_FORMATS,
        "export_matches.format",
        f"must be one of {', '.join(map(repr, EXPORT_FORMATS))}",
        format,
    )
    _check(
        _is_number(max_abs_diff) and 0 < max_abs_diff <= 1,
        "export_matches.max_abs_diff",
        "must be a number in (0, 1], such as 1e-4",
        max_abs_diff,
    )
    return ExportMatches(format, float(max_abs_diff))


def _split(split: object, field: str) -> str:
    _check(split in ("validation", "test"), field, "must be 'validation' or 'test'", split)
    return split  # type: ignore[return-value]


def _class_floor(metric: str, class_name: object, floor: float, split: object) -> ClassFloor:
    field = f"min_{metric}"
    _check(
        (isinstance(class_name, str) and class_name != "")
        or (isinstance(class_name, int) and _is_int(class_name) and class_name >= 0),
        f"{field}.class_name",
        "must be a class name as the data set names it (a string) or a class index (an int >= 0)",
        class_name,
    )
    assert isinstance(class_name, (str, int))
    return ClassFloor(metric, class_name, _fraction(floor, f"{field}.floor"), _split(split, f"{field}.split"))


def min_recall(class_name: str | int, floor: float, *, split: str = "test") -> ClassFloor:
    """Recall of one class after the last phase must be at least `floor`: of the examples of that
    class, the fraction predicted as it (e.g. `min_recall("defective", 0.8)`).

    Args:
        class_name: The class, by the name the data set gives it (in the reports' class names) or
            by its index.
        floor: The lowest accepted recall, in [0, 1].
        split: "test" (the default; the data set needs a test split) or "validation".
    """
    return _class_floor("recall", class_name, floor, split)


def min_precision(class_name: str | int, floor: float, *, split: str = "test") -> ClassFloor:
    """Precision of one class after the last phase must be at least `floor`: of the examples
    predicted as that class, the fraction that are of it (0 when none is predicted as it).

    Args:
        class_name: The class, by name or index (see `min_recall`).
        floor: The lowest accepted precision, in [0, 1].
        split: "test" (the default; the data set needs a test split) or "validation".
    """
    return _class_floor("precision", class_name, floor, split)


def min_macro_f1(floor: float, *, split: str = "test") -> MacroF1Floor:
    """The macro-averaged F1 score after the last phase must be at least `floor`: the unweighted
    mean over every class of 2PR/(P+R), so a class the model never predicts counts as 0.

    Args:
        floor: The lowest accepted macro F1, in [0, 1].
        split: "test" (the default; the data set needs a test split) or "validation".
    """
    return MacroF1Floor(_fraction(floor, "min_macro_f1.floor"), _split(split, "min_macro_f1.split"))
