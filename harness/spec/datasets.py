"""Data sets: TFDS by name, a folder of class sub-folders, in-memory arrays (Keras's own: `keras_datasets`).

Held-out data must be held out: overlapping split strings and a test folder inside the training
folder are refused here; examples shared by two splits are found before training
(`harness.data.checks`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec.keras_datasets import KerasDataset
from harness.spec.registry import _caller_dir
from harness.spec.validators import (
    _check,
    _class_names,
    _folder,
    _hold_out,
    _image_size,
    _is_number,
    _positive_int,
    _seed,
    _split,
    class_folders,
    splits_overlap,
)
from harness.spec.vocabulary import BAD_FILES

# What `tfds_dataset` reads when the builder declares no `supervised_keys`.
DEFAULT_IMAGE_KEY = "image"
DEFAULT_LABEL_KEY = "label"
# The name `arrays(slices=...)` values go by in reports and check names.
ARRAYS_SLICE_FEATURE = "slice"


@dataclass(frozen=True)
class TfdsDataset:
    """A TensorFlow Datasets data set, loaded with `tfds.builder(name).as_dataset(split=...)`.

    `image_key` / `label_key` None mean the builder's `supervised_keys` (else "image" / "label"),
    resolved when the data is loaded (`harness.data.loading`, see `with_keys`). `slices` names a
    feature whose value per example slices the validation and test accuracies; it is no part of
    `identity` (the images, hence the cached features, are the same with or without it).
    """

    name: str
    image_size: tuple[int, int]
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    image_key: str | None = None
    label_key: str | None = None
    data_dir: str | None = None
    slices: str | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """What the cached images depend on (with the image key as resolved, once loaded)."""
        return {"source": "tfds", "name": self.name, "image_key": self.image_key, "data_dir": self.data_dir}

    @property
    def splits(self) -> dict[str, str | None]:
        """The TFDS split string of each role ("train", "validation", "test"); None where none is declared."""
        return {"train": self.train_split, "validation": self.validation_split, "test": self.test_split}

    def with_keys(self, image_key: str, label_key: str) -> TfdsDataset:
        return dataclasses.replace(self, image_key=image_key, label_key=label_key)


@dataclass(frozen=True)
class ImageFolder:
    """A folder of class sub-folders, read as `image_dataset_from_directory` reads it, checked first
    (`harness.data.folder`, which says why `bad_files` is no part of `identity`)."""

    path: str
    image_size: tuple[int, int]
    validation_split: float = 0.2
    test_path: str | None = None
    seed: int = 0
    bad_files: str = "error"

    @property
    def identity(self) -> dict[str, Any]:
        return {"source": "image_folder", "path": str(Path(self.path).resolve()), "seed": self.seed}


@dataclass(frozen=True, eq=False)
class Arrays:
    """In-memory arrays, or a zero-argument callable returning them (called at run time).

    The mapping has "train", "validation" and optionally "test" keys, each `(images, labels)`
    with images of shape (n, height, width, channels) in 0..255 and integer labels. `slices`, when
    given, maps "validation" (and "test") to one value per example of that split (or is a
    callable returning that mapping); the values slice the accuracies, as feature "slice".
    `class_names` (one per class) name the classes in reports; no part of `identity`.
    """

    data: Mapping[str, tuple[Any, Any]] | Callable[[], Mapping[str, tuple[Any, Any]]]
    image_size: tuple[int, int]
    num_classes: int | None = None
    cache_key: str | None = None
    slices: Mapping[str, Sequence[Any]] | Callable[[], Mapping[str, Sequence[Any]]] | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"source": "arrays", "cache_key": self.cache_key}


Dataset = TfdsDataset | ImageFolder | Arrays | KerasDataset


def has_test_split(dataset: Dataset) -> bool | None:
    """Whether `dataset` declares a test split; None when only loading the data tells (arrays from a callable)."""
    if isinstance(dataset, TfdsDataset):
        return dataset.test_split is not None
    if isinstance(dataset, ImageFolder):
        return dataset.test_path is not None
    if isinstance(dataset, KerasDataset):
        return True
    return "test" in dataset.data if isinstance(dataset.data, Mapping) else None


def slice_feature(dataset: Dataset) -> str | None:
    """The name of what slices `dataset`'s held-out accuracies (`slices=`); None where nothing does.

    A TFDS feature name, "slice" for `arrays(slices=...)`; image folders have no slices.
    """
    if isinstance(dataset, TfdsDataset):
        return dataset.slices
    if isinstance(dataset, Arrays) and dataset.slices is not None:
        return ARRAYS_SLICE_FEATURE
    return None


def num_classes(dataset: Dataset) -> int | None:
    """The number of classes where the spec alone tells it."""
    if isinstance(dataset, ImageFolder):
        return len(class_folders(dataset.path))
    if isinstance(dataset, Arrays):
        return dataset.num_classes or (len(dataset.class_names) if dataset.class_names else None)
    if isinstance(dataset, KerasDataset):
        return dataset.info.num_classes
    return None


def tfds_dataset(
    name: str,
    *,
    image_size: int | tuple[int, int] = 224,
    train_split: str = "train",
    validation_split: str | float = "validation",
    test_split: str | None = None,
    image_key: str | None = None,
    label_key: str | None = None,
    data_dir: str | None = None,
    slices: str | None = None,
) -> TfdsDataset:
    """A TFDS data set by name, with split slicing ("train[:80%]").

    Args:
        name: The TFDS name (`"elpv"`, `"tf_flowers"`, `"mnist:3.0.1"`).
        image_size: Images are resized to this (int or (height, width)). Defaults to 224.
        train_split: TFDS split string of the training data. Defaults to "train".
        validation_split: A TFDS split string, or a fraction in (0, 1) of `train_split` held out
            for validation, as in `image_folder` and Keras (0.2: train on "train[:80%]",
            validate on "train[80%:]"; `train_split` must then be one unsliced split).
            Defaults to "validation".
        test_split: TFDS split string of the held-out test data. Defaults to None (no test split).
        image_key: Feature name of the image. Defaults to None: the builder's
            `supervised_keys`, else "image".
        label_key: Feature name of the integer class label. Defaults to None: the builder's
            `supervised_keys`, else "label".
        data_dir: TFDS data directory. Defaults to TFDS's own default.
        slices: Feature name whose value slices the validation and test accuracies (per slice
            value: accuracy, n and a 95% interval; floors with `min_test_accuracy(slice=...)`), e.g.
            `slices="cell_type"`: a `tfds.features.ClassLabel` (values: its class names) or a
            string or integer scalar feature (values as strings). Defaults to None (no slices).
            It does not change the cached features: the images are the same.

    No two splits may share examples: identical or overlapping split strings are refused.
    """
    _check(
        isinstance(name, str) and re.fullmatch(r"[a-z0-9_]+(/[\w.-]+)?(:[\d.*]+)?", name or "") is not None,
        "tfds_dataset.name",
        "must be a TFDS data set name such as 'elpv' or 'tf_flowers'",
        name,
    )
    for key, value in (("image_key", image_key), ("label_key", label_key)):
        _check(
            value is None or (isinstance(value, str) and value != ""),
            f"tfds_dataset.{key}",
            "must be a feature name, or None for the builder's supervised_keys",
            value,
        )
    _check(
        slices is None or (isinstance(slices, str) and slices != ""),
        "tfds_dataset.slices",
        "must be a feature name (a ClassLabel, string or integer feature, e.g. 'cell_type'), or None for no slices",
        slices,
    )
    _check(
        data_dir is None or isinstance(data_dir, (str, Path)),
        "tfds_dataset.data_dir",
        "must be a folder path, or None for TFDS's default",
        data_dir,
    )
    train = _split(train_split, "tfds_dataset.train_split")
    if isinstance(validation_split, str):
        validation = _split(validation_split, "tfds_dataset.validation_split")
    else:
        train, validation = _hold_out(train, validation_split)
    test = None if test_split is None else _split(test_split, "tfds_dataset.test_split")
    roles = [("train_split", train), ("validation_split", validation), ("test_split", test)]
    for i, (first, a) in enumerate(roles):
        for second, b in roles[i + 1 :]:
            if a is None or b is None:
                continue
            shared = splits_overlap(a, b)
            _check(
                shared is None,
                f"tfds_dataset.{second}",
                f"must not share examples with {first} ({a!r}): both read split {shared!r} where they overlap",
                b,
                hint="Held-out data must be held out: give disjoint slices, e.g. train_split='train[:80%]', "
                "validation_split='train[80%:]'.",
            )
    return TfdsDataset(
        name=name,
        image_size=_image_size(image_size, "tfds_dataset.image_size"),
        train_split=train,
        validation_split=validation,
        test_split=test,
        image_key=image_key,
        label_key=label_key,
        data_dir=None if data_dir is None else str(data_dir),
        slices=slices,
    )


def image_folder(
    path: str,
    *,
    image_size: int | tuple[int, int] = 224,
    validation_split: float = 0.2,
    test_path: str | None = None,
    seed: int = 0,
    bad_files: str = "error",
) -> ImageFolder:
    """A folder with one sub-folder of images per class, as `image_dataset_from_directory` reads.

    A relative `path` is resolved against the spec file's folder.

    Args:
        path: The folder of class sub-folders.
        image_size: Images are resized to this. Defaults to 224.
        validation_split: Fraction of the images held out for validation, in (0, 1).
            Defaults to 0.2.
        test_path: A separate folder (same class sub-folders) used as the test split, outside
            `path`. Defaults to None (no test split).
        seed: Seed of the train/validation shuffle. Defaults to 0.
        bad_files: Files that do not decode (found before training): "error" fails with them all;
            "skip" leaves them out, with a warning and `skipped_files` in the metrics JSON.
            Defaults to "error".

    Empty class folders and classes of fewer than 5 images (or `1 / validation_split`) are errors;
    names starting with "." are never read (`harness.data.folder`).
    """
    base = _caller_dir()
    resolved = _folder(path, "image_folder.path", base)
    test = None if test_path is None else _folder(test_path, "image_folder.test_path", base)
    if test is not None:
        train_dir, test_dir = Path(resolved), Path(test)
        inside = train_dir == test_dir or train_dir in test_dir.parents or test_dir in train_dir.parents
        _check(
            not inside,
            "image_folder.test_path",
            f"must be a folder outside the training folder {resolved} "
            "and not holding it (the test images would be trained on)",
            str(test_path),
        )
    _check(
        _is_number(validation_split) and 0 < validation_split < 1,
        "image_folder.validation_split",
        "must be a fraction in (0, 1)",
        validation_split,
    )
    expected = (
        "must be 'error' (files that do not decode fail the experiment) or 'skip' (they are left out, with a warning)"
    )
    _check(bad_files in BAD_FILES, "image_folder.bad_files", expected, bad_files)
    return ImageFolder(
        path=resolved,
        image_size=_image_size(image_size, "image_folder.image_size"),
        validation_split=float(validation_split),
        test_path=test,
        seed=_seed(seed, "image_folder.seed"),
        bad_files=bad_files,
    )


def arrays(
    data: Mapping[str, tuple[Any, Any]] | Callable[[], Mapping[str, tuple[Any, Any]]],
    *,
    image_size: int | tuple[int, int],
    num_classes: int | None = None,
    cache_key: str | None = None,
    slices: Mapping[str, Sequence[Any]] | Callable[[], Mapping[str, Sequence[Any]]] | None = None,
    class_names: Sequence[str] | None = None,
) -> Arrays:
    """In-memory arrays (mostly for tests): `{"train": (x, y), "validation": (x, y), "test": ...}`.

    Args:
        data: The mapping, or a zero-argument callable returning it (so importing the spec stays
            cheap).
        image_size: Images are resized to this.
        num_classes: Number of classes. Defaults to None: `len(class_names)` when given, else
            `max(label) + 1` over all splits.
        cache_key: A name for these arrays in the feature cache. Defaults to None: features of
            these arrays are never cached on disk.
        slices: `{"validation": values, "test": values}`, one value per example of the split in
            order (strings or ints, shown as strings), or a zero-argument callable returning it:
            the accuracies per value, as feature "slice". Every held-out split of `data` needs its
            values. Defaults to None (no slices). Not part of the cache key.
        class_names: The name of each class, label 0 first, as reports and `min_recall` name
            them. Defaults to None: the labels as digits ("0", "1", ...).
    """
    if not callable(data):
        _check(
            isinstance(data, Mapping),
            "arrays.data",
            "must be a mapping or a callable returning one",
            type(data).__name__,
        )
        missing = {"train", "validation"} - set(data)
        _check(not missing, "arrays.data", "must have 'train' and 'validation' keys", sorted(data))
        unknown = sorted(set(data) - {"train", "validation", "test"})
        _check(not unknown, "arrays.data", "must have only 'train', 'validation' and 'test' keys", sorted(data))
    if num_classes is not None:
        _positive_int(num_classes, "arrays.num_classes")
    names = None if class_names is None else _class_names(class_names, "arrays.class_names", num_classes)
    _check(
        cache_key is None or (isinstance(cache_key, str) and cache_key != ""),
        "arrays.cache_key",
        "must be a non-empty string, or None",
        cache_key,
    )
    if slices is not None and not callable(slices):
        _check(
            isinstance(slices, Mapping) and set(slices) <= {"validation", "test"} and bool(slices),
            "arrays.slices",
            "must be a mapping of 'validation' and/or 'test' to one value per example, a callable returning one, "
            "or None",
            sorted(slices) if isinstance(slices, Mapping) else slices,
        )
        for split, values in slices.items():
            _check(
                hasattr(values, "__len__") and not isinstance(values, (str, bytes)),
                f"arrays.slices[{split!r}]",
                "must be a sequence of one value per example (a list, tuple or array)",
                values,
            )
    return Arrays(
        data=data,
        image_size=_image_size(image_size, "arrays.image_size"),
        num_classes=num_classes,
        cache_key=cache_key,
        slices=slices,
        class_names=names,
    )
