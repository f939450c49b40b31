"""Tables that more than one report shows: the phases, the exports and the accuracy per slice of an
experiment, and Markdown rendering.

The index page (HTML and Markdown) and the TensorBoard text summary take the phase table from
`phase_table`, so they always show the same columns; the index and the terminal summary show
the exports through `export_table` and `export_cells`.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.report.terminal import export_cells, format_accuracy, format_duration
from harness.results import ExperimentResult

PHASE_HEADER = (
    "phase",
    "kind",
    "epochs",
    "training path",
    "cache",
    "val acc",
    "test acc",
    "trainable",
    "frozen",
    "time",
)
PHASE_NUMERIC = frozenset({2, 5, 6, 7, 8, 9})  # the columns of `PHASE_HEADER` that hold numbers


def phase_table(result: ExperimentResult) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and one row of cells per phase of `result`."""
    rows = [
        [
            p.name,
            p.kind,
            f"{p.epochs_run}/{p.epochs}",
            f"{p.training_path}: {p.training_path_reason}",
            p.cache,
            format_accuracy(p.val_accuracy),
            format_accuracy(p.test_accuracy),
            f"{p.trainable_params:,}",
            f"{p.non_trainable_params:,}",
            format_duration(p.wall_time_s),
        ]
        for p in result.phases
    ]
    return PHASE_HEADER, rows


EXPORT_HEADER = ("format", "file", "size", "max |Δp|", "argmax agreement", "accuracy", "images")
EXPORT_NUMERIC = frozenset({2, 3, 4, 5, 6})


def export_table(result: ExperimentResult) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and one row of cells per exported format of `result` (none without exports)."""
    return EXPORT_HEADER, [
        [e.format, e.path, *export_cells(e), format_accuracy(e.accuracy), f"{e.n:,} {e.split}"] for e in result.exports
    ]


SLICE_HEADER = ("split", "slice", "accuracy", "95% interval", "correct", "n")
SLICE_NUMERIC = frozenset({2, 3, 4, 5})


def slice_table(result: ExperimentResult) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and one row of cells per split and slice value of `result` (none without slices)."""
    rows = []
    for split, slices in result.slice_metrics.items():
        for value, figures in slices.items():
            low, high = figures["accuracy_ci"]
            rows.append(
                [
                    split,
                    f"{result.slice_feature}={value}",
                    format_accuracy(figures["accuracy"]),
                    f"[{low:.3f}, {high:.3f}]",
                    f"{figures['correct']:,}",
                    f"{figures['n']:,}",
                ]
            )
    return SLICE_HEADER, rows


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: set[int] | frozenset[int]
) -> list[str]:
    """A Markdown (GitHub) table, one line per row; cells escaped, numeric columns right-aligned."""
    rule = ["---:" if i in numeric else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(cells_) + " |"
        for cells_ in (
            [markdown_escape(h) for h in header],
            rule,
            *([markdown_escape(c) or " " for c in row] for row in rows),
        )
    ]


def markdown_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


Table = tuple[str, tuple[Sequence[str], list[list[str]]], frozenset[int]]  # title, (header, rows), numeric columns


def section_tables(result: ExperimentResult) -> list[Table]:
    """The tables of an experiment's section of the index: its phases, its accuracy per slice where the
    data set has slices, and its exports where it was exported."""
    tables: list[Table] = [("Phases", phase_table(result), PHASE_NUMERIC)] if result.phases else []
    if result.slice_metrics:
        tables.append((f"Accuracy by {result.slice_feature}", slice_table(result), SLICE_NUMERIC))
    if result.exports:
        tables.append(("Exports", export_table(result), EXPORT_NUMERIC))
    return tables
