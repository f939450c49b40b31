"""Turns a data-set spec into decoded, resized, in-memory `tf.data` splits (Keras's own: `keras_datasets`).

Every split yields `(image, label)` with `image` float32 RGB in 0..255 at the spec's size (gray
images are expanded to three channels) and `label` int32. Decoding happens once: the decoded
pixels are held in memory as their source gives them (a TFDS data set's uint8 at its own size,
Keras's and in-memory arrays as they are), and each pass over a split converts them to float32
and resizes them on the way. Memory is then the decoded data set's size (ELPV: 236 MB of uint8
against 1.6 GB of float32 at 224x224), whatever the input size.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from harness import locks, spec
from harness.data import folder, keras_datasets
from harness.data.errors import DataError
from harness.spec.datasets import DEFAULT_IMAGE_KEY, DEFAULT_LABEL_KEY, slice_feature
from harness.spec.vocabulary import SPLITS

__all__ = ["SPLITS", "DataError", "LoadedData", "describe", "load"]


@dataclass
class LoadedData:
    """The splits of one data set, unbatched; `test` may be None.

    `dataset` is the spec's data set as loaded: for TFDS, with the image and label keys resolved
    (the builder's `supervised_keys` where the spec leaves them None). `slices` holds, per held-out
    split ("validation", "test"), the value of the `slice_feature` of every example as a string,
    in the split's order; empty when the data set declares no slices. `skipped_files` is what
    `image_folder(bad_files="skip")` left out, per folder (`harness.data.folder.load_folder`).
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    num_classes: int
    class_names: list[str]
    sizes: dict[str, int]
    dataset: spec.Dataset
    slice_feature: str | None = None
    slices: dict[str, list[str]] = field(default_factory=dict, repr=False)
    skipped_files: dict[str, Any] = field(default_factory=dict)
    _digests: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _labels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def resolve(self, experiment: spec.Experiment) -> spec.Experiment:
        """`experiment` with its data set as loaded (what the cache identity and reports must name)."""
        return dataclasses.replace(experiment, dataset=self.dataset)

    def split(self, name: str) -> tf.data.Dataset | None:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def labels(self, name: str) -> np.ndarray:
        """The labels of split `name`, in order (computed once per split)."""
        if name not in self._labels:
            dataset = self.split(name)
            if dataset is None:
                raise ValueError(f"the data set has no {name} split")
            self._labels[name] = np.fromiter((label for _, label in dataset.as_numpy_iterator()), dtype=np.int32)
        return self._labels[name]

    def digests(self, name: str) -> np.ndarray:
        """A content digest of every image of split `name`, in order: shape (images, 16), uint8.

        Computed once per split (one pass over the prepared float32 pixels): the held-out check
        compares them across splits, and a disk cache entry keeps them to tell a reordered data set.
        """
        if name not in self._digests:
            dataset = self.split(name)
            if dataset is None:
                raise ValueError(f"the data set has no {name} split")
            found = [
                hashlib.blake2b(image.tobytes(), digest_size=16).digest()
                for images, _ in dataset.batch(256).as_numpy_iterator()
                for image in np.ascontiguousarray(images)
            ]
            self._digests[name] = np.frombuffer(b"".join(found), dtype=np.uint8).reshape(len(found), 16)
        return self._digests[name]


def load(dataset: spec.Dataset) -> LoadedData:
    """Loads every split of `dataset`, decoded and resized once, cached in memory."""
    slices: dict[str, list[str]] = {}
    skipped_files: dict[str, Any] = {}
    if isinstance(dataset, spec.TfdsDataset):
        dataset, splits, num_classes, class_names, slices = _load_tfds(dataset)
    elif isinstance(dataset, spec.ImageFolder):
        splits, class_names, skipped_files = folder.load_folder(dataset)
        num_classes = len(class_names)
    elif isinstance(dataset, spec.KerasDataset):
        splits, num_classes, class_names = keras_datasets.load_keras(dataset)
    else:
        splits, num_classes, class_names = _load_arrays(dataset)
        slices = _array_slices(dataset, splits)
    # Arrays and Keras's data sets are in memory already (`from_tensor_slices`); the others are cached once decoded.
    in_memory = isinstance(dataset, (spec.Arrays, spec.KerasDataset))
    prepared = {
        name: None if ds is None else _prepare(ds if in_memory else ds.cache(), dataset.image_size)
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
    return LoadedData(
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


def describe(dataset: spec.Dataset) -> str:
    """The data set in a few words, as messages and reports name it."""
    if isinstance(dataset, spec.TfdsDataset):
        label = f" (label {dataset.label_key!r})" if dataset.label_key else ""
        return f"TFDS data set {dataset.name!r}{label}"
    if isinstance(dataset, spec.ImageFolder):
        return f"image folder {dataset.path!r}"
    if isinstance(dataset, spec.KerasDataset):
        return f"Keras data set {dataset.name!r}"
    return f"in-memory arrays {dataset.cache_key!r}" if dataset.cache_key else "in-memory arrays"


def _load_tfds(
    dataset: spec.TfdsDataset,
) -> tuple[spec.TfdsDataset, dict[str, Any], int, list[str], dict[str, list[str]]]:
    import tensorflow_datasets as tfds

    import harness.data.datasets.elpv  # noqa: F401  (registers the shipped "elpv" builder)

    try:
        builder = tfds.builder(dataset.name, data_dir=dataset.data_dir)
    except Exception as error:  # noqa: BLE001 - TFDS raises many types for an unknown name
        raise DataError(
            f"TFDS has no data set named {dataset.name!r}: {str(error).splitlines()[0]} "
            f"Check `tfds_dataset(name=...)` against the TFDS catalog. Received: name={dataset.name!r}"
        ) from None
    dataset = _with_keys(dataset, builder.info.supervised_keys)
    features = builder.info.features
    for key in (dataset.image_key, dataset.label_key):
        if key not in features:
            raise DataError(
                f"TFDS data set {dataset.name!r} has no feature {key!r}; it has {sorted(features.keys())}. "
                f"Fix `image_key`/`label_key` in the spec. Received: {key!r}"
            )
    if dataset.slices is not None:
        _check_slice_feature(dataset, features)
    label_feature = features[dataset.label_key]
    num_classes = getattr(label_feature, "num_classes", None)
    if num_classes is None:
        raise DataError(
            f"Feature {dataset.label_key!r} of {dataset.name!r} is not a class label. "
            f"Pick a `tfds.features.ClassLabel` feature as `label_key`. Received: label_key={dataset.label_key!r}"
        )
    try:
        with locks.held(f"tfds-{builder.data_dir}"):  # another process preparing it finishes first
            builder.download_and_prepare()
    except Exception as error:  # noqa: BLE001
        raise DataError(
            f"TFDS could not download or prepare {dataset.name!r}: {str(error).splitlines()[0]} "
            f"Without network access, prepare it once elsewhere and copy its data directory "
            f"(pass it as `tfds_dataset(data_dir=...)`)."
        ) from None
    splits: dict[str, Any] = {}
    for role, split in dataset.splits.items():
        if split is None:
            splits[role] = None
            continue
        try:
            ds = builder.as_dataset(split=split, shuffle_files=False, read_config=tfds.ReadConfig(try_autocache=False))
        except Exception as error:  # noqa: BLE001
            raise DataError(
                f"TFDS data set {dataset.name!r} has no split {split!r}: {str(error).splitlines()[0]} "
                f"Its splits are {sorted(builder.info.splits.keys())}. Received: {role}_split={split!r}"
            ) from None
        splits[role] = ds
    slices: dict[str, list[str]] = {}
    if dataset.slices is not None:
        slices = _tfds_slices(builder, dataset)
    image_key, label_key = dataset.image_key, dataset.label_key
    for role, ds in splits.items():
        if ds is not None:
            splits[role] = ds.map(lambda ex: (ex[image_key], ex[label_key]))
    return dataset, splits, int(num_classes), list(label_feature.names), slices


def _with_keys(dataset: spec.TfdsDataset, supervised_keys: Any) -> spec.TfdsDataset:
    """The image and label keys the spec leaves None: the builder's `supervised_keys`, else "image"/"label"."""
    image, label = DEFAULT_IMAGE_KEY, DEFAULT_LABEL_KEY
    if (
        isinstance(supervised_keys, (tuple, list))
        and len(supervised_keys) == 2
        and all(isinstance(k, str) for k in supervised_keys)
    ):
        image, label = supervised_keys
    return dataset.with_keys(dataset.image_key or image, dataset.label_key or label)


def _check_slice_feature(dataset: spec.TfdsDataset, features: Any) -> None:
    """The `slices` feature exists and is a class label, or a string or integer scalar."""
    import tensorflow_datasets as tfds

    key = dataset.slices
    if key not in features:
        raise DataError(
            f"TFDS data set {dataset.name!r} has no feature {key!r} to slice by; it has {sorted(features.keys())}. "
            f"Fix `tfds_dataset(slices=...)` in the spec. Received: slices={key!r}"
        )
    feature = features[key]
    shape, dtype = getattr(feature, "shape", None), getattr(feature, "dtype", None)  # dicts for nested features
    scalar = shape == () and isinstance(dtype, tf.DType) and (dtype == tf.string or dtype.is_integer)
    if not (isinstance(feature, tfds.features.ClassLabel) or scalar):
        raise DataError(
            f"Feature {key!r} of {dataset.name!r} cannot slice the accuracies: it is {type(feature).__name__}, "
            f"shape {shape}, dtype {getattr(dtype, 'name', dtype)}. Pick a `tfds.features.ClassLabel`, "
            f"a string or an integer scalar feature as `slices`. Received: slices={key!r}"
        )


def _tfds_slices(builder: Any, dataset: spec.TfdsDataset) -> dict[str, list[str]]:
    """The `slices` value of every example of the held-out splits, in the order `as_dataset` gives
    the images (`shuffle_files=False`); one cheap pass per split that decodes that feature only."""
    import tensorflow_datasets as tfds

    key = str(dataset.slices)
    feature = builder.info.features[key]
    names = list(feature.names) if isinstance(feature, tfds.features.ClassLabel) else None
    found: dict[str, list[str]] = {}
    for role, split in dataset.splits.items():
        if role == "train" or split is None:
            continue
        ds = builder.as_dataset(
            split=split,
            shuffle_files=False,
            read_config=tfds.ReadConfig(try_autocache=False),
            decoders=tfds.decode.PartialDecoding({key: True}),
        )
        batches = ds.map(lambda ex: ex[key]).batch(4096).as_numpy_iterator()
        values = [value for batch in batches for value in batch.tolist()]
        found[role] = [names[int(v)] for v in values] if names is not None else [_text(v) for v in values]
    return found


def _array_slices(dataset: spec.Arrays, splits: dict[str, Any]) -> dict[str, list[str]]:
    """The `arrays(slices=...)` values of the held-out splits, as strings."""
    if dataset.slices is None:
        return {}
    given = dataset.slices() if callable(dataset.slices) else dataset.slices
    held_out = [role for role in ("validation", "test") if splits.get(role) is not None]
    if not isinstance(given, Mapping) or not set(held_out) <= set(given) <= {"validation", "test"}:
        shown = f"keys {sorted(given)}" if isinstance(given, Mapping) else type(given).__name__
        raise DataError(
            f"`arrays(slices=...)` must map every held-out split ({', '.join(map(repr, held_out))}) to one value "
            f"per example, and nothing else. Received: {shown}"
        )
    return {role: [_text(v) for v in np.asarray(given[role]).tolist()] for role in held_out}


def _text(value: Any) -> str:
    """A slice value as reports and checks name it: text as it is, numbers as digits."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _load_arrays(dataset: spec.Arrays) -> tuple[dict[str, Any], int, list[str]]:
    data = dataset.data() if callable(dataset.data) else dataset.data
    splits: dict[str, Any] = {}
    num_classes = dataset.num_classes or 0
    for role in SPLITS:
        if role not in data:
            if role != "test":
                raise DataError(f"`arrays(...)` data has no {role!r} split. Received keys: {sorted(data)}")
            splits[role] = None
            continue
        images, labels = (np.asarray(a) for a in data[role])
        if images.ndim not in (3, 4) or len(images) != len(labels):
            raise DataError(
                f"`arrays(...)` split {role!r} must be (images (n, h, w[, c]), labels (n,)). "
                f"Received shapes {images.shape} and {labels.shape}"
            )
        if dataset.num_classes is None:
            num_classes = max(num_classes, int(labels.max()) + 1)
        splits[role] = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    names = dataset.class_names
    if names is not None and num_classes > len(names):
        raise DataError(
            f"`arrays(class_names=...)` must name every class: the labels run to {num_classes - 1}, "
            f"{len(names)} names are given. Received: class_names={list(names)!r}"
        )
    return splits, len(names) if names else num_classes, list(names) if names else [str(i) for i in range(num_classes)]
