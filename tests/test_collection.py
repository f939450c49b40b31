"""Collecting spec files: items named by experiment, parametrisation, -k/-m, and collection errors.

Only `test_a_bad_spec_does_not_stop_the_other_files` trains (one tiny experiment); the rest
collect only.
"""

from __future__ import annotations

import sys

import pytest
from tiny_specs import PREAMBLE, experiment_text, line_of, spec_file

PARAMETRIZED = (
    PREAMBLE
    + """

@parametrize("learning_rate", [0.001, 0.0001])
@parametrize("model", ["MobileNetV2", "ResNet50"])
def flowers(model, learning_rate):
    return experiment(
        name="flowers",
        dataset=arrays(make_data, image_size=32),
        backbone=backbone(model, weights=None),
        phases=[feature_extraction(epochs=1, learning_rate=learning_rate)],
    )
"""
)


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
    result.stdout.fnmatch_lines(
        [
            "specs/flowers.py::flowers[[]MobileNetV2-0.001[]]",
            "specs/flowers.py::flowers[[]MobileNetV2-0.0001[]]",
            "specs/flowers.py::flowers[[]ResNet50-0.001[]]",
            "specs/flowers.py::flowers[[]ResNet50-0.0001[]]",
            "4 tests collected*",
        ]
    )


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
    pytester.makepyfile(
        **{"specs/tiny": spec_file(experiment_text("small"), experiment_text("big", extra='marks=["slow"],\n'))}
    )
    result = pytester.runpytest_inprocess("--collect-only", "-q", "--strict-markers", "-m", expression)
    collected = [line.split("::", 1)[1] for line in result.stdout.lines if line.startswith("specs/tiny.py::")]
    assert collected == selected


def test_collect_only_does_not_import_tensorflow(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain `pytest --collect-only` in a fresh process: the plugin loads through its entry point."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.delenv("PYTEST_ADDOPTS")
    pytester.makepyfile(
        **{
            "specs/tiny": spec_file(experiment_text("tiny")),
            "specs/flowers": PARAMETRIZED,
            "specs/lite": PREAMBLE + '\nexperiment(name="lite", dataset=arrays(make_data, image_size=32), '
            "backbone=efficientnet_lite0(weights=None), "
            'phases=[fine_tune(unfreeze_from="block_12_", epochs=1)])\n',
        }
    )
    code = (
        "import sys, pytest\n"
        "code = pytest.main(['--collect-only', 'specs'])\n"
        "print('heavy modules loaded:', sorted(m for m in ('tensorflow', 'keras', 'harness.engine') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    result = pytester.run(sys.executable, "-c", code, timeout=120)
    result.stdout.fnmatch_lines(
        ["*plugins: *keras-transfer-harness-*", "*6 tests collected*", "heavy modules loaded: []"]
    )
    assert result.ret == 0


def test_a_bad_spec_does_not_stop_the_other_files(spec_pytester: pytest.Pytester) -> None:
    bad = spec_file(experiment_text("bad", phases="feature_extraction(epochs=-1)"))
    spec_pytester.makepyfile(**{"specs/good": spec_file(experiment_text("good")), "specs/bad": bad})
    result = spec_pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1, errors=1)
    line = line_of(bad, "epochs=-1")
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting specs/bad.py*",
            (
                f"{spec_pytester.path / 'specs' / 'bad.py'}:{line}: invalid spec: "
                "`feature_extraction.epochs` must be a positive integer. Received: epochs=-1"
            ),
        ]
    )
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
    result.stdout.fnmatch_lines(
        [
            (
                f"*specs/tiny.py:{line_of(text, 'experiment(')}: invalid spec: `trainable_params` must name phases "
                "of this experiment (feature_extraction). Received: trainable_params='fine_tuning'"
            ),
        ]
    )


