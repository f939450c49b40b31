"""The regression gate: `--update-baselines`, `--tolerance`, `experiment(tolerance=...)` and the baseline file.

The baseline file is `specs/baselines.json` (ini `harness_baselines`): one entry per experiment,
keys sorted. The pytester runs train the tiny backbone of `tiny_specs` for real (a second or
two each); most tests write the baseline file by hand rather than record it first.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from tiny_specs import BLOCK_2_CONV_PARAMS, HEAD_PARAMS, experiment_text, spec_file

from harness import baselines, environment
from harness.results import ExperimentResult, PhaseResult

BASELINES = "specs/baselines.json"
ONE_EPOCH = "feature_extraction(epochs=1, learning_rate=5e-2, batch_size=16)"
# After the `tiny_specs` preamble: data with a test split, and a parametrised experiment
# (its ids name the layer fine-tuning starts from).
SWEPT = """\
def data_with_test():
    data = make_data(seed=1)
    data["test"] = make_data(seed=2)["validation"]
    return data


@parametrize("start", ["block_1_", "block_2_"])
def swept(start):
    return experiment(
        name="swept",
        dataset=arrays(data_with_test, image_size=16),
        backbone=custom_backbone("tiny", tiny_backbone),
        head=classifier_head(dropout_rate=0.0),
        phases=[
            feature_extraction(epochs=1, learning_rate=5e-2, batch_size=16),
            fine_tune(unfreeze_from=start, epochs=1, learning_rate=1e-3, batch_size=16),
        ],
    )
"""
BLOCK_1_CONV_PARAMS = 3 * 3 * 3 * 4 + 4


def recorded_entry(**overrides: Any) -> dict[str, Any]:
    """An entry as `--update-baselines` writes it for a one-phase tiny experiment in specs/tiny.py."""
    return {
        "spec": "specs/tiny.py",
        "seed": 0,
        "val_accuracy": 0.5,
        "val_loss": 0.7,
        "trainable_params": {"feature_extraction": HEAD_PARAMS},
        **overrides,
    }


def write_baselines(pytester: pytest.Pytester, entries: dict[str, dict[str, Any]]) -> Path:
    """Writes the baseline file as the harness does, with an mtime in the past; returns its path."""
    path = pytester.path / BASELINES
    path.parent.mkdir(exist_ok=True)
    baselines.save(path, entries)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    return path


def read_entries(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    return json.loads((pytester.path / BASELINES).read_text())["experiments"]


def entry_text(text: str, name: str) -> str:
    """The lines of entry `name` in a baseline file's text, as written."""
    lines = text.splitlines()
    start = lines.index(f'    "{name}": {{')
    end = next(i for i in range(start, len(lines)) if lines[i] in ("    }", "    },"))
    return "\n".join(lines[start : end + 1]).rstrip(",")


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# --------------------------------------------------------------------------- recording


def test_update_records_every_experiment_deterministically(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makeini("[pytest]\nharness_baselines = specs/baselines.json\n")
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(SWEPT)})
    path = spec_pytester.path / BASELINES
    result = spec_pytester.runpytest_inprocess("--update-baselines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"harness: baselines of 2 experiments recorded in {BASELINES}"])

    text = path.read_text()
    entries = json.loads(text)["experiments"]
    assert list(entries) == ["swept[block_1_]", "swept[block_2_]"]
    assert text == json.dumps({"experiments": entries}, indent=2, sort_keys=True) + "\n"  # sorted keys, stable layout
    for name, unfrozen in (
        ("swept[block_1_]", BLOCK_1_CONV_PARAMS + BLOCK_2_CONV_PARAMS),
        ("swept[block_2_]", BLOCK_2_CONV_PARAMS),
    ):
        entry = entries[name]
        assert set(entry) == {
            "spec",
            "seed",
            "val_accuracy",
            "val_loss",
            "test_accuracy",
            "test_loss",
            "trainable_params",
            "environment",
            "predictions",
            "wall_time_s",
        }
        assert entry["environment"] == environment.fingerprint()  # where it was measured
        assert entry["trainable_params"] == {"feature_extraction": HEAD_PARAMS, "fine_tune": HEAD_PARAMS + unfrozen}
    for entry in entries.values():
        assert (entry["spec"], entry["seed"]) == ("specs/tiny.py", 0)
        for metric in ("val_accuracy", "test_accuracy"):
            assert 0 <= entry[metric] <= 1 and round(entry[metric], 4) == entry[metric]
        assert entry["val_loss"] > 0

    # The tiny runs are deterministic given the seed: recording again changes no byte (nor the mtime).
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = snapshot(path)
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=2)
    assert snapshot(path) == before


