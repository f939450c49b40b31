"""The `tf.data` pipelines a phase trains and predicts on: shuffled batches, drawn dihedral views, augmentation.

Every pipeline yields `(inputs, labels)` batches; `inputs` are raw images on the full route and
cached arrays on the cached ones (see `harness.planning`).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from harness import spec, symmetry
from harness.data import loading

PREDICT_BATCH = 64


def batched(
    dataset: tf.data.Dataset,
    phase: spec.Phase,
    *,
    shuffle_size: int | None = None,
    seed: int = 0,
    augment: bool = False,
) -> tf.data.Dataset:
    """`dataset` in the phase's batches, shuffled each epoch (seeded) when `shuffle_size` is set."""
    if shuffle_size is not None:
        dataset = dataset.shuffle(shuffle_size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(phase.batch_size)
    if augment:
        dataset = augmented(dataset, phase)
    return dataset.prefetch(tf.data.AUTOTUNE)


def rows(inputs: np.ndarray, labels: np.ndarray | None, batch_size: int, *, seed: int | None = None) -> tf.data.Dataset:
    """Batches of `inputs`' rows (with their `labels`, when given), shuffled each epoch (seeded) when `seed` is set.

    Each batch gathers its own rows, so a memory-mapped `inputs` (a cache entry) is never copied
    whole, as `from_tensor_slices` or Keras given the array would copy it into a tensor. The order
    is `from_tensor_slices(...).shuffle(len(inputs), seed)`'s: a shuffle's order depends on its
    seed and the number of elements only.
    """
    index = tf.data.Dataset.range(len(inputs))
    if seed is not None:
        index = index.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True)
    dtype, row_shape = tf.as_dtype(inputs.dtype), inputs.shape[1:]
    label_values = None if labels is None else tf.constant(labels)

    def gather(index: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        x = tf.numpy_function(lambda i: np.ascontiguousarray(inputs[i]), [index], dtype, stateful=False)
        x = tf.ensure_shape(x, (None, *row_shape))
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


def image_batches(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The images of an `(image, label)` split, without labels, in batches of `PREDICT_BATCH`."""
    return dataset.map(lambda image, label: image).batch(PREDICT_BATCH).prefetch(tf.data.AUTOTUNE)


def train_images(data: loading.LoadedData) -> np.ndarray:
    """The training images as one array `(images, height, width, 3)`, in data-set order."""
    return np.stack([image for image, _ in data.train.as_numpy_iterator()])
