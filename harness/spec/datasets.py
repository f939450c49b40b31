"""Data sets: TFDS by name, a folder of class sub-folders, in-memory arrays (Keras's own: `keras_datasets`).

Held-out data must be held out: overlapping split strings and a test folder inside the training
folder are refused here; examples shared by two splits are found before training
(`harness.data.checks`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec.keras_datasets import KerasDataset
from harness.spec.registry import _caller_dir
from harness.spec.text_datasets import TextCsv, TextFolder
from harness.spec.tfds import TfdsDataset, one_size, sized_modality
from harness.spec.validators import (
    SpecError,
    _check,
    _class_names,
    _folder,
    _image_size,
    _is_number,
    _positive_int,
    _seed,
    class_folders,
)
from harness.spec.vocabulary import BAD_FILES, DEFAULT_IMAGE_SIZE, DEFAULT_SEQUENCE_LENGTH, IMAGE, TEXT

# The name `arrays(slices=...)` values go by in reports and check names.
ARRAYS_SLICE_FEATURE = "slice"


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
    modality = IMAGE

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
    image_size: tuple[int, int] | None = None
    num_classes: int | None = None
    cache_key: str | None = None
    slices: Mapping[str, Sequence[Any]] | Callable[[], Mapping[str, Sequence[Any]]] | None = None
    class_names: tuple[str, ...] | None = None
    sequence_length: int | None = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"source": "arrays", "cache_key": self.cache_key}

    @property
    def modality(self) -> str | None:
        """ "text" with a sequence length, "image" with an image size; None until `experiment` sizes it."""
        return sized_modality(self)


Dataset = TfdsDataset | ImageFolder | Arrays | KerasDataset | TextFolder | TextCsv
# The data sets that read either modality, sized by the experiment's backbone (`sized_for`).
EITHER = (TfdsDataset, Arrays)


def sized_for(dataset: Dataset, modality: str) -> Dataset:
    """`dataset` as an experiment on a `modality` backbone reads it: a TFDS data set or arrays that
    give neither an image size nor a sequence length get the modality's default (arrays of images
    must give their size). Raises `SpecError` where the data set is of the other modality."""
    if not isinstance(dataset, EITHER) or dataset.modality is not None:
        return dataset
    if modality == TEXT:
        return dataclasses.replace(dataset, sequence_length=DEFAULT_SEQUENCE_LENGTH)
    if isinstance(dataset, Arrays):
        raise SpecError("arrays.image_size", "is needed for an image backbone (the size images are resized to)", None)
    return dataclasses.replace(dataset, image_size=(DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE))


def input_size(dataset: Dataset) -> tuple[int, int] | int:
    """What `dataset` is sized to: its image size, or its texts' tokens (`sequence_length`), once sized (`sized_for`)."""
    if isinstance(dataset, (ImageFolder, KerasDataset)):
        return dataset.image_size
    if isinstance(dataset, (TextFolder, TextCsv)):
        return dataset.sequence_length
    if dataset.image_size is not None:
        return dataset.image_size
    if dataset.sequence_length is not None:
        return dataset.sequence_length
    raise ValueError(f"{type(dataset).__name__} is not sized yet: give it image_size or sequence_length")


def has_test_split(dataset: Dataset) -> bool | None:
    """Whether `dataset` declares a test split; None when only loading the data tells (arrays from a callable)."""
    if isinstance(dataset, TfdsDataset):
        return dataset.test_split is not None
    if isinstance(dataset, (ImageFolder, TextFolder, TextCsv)):
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
    if isinstance(dataset, (ImageFolder, TextFolder)):
        return len(class_folders(dataset.path))
    if isinstance(dataset, Arrays):
        return dataset.num_classes or (len(dataset.class_names) if dataset.class_names else None)
    if isinstance(dataset, KerasDataset):
        return dataset.info.num_classes
    return None


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
    image_size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    cache_key: str | None = None,
    slices: Mapping[str, Sequence[Any]] | Callable[[], Mapping[str, Sequence[Any]]] | None = None,
    class_names: Sequence[str] | None = None,
    sequence_length: int | None = None,
) -> Arrays:
    """In-memory arrays or lists of texts: `{"train": (x, y), "validation": (x, y), "test": ...}`.

    For images, `x` is an array `(n, height, width[, channels])` in 0..255; for a text backbone,
    `x` is a list (or array) of strings. `y` holds integer labels.

    Args:
        data: The mapping, or a zero-argument callable returning it (so importing the spec stays
            cheap).
        image_size: Images are resized to this; needed for an image backbone. Defaults to None.
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
        sequence_length: Tokens per text, the special tokens included (texts). Defaults to None:
            128 for a text backbone.
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
        num_classes=num_classes,
        cache_key=cache_key,
        slices=slices,
        class_names=names,
        **one_size("arrays", image_size, sequence_length),
    )
