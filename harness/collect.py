"""pytest nodes: a spec file collects into one item per experiment (per parameter combination).

Nothing here imports TensorFlow; `ExperimentItem.runtest` imports the engine lazily.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from harness import spec
from harness.errors import HarnessFailure
from harness.paths import relative_to_root
from harness.report.junit import gate_properties, properties
from harness.results import ExperimentResult
from harness.session import Session

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr

BROKEN_SPEC_FILES = pytest.StashKey[set[str]]()
"""Node ids of the spec files (and experiments) that failed to collect (see `harness.plugin.pytest_runtestloop`)."""

DECLARED = pytest.StashKey[dict[str, str]]()
"""Where each experiment of the session is declared ("path:line"): names are unique across files."""

_HARNESS_DIR = Path(__file__).resolve().parent


class SpecFile(pytest.File):
    """A Python file under a specs folder, declaring experiments with `harness.experiment(...)`."""

    def collect(self) -> Iterator[ExperimentItem]:
        try:
            items = list(self._collect())
        except self.CollectError:
            self.config.stash.setdefault(BROKEN_SPEC_FILES, set()).add(self.nodeid)
            raise
        yield from items

    def _collect(self) -> Iterator[ExperimentItem]:
        experiments = self._import()
        declared = self.config.stash.setdefault(DECLARED, {})
        seen: dict[str, spec.Experiment] = {}
        for experiment in experiments:
            where = self._where(experiment)
            if experiment.name in seen:
                first = seen[experiment.name].location
                raise self.CollectError(
                    f"{where}: `experiment.name` must be unique in {self.path.name}; "
                    f"{experiment.name!r} is also declared at line {first.line if first else '?'}. "
                    f"Received: name={experiment.name!r}"
                )
            if declared.get(experiment.name, where) != where:
                raise self.CollectError(
                    f"{where}: `experiment.name` must be unique in the session; {experiment.name!r} is also declared "
                    f"at {declared[experiment.name]}. Rename one of them. Received: name={experiment.name!r}"
                )
            seen[experiment.name] = experiment
        session = Session.of(self.config)
        session.collected[relative_to_root(self.path, session.root)] = [e.name for e in experiments]
        for experiment in experiments:
            declared[experiment.name] = self._where(experiment)
            yield ExperimentItem.from_parent(self, name=experiment.name, experiment=experiment)

    def _import(self) -> list[spec.Experiment]:
        module_name = "harness_specs." + re.sub(r"\W", "_", relative_to_root(self.path, self.config.rootpath))
        loader_spec = importlib.util.spec_from_file_location(module_name, self.path)
        assert loader_spec is not None and loader_spec.loader is not None, self.path
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            found: list[spec.Experiment]
            with spec.collecting() as found:
                loader_spec.loader.exec_module(module)
            for function in [v for v in vars(module).values() if callable(v) and hasattr(v, "_harness_parametrize")]:
                for suffix, kwargs in spec.expand(function):
                    with spec.collecting() as produced:
                        returned = function(**kwargs)
                    made = produced or ([returned] if isinstance(returned, spec.Experiment) else [])
                    if not made:
                        raise spec.SpecError(
                            f"{function.__name__}", "must build an experiment(...) and return it", returned
                        )
                    found.extend(e.with_params(suffix, kwargs) for e in made)
        except spec.SpecError as error:
            raise self.CollectError(f"{self._line_of(error)}: invalid spec: {error}") from None
        except SystemExit as error:  # a BaseException: uncaught, it would end the whole session
            raise self.CollectError(
                f"{self.path}:{_line_in(error, self.path)}: the spec file exits while it is imported "
                f"(SystemExit({error.code!r}), from sys.exit() or argparse). Importing a spec must only declare "
                f'experiments: put command-line code under `if __name__ == "__main__":`.'
            ) from None
        except Exception as error:  # noqa: BLE001 - any error in user code is a collection error of this file
            raise self.CollectError(_user_traceback(error, self.path)) from None
        if not found:
            self._nothing_declared(module)
        return found

    def _nothing_declared(self, module: ModuleType) -> None:
        """A spec that declares nothing would pass silently: an error, unless the file is clearly no spec."""
        if not _uses_harness(module):
            self.warn(
                pytest.PytestCollectionWarning(
                    f"{self.path.name} is in a specs folder but imports nothing from harness and declares no experiment; "
                    f"nothing collected. Rename it to _{self.path.name} to mark it as a helper module."
                )
            )
            return
        raise self.CollectError(
            f"{self.path}: the spec file declares no experiment. Call experiment(...) at module level, or return "
            f"one from a @parametrize function (a helper module takes a leading '_': _{self.path.name})."
        )

    def _line_of(self, error: spec.SpecError) -> str:
        if error.location is not None and os.path.realpath(error.location.path) == os.path.realpath(self.path):
            return f"{self.path}:{error.location.line}"
        return f"{self.path}:{_line_in(error, self.path)}"

    def _where(self, experiment: spec.Experiment) -> str:
        return str(experiment.location) if experiment.location else str(self.path)


def _uses_harness(module: ModuleType) -> bool:
    """Whether `module` imported anything from the harness (`from harness import *` or a name of it)."""
    for value in vars(module).values():
        owner = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        if isinstance(owner, str) and (owner == "harness" or owner.startswith("harness.")):
            return True
    return False


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
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not Path(f.filename).resolve().is_relative_to(_HARNESS_DIR) and not f.filename.startswith("<frozen ")
    ]
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
        result = session.run(self.experiment, self.command_nodeid)
        self.user_properties += [*properties(result), *gate_properties(session.comparisons(result.name))]
        if result.failures:
            raise HarnessFailure(_failure_text(self.experiment, result))

    @property
    def command_nodeid(self) -> str:
        """The node id a command line selects this experiment by: without the `@<group>` that
        `--dist loadgroup` appends to the ids of grouped items."""
        groups = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in self.iter_markers("xdist_group")
        }
        return self.nodeid.removesuffix(f"@{'_'.join(sorted(groups))}") if groups else self.nodeid

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, (HarnessFailure, spec.SpecError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.experiment.location.line - 1 if self.experiment.location else None
        return self.path, line, f"experiment {self.experiment.name}"


def _failure_text(experiment: spec.Experiment, result: ExperimentResult) -> str:
    failures = result.failures
    lines = [
        (
            f"experiment {experiment.name!r} broke {len(failures)} of {len(result.checks)} invariants "
            f"({experiment.location}):"
        )
    ]
    for check in failures:
        lines.append(f"  {check.describe()}")
        lines.extend(f"      {detail}" for detail in check.details)
    return "\n".join(lines)


def dependency_order(names: list[str], after: dict[str, tuple[str, ...]]) -> tuple[list[str], list[list[str]]]:
    """`names` with each after the names it depends on (`after[name]`), stable otherwise; and the cycles.

    Dependencies outside `names` are ignored. Each cycle is given as [a, b, ..., a]; the names on
    a cycle are left out of the order, those waiting on one come after the others.
    """
    present = set(names)
    waiting = {name: [d for d in after.get(name, ()) if d in present and d != name] for name in names}
    placed: list[str] = []
    done: set[str] = set()
    remaining = list(names)
    while remaining:
        ready = next((n for n in remaining if all(d in done for d in waiting[n])), None)
        if ready is None:
            break
        placed.append(ready)
        done.add(ready)
        remaining.remove(ready)
    cycles: list[list[str]] = []
    on_cycle: set[str] = set()
    for start in remaining:
        path, node = [start], start
        while True:
            node = next(d for d in waiting[node] if d not in done)
            if node in path:
                cycle = [*path[path.index(node) :], node]
                if not on_cycle & set(cycle):
                    cycles.append(cycle)
                    on_cycle |= set(cycle)
                break
            path.append(node)
    behind = [n for n in remaining if n not in on_cycle]  # waiting on a cycle, not on one: placed after it
    if behind:
        more, more_cycles = dependency_order(
            behind, {n: tuple(d for d in waiting[n] if d not in on_cycle) for n in behind}
        )
        placed += more
        cycles += more_cycles
    return placed, cycles


def order_by_beats(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Checks every `beats(...)` target, then runs each experiment after those it must beat.

    A target must be an experiment of the session (collected, even if `-k` deselects it: then
    its baseline stands in) or of the baseline file. An experiment whose target is unknown, or
    that is on a `beats` cycle, becomes a collection error of its own and leaves `items`.
    """
    experiments = [item for item in items if isinstance(item, ExperimentItem)]
    session = Session.of(config)
    declared: dict[str, str] = config.stash.get(DECLARED, {})
    known = set(declared) | set(session.baselines())
    broken: dict[str, str] = {}
    for item in experiments:
        experiment = item.experiment
        unknown = [other for other in experiment.beats if other not in known]
        if unknown and session.baseline_error is None:  # an unreadable baseline file fails every item anyway
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            broken[experiment.name] = (
                f"`beats.other` must name an experiment of this session or of the baseline file "
                f"{session.baseline_path.name}.{hint} Received: other={unknown[0]!r}"
            )
    by_name = {item.experiment.name: item for item in experiments if item.experiment.name not in broken}
    order, cycles = dependency_order(list(by_name), {name: item.experiment.beats for name, item in by_name.items()})
    for cycle in cycles:
        for name in cycle[:-1]:
            broken[name] = f"`beats` must not form a cycle: {' -> '.join(cycle)} (each would have to run first)."
    for item in experiments:
        if item.experiment.name in broken:
            _report_collection_error(
                config, item, f"{item.experiment.location}: invalid spec: {broken[item.experiment.name]}"
            )
    # Experiments take the experiments' slots in dependency order; other items keep their places.
    placed = iter([by_name[name] for name in order if name not in broken])
    items[:] = [
        item if not isinstance(item, ExperimentItem) else next(placed)
        for item in items
        if not isinstance(item, ExperimentItem) or item.experiment.name not in broken
    ]


