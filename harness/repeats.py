"""`--repeats N`: each experiment under N seeds, and the spread of its accuracies measured.

The experiment runs under its seed, then seed + 1, ... The first run is the experiment's
result: the one the regression gate compares and a new baseline records. Every run's checks
must hold (`harness.checks.merge_repeats` adds a check another seed fails to the result as
`<check>[seed=K]`). `spread`
gives, per accuracy, the seeds, the values, their mean, sample standard deviation, minimum and
maximum; `--update-baselines` records it with the baseline, where `experiment(tolerance=
"measured")` reads it (`measured_tolerance`: the lower prediction bound of another seed's run).

TensorFlow-free: it reads `harness.results`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from harness.results import ExperimentResult

METRICS = ("val_accuracy", "test_accuracy")
# Student's t quantiles t(0.975, df) for df = 1..30; past 30, the normal quantile.
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z_975 = 1.96


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
    """The drop below a recorded `value` that its recorded spread allows.

    A run of another seed is expected above the one-sided 97.5% lower prediction bound of a new
    seed given the n measured ones: mean - t(0.975, n - 1) * std * sqrt(1 + 1/n) (Student's t,
    as n seeds estimate the spread). The tolerance is how far that bound lies below `value`.
    """
    n, mean, std = int(spread_of["n"]), float(spread_of["mean"]), float(spread_of["std"])
    t = _T_975[n - 2] if n - 1 <= len(_T_975) else _Z_975
    return round(max(value - (mean - t * std * math.sqrt(1 + 1 / n)), 0.0), 4)


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