# --------------------------------------------------------------------------- the gate


def test_drop_beyond_the_tolerance_fails_and_names_the_remedy(spec_pytester: pytest.Pytester) -> None:
    """`--tolerance` sets the accepted drop; a spec's own `tolerance` overrides it."""
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("loose", data="noise_data", expect=""),
                experiment_text("pinned", data="noise_data", expect="", extra="tolerance=0.1,\n"),
            )
        }
    )
    spec_pytester.runpytest_inprocess("--update-baselines").assert_outcomes(passed=2)
    obtained = read_entries(spec_pytester)
    raised = {  # as a file recorded before the paired gate: no predictions, the tolerance gate alone
        name: {
            **{k: v for k, v in entry.items() if k != "predictions"},
            "val_accuracy": round(entry["val_accuracy"] + 0.2, 4),
        }
        for name, entry in obtained.items()
    }
    path = write_baselines(spec_pytester, raised)
    before = snapshot(path)

    result = spec_pytester.runpytest_inprocess("--tolerance", "0.25")
    result.assert_outcomes(passed=1, failed=1)  # loose: 0.2 <= 0.25; pinned: 0.2 > 0.1 although --tolerance is 0.25
    value, baseline = obtained["pinned"]["val_accuracy"], raised["pinned"]["val_accuracy"]
    result.stdout.fnmatch_lines(
        [
            "experiment 'pinned' broke 1 of * invariants (*tiny.py:*):",
            (
                f"  baseline_val_accuracy: obtained {value:.4f} [[]*] n=32 (drop +0.2000; not paired: the baseline has "
                f"no predictions), expected at most 0.1000 below the baseline {baseline:.4f} [[]*]"
            ),
            "      verdict: fail, the drop +0.2000 exceeds the tolerance 0.1000",
            f"      To accept the new values into {BASELINES}, run: pytest 'specs/tiny.py::pinned' --update-baselines",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["FAILED specs/tiny.py::pinned - *"])
    assert snapshot(path) == before  # a normal run never writes the baseline file, failing or not


def test_unchanged_result_passes_a_zero_tolerance() -> None:
    """The file holds accuracies rounded to 4 places; the gate compares the same rounding.

    27 of 32 validation images is 0.84375, recorded as 0.8438: unchanged, it must not count as a drop.
    """
    phase = PhaseResult(
        "feature_extraction",
        "feature_extraction",
        1,
        1,
        {},
        val_accuracy=27 / 32,
        val_loss=0.5,
        test_accuracy=0.90625,
        test_loss=0.4,
        trainable_params=10,
        non_trainable_params=0,
        wall_time_s=1.0,
        training_path="features",
        training_path_reason="",
        cache="none",
    )
    result = ExperimentResult(
        "tiny", 0, "tiny", None, "in-memory arrays", 2, {"train": 64, "validation": 32, "test": 32}, phases=[phase]
    )
    recorded = baselines.entry_for(result, "specs/tiny.py")
    assert (recorded["val_accuracy"], recorded["test_accuracy"]) == (0.8438, 0.9062)
    checks, _ = baselines.compare(
        result, recorded, baselines.Gate(tolerance=0.0, update_command="pytest --update-baselines", file=BASELINES)
    )
    assert [(c.name, c.passed) for c in checks] == [("baseline_val_accuracy", True), ("baseline_test_accuracy", True)]


def test_changed_trainable_parameter_count_always_fails(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("resized", extra="tolerance=1.0,\n"))})
    write_baselines(
        spec_pytester,
        {"resized": recorded_entry(val_accuracy=0.0, trainable_params={"feature_extraction": HEAD_PARAMS + 1})},
    )
    result = spec_pytester.runpytest_inprocess("--tolerance", "1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  baseline_trainable_params: obtained different counts, expected the recorded trainable-parameter counts",
            f"      feature_extraction: baseline {HEAD_PARAMS + 1}, obtained {HEAD_PARAMS}",
            f"      To accept the new values into {BASELINES}, run: pytest 'specs/tiny.py::resized' --update-baselines",
        ],
        consecutive=True,
    )


