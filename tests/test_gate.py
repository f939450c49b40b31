"""The paired gate: recorded predictions, McNemar's b and c, Holm's family, verdicts and messages.

Unit and property tests of `harness.gate`, then pytester runs of the tiny specs: a baseline
recorded with predictions gates the next run example by example, a worse run fails with the
figures behind the verdict, and the metrics JSON carries every comparison under `gate`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_baselines import BASELINES, read_entries, write_baselines
from tiny_specs import experiment_text, spec_file

from harness import gate, stats


@given(st.integers(2, 65_536).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), max_size=300))))
def test_predictions_survive_encoding(case: tuple[int, list[int]]) -> None:
    num_classes, predicted = case
    encoded = gate.encode(predicted, num_classes)
    assert gate.decode(encoded) == predicted
    assert gate.record_problem({"test": {"examples": "blake2b:0", **encoded}}) is None


def test_encoding_is_compact() -> None:
    encoded = gate.encode([i % 2 for i in range(10_000)], 2)
    assert len(json.dumps(encoded)) < 200


@pytest.mark.parametrize(
    ("recorded", "problem"),
    [
        ({"test": {"examples": "x", "encoding": "csv", "n": 1, "classes": "0"}}, "unknown encoding 'csv'"),
        ({"test": {"examples": "x", "encoding": gate.ENCODING, "n": 1, "classes": "!!"}}, "does not decode"),
        ({"test": {**gate.record([0, 1], 2, "x"), "n": 3}}, "holds 2 predictions where `n` is 3"),
        ({"test": {"encoding": gate.ENCODING}}, "an object with `examples`"),
        ([], "an object of split name"),
    ],
)
def test_damaged_predictions_are_named(recorded: Any, problem: str) -> None:
    assert problem in str(gate.record_problem(recorded))


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), max_size=200))
def test_swapping_the_baseline_swaps_b_and_c(rows: list[tuple[int, int, int]]) -> None:
    labels, before, now = (list(column) for column in zip(*rows, strict=True)) if rows else ([], [], [])
    b, c = gate.discordant(labels, before, now)
    assert gate.discordant(labels, now, before) == (c, b)
    assert c - b == sum(p == t for p, t in zip(now, labels, strict=True)) - sum(
        p == t for p, t in zip(before, labels, strict=True)
    )


def _observed(labels: list[int], predicted: list[int]) -> gate.Observed:
    return gate.Observed(labels, predicted, gate.examples_id(bytes(len(labels)), labels))


def _baseline(labels: list[int], predicted: list[int]) -> dict[str, Any]:
    accuracy = sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)
    examples = _observed(labels, predicted).examples
    return {"test_accuracy": round(accuracy, 4), "predictions": {"test": gate.record(predicted, 3, examples)}}


def _compare(baseline: dict[str, Any], observed: gate.Observed, **limits: float) -> gate.Comparison:
    obtained = sum(p == t for p, t in zip(observed.predicted, observed.labels, strict=True)) / len(observed.labels)
    limits = {"tolerance": 0.04, "min_effect": 0.01, **limits}
    return gate.compare("e", "test_accuracy", baseline, observed, obtained, len(observed.labels), **limits)  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=300), st.floats(0, 1))
def test_a_run_identical_to_its_baseline_never_fails(rows: list[tuple[int, int]], alpha: float) -> None:
    labels, predicted = ([r[i] for r in rows] for i in (0, 1))
    comparison = _compare(_baseline(labels, predicted), _observed(labels, predicted), tolerance=0.0, min_effect=0.0)
    gate.Family(alpha=alpha).add([comparison])
    assert (comparison.b, comparison.c, comparison.p_value) == (0, 0, 1.0)
    assert comparison.verdict == "pass"


def test_a_significant_drop_fails_and_a_small_one_passes() -> None:
    labels = [0] * 500
    worse = _compare(_baseline(labels, [0] * 500), _observed(labels, [1] * 30 + [0] * 470))
    gate.Family().add([worse])
    assert (worse.b, worse.c, worse.drop) == (30, 0, pytest.approx(0.06))
    assert worse.verdict == "fail" and worse.reason.startswith("the drop +0.0600 exceeds the tolerance 0.0400")

    # 15 worse, 0 better: significant (p = 2^-15) and beyond the minimal effect, within the tolerance.
    smaller = _compare(_baseline(labels, [0] * 500), _observed(labels, [1] * 15 + [0] * 485))
    gate.Family().add([smaller])
    assert smaller.p_value == pytest.approx(2**-15)
    assert smaller.verdict == "fail" and "significantly worse (p=3.052e-05 <= Holm's alpha 0.05)" in smaller.reason

    # 4 worse: significant at 0.1 (p = 1/16) but a drop of 0.008 is within the minimal effect.
    tiny = _compare(_baseline(labels, [0] * 500), _observed(labels, [1] * 4 + [0] * 496))
    gate.Family(alpha=0.1).add([tiny])
    assert tiny.rejected and tiny.verdict == "pass" and "within the minimal effect 0.0100" in tiny.reason


def test_other_examples_are_reported_and_never_paired() -> None:
    labels = [0, 1, 1, 0]
    baseline = _baseline(labels, labels)
    moved = gate.Observed(labels, [1, 1, 1, 0], gate.examples_id(b"\x01" * 4, labels))
    comparison = _compare(baseline, moved, tolerance=0.3)
    assert not comparison.paired and comparison.note == (
        "the baseline was recorded on other examples (the data set changed)"
    )
    assert comparison.verdict == "pass"  # a drop of 0.25 within the tolerance, compared as before
    assert not _compare({"test_accuracy": 1.0}, moved).paired  # an old baseline without predictions


def _paired(b: int, c: int, name: str) -> gate.Comparison:
    """A paired comparison on 100 examples with b worse and c better."""
    return gate.Comparison(name, "test_accuracy", 1.0, 1 - (b - c) / 100, 100, 0.5, 0.0, b=b, c=c)


def test_holm_online_is_conservative_and_the_end_adds_late_rejections() -> None:
    # p = 2^-5 = 0.031 and P(X >= 8 | 9) = 10/512 = 0.0195. Planned 3: levels 0.05/3 and 0.05/2.
    family = gate.Family(alpha=0.05, expected=3)
    first = _paired(5, 0, "a")
    family.add([first])
    assert (first.alpha, first.rejected, first.verdict_at_check) == (pytest.approx(0.05 / 3), False, "pass")
    second = _paired(8, 1, "b")
    family.add([second])
    assert second.p_value == pytest.approx(10 / 512)
    assert second.rejected is False  # 0.0195 > 0.05/3 while the third is unknown
    # Only two comparisons were made: 0.0195 <= 0.05/2, then 0.031 <= 0.05/1. Both fail late.
    late = family.finish()
    assert late == [first, second]
    assert all(c.decided == "at the session's end" for c in late)
    assert stats.holm([first.p_value, second.p_value], 0.05) == [True, True]  # type: ignore[list-item]


# --------------------------------------------------------------------------- through pytest

TEST_DATA = """
def with_test():
    data = make_data(seed=1)
    data["test"] = make_data(seed=2)["validation"]
    return data
