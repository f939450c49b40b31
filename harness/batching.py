"""The `tf.data` pipelines a phase trains and predicts on from arrays: rows of cached inputs, drawn dihedral views, augmentation.

Every pipeline yields `(inputs, labels)` batches. A data set's own batches come from its
`LoadedData` (`batches`, `input_batches`); these are the batches of arrays in memory or on disk:
cached features and activations, and a text data set's token ids. Sequence rows (`Ragged`) are
padded per batch to the batch's longest row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from harness import spec, symmetry
from harness.data.loaded import PREDICT_BATCH
from harness.data.loading import ImageData
from harness.ragged import Ragged

__all__ = ["PREDICT_BATCH", "Rows", "augmented", "drawn", "input_batches", "rows", "train_images"]

# What `rows` batches: one array (or `Ragged`), or several by input name.
Rows = np.ndarray | Ragged | Mapping[str, np.ndarray | Ragged]


def rows(inputs: Rows, labels: np.ndarray | None, batch_size: int, *, seed: int | None = None) -> tf.data.Dataset:
    """Batches of `inputs`' rows (with their `labels`, when given), shuffled each epoch (seeded) when `seed` is set.

    Each batch gathers its own rows, so a memory-mapped array (a cache entry) is never copied
    whole, as `from_tensor_slices` or Keras given the array would copy it into a tensor. The order
    is `from_tensor_slices(...).shuffle(len(inputs), seed)`'s: a shuffle's order depends on its
    seed and the number of elements only. `Ragged` rows are padded to the batch's longest row;
    several inputs (a mapping) keep their names.
    """
    named = dict(inputs) if isinstance(inputs, Mapping) else {"": inputs}
    sizes = {len(array) for array in named.values()}
    if len(sizes) != 1:
        raise ValueError(f"the inputs have different numbers of rows: {sorted(sizes)}")
    count = sizes.pop()
    index = tf.data.Dataset.range(count)
    if seed is not None:
        index = index.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    names = list(named)
    dtypes = [tf.as_dtype(array.values.dtype if isinstance(array, Ragged) else array.dtype) for array in named.values()]
    shapes = [
        (None, None, *array.element_shape) if isinstance(array, Ragged) else (None, *array.shape[1:])
        for array in named.values()
    ]
    label_values = None if labels is None else tf.constant(labels)

    def gathered(i: np.ndarray) -> list[np.ndarray]:
        return [
            array.padded(i) if isinstance(array, Ragged) else np.ascontiguousarray(array[i]) for array in named.values()
        ]

    def gather(index: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        found = tf.numpy_function(gathered, [index], dtypes, stateful=False)
        found = [tf.ensure_shape(x, shape) for x, shape in zip(found, shapes, strict=True)]
        x = found[0] if names == [""] else dict(zip(names, found, strict=True))
        return x if label_values is None else (x, tf.gather(label_values, index))

    return index.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)


def drawn(
    draw: symmetry.Draw, inputs: Callable[[np.ndarray, np.ndarray], np.ndarray], labels: np.ndarray, phase: spec.Phase
) -> tf.data.Dataset:
    """Training batches as `draw` lays them out: `inputs(image indices, view positions)`."""
    sample = inputs(*draw.batch(0))

    def batch(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices, positions = draw.batch(int(index))
        return np.ascontiguousarray(inputs(indices, positions), dtype=np.float32), labels[indices]

    def fetch(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = tf.numpy_function(batch, [index], (tf.float32, tf.int32), stateful=False)
        return tf.ensure_shape(x, (None, *sample.shape[1:])), tf.ensure_shape(y, (None,))

    dataset = tf.data.Dataset.counter().map(fetch)
    return augmented(dataset, phase).prefetch(tf.data.AUTOTUNE)


def augmented(batches: tf.data.Dataset, phase: spec.Phase) -> tf.data.Dataset:
    """`batches` through the phase's `augment(...)` layers (the full route only has any)."""
    if not phase.augment_layers:
        return batches
    pipeline = keras.Sequential([getattr(keras.layers, a.layer)(**dict(a.kwargs)) for a in phase.augment_layers])
    return batches.map(lambda x, y: (pipeline(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)


def input_batches(inputs: Rows) -> tf.data.Dataset:
    """The rows of `inputs`, in order, in batches of `PREDICT_BATCH`, without labels."""
    return rows(inputs, None, PREDICT_BATCH)


def train_images(data: ImageData) -> np.ndarray:
    """The training images as one array `(images, height, width, 3)`, in data-set order."""
    return np.stack([image for image, _ in data.train.as_numpy_iterator()])
