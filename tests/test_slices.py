"""Accuracy per slice of a data set (`tfds_dataset(slices=...)`, `min_test_accuracy(slice=...)`).

Spec errors at collection, the per-slice figures, the floor's check, the reports and the cache
identity: pure functions, no TensorFlow, no training. What reads real TFDS features and trains
is in `test_slices_tf.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import checks, invariants, spec
from harness.cache import make_key
from harness.report import slice_lines
from harness.report.index import write_index
from harness.results import Check, ExperimentResult, PhaseResult, Predictions, Run
from harness.stats import per_slice, wilson_interval


def _tiny(**overrides: Any) -> spec.Experiment:
    arguments: dict[str, Any] = {
        "name": "sliced",
        "dataset": spec.tfds_dataset("elpv", image_size=16, test_split="test", slices="cell_type"),
        "backbone": spec.custom_backbone("tiny", lambda shape: None),
        "phases": [spec.feature_extraction(epochs=1)],
    }
    return spec.experiment(**{**arguments, **overrides})


# ------------------------------------------------------------------------------------ the spec


SPEC_ERRORS = [
    pytest.param(
        lambda: _tiny(
            dataset=spec.tfds_dataset("elpv", image_size=16, test_split="test"),
            expect=[spec.min_test_accuracy(0.8, slice="mono")],
        ),
        "`min_test_accuracy.slice` needs a data set declared with slices (the feature whose values it names). "
        "Name the feature to slice by with tfds_dataset(slices=...), e.g. slices='cell_type'. "
        "Received: slice='mono' on a data set with slices=None",
        id="test-floor-without-slices",
    ),
    pytest.param(
        lambda: _tiny(
            dataset=spec.arrays({"train": ([], []), "validation": ([], [])}, image_size=16),
            expect=[spec.min_val_accuracy(0.8, slice="mono")],
        ),
        "`min_val_accuracy.slice` needs a data set declared with slices (the feature whose values it names). "
        "Give one value per example with arrays(slices={'validation': [...], 'test': [...]}). "
        "Received: slice='mono' on a data set with slices=None",
        id="val-floor-on-arrays-without-slices",
    ),
    pytest.param(
        lambda: spec.min_test_accuracy(0.8, phase="feature_extraction", slice="mono"),
        "`min_test_accuracy.slice` must be None with a phase: slice accuracies are measured after the last "
        "phase only. Received: slice='mono', phase='feature_extraction'",
        id="test-floor-with-phase",
    ),
    pytest.param(
        lambda: spec.min_val_accuracy(0.8, phase="head", slice="mono"),
        "`min_val_accuracy.slice` must be None with a phase: slice accuracies are measured after the last "
        "phase only. Received: slice='mono', phase='head'",
        id="val-floor-with-phase",
    ),
    pytest.param(
        lambda: spec.min_test_accuracy(0.8, runtime="litert_int8", slice="mono"),
        "`min_test_accuracy.slice` must be None with a runtime: slice accuracies are the trained Keras "
        "model's. Received: slice='mono', runtime='litert_int8'",
        id="test-floor-with-runtime",
    ),
    pytest.param(
        lambda: spec.min_test_accuracy(0.8, slice=1),
        "`min_test_accuracy.slice` must be a value of the data set's slices feature (a non-empty string such "
        "as 'mono'), or None. Received: slice=1",
        id="slice-not-a-string",
    ),
    pytest.param(
        lambda: spec.min_val_accuracy(0.8, slice=""),
        "`min_val_accuracy.slice` must be a value of the data set's slices feature (a non-empty string such "
        "as 'mono'), or None. Received: slice=''",
        id="slice-empty",
    ),
    pytest.param(
        lambda: spec.tfds_dataset("elpv", slices=["cell_type"]),
        "`tfds_dataset.slices` must be a feature name (a ClassLabel, string or integer feature, e.g. "
        "'cell_type'), or None for no slices. Received: slices=['cell_type']",
        id="tfds-slices-not-a-string",
    ),
    pytest.param(
        lambda: spec.tfds_dataset("elpv", slices=""),
        "`tfds_dataset.slices` must be a feature name (a ClassLabel, string or integer feature, e.g. "
        "'cell_type'), or None for no slices. Received: slices=''",
        id="tfds-slices-empty",
    ),
    pytest.param(
        lambda: spec.arrays({"train": ([], []), "validation": ([], [])}, image_size=16, slices={"train": [1]}),
        "`arrays.slices` must be a mapping of 'validation' and/or 'test' to one value per example, a callable "
        "returning one, or None. Received: slices=['train']",
        id="arrays-slices-of-the-training-split",
    ),
    pytest.param(
        lambda: spec.arrays({"train": ([], []), "validation": ([], [])}, image_size=16, slices={"validation": "ab"}),
        "`arrays.slices['validation']` must be a sequence of one value per example (a list, tuple or array). "
        "Received: slices['validation']='ab'",
        id="arrays-slices-a-string",
    ),
]


@pytest.mark.parametrize(("build", "message"), SPEC_ERRORS)
def test_slice_arguments_are_checked_at_collection(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(spec.SpecError) as error:
        build()
    assert str(error.value) == message


def test_an_image_folder_has_no_slices(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with pytest.raises(spec.SpecError, match=r"image_folder\(\.\.\.\) has no slices"):
        _tiny(dataset=spec.image_folder(str(tmp_path), image_size=16), expect=[spec.min_val_accuracy(0.5, slice="x")])


def test_slice_floors_on_a_sliced_data_set_are_accepted() -> None:
    experiment = _tiny(expect=[spec.min_val_accuracy(0.8, slice="poly"), spec.min_test_accuracy(0.85, slice="mono")])
    assert [(e.split, e.floor, e.slice, e.phase) for e in experiment.expect] == [
        ("validation", 0.8, "poly", None),
        ("test", 0.85, "mono", None),
    ]
    assert experiment.dataset.slices == "cell_type"
    assert spec.min_test_accuracy(0.5).slice is None


def test_slices_leave_the_cache_identity_unchanged() -> None:
    """The images, hence the cached features and activations, do not depend on `slices`."""
    plain = spec.tfds_dataset("elpv", image_size=16, test_split="test")
    sliced = spec.tfds_dataset("elpv", image_size=16, test_split="test", slices="cell_type")
    assert sliced.identity == plain.identity
    assert sliced.with_keys("image", "defective").identity == plain.with_keys("image", "defective").identity
    assert sliced.with_keys("image", "defective").slices == "cell_type"  # resolving the keys keeps the slices
    key = {"backbone": "tiny", "weights": "0" * 64, "splits": sliced.splits, "image_size": (16, 16)}
    assert make_key(dataset=sliced.identity, **key) == make_key(dataset=plain.identity, **key)
    data = {"train": ([], []), "validation": ([], [])}
    arrays_plain = spec.arrays(data, image_size=16, cache_key="k")
    arrays_sliced = spec.arrays(data, image_size=16, cache_key="k", slices={"validation": []})
    assert arrays_sliced.identity == arrays_plain.identity


# ------------------------------------------------------------------------------------ the figures


def test_per_slice_figures_against_a_worked_example() -> None:
    # mono: 3 examples, 2 right; poly: 2 examples, both right; "x": 1 example, wrong.
    figures = per_slice([0, 1, 1, 0, 1, 0], [0, 0, 1, 0, 1, 1], ["mono", "mono", "mono", "poly", "poly", "x"])
    assert list(figures) == ["mono", "poly", "x"]  # sorted by value
    low, high = wilson_interval(2, 3)
    assert figures["mono"] == {
        "accuracy": 2 / 3,
        "n": 3,
        "correct": 2,
        "accuracy_ci": [round(low, 4), round(high, 4)],
    }
    assert figures["poly"]["accuracy_ci"][1] == 1.0 and figures["x"]["accuracy_ci"][0] == 0.0
    assert figures["x"]["accuracy"] == 0.0
    with pytest.raises(ValueError, match="one label, prediction and slice value per example"):
        per_slice([0, 1], [0, 1], ["mono"])


def _result(*, feature: str | None = "cell_type") -> ExperimentResult:
    phase = PhaseResult("p", "feature_extraction", 1, 1, {}, 0.9, 0.3, 0.86, 0.3, 10, 0, 1.0, "features", "", "miss")
    result = ExperimentResult("sliced", 0, "tiny", None, "elpv", 2, {"train": 8, "validation": 10, "test": 390})
    result.phases = [phase]
    if feature is not None:
        # Test: mono 160 of 190 right, poly 175 of 200; validation: mono 4 of 5, poly 5 of 5.
        labels = [0] * 390
        predicted = [0] * 160 + [1] * 30 + [0] * 175 + [1] * 25
        values = ["mono"] * 190 + ["poly"] * 200
        result.slice_feature = feature
        result.slice_metrics = {
            "validation": per_slice([0] * 10, [0, 0, 0, 0, 1, 0, 0, 0, 0, 0], ["mono"] * 5 + ["poly"] * 5),
            "test": per_slice(labels, predicted, values),
        }
    return result


RESULT = _result()


def test_a_slice_floor_names_the_slice_its_accuracy_and_n() -> None:
    failed = invariants.min_accuracy(RESULT, spec.min_test_accuracy(0.85, slice="mono"))
    assert not failed.passed
    assert failed.describe() == "min_test_accuracy[cell_type=mono]: obtained 0.8421 (n=190), expected >= 0.8500"
    low, high = RESULT.slice_metrics["test"]["mono"]["accuracy_ci"]
    assert failed.details == [f"160 of 190 correct, 95% interval [{low:.4f}, {high:.4f}]"]
    passed = invariants.min_accuracy(RESULT, spec.min_test_accuracy(0.85, slice="poly"))
    assert passed.passed and passed.obtained == "0.8750 (n=200)"
    val = invariants.min_accuracy(RESULT, spec.min_val_accuracy(0.8, slice="mono"))
    assert val.passed and val.title == "min_val_accuracy[cell_type=mono]" and val.obtained == "0.8000 (n=5)"


def test_an_unknown_slice_value_fails_naming_the_values_found() -> None:
    check = invariants.min_accuracy(RESULT, spec.min_test_accuracy(0.5, slice="mnoo"))
    assert not check.passed
    assert check.describe() == (
        "min_test_accuracy[cell_type=mnoo]: obtained no cell_type 'mnoo' in the test split; found 'mono', 'poly', "
        "expected >= 0.5000"
    )
    unsliced = invariants.min_accuracy(_result(feature=None), spec.min_test_accuracy(0.5, slice="mono"))
    assert not unsliced.passed and unsliced.obtained == "the data set declares no slices"


def test_floors_without_a_slice_keep_their_names_and_messages() -> None:
    check = invariants.min_accuracy(RESULT, spec.min_test_accuracy(0.85))
    assert check.describe() == "p: min_test_accuracy: obtained 0.8600, expected >= 0.8500"
    assert invariants.min_accuracy(RESULT, spec.min_val_accuracy(0.95)).describe() == (
        "p: min_val_accuracy: obtained 0.9000, expected >= 0.9500"
    )


def test_the_checks_stage_evaluates_slice_floors() -> None:
    experiment = _tiny(expect=[spec.min_test_accuracy(0.85, slice="mono"), spec.min_test_accuracy(0.85)])
    run = Run(result=_result(), predictions={"test": Predictions(np.zeros(390, int), np.zeros(390, int))})
    checks.evaluate(experiment, run, results={}, recorded={}, gate=None)
    shown = [(c.name, c.passed) for c in run.result.checks if c.name.startswith("min_")]
    assert shown == [("min_test_accuracy[cell_type=mono]", False), ("min_test_accuracy", True)]


def test_slice_metrics_reach_the_metrics_json() -> None:
    shown = RESULT.to_json()
    assert shown["slice_feature"] == "cell_type"
    assert shown["slice_metrics"]["test"]["mono"] == {
        "accuracy": 160 / 190,
        "n": 190,
        "correct": 160,
        "accuracy_ci": RESULT.slice_metrics["test"]["mono"]["accuracy_ci"],
    }
    assert set(shown["slice_metrics"]) == {"validation", "test"}
    plain = _result(feature=None).to_json()
    assert plain["slice_feature"] is None and plain["slice_metrics"] == {}


# ------------------------------------------------------------------------------------ the reports


def test_slice_lines_give_each_slice_its_accuracy_interval_and_n() -> None:
    test, val = RESULT.slice_metrics["test"], RESULT.slice_metrics["validation"]

    def shown(label: str, value: str, figures: dict[str, Any]) -> str:
        low, high = figures["accuracy_ci"]
        return f"{label} {value} {figures['accuracy']:.3f} [{low:.3f}, {high:.3f}] n={figures['n']}"

    (line,) = slice_lines([RESULT, _result(feature=None)])  # an experiment without slices gets no line
    assert line == "accuracy by cell_type of sliced: " + ", ".join(
        [
            shown("test", "mono", test["mono"]),
            shown("test", "poly", test["poly"]),
            shown("val", "mono", val["mono"]),
            shown("val", "poly", val["poly"]),
        ]
    )
    assert line.startswith("accuracy by cell_type of sliced: test mono 0.842 [")


def test_the_index_page_shows_a_table_of_the_slices(tmp_path: Path) -> None:
    result = _result()
    result.checks = [Check("min_val_accuracy", "p", True, ">= 0.5000", "0.9000")]
    plain = _result(feature=None)
    plain.name = "plain"
    write_index([(result, "passed"), (plain, "passed")], tmp_path, {})
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    markdown = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert html.count("<h3>Accuracy by cell_type</h3>") == 1
    assert "<td>cell_type=mono</td>" in html
    assert markdown.count("### Accuracy by cell_type") == 1
    assert "| test | cell_type=mono | 0.842 |" in markdown
