"""TensorBoard event files written after the run, from the per-epoch histories.

The layout follows Keras's `TensorBoard` callback: `<logdir>/train` and `<logdir>/validation`
runs, so both curves share one chart per metric. Steps count epochs across all phases (1-based,
as in the training-curves figure). TensorFlow is imported inside `write_tensorboard`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.paths import publish_directory_mode
from harness.report.tables import PHASE_NUMERIC, markdown_table, phase_table
from harness.results import ExperimentResult

TRAIN_RUN = "train"
VALIDATION_RUN = "validation"
_VALIDATION_PREFIX = "val_"


def write_tensorboard(result: ExperimentResult, logdir: str | os.PathLike[str]) -> Path:
    """Writes `result`'s histories as TensorBoard scalars, plus a text summary of its phases.

    Every history key becomes a scalar: `loss` and `accuracy` (and e.g. `learning_rate`) under
    the `train` run, `val_loss` and `val_accuracy` as `loss` and `accuracy` under `validation`.
    The `train` run also holds two text summaries: `phases` (the index page's phase table) and `checks` (the invariants).

    The event files are written into a fresh folder that then replaces `logdir`, so rewriting a
    report never doubles the curves and no reader sees a half-written log.

    Args:
        result: the experiment's result.
        logdir: the folder to (re)create.

    Returns:
        `logdir`, as a `Path`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    target = Path(logdir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".tmp", dir=target.parent))
    try:
        train, validation = _scalars(result)
        for run, scalars in ((TRAIN_RUN, train), (VALIDATION_RUN, validation)):
            writer = tf.summary.create_file_writer(str(staging / run))
            scalar = _metadata("scalars", scalar=True)
            with writer.as_default():
                for tag, points in scalars.items():
                    for step, value in points:
                        # What `tf.summary.scalar` writes, without needing the tensorboard package.
                        tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=scalar)
                if run == TRAIN_RUN:
                    for tag, text in (("phases", phases_markdown(result)), ("checks", checks_markdown(result))):
                        tf.summary.write(tag, tf.constant(text), step=0, metadata=_metadata("text", scalar=False))
            writer.close()
        publish_directory_mode(staging)
        _replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def phases_markdown(result: ExperimentResult) -> str:
    """A Markdown table of the phases (`tables.phase_table`), as TensorBoard's text dashboard renders it."""
    header, rows = phase_table(result)
    title = (
        f"**{result.name}**: {result.backbone} ({result.weights or 'random'} weights) on {result.dataset}, "
        f"seed {result.seed}"
    )
    return "\n".join([title.replace("\n", " "), "", *markdown_table(header, rows, numeric=PHASE_NUMERIC)])


def checks_markdown(result: ExperimentResult) -> str:
    if not result.checks:
        return "No invariant checks."
    return "\n".join(f"- {'PASSED' if c.passed else '**FAILED**'} {c.describe()}" for c in result.checks)


def _scalars(result: ExperimentResult) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float]]]]:
    train: dict[str, list[tuple[int, float]]] = {}
    validation: dict[str, list[tuple[int, float]]] = {}
    offset = 0
    for phase in result.phases:
        length = max([len(v) for v in phase.history.values()] + [phase.epochs_run])
        for key, values in phase.history.items():
            run, tag = (
                (validation, key[len(_VALIDATION_PREFIX) :]) if key.startswith(_VALIDATION_PREFIX) else (train, key)
            )
            run.setdefault(tag, []).extend((offset + i + 1, float(v)) for i, v in enumerate(values))
        offset += length
    return train, validation


def _metadata(plugin: str, *, scalar: bool) -> Any:
    # The summary metadata TensorBoard's own `scalar` and `text` summaries carry (plugin data
    # version 0, whose serialised content is empty).
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin, content=b""),
        data_class=summary_pb2.DATA_CLASS_SCALAR if scalar else summary_pb2.DATA_CLASS_TENSOR,
    )


def _replace_directory(source: Path, target: Path) -> None:
    """Moves `source` onto `target`; an existing `target` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(source, target)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):
                os.replace(old / target.name, target)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