def _report_collection_error(config: pytest.Config, item: pytest.Item, message: str) -> None:
    """Reports `item` as a collection error (as its spec file would be), so that the other items still run."""
    report = pytest.CollectReport(item.nodeid, "failed", message, [])
    config.hook.pytest_collectreport(report=report)
    config.stash.setdefault(BROKEN_SPEC_FILES, set()).add(item.nodeid)


def beats_groups(items: Sequence[pytest.Item]) -> list[list[ExperimentItem]]:
    """The experiments of `items` tied by `beats` (directly or through others), a group each, in
    `items`' order; an experiment tied to none is a group of its own."""
    experiments = {item.experiment.name: item for item in items if isinstance(item, ExperimentItem)}
    group = {name: name for name in experiments}

    def root(name: str) -> str:
        while group[name] != name:
            name = group[name]
        return name

    for name, item in experiments.items():
        for other in item.experiment.beats:
            if other in experiments:
                group[root(other)] = root(name)
    members: dict[str, list[ExperimentItem]] = {}
    for name, item in experiments.items():
        members.setdefault(root(name), []).append(item)
    return list(members.values())


def group_by_beats(items: list[pytest.Item]) -> None:
    """Marks each group of `beats_groups` with one `xdist_group`, so that `--dist loadgroup` runs
    them on one worker, in the order `order_by_beats` set."""
    for members in beats_groups(items):
        if len(members) > 1:
            label = f"beats-{members[0].experiment.name}"
            for item in members:
                item.add_marker(pytest.mark.xdist_group(name=label))
