"""Per-class and macro-F1 floors, the trivial-`beats` warning and the environment in the gate.

Pure functions over results: no TensorFlow, no training.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from harness import baselines, checks, environment, invariants, spec
from harness.report import unpredicted_lines
from harness.results import ExperimentResult, PhaseResult, Predictions, Run
from harness.stats import macro_f1, per_class


def test_per_class_figures_against_a_worked_example() -> None:
    # Truth 0 0 0 1 1 2, predicted 0 0 1 1 1 1: class 0 is 2/2 precise and 2/3 recalled,
    # class 1 is 2/4 precise and 2/2 recalled, class 2 is never predicted.
    figures = per_class([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1], ["a", "b", "c"])
    assert figures["a"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3, "predicted": 2}
    assert figures["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 2, "predicted": 4}
    assert figures["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert macro_f1(figures) == pytest.approx((0.8 + 2 / 3 + 0) / 3)


def _result(labels: list[int], predicted: list[int], names: list[str], *, name: str = "exp") -> ExperimentResult:
    phase = PhaseResult("p", "feature_extraction", 1, 1, {}, 0.5, 0.5, 0.5, 0.5, 10, 0, 1.0, "features", "", "miss")
    result = ExperimentResult(name, 0, "tiny", None, "arrays", len(names), {"train": 8, "validation": 6, "test": 6})
    result.phases, result.class_names = [phase], names
    result.class_metrics = {"test": per_class(labels, predicted, names)}
    return result


SEVERITY = _result([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 1], ["functional", "mild", "severe"])


def test_recall_floor_names_the_class_and_counts_its_examples() -> None:
    check = invariants.class_floor(SEVERITY, spec.min_recall("functional", 0.7))
    assert not check.passed
    assert check.title == "min_recall[functional]"
    assert check.expected == ">= 0.7000 on the test split"
    assert check.obtained == "0.6667 (2 of its 3 examples predicted as it)"
    assert invariants.class_floor(SEVERITY, spec.min_recall(1, 1.0)).passed  # by index: "mild"


def test_precision_floor_of_a_class_never_predicted_is_zero() -> None:
    check = invariants.class_floor(SEVERITY, spec.min_precision("severe", 0.1))
    assert not check.passed
    assert check.obtained == "0.0000 (0 of the 0 predicted as it are of it)"


def test_an_unknown_class_lists_the_classes() -> None:
    check = invariants.class_floor(SEVERITY, spec.min_recall("cracked", 0.5))
    assert not check.passed
    assert check.obtained == "no class 'cracked'; the classes are 'functional', 'mild', 'severe'"


def test_macro_f1_floor_names_the_weakest_classes() -> None:
    check = invariants.macro_f1(SEVERITY, spec.min_macro_f1(0.5))
    assert not check.passed
    assert check.obtained == "0.4889"
    assert check.details == ["lowest F1: severe 0.0000, mild 0.6667"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: spec.min_recall("", 0.5), "`min_recall.class_name` must be a class name"),
        (lambda: spec.min_precision(-1, 0.5), "`min_precision.class_name` must be a class name"),
        (lambda: spec.min_recall("a", 1.5), "`min_recall.floor` must be a number in [0, 1]"),
        (lambda: spec.min_macro_f1(0.5, split="train"), "`min_macro_f1.split` must be 'validation' or 'test'"),
    ],
)
def test_floor_arguments_are_checked_at_collection(call, message: str) -> None:
    with pytest.raises(spec.SpecError) as error:
        call()
    assert str(error.value).startswith(message)


def test_a_test_split_floor_needs_a_test_split() -> None:
    with pytest.raises(spec.SpecError, match=r"^`min_recall.split` needs a data set with a test split"):
        spec.experiment(
            name="no_test",
            dataset=spec.arrays({"train": ([], []), "validation": ([], [])}, image_size=16),
            backbone=spec.custom_backbone("tiny", lambda shape: None),
            phases=[spec.feature_extraction(epochs=1)],
            expect=[spec.min_recall("a", 0.5)],
        )


# ------------------------------------------------------------------------------------ beats


def _beats(other: ExperimentResult, recorded: dict | None = None) -> list[warnings.WarningMessage]:
    """The trivial-comparison warnings of `beats("scratch")` against `other` (or its baseline `recorded`)."""
    mine = _result([0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1], ["ok", "bad"], name="transfer")
    mine.final.test_accuracy = 1.0
    experiment = dataclasses.replace(_EXPERIMENT, expect=(spec.beats("scratch", margin=0.1),))
    run = Run(result=mine, predictions={"test": Predictions(np.zeros(6, int), np.zeros(6, int))})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checks.evaluate(
            experiment, run, results={"scratch": other} if recorded is None else {}, recorded=recorded or {}, gate=None
        )
    return [w for w in caught if "trivial" in str(w.message)]


_EXPERIMENT = spec.experiment(
    name="transfer",
    dataset=spec.arrays(lambda: None, image_size=16),
    backbone=spec.custom_backbone("tiny", lambda shape: None),
    phases=[spec.feature_extraction(epochs=1)],
    expect=[],
)


def test_beats_against_a_reference_that_predicts_one_class_warns() -> None:
    scratch = _result([0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0], ["ok", "bad"], name="scratch")
    scratch.final.test_accuracy = 4 / 6
    (warning,) = _beats(scratch)
    assert str(warning.message) == (
        "transfer: beats('scratch') is a trivial comparison: scratch predicts a single class on the test "
        "split, as always answering one class does"
    )


def test_beats_against_a_baseline_at_the_majority_rate_warns() -> None:
    (warning,) = _beats(SEVERITY, recorded={"scratch": {"test_accuracy": 0.6667}})
    assert "scratch scores 0.6667, the majority-class rate (0.6667) on the test split" in str(warning.message)


def test_beats_against_a_real_reference_does_not_warn() -> None:
    scratch = _result([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], ["ok", "bad"], name="scratch")
    scratch.final.test_accuracy = 5 / 6
    assert _beats(scratch) == []


# ------------------------------------------------------------------------------ environment


def test_differences_name_what_moved() -> None:
    now = {"cpu": "AMD EPYC", "tensorflow": "2.21.0", "harness": "0.1.0"}
    recorded = {"cpu": "Intel(R) Xeon(R) Gold 6248", "tensorflow": "2.21.0", "harness": "0.1.0"}
    assert environment.differences(recorded, now) == ["cpu: 'Intel(R) Xeon(R) Gold 6248' recorded, 'AMD EPYC' now"]
    assert environment.differences(None, now) == []  # a baseline from before fingerprints


def test_fingerprint_names_versions_cpu_and_device() -> None:
    fingerprint = environment.fingerprint()
    assert {"harness", "python", "tensorflow", "keras", "cpu", "cpu_flags", "device"} <= set(fingerprint)


def test_a_drop_against_a_baseline_from_another_machine_says_so() -> None:
    result = _result([0, 1], [0, 1], ["a", "b"])
    result.phases[0].trainable_params = 10
    baseline = {"val_accuracy": 0.9, "trainable_params": {"p": 10}, "environment": {"cpu": "Intel Xeon"}}
    gate = baselines.Gate(0.02, "pytest x --update-baselines", "specs/baselines.json", {"cpu": "AMD EPYC"})
    (check,), _ = baselines.compare(result, baseline, gate)
    assert not check.passed
    assert check.details == [
        "verdict: fail, the drop +0.4000 exceeds the tolerance 0.0200",
        (
            "The baseline was recorded in another environment (cpu: 'Intel Xeon' recorded, 'AMD EPYC' now). "
            "To accept the new values into specs/baselines.json, run: pytest x --update-baselines"
        ),
    ]


def test_a_class_never_predicted_is_named_in_the_summary() -> None:
    assert unpredicted_lines([SEVERITY, _result([0, 1], [0, 1], ["a", "b"])]) == [
        "never predicted by exp on the test split: severe (1 examples)"
    ]