def test_duplicate_experiment_names_are_a_collection_error(pytester: pytest.Pytester) -> None:
    text = spec_file(experiment_text("twin"), experiment_text("single"), experiment_text("twin"))
    pytester.makepyfile(**{"specs/twins": text})
    result = pytester.runpytest_inprocess("--collect-only")
    first, second = [i for i, line in enumerate(text.splitlines(), 1) if line.startswith("experiment(")][::2]
    result.stdout.fnmatch_lines(
        [
            (
                f"*specs/twins.py:{second}: `experiment.name` must be unique in twins.py; "
                f"'twin' is also declared at line {first}. Received: name='twin'"
            ),
        ]
    )
    result.assert_outcomes(errors=1)


def test_syntax_error_in_spec_file_names_the_file_and_line(pytester: pytest.Pytester) -> None:
    text = PREAMBLE + '\nexperiment(name="broken",\n'
    pytester.makepyfile(**{"specs/broken": text})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    path = pytester.path / "specs" / "broken.py"
    result.stdout.fnmatch_lines(
        [
            f"{path}: error while importing the spec file:",
            f'  File "{path}", line {line_of(text, "experiment(")}',
            '    experiment(name="broken",',
            "*^",
            "SyntaxError: '(' was never closed",
        ],
        consecutive=True,
    )
    result.stdout.no_fnmatch_line("*<frozen importlib*")


def test_name_error_in_spec_file_names_the_file_and_line(pytester: pytest.Pytester) -> None:
    text = spec_file(experiment_text("tiny", data="make_dta"))
    pytester.makepyfile(**{"specs/typo": text})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"{pytester.path / 'specs' / 'typo.py'}: error while importing the spec file:",
            f'*File "{pytester.path / "specs" / "typo.py"}", line {line_of(text, "make_dta")}, in <module>',
            "NameError: name 'make_dta' is not defined*",
        ]
    )
    assert "harness/collect.py" not in result.stdout.str() and "<frozen importlib" not in result.stdout.str()


def test_parametrized_function_that_builds_nothing_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{"specs/empty": PREAMBLE + '\n@parametrize("model", ["MobileNetV2"])\ndef flowers(model):\n    return None\n'}
    )
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*invalid spec: `flowers` must build an experiment(...) and return it. Received: flowers=None"]
    )


def test_only_python_files_in_specs_folders_are_specs(pytester: pytest.Pytester) -> None:
    experiment_file = spec_file(experiment_text("tiny"))
    pytester.makepyfile(
        **{
            "specs/tiny": experiment_file,
            "specs/nested/deeper": spec_file(experiment_text("deeper")),
            "specs/_shared": experiment_file,  # private helpers are not specs
            "specs/conftest": "",
            "notes/tiny": experiment_file,  # outside a specs folder
            "test_plain": "def test_plain():\n    pass\n",
        }
    )
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    collected = sorted(line for line in result.stdout.lines if "::" in line)
    assert collected == ["specs/nested/deeper.py::deeper", "specs/tiny.py::tiny", "test_plain.py::test_plain"]


def test_spec_folder_names_come_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nharness_spec_dirs = experiments\n")
    pytester.makepyfile(
        **{"experiments/tiny": spec_file(experiment_text("tiny")), "specs/other": spec_file(experiment_text("other"))}
    )
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    assert [line for line in result.stdout.lines if "::" in line] == ["experiments/tiny.py::tiny"]


# --------------------------------------------------------------------------- checks across the session


def collected_ids(result: pytest.RunResult, folder: str = "specs/") -> list[str]:
    return [line for line in result.stdout.lines if line.startswith(folder) and "::" in line]


def test_experiment_names_are_unique_across_files(pytester: pytest.Pytester) -> None:
    first, second = spec_file(experiment_text("twin")), spec_file(experiment_text("other"), experiment_text("twin"))
    pytester.makepyfile(**{"specs/a": first, "specs/b": second})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    line_a = line_of(first, "experiment(")
    line_b = [i for i, line in enumerate(second.splitlines(), 1) if line.startswith("experiment(")][1]
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting specs/b.py*",
            (
                f"{pytester.path / 'specs' / 'b.py'}:{line_b}: `experiment.name` must be unique in the session; 'twin' is "
                f"also declared at {pytester.path / 'specs' / 'a.py'}:{line_a}. Rename one of them. Received: name='twin'"
            ),
        ]
    )


