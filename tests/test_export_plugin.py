"""`--export-dir`, `--export-all` and the expectations on exports, through pytest.

Each run trains the tiny experiments of `tiny_specs` (a few seconds each) and converts them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_specs import experiment_text, line_of, spec_file

from harness.outputs import STAGING_MARK

WITH_TEST = "lambda: make_data(test=True)"
FILES = ["labels.txt", "model.keras", "model_card.json", "model_float32.tflite", "model_int8.tflite", "saved_model"]


def _specs(*, passing_expect: str = "min_val_accuracy(0.9)") -> str:
    return spec_file(
        experiment_text("good", data=WITH_TEST, expect=passing_expect),
        experiment_text("bad", data=WITH_TEST, expect="trainable_params(feature_extraction=3)"),
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_dir_exports_the_experiments_that_passed(spec_pytester: pytest.Pytester) -> None:
    text = _specs()
    spec_pytester.makepyfile(**{"specs/tiny": text})
    result = spec_pytester.runpytest_inprocess(
        "--export-dir", "exports", "--metrics-json", "metrics.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    exports = spec_pytester.path / "exports"
    assert sorted(p.name for p in exports.iterdir()) == ["good"]  # no staging folder left, nothing of "bad"
    assert sorted(p.name for p in (exports / "good").iterdir()) == FILES
    assert (exports / "good" / "labels.txt").read_text() == "0\n1\n"

    document = json.loads((exports / "good" / "model_card.json").read_text())
    assert document["experiment"] == "good"
    assert document["spec"] == {"file": "specs/tiny.py", "line": line_of(text, "name='good'") - 1}
    assert document["baseline"] == "no baseline"
    assert [e["format"] for e in document["exports"]] == ["keras", "saved_model", "litert", "litert_int8"]
    assert all(c["passed"] for c in document["checks"])
    low, high = document["metrics"]["test_accuracy_ci"]
    assert low <= document["metrics"]["test_accuracy"] <= high

    metrics = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]
    assert metrics["good"]["export_dir"] == "exports/good"
    assert metrics["good"]["exports"] == document["exports"]
    assert metrics["bad"]["exports"] == [] and metrics["bad"]["export_dir"] is None
    test_classes = metrics["good"]["class_metrics"]["test"]
    assert sum(c["support"] for c in test_classes.values()) == 32 == sum(c["predicted"] for c in test_classes.values())
    result.stdout.fnmatch_lines(
        [
            "95% intervals of good: val * [[]*, *[]] n=32, test * [[]*, *[]] n=32",
            (
                "exports of good (exports/good): keras * MB max|dp|=* argmax=100.00% acc=*, saved_model *, "
                "litert *, litert_int8 *"
            ),
            "harness: exports of 1 experiments written to exports",
        ]
    )


def test_export_all_exports_failed_experiments_too(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": _specs()})
    result = spec_pytester.runpytest_inprocess("--export-dir", "exports", "--export-all", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    exports = spec_pytester.path / "exports"
    assert sorted(p.name for p in exports.iterdir()) == ["bad", "good"]
    card = json.loads((exports / "bad" / "model_card.json").read_text())
    assert [c["check"] for c in card["checks"] if not c["passed"]] == ["feature_extraction: trainable_params"]


def test_export_expectations_pass_and_fail_like_the_other_invariants(spec_pytester: pytest.Pytester) -> None:
    expect = (
        'export_matches("litert", max_abs_diff=1e-4), export_matches("litert_int8", max_abs_diff=1e-9), '
        'min_test_accuracy(0.9, runtime="litert_int8")'
    )
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("tiny", data=WITH_TEST, expect=expect))})
    result = spec_pytester.runpytest_inprocess("--junitxml=report.xml", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*broke 1 of 4 invariants*",
            (
                "*export_matches[[]litert_int8[]]: obtained *e-0* over 32 test images, "
                "expected max |probability difference| <= 1.0e-09"
            ),
            "*argmax agreement with the Keras model: *%",
            "*model_int8.tflite: 0.0 MB, accuracy *",
        ]
    )
    assert "export_matches[litert]:" not in result.stdout.str()  # it passed
    junit = (spec_pytester.path / "report.xml").read_text()
    assert 'name="export.litert_int8.argmax_agreement"' in junit
    assert not list(spec_pytester.path.glob(f"**/{STAGING_MARK}*"))  # measured in a temporary folder, removed


def test_an_interrupted_export_leaves_the_earlier_one_untouched(
    spec_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("tiny", data=WITH_TEST))})
    spec_pytester.runpytest_inprocess("--export-dir", "exports", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    before = _tree(spec_pytester.path / "exports")

    from harness.export import formats

    write = formats.write

    def interrupted(format: str, *args: object, **kwargs: object) -> Path:
        if format == "litert_int8":  # Ctrl-C while the int8 model converts, the others written
            raise KeyboardInterrupt
        return write(format, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(formats, "write", interrupted)
    result = spec_pytester.runpytest_inprocess(
        "--export-dir", "exports", "-p", "no:cacheprovider", no_reraise_ctrlc=True
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _tree(spec_pytester.path / "exports") == before  # byte for byte, and no staging folder


def test_export_all_needs_an_export_dir(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--export-all")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--export-all needs --export-dir DIR: where the exports are written*"])
