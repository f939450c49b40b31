"""What an experiment adds to pytest's JUnit XML (`--junitxml`): its parameters, per-phase metrics
and the regression gate's comparisons.

Pure functions over `ExperimentResult`; the item appends them to `user_properties`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from harness.gate import Comparison
from harness.results import ExperimentResult


def properties(result: ExperimentResult) -> Iterator[tuple[str, Any]]:
    """`params.<name>` per argument of a parametrised spec, `<phase>.<metric>` per phase, then
    `export.<format>.<figure>` per exported format."""
    for name, value in result.params.items():
        yield f"params.{name}", value
    for phase in result.phases:
        intervals = result.intervals(phase)
        yield f"{phase.name}.val_accuracy", round(phase.val_accuracy, 4)
        yield f"{phase.name}.val_accuracy_ci", str(intervals["val_accuracy_ci"])
        if phase.test_accuracy is not None:
            yield f"{phase.name}.test_accuracy", round(phase.test_accuracy, 4)
            yield f"{phase.name}.test_accuracy_ci", str(intervals["test_accuracy_ci"])
        yield f"{phase.name}.trainable_params", phase.trainable_params
        yield f"{phase.name}.wall_time_s", round(phase.wall_time_s, 1)
        yield f"{phase.name}.training_path", phase.training_path
    for export in result.exports:
        yield f"export.{export.format}.size_bytes", export.size_bytes
        yield f"export.{export.format}.max_abs_diff", float(f"{export.max_abs_diff:.3g}")
        yield f"export.{export.format}.argmax_agreement", round(export.argmax_agreement, 4)
        yield f"export.{export.format}.accuracy", round(export.accuracy, 4)


def gate_properties(comparisons: Iterable[Comparison]) -> Iterator[tuple[str, Any]]:
    """`gate.<metric>.<figure>` per gated accuracy of one experiment, as decided at its check."""
    for c in comparisons:
        yield f"gate.{c.metric}.verdict", c.verdict
        yield f"gate.{c.metric}.paired", c.paired
        if c.paired:
            yield f"gate.{c.metric}.discordant", str([c.b, c.c])
            yield f"gate.{c.metric}.p_value", float(f"{c.p_value:.4g}")
            yield f"gate.{c.metric}.alpha", float(f"{c.alpha:.4g}")
