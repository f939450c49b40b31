"""Running experiments: passing, failing with every broken invariant listed, -x, --lf, --junitxml.

The pytester runs train the tiny backbone of `tiny_specs` for real (a few seconds each);
`test_weight_changes_*` check the frozen-weight invariant on Keras variables directly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from tiny_specs import (
    BLOCK_2_CONV_PARAMS,
    FEATURE_EXTRACTION,
    FINE_TUNE,
    HEAD_PARAMS,
    experiment_text,
    line_of,
    spec_file,
)

from harness import checks, spec
from harness.results import ExperimentResult, Run, WeightChanges

ALL_INVARIANTS = (
    "frozen_weights_unchanged(), trainable_weights_changed(), "
    f"trainable_params(feature_extraction={HEAD_PARAMS}, fine_tune={HEAD_PARAMS + BLOCK_2_CONV_PARAMS}), "
    "min_val_accuracy(0.9), loss_decreases()"
)
# Fails at run time, before training: the custom backbone has no layer named "block_9_...".
BAD_PREFIX = 'fine_tune(unfreeze_from="block_9_", epochs=1)'


def failure_section(result: pytest.RunResult, name: str) -> str:
    """The failure text pytest printed for experiment `name`, without captured output."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.strip("_ ") == f"experiment {name}")
    rules = ("-----", "_____", "=====")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(rules)), len(lines))
    return "\n".join(lines[start + 1 : end])


def test_passing_experiment_reports_metrics_as_junit_properties(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("tiny_two_phase", phases=f"{FEATURE_EXTRACTION}, {FINE_TUNE}", expect=ALL_INVARIANTS)
            )
        }
    )
    result = spec_pytester.runpytest_inprocess("--junitxml=report.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*[[]harness[]] tiny_two_phase feature_extraction epoch 3/3 loss=*val_accuracy=*"])

    case = ET.parse(spec_pytester.path / "report.xml").getroot().find(".//testcase")
    assert case.get("name") == "tiny_two_phase"
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["feature_extraction.trainable_params"] == str(HEAD_PARAMS)
    assert properties["fine_tune.trainable_params"] == str(HEAD_PARAMS + BLOCK_2_CONV_PARAMS)
    assert properties["feature_extraction.training_path"] == "features"
    assert properties["fine_tune.training_path"] == "activations@block_2_conv"
    for phase in ("feature_extraction", "fine_tune"):
        assert 0.9 <= float(properties[f"{phase}.val_accuracy"]) <= 1.0
        assert float(properties[f"{phase}.wall_time_s"]) >= 0.0


def test_failing_experiment_lists_every_broken_invariant(spec_pytester: pytest.Pytester) -> None:
    """Noise labels, a wrong parameter count and a frozen layer that changes its own variable, at once."""
    text = spec_file(
        experiment_text(
            "broken",
            data="noise_data",
            backbone="counting_backbone",
            expect="frozen_weights_unchanged(), trainable_params(feature_extraction=3), min_val_accuracy(1.0), loss_decreases()",
        )
    )
    spec_pytester.makepyfile(**{"specs/broken": text})
    result = spec_pytester.runpytest_inprocess("--junitxml=report.xml")
    result.assert_outcomes(failed=1)
    section = failure_section(result, "broken")
    where = f"{spec_pytester.path / 'specs' / 'broken.py'}:{line_of(text, 'experiment(')}"
    assert section.splitlines()[0] == f"experiment 'broken' broke 3 of 5 invariants ({where}):"
    result.stdout.fnmatch_lines(
        [
            "  feature_extraction: frozen_weights_unchanged: obtained 1 changed, expected all * frozen variables bit-for-bit unchanged",
            "      counter/calls: max |delta| = *",
            f"  feature_extraction: trainable_params: obtained {HEAD_PARAMS}, expected 3",
            "  feature_extraction: min_val_accuracy: obtained 0.*, expected >= 1.0000",
        ],
        consecutive=True,
    )
    assert "loss_decreases" not in section  # only the broken ones are listed
    assert (
        "Traceback" not in section and "tensorflow" not in section.lower() and ".py:" not in section.split("\n", 1)[1]
    )
    result.stdout.fnmatch_lines(["FAILED specs/broken.py::broken - experiment 'broken' broke 3 of 5 invariants*"])

    # A failed experiment still reports what it measured.
    case = ET.parse(spec_pytester.path / "report.xml").getroot().find(".//testcase")
    assert case.find("failure").get("message").startswith("experiment 'broken' broke 3 of 5 invariants")
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert float(properties["feature_extraction.val_accuracy"]) < 1.0
    assert properties["feature_extraction.trainable_params"] == str(HEAD_PARAMS)


def test_runtime_spec_error_on_a_custom_backbone_is_a_clean_failure(spec_pytester: pytest.Pytester) -> None:
    """Layer names of a custom backbone are known only once it is built: checked then, reported plainly."""
    text = spec_file(experiment_text("bad_prefix", phases=BAD_PREFIX, expect=""))
    spec_pytester.makepyfile(**{"specs/tiny": text})
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    section = failure_section(result, "bad_prefix")
    where = f"{spec_pytester.path / 'specs' / 'tiny.py'}:{line_of(text, 'experiment(')}"
    assert section.startswith(f"{where}: "), section
    for part in (
        "unfreeze_from` must match layers",
        "a name prefix of some layer, e.g. 'block_2_', 'block_1_'",
        "Received: unfreeze_from='block_9_'",
    ):
        assert part in section, section
    assert len(section.splitlines()) == 1 and "Traceback" not in section


