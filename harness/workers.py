"""pytest-xdist: what a worker sends the controller, and how the controller takes it in.

Under `pytest -n N` every experiment runs in a worker process, and the controller alone writes
the session's outputs (baselines, metrics JSON, report, exports' publication, the summary) once
every worker is done. Each experiment's report carries a `Record` of what the worker's session
kept about it: its result, outcome, parameters, new baseline entry, gate comparisons and the
progress lines it printed. xdist serialises a report's attributes (`pytest_report_to_serializable`
copies its `__dict__`), so the record travels as one string attribute, `harness_record`, and the
controller merges it into its own `Session` as the report arrives (`harness.controller`). A worker that crashes loses
only the experiment it was running: every earlier one has reached the controller already.

Workers stage exports straight into the controller's staging folder (its path is sent in
`workerinput`), which the controller publishes with the other outputs, or discards. No
TensorFlow; xdist itself is imported only by xdist.
"""

from __future__ import annotations

import base64
import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import gate
from harness.results import ExperimentResult

ATTRIBUTE = "harness_record"  # the report attribute a worker's record travels in
LOADGROUP = "harness_loadgroup"  # the workerinput key: the controller schedules with `--dist loadgroup`
EXPORT_STAGING = "harness_export_staging"  # the workerinput key of the controller's export staging folder


def is_worker(config: pytest.Config) -> bool:
    """Whether this process is a pytest-xdist worker (xdist gives each a `workerinput`)."""
    return hasattr(config, "workerinput")


def worker_input(config: pytest.Config) -> dict[str, Any]:
    """The worker's `workerinput` ({} outside a worker)."""
    return dict(getattr(config, "workerinput", {}))


@dataclass
class Record:
    """What a worker's session kept about one experiment, for the controller's session."""

    name: str
    outcome: str
    params: dict[str, Any]
    result: ExperimentResult | None
    error: str | None
    new_baseline: dict[str, Any] | None
    comparisons: list[gate.Comparison]
    progress: list[str]
    worker: str
    # The session-wide facts every worker collected alike: what the gate plans, what is stale.
    selected: list[str] = field(default_factory=list)
    collected: dict[str, list[str]] = field(default_factory=dict)

    def encode(self) -> str:
        # Pickle between a controller and the workers it started: one environment, one code base.
        return base64.b64encode(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")

    @staticmethod
    def decode(text: str) -> Record:
        record = pickle.loads(base64.b64decode(text))
        if not isinstance(record, Record):
            raise TypeError(f"expected a harness Record, received {type(record).__name__}")
        return record
