"""`--repeats N`: each experiment under N seeds, and the spread of its accuracies measured.

The experiment runs under its seed, then seed + 1, ... The first run is the experiment's
result: the one the regression gate compares and a new baseline records. Every run's checks
must hold (`harness.checks.merge_repeats` adds a check another seed fails to the result as
`<check>[seed=K]`). `spread`
gives, per accuracy, the seeds, the values, their mean, sample standard deviation, minimum and
maximum; `--update-baselines` records it with the baseline, where `experiment(tolerance=
"measured")` reads it (`measured_tolerance`).

TensorFlow-free: it reads `harness.results`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from harness.results import ExperimentResult

METRICS = ("val_accuracy", "test_accuracy")
# A measured tolerance allows this many standard deviations of the spread (one-sided, about 2.3%
# of a normal spread's runs fall further below its mean).
MEASURED_SIGMAS = 2.0


def spread(results: Sequence[ExperimentResult]) -> dict[str, dict[str, Any]]:
    """Per accuracy every run has, over `results` (one per seed): seeds, values, mean, std, min, max."""
    shown = {}
    for metric in METRICS:
        values = [getattr(r.final, metric) for r in results]
        if any(v is None for v in values):
            continue
        shown[metric] = {
            "n": len(values),
            "seeds": [r.seed for r in results],
            "values": [round(v, 4) for v in values],
            "mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4),
            "max": round(max(values), 4),
        }
    return shown


def recorded(spread_of: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a baseline keeps of a spread: n, mean, std, min and max per accuracy."""
    return {metric: {k: s[k] for k in ("n", "mean", "std", "min", "max")} for metric, s in spread_of.items()}


def measured_tolerance(value: float, spread_of: Mapping[str, Any]) -> float:
    """The drop below a recorded `value` that its recorded spread allows: `MEASURED_SIGMAS`
    standard deviations, and at least how far the lowest seed fell below `value`."""
    return round(max(MEASURED_SIGMAS * float(spread_of["std"]), value - float(spread_of["min"]), 0.0), 4)


def spread_problem(spread_of: Any) -> str | None:
    """What is wrong with a baseline's `spread` field, or None."""
    if not isinstance(spread_of, dict):
        return "an object of accuracy -> {n, mean, std, min, max}"
    for metric, figures in spread_of.items():
        if not isinstance(figures, dict) or not all(
            isinstance(figures.get(k), (int, float)) and math.isfinite(figures[k]) for k in ("mean", "std", "min")
        ):
            return f"{metric!r}: an object with numbers `mean`, `std` and `min`"
        if not isinstance(figures.get("n"), int) or figures["n"] < 2:
            return f"{metric!r}: `n` must be the number of seeds measured, at least 2"
    return None
