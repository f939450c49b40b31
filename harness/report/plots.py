"""PNG figures of one experiment: training curves across phases, and the confusion matrix.

Matplotlib is imported inside the functions and drives an Agg canvas directly (no pyplot, so no
global figure state and no display backend). Files are written atomically.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

from harness.paths import atomic_path
from harness.results import ExperimentResult

DPI = 110
TRAIN_COLOR = "#1f77b4"
VALIDATION_COLOR = "#d62728"


def training_curves(result: ExperimentResult, path: str | os.PathLike[str]) -> Path:
    """Plots loss and accuracy per epoch, train and validation, across all phases.

    When a phase logged its learning rate (a phase with a `schedule`: `history["learning_rate"]`),
    a third panel shows the rate at the end of each epoch, on a log scale.

    The phases share one epoch axis (1 to the total number of epochs run); dotted vertical lines
    mark where a phase ends and the phase names stand above their spans. The title holds the
    experiment name and its final validation and test accuracy.

    Args:
        result: the experiment's result; needs at least one phase.
        path: where to write the PNG.

    Returns:
        `path`, as a `Path`.
    """
    if not result.phases:
        raise ValueError(
            f"Training curves need at least one phase with a history. Received: {result.name!r} with phases=[]"
        )
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with_rate = any(phase.history.get("learning_rate") for phase in result.phases)
    figure = _figure(Figure, (14, 4.2) if with_rate else (10, 4.2))
    panels = list(figure.subplots(1, 3 if with_rate else 2))
    loss_axes, accuracy_axes = panels[:2]
    keys = ("loss", "val_loss", "accuracy", "val_accuracy") + (("learning_rate",) if with_rate else ())
    series: dict[str, list[float]] = {key: [] for key in keys}
    spans = []  # (name, first epoch, last epoch), 1-based
    for phase in result.phases:
        count = _epochs_in(phase.history, phase.epochs_run)
        first = len(series["loss"]) + 1
        for key, values in series.items():
            recorded = [float(v) for v in phase.history.get(key, [])][:count]
            values.extend(recorded + [math.nan] * (count - len(recorded)))
        stopped = f" (stopped {phase.epochs_run}/{phase.epochs})" if phase.epochs_run < phase.epochs else ""
        spans.append((phase.name + stopped, first, first + count - 1))
    epochs = list(range(1, len(series["loss"]) + 1))
    phase_labels = []

    for axes, metric, label in ((loss_axes, "loss", "loss"), (accuracy_axes, "accuracy", "accuracy")):
        axes.plot(epochs, series[metric], color=TRAIN_COLOR, marker="o", markersize=3.5, label="train")
        axes.plot(
            epochs, series[f"val_{metric}"], color=VALIDATION_COLOR, marker="o", markersize=3.5, label="validation"
        )
        axes.set_xlabel("epoch (all phases)")
        axes.set_ylabel(label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        if epochs:
            axes.set_xlim(0.5, len(epochs) + 0.5)
        phase_labels.append(_mark_phases(axes, spans))
    if with_rate:
        rate_axes = panels[2]
        rate_axes.plot(epochs, series["learning_rate"], color=TRAIN_COLOR, marker="o", markersize=3.5)
        rate_axes.set_yscale("log")
        rate_axes.set_xlabel("epoch (all phases)")
        rate_axes.set_ylabel("learning rate (end of epoch)")
        rate_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        rate_axes.grid(True, alpha=0.3)
        rate_axes.set_xlim(0.5, len(epochs) + 0.5)
        phase_labels.append(_mark_phases(rate_axes, spans))
    accuracy_axes.legend(loc="lower right", fontsize=9, framealpha=0.9)
    loss_axes.legend(loc="upper right", fontsize=9, framealpha=0.9)

    final = result.final
    summary = f"final val acc {final.val_accuracy:.3f}"
    if final.test_accuracy is not None:
        summary += f", test acc {final.test_accuracy:.3f}"
    figure.suptitle(f"{_wrap(result.name, 90)}\n{summary}", fontsize=11)
    figure.canvas.draw()  # lay out once, so that label extents are known
    for axes, texts in zip(panels, phase_labels, strict=False):
        _arrange_phase_labels(figure, axes, texts)
    return _save(figure, path)


def confusion_matrix(result: ExperimentResult, path: str | os.PathLike[str]) -> Path:
    """Draws `result.confusion_matrix` as a heatmap: rows true class, columns predicted.

    Cells show counts (and the row percentage for up to 10 classes); colour is the fraction
    of the true class, so rare classes read as clearly as common ones. The title names the split
    the engine counted (`result.confusion_split`): test, or validation when there is no test split.

    Args:
        result: the experiment's result; needs `confusion_matrix`.
        path: where to write the PNG.

    Returns:
        `path`, as a `Path`.
    """
    matrix = result.confusion_matrix
    if not matrix:
        raise ValueError(
            f"A confusion matrix plot needs `result.confusion_matrix`; the engine sets it after the "
            f"final evaluation. Received: {result.name!r} with confusion_matrix={matrix!r}"
        )
    from matplotlib.figure import Figure

    size = len(matrix)
    names = list(result.class_names) if len(result.class_names) == size else [str(i) for i in range(size)]
    totals = [sum(row) for row in matrix]
    fractions = [[count / total if total else 0.0 for count in row] for row, total in zip(matrix, totals, strict=False)]
    correct = sum(matrix[i][i] for i in range(size))
    seen = sum(totals)
    split = result.confusion_split or "unnamed"

    side = min(max(4.6, 0.55 * size + 3.2), 14)
    figure = _figure(Figure, (side + 1.0, side))
    axes = figure.subplots()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of the true class")

    show_percent = size <= 10
    font = 10 if size <= 8 else 8 if size <= 24 else 6
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            text = f"{count}\n{fractions[i][j]:.0%}" if show_percent and totals[i] else str(count)
            color = "white" if fractions[i][j] > 0.55 else "black"
            axes.text(j, i, text, ha="center", va="center", color=color, fontsize=font)

    axes.set_xticks(range(size))
    axes.set_yticks(range(size))
    long_names = max(len(n) for n in names) > 6
    axes.set_xticklabels(names, rotation=35 if long_names else 0, ha="right" if long_names else "center", fontsize=9)
    axes.set_yticklabels(names, fontsize=9)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    accuracy = f", accuracy {correct / seen:.3f}" if seen else ""
    axes.set_title(
        f"{_wrap(result.name, int(side * 8))}\nconfusion matrix, {split} split (n={seen}){accuracy}", fontsize=11
    )
    return _save(figure, path)


def _figure(figure_class: Any, size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = figure_class(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _mark_phases(axes: Any, spans: list[tuple[str, int, int]]) -> list[tuple[Any, int, int]]:
    """Dotted lines between phases, and each phase's name above its span (outside the plot)."""
    labels = axes.get_xaxis_transform()  # x in epochs, y in axes fractions
    texts = []
    for index, (name, first, last) in enumerate(spans):
        if index:
            axes.axvline(first - 0.5, color="0.35", linestyle=":", linewidth=1.2)
        if last >= first:
            text = axes.text(
                (first + last) / 2, 1.015, name, transform=labels, ha="center", va="bottom", fontsize=9, color="0.25"
            )
            texts.append((text, first, last))
    return texts


