"""Turns an image data-set spec into decoded, resized, in-memory `tf.data` splits (Keras's own: `keras_datasets`).

Every split yields `(image, label)` with `image` float32 RGB in 0..255 at the spec's size (gray
images are expanded to three channels) and `label` int32. Decoding happens once: the decoded
pixels are held in memory as their source gives them (a TFDS data set's uint8 at its own size,
Keras's and in-memory arrays as they are), and each pass over a split converts them to float32
and resizes them on the way. Memory is then the decoded data set's size (ELPV: 236 MB of uint8
against 1.6 GB of float32 at 224x224), whatever the input size. Where the examples come from
(TFDS, in-memory arrays) is `harness.data.sources`, shared with text (`harness.data.text_loading`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from harness import spec
from harness.data import folder, keras_datasets, sources
from harness.data.errors import DataError
from harness.data.loaded import PREDICT_BATCH, LoadedData
from harness.data.sources import describe
from harness.spec.datasets import slice_feature
from harness.spec.vocabulary import SPLITS

__all__ = ["SPLITS", "DataError", "ImageData", "LoadedData", "describe", "load"]


@dataclass(kw_only=True)
class ImageData(LoadedData):
    """The splits of an image data set: unbatched `(image, label)` pipelines, decoded once (`test` may be None)."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    examples = "images"

    def split(self, name: str) -> tf.data.Dataset | None:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def has(self, split: str) -> bool:
        return self.split(split) is not None

    def batches(self, split: str, batch_size: int, *, seed: int | None = None) -> tf.data.Dataset:
        dataset = self._split(split)
        if seed is not None:
            dataset = dataset.shuffle(self.sizes[split], seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size)

    def input_batches(self, *splits: str) -> tf.data.Dataset:
        # The splits back to back before batching: one traced function, one ragged last batch.
        images = self._split(splits[0])
        for split in splits[1:]:
            images = images.concatenate(self._split(split))
        return images.map(lambda image, label: image).batch(PREDICT_BATCH).prefetch(tf.data.AUTOTUNE)

    def _read_labels(self, split: str) -> np.ndarray:
        return np.fromiter((label for _, label in self._split(split).as_numpy_iterator()), dtype=np.int32)

    def _read_digests(self, split: str) -> list[bytes]:
        # One pass over the prepared float32 pixels.
        return [
            hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            for images, _ in self._split(split).batch(256).as_numpy_iterator()
            for image in np.ascontiguousarray(images)
        ]

    def _split(self, name: str) -> tf.data.Dataset:
        dataset = self.split(name)
        if dataset is None:
            raise ValueError(f"the data set has no {name} split")
        return dataset


def load(dataset: spec.Dataset) -> ImageData:
    """Loads every split of `dataset`, decoded and resized once, cached in memory."""
    slices: dict[str, list[str]] = {}
    skipped_files: dict[str, Any] = {}
    if isinstance(dataset, spec.TfdsDataset):
        dataset, splits, num_classes, class_names, slices = sources.load_tfds(dataset)
    elif isinstance(dataset, spec.ImageFolder):
        splits, class_names, skipped_files = folder.load_folder(dataset)
        num_classes = len(class_names)
    elif isinstance(dataset, spec.KerasDataset):
        splits, num_classes, class_names = keras_datasets.load_keras(dataset)
    else:
        assert isinstance(dataset, spec.Arrays), dataset
        given, num_classes, class_names = sources.load_arrays(dataset)
        slices = sources.array_slices(dataset, given)
        splits = {role: None if xy is None else tf.data.Dataset.from_tensor_slices(xy) for role, xy in given.items()}
    # Arrays and Keras's data sets are in memory already (`from_tensor_slices`); the others are cached once decoded.
    in_memory = isinstance(dataset, (spec.Arrays, spec.KerasDataset))
    image_size = spec.datasets.input_size(dataset)
    assert isinstance(image_size, tuple), image_size
    prepared = {
        name: None if ds is None else _prepare(ds if in_memory else ds.cache(), image_size)
        for name, ds in splits.items()
    }
    sizes = {name: _count(ds) for name, ds in prepared.items() if ds is not None}
    for name in ("train", "validation"):
        if sizes[name] == 0:
            raise DataError(f"The {name} split of {describe(dataset)} is empty. Check the split declared in the spec.")
    for name, values in slices.items():
        if len(values) != sizes[name]:
            raise DataError(
                f"The {name} split of {describe(dataset)} has {sizes[name]} examples but "
                f"{len(values)} slice values. Give one value per example, in the split's order."
            )
    return ImageData(
        train=prepared["train"],
        validation=prepared["validation"],
        test=prepared.get("test"),
        num_classes=num_classes,
        class_names=class_names,
        sizes=sizes,
        dataset=dataset,
        slice_feature=slice_feature(dataset),
        slices=slices,
        skipped_files=skipped_files,
    )


def _prepare(ds: tf.data.Dataset, image_size: tuple[int, int]) -> tf.data.Dataset:
    """`ds`'s images as float32 RGB at `image_size`, converted on every pass (`ds` holds them decoded)."""

    def convert(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.cast(image, tf.float32)
        if image.shape.rank == 2:
            image = image[..., tf.newaxis]
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif image.shape[-1] == 4:
            image = image[..., :3]
        if tuple(image.shape[:2]) != tuple(image_size):
            image = tf.image.resize(image, image_size)
        image = tf.ensure_shape(image, (*image_size, 3))
        return image, tf.cast(label, tf.int32)

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _count(ds: tf.data.Dataset) -> int:
    # Iterating once also fills the in-memory cache, so the first epoch is not slower.
    return int(ds.reduce(np.int64(0), lambda count, _: count + 1).numpy())