"""


def _gated_spec() -> str:
    return spec_file(TEST_DATA, experiment_text("gated", data="with_test", expect=""))


def test_recorded_predictions_gate_the_next_run_example_by_example(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _gated_spec()})
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=1)
    entry = read_entries(spec_pytester)["gated"]
    assert set(entry["predictions"]) == {"validation", "test"}
    assert entry["predictions"]["test"]["n"] == 32 and entry["predictions"]["test"]["examples"].startswith("blake2b:")

    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json", "--junitxml", "report.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["paired gate of gated test_accuracy: * n=32, b=0 c=0 p=1 alpha=0.05: pass"])
    junit = (spec_pytester.path / "report.xml").read_text()
    for shown in ('"gate.test_accuracy.verdict" value="pass"', '"gate.test_accuracy.discordant" value="[0, 0]"'):
        assert f"name={shown}" in junit
    shown = json.loads((spec_pytester.path / "metrics.json").read_text())
    assert shown["gate_alpha"] == 0.05  # two comparisons with p = 1: Holm's levels 0.05/2, then 0.05/1
    assert shown["experiments"]["gated"]["gate"]["val_accuracy"]["alpha"] == 0.025
    test = shown["experiments"]["gated"]["gate"]["test_accuracy"]
    assert (test["discordant"], test["p_value"], test["alpha"], test["verdict"]) == ([0, 0], 1.0, 0.05, "pass")
    assert test["baseline"] == test["obtained"] == entry["test_accuracy"]
    assert test["baseline_ci"][0] < test["baseline"] <= test["baseline_ci"][1]


def test_a_significantly_worse_run_fails_with_the_figures_behind_it(spec_pytester: pytest.Pytester) -> None:
    from tiny_models import make_data

    spec_pytester.makepyfile(**{"specs/tiny": _gated_spec()})
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=1)
    entries = read_entries(spec_pytester)
    # The baseline was right on every example; the run barely trains (near chance).
    truth = {"validation": make_data(seed=1)["validation"][1], "test": make_data(seed=2)["validation"][1]}
    for split, labels in truth.items():
        entries["gated"]["predictions"][split].update(gate.encode(labels.tolist(), 2))
    entries["gated"]["val_accuracy"] = entries["gated"]["test_accuracy"] = 1.0
    write_baselines(spec_pytester, entries)
    untrained = "feature_extraction(epochs=1, learning_rate=1e-9, batch_size=16)"
    spec_pytester.makepyfile(
        **{"specs/tiny": spec_file(TEST_DATA, experiment_text("gated", data="with_test", phases=untrained, expect=""))}
    )

    result = spec_pytester.runpytest_inprocess("--tolerance", "1", "--min-effect", "0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "  baseline_test_accuracy: obtained * n=32 (drop +*; b=* right before and wrong now, c=0 the reverse, "
                "p=*), expected not significantly below the baseline 1.0000 [[]0.8928, 1.0000] (McNemar, Holm's alpha *) "
                "by more than 0.0000, nor more than 1.0000 below it"
            ),
            (
                "      verdict: fail, significantly worse (p=* <= Holm's alpha *) and the drop +* exceeds the minimal "
                "effect 0.0000"
            ),
            f"      To accept the new values into {BASELINES}, run: pytest 'specs/tiny.py::gated' --update-baselines",
        ]
    )


def test_an_old_baseline_without_predictions_still_gates_and_says_how_to_pair(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _gated_spec()})
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=1)
    entries = read_entries(spec_pytester)
    del entries["gated"]["predictions"]
    write_baselines(spec_pytester, entries)
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*PytestWarning: gated: the gate compares by the tolerance only: the baseline has no predictions. "
                "Record a baseline with predictions, so that the gate is paired, with: "
                "pytest 'specs/tiny.py::gated' --update-baselines"
            )
        ]
    )
    test = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]["gated"]["gate"]
    assert test["test_accuracy"]["paired"] is False and test["test_accuracy"]["discordant"] is None


@pytest.mark.parametrize("option", ["--gate-alpha", "--min-effect"])
def test_gate_options_are_validated(spec_pytester: pytest.Pytester, option: str) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _gated_spec()})
    result = spec_pytester.runpytest_inprocess(option, "1.5")
    result.stderr.fnmatch_lines([f"ERROR: {option} must be a number in [[]0, 1], such as *. Received: 1.5"])


def test_a_rejection_only_at_the_sessions_end_fails_the_session(
    spec_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _gated_spec()})
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=1)

    def finish(family: gate.Family) -> list[gate.Comparison]:
        late = family.comparisons[-1]
        late.rejected, late.min_effect, late.obtained, late.decided = True, -1.0, late.baseline - 0.5, "at the end"
        return [late]

    monkeypatch.setattr(gate.Family, "finish", finish)
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["FAILED at the session's end: paired gate of gated test_accuracy: the drop +0.5000 exceeds the tolerance *"]
    )
    verdict = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]["gated"]["gate"]
    assert verdict["test_accuracy"]["verdict"] == "fail" and verdict["test_accuracy"]["decided"] == "at the end"