def _arrange_phase_labels(figure: Any, axes: Any, texts: list[tuple[Any, int, int]]) -> None:
    """Keeps phase labels inside the panel's width and lifts any that would overlap a neighbour.

    Short phases with long names would otherwise print over each other: each label goes on the
    lowest line where it clears the label before it.
    """
    from matplotlib.transforms import offset_copy

    renderer = figure.canvas.get_renderer()
    frame = axes.get_window_extent(renderer)
    line_ends: list[float] = []  # right edge of the last label on each line, in pixels
    for text, first, last in texts:
        box = text.get_window_extent(renderer)
        if box.x0 < frame.x0:
            text.set_x(first - 0.5)
            text.set_horizontalalignment("left")
        elif box.x1 > frame.x1:
            text.set_x(last + 0.5)
            text.set_horizontalalignment("right")
        box = text.get_window_extent(renderer)
        line = next((i for i, end in enumerate(line_ends) if box.x0 > end + 6), len(line_ends))
        if line == len(line_ends):
            line_ends.append(box.x1)
        else:
            line_ends[line] = box.x1
        if line:
            text.set_transform(offset_copy(text.get_transform(), figure, y=12 * line, units="points"))


def _epochs_in(history: dict[str, list[float]], epochs_run: int) -> int:
    lengths = [
        len(values) for key, values in history.items() if key in ("loss", "val_loss", "accuracy", "val_accuracy")
    ]
    return max([*lengths, epochs_run]) if lengths else epochs_run


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def _save(figure: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    return target
