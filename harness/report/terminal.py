"""The summary table that pytest prints at the end of a run: one row per experiment phase.

Pure functions over `ExperimentResult`s; no pytest, no TensorFlow. The HTML and Markdown
index render the same rows through `cells`, so the three tables always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.gate import Comparison
from harness.results import ExperimentResult, ExportResult
from harness.stats import wilson_interval

MISSING = "-"

# (header, alignment): "<" for text, ">" for numbers.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiment", "<"),
    ("phase", "<"),
    ("epochs", ">"),
    ("val acc", ">"),
    ("test acc", ">"),
    ("baseline", ">"),
    ("delta", ">"),
    ("trainable", ">"),
    ("time", ">"),
    ("result", "<"),
)
SEPARATOR = "  "


@dataclass(frozen=True)
class SummaryRow:
    """One line of the summary: a phase of an experiment, or a whole experiment that did not run.

    `baseline`, `delta` and `outcome` are set on an experiment's final row only. `baseline_metric`
    names what `baseline` and `delta` compare: "test_accuracy" or "val_accuracy".
    """

    experiment: str
    phase: str | None = None
    epochs_run: int | None = None
    epochs: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    baseline: float | None = None
    baseline_metric: str | None = None
    delta: float | None = None
    trainable_params: int | None = None
    wall_time_s: float | None = None
    outcome: str | None = None


def rows_for(result: ExperimentResult, outcome: str, baseline: Mapping[str, Any] | None) -> list[SummaryRow]:
    """Returns one `SummaryRow` per phase of `result`.

    Args:
        result: the experiment's result.
        outcome: pytest's outcome for the experiment ("passed", "failed", "skipped"; any case).
        baseline: the accepted metrics, e.g. `{"val_accuracy": 0.87, "test_accuracy": 0.88}`,
            or `None` when the experiment has none. The final row compares test accuracy when
            both the run and the baseline have it, else validation accuracy.

    Returns:
        The rows, first phase first. An experiment without phases gets a single row.
    """
    label = outcome.upper()
    if not result.phases:
        return [SummaryRow(experiment=result.name, wall_time_s=result.wall_time_s, outcome=label)]
    rows = []
    last = len(result.phases) - 1
    for index, phase in enumerate(result.phases):
        final = index == last
        metric, reference, delta = (
            _compare(phase.val_accuracy, phase.test_accuracy, baseline) if final else (None, None, None)
        )
        rows.append(
            SummaryRow(
                experiment=result.name,
                phase=phase.name,
                epochs_run=phase.epochs_run,
                epochs=phase.epochs,
                val_accuracy=phase.val_accuracy,
                test_accuracy=phase.test_accuracy,
                baseline=reference,
                baseline_metric=metric,
                delta=delta,
                trainable_params=phase.trainable_params,
                wall_time_s=phase.wall_time_s,
                outcome=label if final else None,
            )
        )
    return rows


def no_result_row(name: str, outcome: str) -> SummaryRow:
    """Returns the row of an experiment that stopped (skipped, failed) before it produced a result."""
    return SummaryRow(experiment=name, outcome=outcome.upper())


def summary_lines(rows: Sequence[SummaryRow]) -> list[str]:
    """Renders `rows` as a fixed-width table: a header, a rule, then one line per row.

    Column widths follow the content, so long (parametrised) experiment names widen the first
    column instead of shifting the others. Every line has the same length.
    """
    table = [tuple(header for header, _ in COLUMNS)] + [cells(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def render(line: Sequence[str]) -> str:
        return SEPARATOR.join(
            f"{cell:{align}{width}}" for cell, (_, align), width in zip(line, COLUMNS, widths, strict=False)
        )

    header = render(table[0])
    return [header, "-" * len(header)] + [render(line) for line in table[1:]]


def cells(row: SummaryRow) -> tuple[str, ...]:
    """Returns the row's cells as displayed, in `COLUMNS` order; absent values read "-"."""
    return (
        row.experiment,
        row.phase or MISSING,
        MISSING if row.epochs is None else f"{MISSING if row.epochs_run is None else row.epochs_run}/{row.epochs}",
        format_accuracy(row.val_accuracy),
        format_accuracy(row.test_accuracy),
        _format_baseline(row.baseline, row.baseline_metric),
        MISSING if row.delta is None else f"{row.delta:+.3f}",
        MISSING if row.trainable_params is None else f"{row.trainable_params:,}",
        format_duration(row.wall_time_s),
        row.outcome or "",
    )


