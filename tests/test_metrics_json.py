"""`--metrics-json PATH`: per-experiment, per-phase metrics and invariant outcomes, written atomically.

The pytester runs train the tiny backbone of `tiny_specs` for real (a few seconds each).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tiny_specs import BLOCK_2_CONV_PARAMS, FEATURE_EXTRACTION, FINE_TUNE, HEAD_PARAMS, experiment_text, spec_file

from harness.paths import atomic_write_text

TWO_PHASES = spec_file(
    experiment_text(
        "tiny_two_phase",
        phases=f"{FEATURE_EXTRACTION}, {FINE_TUNE}",
        # The fine_tune count is wrong on purpose: the JSON records failed checks too.
        expect=f"frozen_weights_unchanged(), trainable_params(feature_extraction={HEAD_PARAMS}, fine_tune=1), "
        "min_val_accuracy(0.9)",
    )
)


def test_metrics_json_of_a_two_phase_run(spec_pytester: pytest.Pytester) -> None:
    """One training run (seconds), checked from three sides below."""
    spec_pytester.makepyfile(**{"specs/tiny": TWO_PHASES})
    out = spec_pytester.mkdir("out")
    (out / "metrics.json").write_text("stale, from an earlier run\n")
    result = spec_pytester.runpytest_inprocess("--metrics-json", "out/metrics.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["harness: metrics written to out/metrics.json"])
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]  # replaced, no temporary file left beside it
    metrics = json.loads((out / "metrics.json").read_text())
    check_every_phase_is_recorded(metrics)
    check_each_invariant_outcome_is_recorded(metrics)


def check_every_phase_is_recorded(metrics: dict) -> None:
    assert set(metrics) >= {"harness_version", "started", "experiments"}
    assert list(metrics["experiments"]) == ["tiny_two_phase"]

    experiment = metrics["experiments"]["tiny_two_phase"]
    assert experiment["outcome"] == "failed" and experiment["passed"] is False
    assert experiment["split_sizes"] == {"train": 64, "validation": 32}
    assert experiment["num_classes"] == 2 and experiment["seed"] == 0
    assert experiment["wall_time_s"] > 0
    assert experiment["params"] == {}  # not parametrised
    assert (experiment["confusion_split"], experiment["dataset"]) == ("validation", "in-memory arrays")

    feature_extraction, fine_tune = experiment["phases"]
    assert [feature_extraction["name"], fine_tune["name"]] == ["feature_extraction", "fine_tune"]
    assert (feature_extraction["epochs"], feature_extraction["epochs_run"]) == (3, 3)
    assert len(feature_extraction["history"]["loss"]) == len(feature_extraction["history"]["val_accuracy"]) == 3
    assert len(fine_tune["history"]["loss"]) == 1
    for phase in (feature_extraction, fine_tune):
        assert 0.9 <= phase["val_accuracy"] <= 1.0
        assert phase["val_loss"] > 0
        assert phase["test_accuracy"] is None  # no test split
        assert phase["wall_time_s"] > 0
    assert experiment["val_accuracy"] == fine_tune["val_accuracy"]

    assert (feature_extraction["trainable_params"], fine_tune["trainable_params"]) == (
        HEAD_PARAMS,
        HEAD_PARAMS + BLOCK_2_CONV_PARAMS,
    )
    total = feature_extraction["trainable_params"] + feature_extraction["non_trainable_params"]
    assert fine_tune["trainable_params"] + fine_tune["non_trainable_params"] == total

    # Which path each phase trained on, and whether its inputs came from the cache.
    assert (feature_extraction["training_path"], feature_extraction["training_path_reason"]) == (
        "features",
        "the whole backbone is frozen",
    )
    assert fine_tune["training_path"] == "activations@block_2_conv"
    assert fine_tune["training_path_reason"] == "layers below 'block_2_conv' are frozen"
    assert "path" not in fine_tune and "path_reason" not in fine_tune
    assert feature_extraction["cache"] == fine_tune["cache"] == "miss"
    assert fine_tune["cached_val_accuracy"] == pytest.approx(fine_tune["val_accuracy"], abs=1e-6)


def check_each_invariant_outcome_is_recorded(metrics: dict) -> None:
    checks = metrics["experiments"]["tiny_two_phase"]["checks"]
    outcomes = {(c["name"], c["phase"]): c["passed"] for c in checks}
    assert outcomes == {
        ("cached_path_matches_end_to_end", "feature_extraction"): True,  # always checked on a cached path
        ("cached_path_matches_end_to_end", "fine_tune"): True,
        ("frozen_weights_unchanged", "feature_extraction"): True,
        ("frozen_weights_unchanged", "fine_tune"): True,
        ("trainable_params", "feature_extraction"): True,
        ("trainable_params", "fine_tune"): False,
        ("min_val_accuracy", "fine_tune"): True,
    }
    broken = next(c for c in checks if not c["passed"])
    assert (broken["expected"], broken["obtained"]) == ("1", f"{HEAD_PARAMS + BLOCK_2_CONV_PARAMS:,}")


def test_features_path_without_the_cache(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("tiny"))})
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json", "--no-feature-cache")
    result.assert_outcomes(passed=1)
    (phase,) = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]["tiny"]["phases"]
    assert (phase["training_path"], phase["cache"], phase["cached_val_accuracy"]) == ("full", "none", None)
    assert phase["training_path_reason"] == "feature caching disabled (--no-feature-cache)"


PARAMETRISED = """\
@parametrize("rate", [5e-2])
@parametrize("start", ["block_2_"])
def swept(start, rate):
    return experiment(
        name="swept",
        dataset=arrays(make_data, image_size=16),
        backbone=custom_backbone("tiny", tiny_backbone),
        head=classifier_head(dropout_rate=0.0),
        phases=[fine_tune(unfreeze_from=start, epochs=1, learning_rate=rate, batch_size=16)],
    )
