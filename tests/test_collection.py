"""Collecting spec files: items named by experiment, parametrisation, -k/-m, and collection errors.

Only `test_a_bad_spec_does_not_stop_the_other_files` trains (one tiny experiment); the rest
collect only.
"""

from __future__ import annotations

import sys

import pytest

from tiny_specs import PREAMBLE, experiment_text, line_of, spec_file

PARAMETRIZED = PREAMBLE + '''

@parametrize("learning_rate", [0.001, 0.0001])
@parametrize("model", ["MobileNetV2", "ResNet50"])
def flowers(model, learning_rate):
    return experiment(
        name="flowers",
        dataset=arrays(make_data, image_size=32),
        backbone=backbone(model, weights=None),
        phases=[feature_extraction(epochs=1, learning_rate=learning_rate)],
    )
'''


def test_spec_file_collects_one_item_per_experiment(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("alpha"), experiment_text("beta"))})
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(["specs/tiny.py::alpha", "specs/tiny.py::beta", "2 tests collected*"])
    assert result.ret == pytest.ExitCode.OK


def test_collect_only_tree_shows_spec_file_and_experiments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("alpha"))})
    result = pytester.runpytest_inprocess("--collect-only")
    result.stdout.fnmatch_lines(["*<SpecFile tiny.py>", "*<ExperimentItem alpha>"])


def test_parametrized_spec_ids_follow_pytest(pytester: pytest.Pytester) -> None:
    """Like stacked `pytest.mark.parametrize`: the decorator nearest the function comes first in the id."""
    pytester.makepyfile(**{"specs/flowers": PARAMETRIZED})
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "specs/flowers.py::flowers[[]MobileNetV2-0.001[]]",
        "specs/flowers.py::flowers[[]MobileNetV2-0.0001[]]",
        "specs/flowers.py::flowers[[]ResNet50-0.001[]]",
        "specs/flowers.py::flowers[[]ResNet50-0.0001[]]",
        "4 tests collected*",
    ])


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("ResNet50", ["flowers[ResNet50-0.001]", "flowers[ResNet50-0.0001]"]),
        ("MobileNetV2-0.001", ["flowers[MobileNetV2-0.001]"]),
        ("0.0001 and not ResNet50", ["flowers[MobileNetV2-0.0001]"]),
    ],
)
def test_k_selects_parametrized_experiments(pytester: pytest.Pytester, expression: str, selected: list[str]) -> None:
    pytester.makepyfile(**{"specs/flowers": PARAMETRIZED})
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-k", expression)
    collected = [line.split("::", 1)[1] for line in result.stdout.lines if line.startswith("specs/flowers.py::")]
    assert collected == selected
    result.stdout.fnmatch_lines([f"{len(selected)}/4 tests collected ({4 - len(selected)} deselected)*"])


@pytest.mark.parametrize(("expression", "selected"), [("slow", ["big"]), ("not slow", ["small"]), ("gpu", [])])
def test_m_selects_by_marks(pytester: pytest.Pytester, expression: str, selected: list[str]) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    slow: long experiments\n    gpu: needs an accelerator\n")
    pytester.makepyfile(**{"specs/tiny": spec_file(experiment_text("small"), experiment_text("big", extra='marks=["slow"],\n'))})
    result = pytester.runpytest_inprocess("--collect-only", "-q", "--strict-markers", "-m", expression)
    collected = [line.split("::", 1)[1] for line in result.stdout.lines if line.startswith("specs/tiny.py::")]
    assert collected == selected