def format_accuracy(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def format_duration(seconds: float | None) -> str:
    """Formats a wall time compactly: "8.4s", "3m05s", "1h02m"."""
    if seconds is None:
        return MISSING
    if seconds < 59.95:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _compare(
    val: float | None, test: float | None, baseline: Mapping[str, Any] | None
) -> tuple[str | None, float | None, float | None]:
    """Returns (metric, baseline value, obtained - baseline): test accuracy first, else validation."""
    if not baseline:
        return None, None, None
    for metric, obtained in (("test_accuracy", test), ("val_accuracy", val)):
        reference = baseline.get(metric)
        if reference is not None and obtained is not None:
            return metric, float(reference), obtained - float(reference)
    return None, None, None


def _format_baseline(value: float | None, metric: str | None) -> str:
    if value is None:
        return MISSING
    # Test accuracy is the usual comparison; say so only when it fell back to validation.
    return f"{value:.3f}" if metric == "test_accuracy" else f"{value:.3f} (val)"


def export_lines(results: Sequence[ExperimentResult]) -> list[str]:
    """One line per exported experiment: where, and per format its size and measured agreement."""
    return [
        f"exports of {result.name}{f' ({result.export_dir})' if result.export_dir else ''}: "
        + ", ".join(
            "{} {} max|dp|={} argmax={} acc={}".format(e.format, *export_cells(e), format_accuracy(e.accuracy))
            for e in result.exports
        )
        for result in results
        if result.exports
    ]


def export_cells(export: ExportResult) -> list[str]:
    """Size, largest probability difference and argmax agreement of one export, as shown."""
    return [f"{export.size_bytes / 1e6:.2f} MB", f"{export.max_abs_diff:.1e}", f"{export.argmax_agreement:.2%}"]


def interval_text(result: ExperimentResult) -> str:
    """The final accuracies with their 95% Wilson intervals and n: "val 0.886 [0.851, 0.914] n=394, test ..."."""
    final, shown = result.final, []
    for label, split, value in (("val", "validation", final.val_accuracy), ("test", "test", final.test_accuracy)):
        if value is not None:
            n = result.split_sizes[split]
            low, high = wilson_interval(round(value * n), n)
            shown.append(f"{label} {value:.3f} [{low:.3f}, {high:.3f}] n={n}")
    return ", ".join(shown)


def interval_lines(results: Sequence[ExperimentResult]) -> list[str]:
    """One line per experiment with phases: its final accuracies' 95% intervals."""
    return [f"95% intervals of {r.name}: {interval_text(r)}" for r in results if r.phases]


def spread_lines(results: Sequence[ExperimentResult]) -> list[str]:
    """One line per experiment run under several seeds (`--repeats`): each accuracy's spread."""
    return [
        f"spread of {r.name} over seeds {', '.join(map(str, next(iter(r.spread.values()))['seeds']))}: "
        + ", ".join(
            f"{'val' if metric == 'val_accuracy' else 'test'} mean {s['mean']:.3f} std {s['std']:.3f} min {s['min']:.3f}"
            for metric, s in r.spread.items()
        )
        for r in results
        if r.spread
    ]


def gate_lines(comparisons: Sequence[Comparison], late: Sequence[Comparison] = ()) -> list[str]:
    """One line per paired gate comparison (b, c, p-value, Holm's alpha, verdict), then one per
    comparison rejected only once every p-value was known, which fails the session."""
    lines = [
        f"paired gate of {c.experiment} {c.metric}: {c.baseline:.4f} -> {c.obtained:.4f} n={c.n}, "
        f"b={c.b} c={c.c} p={c.p_value:.3g} alpha={c.alpha:.3g}: {c.verdict}"
        for c in comparisons
        if c.paired
    ]
    lines += [
        f"FAILED at the session's end: paired gate of {c.experiment} {c.metric}: {c.reason}. It passed at its "
        f"check while later comparisons were unknown; Holm's procedure with every p-value known rejects it"
        for c in late
    ]
    return lines


_SPLIT_LABELS = {"validation": "val", "test": "test"}


def slice_text(result: ExperimentResult) -> str:
    """The final accuracy per slice value with its 95% Wilson interval and n, test split first:
    "test mono 0.870 [0.812, 0.912] n=190, test poly ..., val mono ..."."""
    shown = []
    for split in ("test", "validation"):
        for value, figures in result.slice_metrics.get(split, {}).items():
            low, high = figures["accuracy_ci"]
            shown.append(
                f"{_SPLIT_LABELS[split]} {value} {figures['accuracy']:.3f} [{low:.3f}, {high:.3f}] n={figures['n']}"
            )
    return ", ".join(shown)


def slice_lines(results: Sequence[ExperimentResult]) -> list[str]:
    """One line per experiment with slice metrics: its final accuracy per slice value (see `slice_text`)."""
    return [f"accuracy by {r.slice_feature} of {r.name}: {slice_text(r)}" for r in results if r.slice_metrics]


def unpredicted_lines(results: Sequence[ExperimentResult]) -> list[str]:
    """One line per experiment and split with a class the final model never predicts (its support)."""
    return [
        f"never predicted by {r.name} on the {split} split: "
        + ", ".join(f"{name} ({int(c['support'])} examples)" for name, c in classes.items() if not c["predicted"])
        for r in results
        for split, classes in r.class_metrics.items()
        if any(not c["predicted"] and c["support"] for c in classes.values())
    ]
