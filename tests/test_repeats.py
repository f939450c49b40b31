"""`--repeats N` and `experiment(tolerance="measured")`: the spread over seeds, measured and recorded."""

from __future__ import annotations

import json

import pytest
from test_baselines import read_entries, write_baselines
from test_gate import TEST_DATA
from tiny_specs import experiment_text, spec_file

from harness import checks, repeats
from harness.report import spread_lines
from harness.results import Check, ExperimentResult, PhaseResult


def _result(seed: int, val: float, test: float | None = None, failed: bool = False) -> ExperimentResult:
    phase = PhaseResult("p", "feature_extraction", 1, 1, {}, val, 0.5, test, None, 10, 0, 1.0, "features", "", "none")
    result = ExperimentResult("e", seed, "tiny", None, "arrays", 2, {"validation": 10}, phases=[phase])
    result.checks = [Check("min_val_accuracy", "p", not failed, ">= 0.9000", f"{val:.4f}")]
    return result


def test_spread_against_a_worked_example() -> None:
    shown = repeats.spread([_result(0, 0.8, 0.7), _result(1, 0.9, 0.8), _result(2, 0.85, 0.9)])
    assert shown["val_accuracy"] == {
        "n": 3,
        "seeds": [0, 1, 2],
        "values": [0.8, 0.9, 0.85],
        "mean": 0.85,
        "std": 0.05,
        "min": 0.8,
        "max": 0.9,
    }
    assert shown["test_accuracy"]["std"] == 0.1
    assert "test_accuracy" not in repeats.spread([_result(0, 0.8), _result(1, 0.9, 0.8)])  # not every run has it


def test_other_seeds_failures_are_named_by_seed() -> None:
    first = _result(0, 0.95)
    checks.merge_repeats(first, [_result(1, 0.92), _result(2, 0.85, failed=True)])
    assert [c.name for c in first.failures] == ["min_val_accuracy[seed=2]"]
    assert first.spread["val_accuracy"]["seeds"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("value", "spread", "tolerance"),
    [
        # mean - t(0.975, 4) * std * sqrt(1 + 1/5) = 0.85 - 2.776 * 0.01 * 1.0954 = 0.8196
        (0.86, {"n": 5, "mean": 0.85, "std": 0.01}, 0.0404),
        (0.80, {"n": 2, "mean": 0.80, "std": 0.0}, 0.0),
        (0.70, {"n": 3, "mean": 0.90, "std": 0.01}, 0.0),  # a recorded value far below the bound
        (0.90, {"n": 40, "mean": 0.90, "std": 0.01}, 0.0198),  # past 30 seeds, the normal quantile
    ],
)
def test_measured_tolerance(value: float, spread: dict[str, float], tolerance: float) -> None:
    assert repeats.measured_tolerance(value, spread) == pytest.approx(tolerance)


def test_damaged_spreads_are_named() -> None:
    assert repeats.spread_problem({"val_accuracy": {"n": 3, "mean": 0.8, "std": 0.01, "min": 0.79}}) is None
    assert "at least 2" in str(repeats.spread_problem({"val_accuracy": {"n": 1, "mean": 0.8, "std": 0, "min": 0.8}}))
    assert "numbers" in str(repeats.spread_problem({"val_accuracy": {"n": 3, "mean": "high"}}))


# --------------------------------------------------------------------------- through pytest


def test_repeats_report_and_record_the_spread(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{"specs/tiny": spec_file(TEST_DATA, experiment_text("gated", data="noise_data", expect=""))}
    )
    result = spec_pytester.runpytest_inprocess("--repeats", "3", "--update-baselines", "--metrics-json", "m.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["spread of gated over seeds 0, 1, 2: val mean * std * min *"])
    assert result.stdout.str().count("gated feature_extraction epoch 1/3") == 3  # one training per seed
    recorded = read_entries(spec_pytester)["gated"]
    assert recorded["seed"] == 0 and set(recorded["spread"]["val_accuracy"]) == {"n", "mean", "std", "min", "max"}
    assert recorded["spread"]["val_accuracy"]["n"] == 3
    shown = json.loads((spec_pytester.path / "m.json").read_text())["experiments"]["gated"]["spread"]
    assert shown["val_accuracy"]["seeds"] == [0, 1, 2] and len(shown["val_accuracy"]["values"]) == 3


def test_a_failure_under_another_seed_fails_the_experiment(spec_pytester: pytest.Pytester) -> None:
    # Noise labels: chance accuracy; a floor one seed may pass fails under some seed of five.
    spec_pytester.makepyfile(
        **{"specs/tiny": spec_file(experiment_text("noisy", data="noise_data", expect="min_val_accuracy(0.6)"))}
    )
    result = spec_pytester.runpytest_inprocess("--repeats", "5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*min_val_accuracy[[]seed=*]: obtained *, expected >= 0.6000*"])