def test_improvement_passes_and_shows_a_positive_delta(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("improved"))})
    path = write_baselines(spec_pytester, {"improved": recorded_entry(val_accuracy=0.5)})
    before = snapshot(path)
    result = spec_pytester.runpytest_inprocess("--tolerance", "0")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= harness summary =*",
            "experiment *baseline*delta*",
            "improved *0.500 (val)  +0.[45]* PASSED",  # baseline 0.5 (validation accuracy), delta +0.4xx or +0.500
        ]
    )
    assert snapshot(path) == before


def test_experiment_without_baseline_passes_with_a_warning(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("unrecorded"))})
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            (
                f"*PytestWarning: unrecorded: no baseline recorded in {BASELINES}; the regression gate is off for it. "
                "Record one with: pytest 'specs/tiny.py::unrecorded' --update-baselines"
            ),
        ]
    )
    assert not (spec_pytester.path / BASELINES).exists()  # and no file appears


def test_beats_compares_with_the_recorded_baseline_of_an_unselected_experiment(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("reference", phases=ONE_EPOCH),
                experiment_text("challenger", expect='beats("reference", margin=0.9, metric="val_accuracy")'),
            )
        }
    )
    write_baselines(spec_pytester, {"reference": recorded_entry(val_accuracy=0.25)})
    result = spec_pytester.runpytest_inprocess("-k", "challenger")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            (
                "  beats(reference): obtained * vs 0.2500 from the baseline (margin +0.*), "
                "expected val_accuracy >= reference's + 0.900"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*[[]harness[]] reference *")  # it did not train


def test_cache_dir_with_a_space_keeps_the_baselines_in_a_project_without_ini_file(
    spec_pytester: pytest.Pytester,
) -> None:
    """pytest takes `--cache-dir DIR`'s value for a path argument when it picks its rootdir (the harness's
    options are not known yet then), which moves the rootdir above the project; the harness's own root
    does not move, so the warning's command records the baseline where the next run reads it."""
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("tiny", phases=ONE_EPOCH, expect=""))})
    cache = spec_pytester.path.parent / f"{spec_pytester.path.name}-cache"  # outside the project
    cache.mkdir()
    assert not any(
        (spec_pytester.path / name).exists() for name in ("pytest.ini", "pyproject.toml", "setup.cfg", "tox.ini")
    )

    result = spec_pytester.runpytest_inprocess("--cache-dir", str(cache))
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([f"rootdir: {spec_pytester.path.parent}"])  # pytest's own rootdir moved
    result.stdout.fnmatch_lines(
        [
            (
                f"*no baseline recorded in {BASELINES}; the regression gate is off for it. "
                "Record one with: pytest 'specs/tiny.py::tiny' --update-baselines"
            ),
        ]
    )

    result = spec_pytester.runpytest_inprocess("specs/tiny.py::tiny", "--update-baselines", "--cache-dir", str(cache))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"harness: baselines of 1 experiments recorded in {BASELINES}"])
    assert not (spec_pytester.path.parent / BASELINES).exists()
    assert read_entries(spec_pytester)["tiny"]["spec"] == "specs/tiny.py"

    result = spec_pytester.runpytest_inprocess("--cache-dir", str(cache))  # the gate now reads it
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["tiny *(val)  +0.000 * PASSED"])


# --------------------------------------------------------------------------- updating