"""


def test_a_parametrised_experiment_records_its_params_in_the_json_and_the_junit_xml(
    spec_pytester: pytest.Pytester,
) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(PARAMETRISED)})
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json", "--junitxml", "report.xml")
    result.assert_outcomes(passed=1)
    ((name, experiment),) = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"].items()
    assert experiment["params"] == {"start": "block_2_", "rate": 0.05}
    case = ET.parse(spec_pytester.path / "report.xml").getroot().find(".//testcase")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert (case.get("name"), properties["params.start"], properties["params.rate"]) == (name, "block_2_", "0.05")
    assert properties["fine_tune.training_path"] == "activations@block_2_conv"


def test_an_experiment_that_stops_before_a_result_is_in_the_metrics_and_the_summary(
    spec_pytester: pytest.Pytester,
) -> None:
    text = spec_file(experiment_text("tiny"), experiment_text("no_train_split", data="lambda: {}"))
    spec_pytester.makepyfile(**{"specs/tiny": text})
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json")
    result.assert_outcomes(passed=1, failed=1)
    experiments = json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]
    assert experiments["tiny"]["outcome"] == "passed"
    assert experiments["no_train_split"]["outcome"] == "failed"
    assert "`arrays(...)` data has no 'train' split" in experiments["no_train_split"]["error"]
    assert experiments["no_train_split"]["params"] == {}
    result.stdout.re_match_lines([r"no_train_split\s.*FAILED\s*$"])


def test_metrics_json_not_written_when_the_session_is_interrupted(spec_pytester: pytest.Pytester) -> None:
    """Ctrl-C during the second experiment: the first one's results are not written half-way."""
    spec_pytester.makeconftest(
        "def pytest_runtest_call(item):\n    if item.name == 'second':\n        raise KeyboardInterrupt\n"
    )
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("first"), experiment_text("second"))})
    result = spec_pytester.runpytest_inprocess("--metrics-json", "out/metrics.json", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    result.stdout.no_fnmatch_line("harness: metrics written*")
    assert not (spec_pytester.path / "out").exists() or not any((spec_pytester.path / "out").iterdir())


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}\n')

    def fail(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, '{"new": true}\n')
    monkeypatch.undo()
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
