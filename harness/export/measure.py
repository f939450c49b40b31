"""Writes an experiment's exports and measures each one, read back from its file.

Every format runs on every image of the test split (validation where the data set has none)
and is compared with the trained Keras model's probabilities on the same images: the largest
absolute difference, the argmax agreement and the accuracy. The expectations on exports
(`export_matches`, `min_test_accuracy(runtime=...)`) read these figures.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow as tf

from harness import batching
from harness.data.loading import LoadedData
from harness.export import formats as formats_lib
from harness.results import ExportResult, Run

# Training images the int8 conversion calibrates on (drawn with the experiment's seed), as
# TensorFlow's post-training quantization guide suggests (a hundred or a few hundred).
CALIBRATION_IMAGES = 100


def export(run: Run, formats: Sequence[str], folder: Path) -> list[ExportResult]:
    """Writes `run`'s trained model as each of `formats` into `folder`; returns their measurements."""
    model = formats_lib.inference_model(run.model)
    representative = partial(calibration_images, run.data, run.result.seed)
    files, seconds = {}, {}
    for format in formats:
        started = time.perf_counter()
        files[format] = formats_lib.write(format, model, folder, representative)
        seconds[format] = time.perf_counter() - started
    return [dataclasses.replace(e, write_time_s=seconds[e.format]) for e in measure(run, files)]


def measure(run: Run, files: Mapping[str, Path]) -> list[ExportResult]:
    """Reads each exported file back (format -> path) and compares it with `run`'s trained model."""
    data: LoadedData = run.data
    split = "test" if data.test is not None else "validation"
    labels = data.labels(split)

    def batches() -> Iterator[np.ndarray]:
        return batching.image_batches(data.split(split)).as_numpy_iterator()

    reference = np.concatenate([np.asarray(run.model.model.predict_on_batch(b)) for b in batches()])
    measured = []
    for format, path in files.items():
        predict = formats_lib.read(format, path)
        probabilities = np.concatenate([predict(b) for b in batches()]).astype(np.float64)
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


def calibration_images(data: LoadedData, seed: int) -> Iterator[np.ndarray]:
    """`CALIBRATION_IMAGES` training images drawn with `seed`, one per batch, in data-set order."""
    size = data.sizes["train"]
    picked = tf.constant(
        np.sort(np.random.default_rng(seed).choice(size, min(CALIBRATION_IMAGES, size), replace=False))
    )
    chosen = data.train.enumerate().filter(lambda i, example: tf.reduce_any(i == picked))
    return (image[None] for _, (image, _) in chosen.as_numpy_iterator())
