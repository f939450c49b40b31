"""pytest nodes: a spec file collects into one item per experiment (per parameter combination).

Nothing here imports TensorFlow; `ExperimentItem.runtest` imports the engine lazily.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import spec
from harness.paths import relative_to_root
from harness.results import ExperimentResult
from harness.session import Session


class HarnessFailure(Exception):
    """A failure the harness reports in plain lines, without a traceback."""


BROKEN_SPEC_FILES = pytest.StashKey[set[str]]()
"""Node ids of the spec files that failed to collect (see `harness.plugin.pytest_runtestloop`)."""


class SpecFile(pytest.File):
    """A Python file under a specs folder, declaring experiments with `harness.experiment(...)`."""

    def collect(self) -> Iterator["ExperimentItem"]:
        try:
            items = list(self._collect())
        except self.CollectError:
            self.config.stash.setdefault(BROKEN_SPEC_FILES, set()).add(self.nodeid)
            raise
        yield from items

    def _collect(self) -> Iterator["ExperimentItem"]:
        experiments = self._import()
        Session.of(self.config).collected[relative_to_root(self.path, self.config.rootpath)] = [e.name for e in experiments]
        seen: dict[str, spec.Experiment] = {}
        for experiment in experiments:
            if experiment.name in seen:
                raise self.CollectError(
                    f"{self._where(experiment)}: `experiment.name` must be unique in {self.path.name}; "
                    f"{experiment.name!r} is also declared at line {seen[experiment.name].location.line}. "
                    f"Received: name={experiment.name!r}"
                )
            seen[experiment.name] = experiment
            yield ExperimentItem.from_parent(self, name=experiment.name, experiment=experiment)

    def _import(self) -> list[spec.Experiment]:
        module_name = "harness_specs." + re.sub(r"\W", "_", relative_to_root(self.path, self.config.rootpath))
        loader_spec = importlib.util.spec_from_file_location(module_name, self.path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            with spec.collecting() as found:
                loader_spec.loader.exec_module(module)
            for function in [v for v in vars(module).values() if callable(v) and hasattr(v, "_harness_parametrize")]:
                for suffix, kwargs in spec.expand(function):
                    with spec.collecting() as produced:
                        returned = function(**kwargs)
                    made = produced or ([returned] if isinstance(returned, spec.Experiment) else [])
                    if not made:
                        raise spec.SpecError(f"{function.__name__}", "must build an experiment(...) and return it", returned)
                    found.extend(e.with_params(suffix, kwargs) for e in made)
        except spec.SpecError as error:
            raise self.CollectError(f"{self.path}:{_line_in(error, self.path)}: invalid spec: {error}") from None
        except Exception as error:  # noqa: BLE001 - any error in user code is a collection error of this file
            raise self.CollectError(_user_traceback(error, self.path)) from None
        return found

    def _where(self, experiment: spec.Experiment) -> str:
        return str(experiment.location) if experiment.location else str(self.path)


def _line_in(error: BaseException, path: Path) -> int | str:
    """The last line of `path` on the traceback of `error` (the spec line that raised)."""
    target = os.path.realpath(path)
    line: int | str = "?"
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if os.path.realpath(frame.f_code.co_filename) == target:
            line = lineno
    return line


def _user_traceback(error: BaseException, path: Path) -> str:
    # The user's frames only: not the harness's, nor importlib's ("<frozen importlib._bootstrap>").
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "harness" not in Path(f.filename).parts[-2:-1] and not f.filename.startswith("<frozen ")]
    formatted = "".join(traceback.format_list(frames[-3:]))
    # For a SyntaxError this shows the file, line and a caret under the offending token.
    detail = "".join(traceback.format_exception_only(type(error), error)).rstrip("\n")
    return f"{path}: error while importing the spec file:\n{formatted}{detail}"


class ExperimentItem(pytest.Item):
    """One experiment: trains its phases and checks its expectations."""

    def __init__(self, *, experiment: spec.Experiment, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        for mark in experiment.marks:
            self.add_marker(mark)

    def runtest(self) -> None:
        session = Session.of(self.config)
        result = session.run(self.experiment, self.nodeid)
        for key, value in _properties(result):
            self.user_properties.append((key, value))
        if result.failures:
            raise HarnessFailure(_failure_text(self.experiment, result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (HarnessFailure, spec.SpecError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.experiment.location.line - 1 if self.experiment.location else None
        return self.path, line, f"experiment {self.experiment.name}"


def _failure_text(experiment: spec.Experiment, result: ExperimentResult) -> str:
    failures = result.failures
    lines = [f"experiment {experiment.name!r} broke {len(failures)} of {len(result.checks)} invariants "
             f"({experiment.location}):"]
    for check in failures:
        lines.append(f"  {check.describe()}")
        lines.extend(f"      {detail}" for detail in check.details)
    return "\n".join(lines)


def _properties(result: ExperimentResult) -> Iterator[tuple[str, Any]]:
    for phase in result.phases:
        yield f"{phase.name}.val_accuracy", round(phase.val_accuracy, 4)
        if phase.test_accuracy is not None:
            yield f"{phase.name}.test_accuracy", round(phase.test_accuracy, 4)
        yield f"{phase.name}.trainable_params", phase.trainable_params
        yield f"{phase.name}.wall_time_s", round(phase.wall_time_s, 1)
        yield f"{phase.name}.path", phase.path
