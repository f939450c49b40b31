"""Reports of a run: the terminal summary, PNG figures, TensorBoard logs, an HTML/Markdown index,
the metrics JSON (`metrics_json`) and the JUnit XML properties (`junit`).

Pure functions over `harness.results.ExperimentResult`; no pytest. Importing this package
imports neither matplotlib nor TensorFlow: the functions that need them import them when called.

    from harness.report import write_report
    write_report("report/", [(result, "passed", {"test_accuracy": 0.88})])
"""

from harness.report.index import experiment_dirs, safe_name, write_index, write_report
from harness.report.plots import confusion_matrix, training_curves
from harness.report.tensorboard import write_tensorboard
from harness.report.terminal import (
    SummaryRow,
    export_lines,
    gate_lines,
    interval_lines,
    no_result_row,
    rows_for,
    slice_lines,
    spread_lines,
    summary_lines,
    unpredicted_lines,
)

__all__ = [
    "SummaryRow",
    "confusion_matrix",
    "experiment_dirs",
    "export_lines",
    "gate_lines",
    "interval_lines",
    "no_result_row",
    "rows_for",
    "safe_name",
    "slice_lines",
    "spread_lines",
    "summary_lines",
    "training_curves",
    "unpredicted_lines",
    "write_index",
    "write_report",
    "write_tensorboard",
]
