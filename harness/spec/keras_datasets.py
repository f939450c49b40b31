"""Keras's own image data sets (`keras.datasets`), as the plain recipe loads them: `keras_dataset(...)`.

TensorFlow-free, as every spec module: what collection checks (the name, the fractions, the
subset's size) and what the reports name (the documented class names) live here;
`harness.data.keras_datasets` calls `keras.datasets.<name>.load_data()` and splits the arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.spec.validators import _check, _image_size, _is_number, _positive_int, _seed
from harness.spec.vocabulary import IMAGE


@dataclass(frozen=True)
class KerasDatasetInfo:
    """What the spec knows of one `keras.datasets` module without loading it.

    `class_names` is None where the names come with the data (CIFAR-100's `meta` file).
    """

    train_images: int
    test_images: int
    num_classes: int
    class_names: tuple[str, ...] | None


# The documented label names (the data sets' own pages, as `keras.datasets` and TFDS give them).
KERAS_DATASETS: dict[str, KerasDatasetInfo] = {
    "fashion_mnist": KerasDatasetInfo(
        60000,
        10000,
        10,
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "mnist": KerasDatasetInfo(60000, 10000, 10, tuple(str(digit) for digit in range(10))),
    "cifar10": KerasDatasetInfo(
        50000,
        10000,
        10,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
    # The 100 fine label names are read from the archive's `meta` file when the data is loaded.
    "cifar100": KerasDatasetInfo(50000, 10000, 100, None),
}

# Every `keras.applications` backbone accepts 96x96 (the largest minimum is Xception's 71), and
# MobileNet's ImageNet weights exist for it.
DEFAULT_IMAGE_SIZE = 96


@dataclass(frozen=True)
class KerasDataset:
    """A `keras.datasets` image data set: `load_data()`'s test set, and a seeded stratified
    validation fraction of its training set (`harness.data.stratify` states the rule).

    `train_size`, when given, is how many of the training images are used at all (a seeded
    stratified subset), before `validation_split` holds part of them out.
    """

    name: str
    image_size: tuple[int, int]
    validation_split: float = 0.2
    seed: int = 0
    train_size: int | None = None
    modality = IMAGE

    @property
    def identity(self) -> dict[str, Any]:
        """What decides which images are in which split, hence the cached features."""
        return {
            "source": "keras",
            "name": self.name,
            "validation_split": self.validation_split,
            "seed": self.seed,
            "train_size": self.train_size,
        }

    @property
    def info(self) -> KerasDatasetInfo:
        return KERAS_DATASETS[self.name]


def min_train_size(num_classes: int, validation_split: float) -> int:
    """The smallest `train_size` whose split can give every class of a balanced data set one
    training and one validation image."""
    return math.ceil(num_classes / min(validation_split, 1 - validation_split) - 1e-9)


def keras_dataset(
    name: str,
    *,
    image_size: int | tuple[int, int] = DEFAULT_IMAGE_SIZE,
    validation_split: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
) -> KerasDataset:
    """One of Keras's image data sets, loaded with `keras.datasets.<name>.load_data()` at run time.

    Keras downloads it once into its cache (`$KERAS_HOME/datasets/`, by default
    `~/.keras/datasets/`); offline, the files must be there, or the experiment is skipped with a
    reason naming them and where to put them.

    Args:
        name: "fashion_mnist", "mnist", "cifar10" or "cifar100" (its 100 fine labels).
        image_size: Images are resized to this (gray ones become RGB). Defaults to 96.
        validation_split: Fraction of the training images held out for validation, in (0, 1):
            per class the same fraction, drawn with `seed`. Defaults to 0.2.
        seed: Seed of the validation draw and of the `train_size` subset. Defaults to 0.
        train_size: How many training images to use (a seeded stratified subset, for quick
            experiments), before `validation_split` holds part of them out. Defaults to None: all.

    The test split is the data set's own test set (10,000 images), always whole.
    """
    _check(
        isinstance(name, str) and name in KERAS_DATASETS,
        "keras_dataset.name",
        f"must be one of {', '.join(map(repr, KERAS_DATASETS))} (a keras.datasets image data set)",
        name,
    )
    info = KERAS_DATASETS[name]
    _check(
        _is_number(validation_split) and 0 < validation_split < 1,
        "keras_dataset.validation_split",
        "must be a fraction in (0, 1) of the training images",
        validation_split,
    )
    if train_size is not None:
        _positive_int(train_size, "keras_dataset.train_size")
        _check(
            train_size <= info.train_images,
            "keras_dataset.train_size",
            f"must be at most {info.train_images} (the training images of {name}), or None for all of them",
            train_size,
        )
        minimum = min_train_size(info.num_classes, float(validation_split))
        _check(
            train_size >= minimum,
            "keras_dataset.train_size",
            f"must be at least {minimum}, so that each of the {info.num_classes} classes keeps training and "
            f"validation images with validation_split={validation_split}",
            train_size,
        )
    return KerasDataset(
        name=name,
        image_size=_image_size(image_size, "keras_dataset.image_size"),
        validation_split=float(validation_split),
        seed=_seed(seed, "keras_dataset.seed"),
        train_size=None if train_size is None else int(train_size),
    )