def test_update_with_k_rewrites_only_the_selected_entries(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("alpha", phases=ONE_EPOCH, expect=""),
                experiment_text("beta", phases=ONE_EPOCH, expect=""),
            )
        }
    )
    stale = recorded_entry(val_accuracy=0.123, val_loss=9.0)
    old = write_baselines(spec_pytester, {"alpha": stale, "beta": stale}).read_text()

    result = spec_pytester.runpytest_inprocess("-k", "alpha", "--update-baselines")
    result.assert_outcomes(passed=1, deselected=1)
    new = (spec_pytester.path / BASELINES).read_text()
    no_test_split = {"spec", "seed", "val_accuracy", "val_loss", "trainable_params", "environment", "predictions"}
    no_test_split.add("wall_time_s")
    assert set(read_entries(spec_pytester)["alpha"]) == no_test_split
    assert entry_text(new, "beta") == entry_text(old, "beta")
    assert entry_text(new, "alpha") != entry_text(old, "alpha")
    assert read_entries(spec_pytester)["alpha"]["val_loss"] != 9.0
    assert new.replace(entry_text(new, "alpha"), "") == old.replace(entry_text(old, "alpha"), "")


def test_update_adds_new_and_removes_stale_entries_of_the_collected_files(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(experiment_text("added", phases=ONE_EPOCH, expect="")),
            "specs/other": spec_file(experiment_text("elsewhere", phases=ONE_EPOCH, expect="")),
        }
    )
    elsewhere = recorded_entry(spec="specs/other.py")
    write_baselines(
        spec_pytester,
        {
            "removed": recorded_entry(),  # declared in specs/tiny.py no more
            "elsewhere": elsewhere,  # in a spec file this run does not collect
            "deleted": recorded_entry(spec="specs/deleted.py"),  # its spec file is gone
        },
    )
    result = spec_pytester.runpytest_inprocess("specs/tiny.py", "--update-baselines")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"harness: baselines of 1 experiments recorded in {BASELINES}",
            f"harness: stale baseline removed from {BASELINES}: deleted",
            f"harness: stale baseline removed from {BASELINES}: removed",
        ],
        consecutive=True,
    )
    entries = read_entries(spec_pytester)
    assert list(entries) == ["added", "elsewhere"]
    assert entries["elsewhere"] == elsewhere


def test_interrupted_update_leaves_the_file_as_it_was(spec_pytester: pytest.Pytester) -> None:
    """Ctrl-C during the second experiment: the first one's new baseline is not written."""
    spec_pytester.makeconftest(
        "def pytest_runtest_call(item):\n    if item.name == 'second':\n        raise KeyboardInterrupt\n"
    )
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("first", phases=ONE_EPOCH, expect=""),
                experiment_text("second", phases=ONE_EPOCH, expect=""),
            )
        }
    )
    path = write_baselines(spec_pytester, {"first": recorded_entry(val_accuracy=0.123), "gone": recorded_entry()})
    before = snapshot(path)

    result = spec_pytester.runpytest_inprocess("--update-baselines", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.no_fnmatch_line("harness: baselines of *")
    result.stdout.fnmatch_lines(
        ["harness: interrupted: the baselines, metrics, report and exports were left as they were"]
    )
    assert snapshot(path) == before
    assert sorted(p.name for p in (spec_pytester.path / "specs").iterdir() if p.name != "__pycache__") == [
        "baselines.json",
        "tiny.py",
    ]  # no temporary file either


# --------------------------------------------------------------------------- the option


@pytest.mark.parametrize("value", ["2", "-0.01", "nan"])
def test_tolerance_outside_zero_one_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest_inprocess("--tolerance", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --tolerance must be an accuracy drop in [[]0, 1[]], such as 0.02. Received: {float(value)}",
        ]
    )


@pytest.mark.parametrize("value", ["-1", str(2**32)])
def test_seed_outside_numpys_range_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest_inprocess("--seed", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --seed must be an integer in [[]0, 2[*][*]32) (NumPy's seed range). Received: {value}"]
    )


def test_unreadable_baseline_file_fails_each_experiment_plainly(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("tiny", phases=ONE_EPOCH, expect=""))})
    path = spec_pytester.path / BASELINES
    path.write_text('{"experiments": {"tiny": ')  # cut short
    before = snapshot(path)
    result = spec_pytester.runpytest_inprocess("--update-baselines")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                f"The baseline file {path} cannot be read (Expecting value: line 1 column 26 (char 25)). Fix it by hand or "
                "delete it and record new baselines with --update-baselines."
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.no_fnmatch_line("*[[]harness[]] tiny *")  # it failed before training
    assert snapshot(path) == before


