"""The controller of a pytest-xdist session takes in what its workers ran (see `harness.workers`).

A worker sends each experiment's `Record` with its report (`record_of`); the controller's
`Controller` plugin merges it into the controller's `Session` as the report arrives and prints
the experiment's progress lines, which xdist does not relay. At the session's end the
controller's `Session` holds every worker's experiments and writes the outputs once. No TensorFlow.
"""

from __future__ import annotations

import pytest

from harness import workers
from harness.session import Session
from harness.workers import Record


class Controller:
    """The controller of a pytest-xdist session: each experiment's record arrives with its report."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        text = getattr(report, workers.ATTRIBUTE, None)
        if text is None:
            return
        record = workers.Record.decode(text)
        merge(Session.of(self.config), record)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and record.progress:
            reporter.ensure_newline()
            for line in record.progress:
                reporter.write_line(f"  [harness] [{record.worker}] {line}")


def record_of(session: Session, name: str, worker: str) -> Record:
    """Experiment `name`'s record in a worker's `session`; takes the progress lines it printed."""
    progress, session.pending_progress = session.pending_progress, []
    return Record(
        name=name,
        outcome=session.outcomes.get(name, "unknown"),
        params=session.params.get(name, {}),
        result=session.results.get(name),
        error=session.errors.get(name),
        new_baseline=session.new_baselines.get(name),
        comparisons=session.comparisons(name),
        progress=progress,
        worker=worker,
        selected=list(session.selected),
        collected=dict(session.collected),
    )


def merge(session: Session, record: Record) -> None:
    """Takes `record` into the controller's `session`, as if the experiment had run there."""
    if not session.selected:  # every worker collected the same experiments
        session.selected, session.collected = list(record.selected), dict(record.collected)
    name = record.name
    session.outcomes[name] = record.outcome
    session.params[name] = record.params
    if record.result is not None:
        session.results[name] = record.result
    if record.error is not None:
        session.errors[name] = record.error
    if record.new_baseline is not None:
        session.new_baselines[name] = record.new_baseline
    if record.comparisons:
        session.family.merge(record.comparisons)