def test_measured_tolerance_needs_a_recorded_spread(spec_pytester: pytest.Pytester) -> None:
    measured = experiment_text("gated", data="noise_data", expect="", extra='tolerance="measured",\n')
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(measured)})
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=1)
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "  baseline_tolerance: obtained a baseline without one, expected a baseline with a measured spread "
                '(experiment(tolerance="measured"))'
            ),
            "      Record one over 5 seeds with: pytest 'specs/tiny.py::gated' --update-baselines --repeats 5",
        ]
    )
    spec_pytester.runpytest_inprocess("--update-baselines", "--repeats", "3").assert_outcomes(passed=1)
    spec_pytester.runpytest_inprocess().assert_outcomes(passed=1)

    # A drop beyond the measured tolerance fails with it as the tolerance.
    entries = read_entries(spec_pytester)
    entry, spread = entries["gated"], entries["gated"]["spread"]["val_accuracy"]
    entry.pop("predictions")  # compared by the tolerance alone
    entry["val_accuracy"] = spread["mean"] = round(entry["val_accuracy"] + 0.1, 4)
    spread["std"] = 0.01
    tolerance = repeats.measured_tolerance(entry["val_accuracy"], spread)
    assert tolerance == pytest.approx(4.303 * 0.01 * (4 / 3) ** 0.5, abs=1e-4)  # t(0.975, 2), 3 seeds
    write_baselines(spec_pytester, entries)
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"  baseline_val_accuracy: *expected at most {tolerance:.4f} below the baseline *"])


def test_bad_repeats_and_tolerance_are_clear_errors(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("gated", expect=""))})
    result = spec_pytester.runpytest_inprocess("--repeats", "0")
    result.stderr.fnmatch_lines(["ERROR: --repeats must be a number of seeds, 1 or more. Received: 0"])
    spec_pytester.makepyfile(
        **{"specs/tiny": spec_file(experiment_text("gated", expect="", extra='tolerance="wide",\n'))}
    )
    result = spec_pytester.runpytest_inprocess("--collect-only")
    result.stdout.fnmatch_lines(['*`experiment.tolerance` must be a number in [[]0, 1] or "measured"*Received: *wide*'])


def test_spread_lines_show_mean_std_and_min() -> None:
    first = _result(0, 0.8, 0.7)
    checks.merge_repeats(first, [_result(1, 0.9, 0.8)])
    assert spread_lines([first, _result(5, 0.5)]) == [
        "spread of e over seeds 0, 1: val mean 0.850 std 0.071 min 0.800, test mean 0.750 std 0.071 min 0.700"
    ]


def test_a_recorded_spread_sets_the_tolerance_unless_one_is_given(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("gated", data="noise_data", expect=""))})
    spec_pytester.runpytest_inprocess("--update-baselines", "--repeats", "2").assert_outcomes(passed=1)
    entries = read_entries(spec_pytester)
    entry, spread = entries["gated"], entries["gated"]["spread"]["val_accuracy"]
    entry.pop("predictions")
    entry["val_accuracy"] = spread["mean"] = round(entry["val_accuracy"] + 0.03, 4)  # within 0.04
    spread["std"] = 0.0  # a spread that allows no drop at all
    write_baselines(spec_pytester, entries)
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  baseline_val_accuracy: *expected at most 0.0000 below the baseline *"])
    spec_pytester.runpytest_inprocess("--tolerance", "0.04").assert_outcomes(passed=1)  # given: it wins