def test_beats_chains_run_in_dependency_order(pytester: pytest.Pytester) -> None:
    """A topological order, stable otherwise: each experiment after those it must beat, not "every beats last"."""
    pytester.makepyfile(
        **{
            "specs/chain": spec_file(
                experiment_text("top", expect='beats("middle", margin=0.0, metric="val_accuracy")'),
                experiment_text("plain"),
                experiment_text("middle", expect='beats("bottom", margin=0.0, metric="val_accuracy")'),
                experiment_text("bottom"),
            )
        }
    )
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    assert collected_ids(result) == [f"specs/chain.py::{name}" for name in ("plain", "bottom", "middle", "top")]


def test_beats_an_unknown_experiment_is_a_collection_error_of_that_experiment(pytester: pytest.Pytester) -> None:
    text = spec_file(
        experiment_text("lite", expect='beats("scrach", margin=0.1, metric="val_accuracy")'), experiment_text("scratch")
    )
    pytester.makepyfile(**{"specs/pair": text})
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            (
                f"{pytester.path / 'specs' / 'pair.py'}:{line_of(text, 'experiment(')}: invalid spec: `beats.other` must "
                "name an experiment of this session or of the baseline file baselines.json. Did you mean 'scratch'? "
                "Received: other='scrach'"
            ),
        ]
    )
    assert collected_ids(result) == ["specs/pair.py::scratch"]
    result.stdout.fnmatch_lines(["ERROR specs/pair.py::lite - *", "*1 error*"])


def test_beats_a_deselected_or_baseline_only_experiment_is_fine(pytester: pytest.Pytester) -> None:
    """A target deselected by -k, or only in the baseline file, falls back to its baseline (checked when it runs)."""
    pytester.makepyfile(
        **{
            "specs/pair": spec_file(
                experiment_text("lite", expect='beats("scratch", margin=0.1, metric="val_accuracy")'),
                experiment_text("scratch"),
                experiment_text("old", expect='beats("retired", margin=0.1, metric="val_accuracy")'),
            ),
        }
    )
    (pytester.path / "specs" / "baselines.json").write_text('{"experiments": {"retired": {"val_accuracy": 0.5}}}')
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-k", "lite or old")
    assert collected_ids(result) == ["specs/pair.py::lite", "specs/pair.py::old"]
    assert result.ret == pytest.ExitCode.OK


def test_a_beats_cycle_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "specs/cycle": spec_file(
                experiment_text("a", expect='beats("b", margin=0.0, metric="val_accuracy")'),
                experiment_text("b", expect='beats("a", margin=0.0, metric="val_accuracy")'),
                experiment_text("c"),
            )
        }
    )
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["*invalid spec: `beats` must not form a cycle: a -> b -> a (each would have to run first)."]
    )
    assert collected_ids(result) == ["specs/cycle.py::c"]
    result.stdout.fnmatch_lines(["ERROR specs/cycle.py::a - *", "ERROR specs/cycle.py::b - *", "*2 errors*"])


# --------------------------------------------------------------------------- spec files that misbehave