# --------------------------------------------------------------------------- hostile baseline files


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (recorded_entry(val_accuracy="0.9"), '`val_accuracy` must be a number in [0, 1]. Received: "0.9" (a string)'),
        (recorded_entry(val_accuracy=float("nan")), "`val_accuracy` must be a number in [0, 1]. Received: NaN"),
        (recorded_entry(test_accuracy=7.5), "`test_accuracy` must be a number in [0, 1]. Received: 7.5"),
        (recorded_entry(val_accuracy=True), "`val_accuracy` must be a number in [0, 1]. Received: true (a boolean)"),
        (recorded_entry(val_loss=-1), "`val_loss` must be a non-negative number or null. Received: -1"),
        (
            recorded_entry(trainable_params={"feature_extraction": 1.5}),
            '`trainable_params` must be an object of phase name -> non-negative integer. Received: {"feature_extraction": 1.5} (an object)',
        ),
        (recorded_entry(seed=-3), "`seed` must be a non-negative integer. Received: -3"),
        (7.5, "the entry must be an object of recorded fields. Received: 7.5"),
        (True, "the entry must be an object of recorded fields. Received: true (a boolean)"),
    ],
)
def test_invalid_entries_say_which_field_is_wrong(entry: Any, problem: str) -> None:
    assert baselines.invalid_entries({"tiny": entry, "fine": recorded_entry()}) == {"tiny": problem}


def test_unknown_fields_are_ignored_so_newer_files_still_gate() -> None:
    assert baselines.invalid_entries({"tiny": recorded_entry(recorded_by={"tool": "a newer harness"})}) == {}


def test_invalid_entry_fails_its_experiment_plainly_and_the_others_gate(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("tiny", phases=ONE_EPOCH, expect=""),
                experiment_text("other", phases=ONE_EPOCH, expect=""),
            )
        }
    )
    path = write_baselines(spec_pytester, {"tiny": recorded_entry(), "other": recorded_entry(val_accuracy=0.0)})
    text = path.read_text().replace('"val_accuracy": 0.5', '"val_accuracy": "0.9"')
    path.write_text(text)
    before = snapshot(path)
    result = spec_pytester.runpytest_inprocess("--metrics-json", "metrics.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "The baseline of 'tiny' in specs/baselines.json is invalid: `val_accuracy` must be a number in "
                '[[]0, 1[]]. Received: "0.9" (a string). Fix it by hand, or record it again with: '
                "pytest 'specs/tiny.py::tiny' --update-baselines"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*[[]harness[]] tiny *")  # it failed before training
    assert snapshot(path) == before  # never modified without --update-baselines
    assert json.loads((spec_pytester.path / "metrics.json").read_text())["experiments"]["other"]["outcome"] == "passed"


def test_update_replaces_an_invalid_entry_and_keeps_the_unselected_one(spec_pytester: pytest.Pytester) -> None:
    spec_pytester.makepyfile(
        **{
            "specs/tiny": spec_file(
                experiment_text("tiny", phases=ONE_EPOCH, expect=""),
                experiment_text("other", phases=ONE_EPOCH, expect=""),
            )
        }
    )
    path = write_baselines(spec_pytester, {})
    path.write_text(json.dumps({"experiments": {"tiny": 7.5, "other": {"val_accuracy": float("nan")}}}))
    result = spec_pytester.runpytest_inprocess(
        "--update-baselines", "-k", "not other", "--metrics-json", "metrics.json"
    )
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*Traceback*")
    entries = json.loads(path.read_text())
    assert entries["experiments"]["tiny"]["spec"] == "specs/tiny.py"  # recorded anew
    assert math.isnan(entries["experiments"]["other"]["val_accuracy"])  # left for the user to fix
    assert (spec_pytester.path / "metrics.json").exists()
