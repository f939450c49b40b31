"""The metrics JSON (`--metrics-json PATH`): every experiment's outcome, phases, metrics and checks.

Pure functions over results, outcomes and errors; the file is written atomically. An experiment
that stopped before a result (data or spec error, crash, skip) gets its outcome and the error.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness import __version__
from harness.gate import Family
from harness.paths import atomic_write_text
from harness.results import ExperimentResult


def metrics(
    results: Mapping[str, ExperimentResult],
    outcomes: Mapping[str, str],
    errors: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]],
    *,
    started: float,
    gate: Family | None = None,
) -> dict[str, Any]:
    """The JSON document.

    Args:
        results: The experiments that produced a result, by name.
        outcomes: pytest's outcome ("passed", "failed", "skipped") of every experiment, by name.
        errors: Why an experiment has no result (the exception line), by name.
        params: A parametrised experiment's arguments, by name.
        started: When the session started (seconds since the epoch).
        gate: The session's gated comparisons, decided: each appears under its experiment's
            `gate`, by metric.
    """
    gated: dict[str, dict[str, Any]] = {}
    for comparison in gate.comparisons if gate is not None else []:
        gated.setdefault(comparison.experiment, {})[comparison.metric] = comparison.to_json()
    return {
        "harness_version": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "gate_alpha": None if gate is None else gate.alpha,
        "experiments": {
            **{
                name: {"outcome": outcome, "error": errors.get(name), "params": dict(params.get(name, {}))}
                for name, outcome in outcomes.items()
                if name not in results
            },
            **{
                name: {"outcome": outcomes.get(name, "unknown"), **result.to_json(), "gate": gated.get(name, {})}
                for name, result in results.items()
            },
        },
    }


def metrics_text(document: Mapping[str, Any]) -> str:
    """The file's text for `document` (see `metrics`)."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_metrics(path: str | os.PathLike[str], document: Mapping[str, Any]) -> Path:
    """Writes `document` (see `metrics`) to `path` atomically; returns `path`."""
    return atomic_write_text(path, metrics_text(document))
