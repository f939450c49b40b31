"""Writes an experiment's exports and measures each one, read back from its file.

Every format runs on every example of the test split (validation where the data set has none),
fed what it takes (pixels; raw strings, or token ids for LiteRT), and is compared with the
trained Keras model's probabilities on the same examples: the largest absolute difference, the
argmax agreement and the accuracy. The expectations on exports (`export_matches`,
`min_test_accuracy(runtime=...)`) read these figures. What differs by modality (the export
model, each format's writer and reader, the batches) is the experiment's room's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harness import modalities
from harness.export import ExportError
from harness.export import formats as formats_lib
from harness.results import ExportResult, Run


def export(
    run: Run, formats: Sequence[str], folder: Path, *, required: Sequence[str] | None = None
) -> list[ExportResult]:
    """Writes `run`'s trained model as each of `formats` into `folder`; returns their measurements.

    A format that cannot be written raises `ExportError` if it is `required` (default: every one
    of `formats`); otherwise it is left out, and why is kept in `run.result.exports_unavailable`.
    """
    room = modalities.room(run.modality)
    model = room.export_model(run.model, run.data)
    files, seconds = {}, {}
    for format in formats:
        started = time.perf_counter()
        try:
            files[format] = room.write(format, model, folder, run.data, run.result.seed)
        except ExportError as error:
            formats_lib.remove(folder / formats_lib.FILES[format])  # what the failed writer left
            if required is None or format in required:
                raise
            run.result.exports_unavailable[format] = str(error)
            continue
        seconds[format] = time.perf_counter() - started
    return [dataclasses.replace(e, write_time_s=seconds[e.format]) for e in measure(run, files)]


def measure(run: Run, files: Mapping[str, Path]) -> list[ExportResult]:
    """Reads each exported file back (format -> path) and compares it with `run`'s trained model."""
    room, data = modalities.room(run.modality), run.data
    split = "test" if data.has("test") else "validation"
    labels = data.labels(split)
    reference = room.reference(run.model, data, split)
    measured = []
    for format, path in files.items():
        predict = room.read(format, path)
        probabilities = np.concatenate([predict(b) for b in room.export_batches(data, split, format)]).astype(
            np.float64
        )
        measured.append(
            ExportResult(
                format=format,
                path=path.name,
                size_bytes=formats_lib.size_bytes(path),
                split=split,
                n=len(labels),
                max_abs_diff=float(np.max(np.abs(probabilities - reference))),
                argmax_agreement=float(np.mean(probabilities.argmax(-1) == reference.argmax(-1))),
                accuracy=float(np.mean(probabilities.argmax(-1) == labels)),
            )
        )
    return measured