def test_exitfirst_stops_after_the_first_failed_experiment(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("first", phases=BAD_PREFIX, expect=""),
                experiment_text("second", phases=BAD_PREFIX, expect=""),
            )
        }
    )
    result = spec_pytester.runpytest_inprocess("-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED specs/tiny.py::first - *", "*stopping after 1 failures*"])
    result.stdout.no_fnmatch_line("*::second*")


def test_last_failed_reruns_only_the_failed_experiment(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{"specs/tiny": spec_file(experiment_text("good"), experiment_text("bad", phases=BAD_PREFIX, expect=""))}
    )
    spec_pytester.runpytest_inprocess().assert_outcomes(passed=1, failed=1)

    rerun = spec_pytester.runpytest_inprocess("--lf", "-v")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(
        ["collect* 1 item", "run-last-failure: rerun previous 1 failure*", "specs/tiny.py::bad FAILED*"]
    )
    rerun.stdout.no_fnmatch_line("*[[]harness[]] good *")  # the passing experiment did not train again


# --------------------------------------------------------------------------- the frozen-weights check itself


def test_the_checks_stage_has_a_check_for_every_expectation_type() -> None:
    assert set(checks.CHECKS) == set(spec.EXPECTATIONS)


@pytest.fixture
def probe():
    import keras

    layer = keras.layers.Dense(3, name="probe")
    layer.build((None, 2))
    return layer


def snapshot(variables) -> dict[str, np.ndarray]:
    return {v.path: np.array(v.numpy(), copy=True) for v in variables}


def frozen_check(changes: WeightChanges):
    def no_data():
        return {}

    experiment = spec.experiment(
        name="probe",
        dataset=spec.arrays(no_data, image_size=16),
        backbone=spec.custom_backbone("probe", lambda shape: None),
        phases=[spec.feature_extraction(epochs=1)],
        expect=[spec.frozen_weights_unchanged(), spec.trainable_weights_changed()],
    )
    result = ExperimentResult("probe", 0, "probe", None, "in-memory arrays", 2, {"train": 1, "validation": 1})
    run = Run(result=result, weight_changes={"feature_extraction": changes})
    return checks.evaluate(experiment, run, results={}, recorded={}, gate=None)


@pytest.mark.slow
def test_weight_changes_catch_a_frozen_variable_modified_in_place(probe) -> None:
    before = snapshot(probe.weights)
    probe.kernel.assign(probe.kernel.numpy() + np.array([[0.0, 0.5, 0.0], [0.0, 0.0, -0.25]], dtype="float32"))
    changes = WeightChanges.between(before, frozen=[probe.kernel, probe.bias], trainable=[])
    assert changes.frozen_changed == [("probe/kernel", 0.5)]

    frozen, trainable = frozen_check(changes)
    assert not frozen.passed
    assert frozen.describe() == (
        "feature_extraction: frozen_weights_unchanged: obtained 1 changed, "
        "expected all 2 frozen variables bit-for-bit unchanged"
    )
    assert frozen.details == ["probe/kernel: max |delta| = 0.5"]
    assert trainable.passed


@pytest.mark.slow
def test_weight_changes_see_the_smallest_change(probe) -> None:
    """Bit for bit: one ulp on one element is a change."""
    before = snapshot(probe.weights)
    bias = probe.bias.numpy()
    bias[1] = np.nextafter(bias[1], np.float32(1), dtype=np.float32)
    probe.bias.assign(bias)
    changes = WeightChanges.between(before, frozen=[probe.kernel, probe.bias], trainable=[])
    assert [path for path, _ in changes.frozen_changed] == ["probe/bias"]
    assert 0 < changes.frozen_changed[0][1] < 1e-30


@pytest.mark.slow
def test_weight_changes_list_unchanged_trainable_variables(probe) -> None:
    before = snapshot(probe.weights)
    probe.kernel.assign(probe.kernel.numpy() * 2 + 1)
    changes = WeightChanges.between(before, frozen=[], trainable=[probe.kernel, probe.bias])
    _, trainable = frozen_check(changes)
    assert not trainable.passed
    assert trainable.describe() == (
        "feature_extraction: trainable_weights_changed: obtained 1 unchanged, expected all 2 trainable variables changed"
    )
    assert trainable.details == ["probe/bias: unchanged"]


def test_frozen_check_lists_the_largest_changes_first_and_counts_the_rest() -> None:
    changed = [(f"block_{i}/kernel", float(i)) for i in range(1, 9)]
    changes = WeightChanges(frozen_changed=changed, frozen_count=20)
    frozen, _ = frozen_check(changes)
    assert frozen.obtained == "8 changed"
    assert frozen.details == [
        "block_8/kernel: max |delta| = 8",
        "block_7/kernel: max |delta| = 7",
        "block_6/kernel: max |delta| = 6",
        "block_5/kernel: max |delta| = 5",
        "block_4/kernel: max |delta| = 4",
        "... and 3 more",
    ]