def test_collect_only_does_not_import_tensorflow(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain `pytest --collect-only` in a fresh process: the plugin loads through its entry point."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.delenv("PYTEST_ADDOPTS")
    pytester.makepyfile(**{
        "specs/tiny": spec_file(experiment_text("tiny")),
        "specs/flowers": PARAMETRIZED,
        "specs/lite": PREAMBLE + '\nexperiment(name="lite", dataset=arrays(make_data, image_size=32), '
                                 'backbone=efficientnet_lite0(weights=None), '
                                 'phases=[fine_tune(unfreeze_from="block_12_", epochs=1)])\n',
    })
    code = (
        "import sys, pytest\n"
        "code = pytest.main(['--collect-only', 'specs'])\n"
        "print('heavy modules loaded:', sorted(m for m in ('tensorflow', 'keras', 'harness.engine') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    result = pytester.run(sys.executable, "-c", code, timeout=120)
    result.stdout.fnmatch_lines(["*plugins: *keras-transfer-harness-*", "*6 tests collected*", "heavy modules loaded: []"])
    assert result.ret == 0


def test_a_bad_spec_does_not_stop_the_other_files(spec_pytester: pytest.Pytester) -> None:
    bad = spec_file(experiment_text("bad", phases="feature_extraction(epochs=-1)"))
    spec_pytester.makepyfile(**{"specs/good": spec_file(experiment_text("good")), "specs/bad": bad})
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, errors=1)
    line = line_of(bad, "epochs=-1")
    result.stdout.fnmatch_lines([
        "*ERROR collecting specs/bad.py*",
        f"{spec_pytester.path / 'specs' / 'bad.py'}:{line}: invalid spec: "
        "`feature_extraction.epochs` must be a positive integer. Received: epochs=-1",
    ])
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_other_collection_errors_still_stop_the_session(pytester: pytest.Pytester) -> None:
    """Only broken spec files let the rest run; a broken test module stops pytest as usual."""
    pytester.makepyfile(**{"specs/good": spec_file(experiment_text("good")), "test_broken": "import no_such_module\n"})
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Interrupted: 1 error during collection*"])


def test_bad_spec_inside_experiment_call_points_at_the_offending_line(pytester: pytest.Pytester) -> None:
    text = spec_file(experiment_text("tiny", expect="trainable_params(fine_tuning=10)"))
    pytester.makepyfile(**{"specs/tiny": text})
    result = pytester.runpytest_inprocess("--collect-only")
    result.stdout.fnmatch_lines([
        f"*specs/tiny.py:{line_of(text, 'experiment(')}: invalid spec: `trainable_params` must name phases "
        "of this experiment (feature_extraction). Received: trainable_params='fine_tuning'",
    ])


def test_duplicate_experiment_names_are_a_collection_error(pytester: pytest.Pytester) -> None:
    text = spec_file(experiment_text("twin"), experiment_text("single"), experiment_text("twin"))
    pytester.makepyfile(**{"specs/twins": text})
    result = pytester.runpytest_inprocess("--collect-only")
    first, second = [i for i, line in enumerate(text.splitlines(), 1) if line.startswith("experiment(")][::2]
    result.stdout.fnmatch_lines([
        f"*specs/twins.py:{second}: `experiment.name` must be unique in twins.py; "
        f"'twin' is also declared at line {first}. Received: name='twin'",
    ])
    result.assert_outcomes(errors=1)


def test_syntax_error_in_spec_file_names_the_file_and_line(pytester: pytest.Pytester) -> None:
    text = PREAMBLE + '\nexperiment(name="broken",\n'
    pytester.makepyfile(**{"specs/broken": text})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    path = pytester.path / "specs" / "broken.py"
    result.stdout.fnmatch_lines([
        f"{path}: error while importing the spec file:",
        f'  File "{path}", line {line_of(text, "experiment(")}',
        '    experiment(name="broken",',
        "*^",
        "SyntaxError: '(' was never closed",
    ], consecutive=True)
    result.stdout.no_fnmatch_line("*<frozen importlib*")


def test_name_error_in_spec_file_names_the_file_and_line(pytester: pytest.Pytester) -> None:
    text = spec_file(experiment_text("tiny", data="make_dta"))
    pytester.makepyfile(**{"specs/typo": text})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        f"{pytester.path / 'specs' / 'typo.py'}: error while importing the spec file:",
        f'*File "{pytester.path / "specs" / "typo.py"}", line {line_of(text, "make_dta")}, in <module>',
        "NameError: name 'make_dta' is not defined*",
    ])
    assert "harness/collect.py" not in result.stdout.str() and "<frozen importlib" not in result.stdout.str()


def test_parametrized_function_that_builds_nothing_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"specs/empty": PREAMBLE + '\n@parametrize("model", ["MobileNetV2"])\ndef flowers(model):\n    return None\n'})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*invalid spec: `flowers` must build an experiment(...) and return it. Received: flowers=None"])


def test_only_python_files_in_specs_folders_are_specs(pytester: pytest.Pytester) -> None:
    experiment_file = spec_file(experiment_text("tiny"))
    pytester.makepyfile(**{
        "specs/tiny": experiment_file,
        "specs/nested/deeper": spec_file(experiment_text("deeper")),
        "specs/_shared": experiment_file,  # private helpers are not specs
        "specs/conftest": "",
        "notes/tiny": experiment_file,  # outside a specs folder
        "test_plain": "def test_plain():\n    pass\n",
    })
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    collected = sorted(line for line in result.stdout.lines if "::" in line)
    assert collected == ["specs/nested/deeper.py::deeper", "specs/tiny.py::tiny", "test_plain.py::test_plain"]


def test_spec_folder_names_come_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nharness_spec_dirs = experiments\n")
    pytester.makepyfile(**{"experiments/tiny": spec_file(experiment_text("tiny")), "specs/other": spec_file(experiment_text("other"))})
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == ["experiments/tiny.py::tiny"]
