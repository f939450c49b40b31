"""Where a data set's examples come from, for either modality: TFDS builders and in-memory arrays.

Each source gives its splits as `tf.data` pipelines of `(input, label)` (an image, or a text as
a string), its class names and, where declared, the slice value of every held-out example.
`harness.data.loading` decodes and resizes images from them; `harness.data.text_loading`
tokenises texts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from harness import locks, spec
from harness.data.errors import DataError
from harness.spec.tfds import DEFAULT_IMAGE_KEY, DEFAULT_LABEL_KEY, DEFAULT_TEXT_KEY
from harness.spec.vocabulary import SPLITS, TEXT


def describe(dataset: spec.Dataset) -> str:
    """The data set in a few words, as messages and reports name it."""
    if isinstance(dataset, spec.TfdsDataset):
        label = f" (label {dataset.label_key!r})" if dataset.label_key else ""
        return f"TFDS data set {dataset.name!r}{label}"
    if isinstance(dataset, spec.ImageFolder):
        return f"image folder {dataset.path!r}"
    if isinstance(dataset, spec.KerasDataset):
        return f"Keras data set {dataset.name!r}"
    if isinstance(dataset, spec.TextFolder):
        return f"text folder {dataset.path!r}"
    if isinstance(dataset, spec.TextCsv):
        return f"CSV file {dataset.path!r}"
    return f"in-memory arrays {dataset.cache_key!r}" if dataset.cache_key else "in-memory arrays"


def load_tfds(
    dataset: spec.TfdsDataset,
) -> tuple[spec.TfdsDataset, dict[str, Any], int, list[str], dict[str, list[str]]]:
    import tensorflow_datasets as tfds

    import harness.data.datasets.bbc_news
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
    input_field = "text_key" if dataset.modality == TEXT else "image_key"
    for key in (dataset.input_key, dataset.label_key):
        if key not in features:
            raise DataError(
                f"TFDS data set {dataset.name!r} has no feature {key!r}; it has {sorted(features.keys())}. "
                f"Fix `{input_field}`/`label_key` in the spec. Received: {key!r}"
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
    input_key, label_key = dataset.input_key, dataset.label_key
    for role, ds in splits.items():
        if ds is not None:
            splits[role] = ds.map(lambda ex: (ex[input_key], ex[label_key]))
    return dataset, splits, int(num_classes), list(label_feature.names), slices


def _with_keys(dataset: spec.TfdsDataset, supervised_keys: Any) -> spec.TfdsDataset:
    """The input and label keys the spec leaves None: the builder's `supervised_keys`, else
    "image" (or "text") and "label"."""
    given, label = (DEFAULT_TEXT_KEY if dataset.modality == TEXT else DEFAULT_IMAGE_KEY), DEFAULT_LABEL_KEY
    if (
        isinstance(supervised_keys, (tuple, list))
        and len(supervised_keys) == 2
        and all(isinstance(k, str) for k in supervised_keys)
    ):
        given, label = supervised_keys
    return dataset.with_keys(dataset.input_key or given, dataset.label_key or label)


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


def array_slices(dataset: spec.Arrays, splits: dict[str, Any]) -> dict[str, list[str]]:
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


def _inputs_and_labels(dataset: spec.Arrays, role: str, inputs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if dataset.modality == TEXT:
        texts = np.asarray(inputs, dtype=object)
        if texts.ndim != 1 or len(texts) != len(labels) or not all(isinstance(t, str) for t in texts):
            kinds = sorted({type(t).__name__ for t in texts.ravel()})
            raise DataError(
                f"`arrays(...)` split {role!r} must be (texts: a list of n strings, labels (n,)) for a text data set. "
                f"Received {len(texts)} inputs of {', '.join(kinds) or 'no'} type and labels of shape {labels.shape}"
            )
        return texts, labels
    images = np.asarray(inputs)
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise DataError(
            f"`arrays(...)` split {role!r} must be (images (n, h, w[, c]), labels (n,)). "
            f"Received shapes {images.shape} and {labels.shape}"
        )
    return images, labels


def _text(value: Any) -> str:
    """A slice value as reports and checks name it: text as it is, numbers as digits."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def load_arrays(dataset: spec.Arrays) -> tuple[dict[str, tuple[np.ndarray, np.ndarray] | None], int, list[str]]:
    """The `(inputs, labels)` of each split (None for an absent test split), the class count and names.

    Images are an array `(n, h, w[, c])`; texts (a data set with `sequence_length`) a list of strings.
    """
    data = dataset.data() if callable(dataset.data) else dataset.data
    splits: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    num_classes = dataset.num_classes or 0
    for role in SPLITS:
        if role not in data:
            if role != "test":
                raise DataError(f"`arrays(...)` data has no {role!r} split. Received keys: {sorted(data)}")
            splits[role] = None
            continue
        inputs, labels = _inputs_and_labels(dataset, role, *data[role])
        if dataset.num_classes is None:
            num_classes = max(num_classes, int(labels.max()) + 1)
        splits[role] = inputs, labels.astype(np.int32)
    names = dataset.class_names
    if names is not None and num_classes > len(names):
        raise DataError(
            f"`arrays(class_names=...)` must name every class: the labels run to {num_classes - 1}, "
            f"{len(names)} names are given. Received: class_names={list(names)!r}"
        )
    return splits, len(names) if names else num_classes, list(names) if names else [str(i) for i in range(num_classes)]