def test_a_bad_spec_named_on_the_command_line_is_one_clear_error(pytester: pytest.Pytester) -> None:
    """As when collecting its folder: not a second raw traceback from pytest's python plugin."""
    bad = spec_file(experiment_text("bad", phases="feature_extraction(epochs=-1)"))
    pytester.makepyfile(**{"specs/bad": bad, "specs/good": spec_file(experiment_text("good"))})
    result = pytester.runpytest_inprocess("--collect-only", "specs/bad.py", "specs/good.py")
    result.stdout.fnmatch_lines(
        [
            (
                f"{pytester.path / 'specs' / 'bad.py'}:{line_of(bad, 'epochs=-1')}: invalid spec: "
                "`feature_extraction.epochs` must be a positive integer. Received: epochs=-1"
            ),
        ]
    )
    assert result.stdout.str().count("ERROR collecting specs/bad.py") == 1
    assert "Traceback" not in result.stdout.str() and "Interrupted" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*1 test collected, 1 error*"])


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("import sys\nsys.exit(2)\n", "SystemExit(2)"),
        (
            (
                "import argparse\nparser = argparse.ArgumentParser()\nparser.add_argument('--epochs', type=int)\n"
                "parser.parse_args()\n"
            ),
            "SystemExit(2)",
        ),
    ],
    ids=["sys-exit", "argparse"],
)
def test_a_spec_that_exits_at_import_is_a_collection_error_of_that_file(
    pytester: pytest.Pytester, code: str, shown: str
) -> None:
    text = spec_file(experiment_text("exits")) + "\n" + code
    pytester.makepyfile(**{"specs/exits": text, "specs/good": spec_file(experiment_text("good"))})
    result = pytester.runpytest_inprocess("--collect-only", "-q", "specs/exits.py", "specs")
    last = len(text.rstrip("\n").splitlines())
    result.stdout.fnmatch_lines(
        [
            (
                f"{pytester.path / 'specs' / 'exits.py'}:{last}: the spec file exits while it is imported ({shown}, from "
                "sys.exit() or argparse). Importing a spec must only declare experiments: put command-line code under "
                '`if __name__ == "__main__":`.'
            ),
        ]
    )
    assert collected_ids(result) == ["specs/good.py::good"]
    assert "INTERNALERROR" not in result.stdout.str()


def test_a_spec_file_that_declares_no_experiment_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"specs/empty": PREAMBLE, "specs/good": spec_file(experiment_text("good"))})
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            (
                f"{pytester.path / 'specs' / 'empty.py'}: the spec file declares no experiment. Call experiment(...) at "
                "module level, or return one from a @parametrize function (a helper module takes a leading '_': _empty.py)."
            ),
        ]
    )
    assert collected_ids(result) == ["specs/good.py::good"]


def test_a_file_that_imports_nothing_from_harness_is_a_warning_not_a_spec(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"specs/helpers": "SIZE = 16\n", "specs/good": spec_file(experiment_text("good"))})
    result = pytester.runpytest_inprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            (
                "*helpers.py is in a specs folder but imports nothing from harness and declares no experiment; nothing "
                "collected. Rename it to _helpers.py to mark it as a helper module."
            ),
        ]
    )
    assert collected_ids(result) == ["specs/good.py::good"]
    assert result.ret == pytest.ExitCode.OK


PARAMETRIZED_TYPO = (
    PREAMBLE
    + """

@parametrize("model", ["MobileNetV2"])
@parametrize("learning_rates", [0.001])
def flowers(model, learning_rate):
    return experiment(
        name="flowers",
        dataset=arrays(make_data, image_size=32),
        backbone=backbone(model, weights=None),
        phases=[feature_extraction(epochs=1, learning_rate=learning_rate)],
    )
"""
)


def test_parametrize_mistakes_point_at_the_spec_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"specs/flowers": PARAMETRIZED_TYPO})
    result = pytester.runpytest_inprocess("--collect-only")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            (
                f"{pytester.path / 'specs' / 'flowers.py'}:{line_of(PARAMETRIZED_TYPO, 'learning_rates')}: invalid spec: "
                "`parametrize.argnames` must be parameters of flowers(model, learning_rate). Received: argnames='learning_rates'"
            ),
        ]
    )


def test_stacked_parametrize_ids_that_collide_point_at_the_function(pytester: pytest.Pytester) -> None:
    text = (
        PREAMBLE
        + """

@parametrize("b", ["y", "x-y"])
@parametrize("a", ["y-x", "y"])
def clash(a, b):
    return experiment(name="clash", dataset=arrays(make_data, image_size=16),
                      backbone=custom_backbone("tiny", tiny_backbone), phases=[feature_extraction(epochs=1)])
"""
    )
    pytester.makepyfile(**{"specs/clash": text})
    result = pytester.runpytest_inprocess("--collect-only")
    line = line_of(text, '@parametrize("b"')  # the top decorator: the last applied
    result.stdout.fnmatch_lines(
        [
            (
                f"{pytester.path / 'specs' / 'clash.py'}:{line}: invalid spec: `clash.ids` must be "
                "distinct across the stacked @parametrize decorators. Give ids=[...] to tell the combinations apart. "
                "Received: ids='y-x-y'"
            ),
        ]
    )
