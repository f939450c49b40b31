"""TensorFlow Datasets by name: images, or texts for a text backbone."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec.validators import SpecError, _check, _hold_out, _image_size, _sequence_length, _split, splits_overlap
from harness.spec.vocabulary import IMAGE, TEXT

# What `tfds_dataset` reads when the builder declares no `supervised_keys`.
DEFAULT_IMAGE_KEY = "image"
DEFAULT_TEXT_KEY = "text"
DEFAULT_LABEL_KEY = "label"


@dataclass(frozen=True)
class TfdsDataset:
    """A TensorFlow Datasets data set, loaded with `tfds.builder(name).as_dataset(split=...)`.

    `image_key` / `label_key` None mean the builder's `supervised_keys` (else "image" / "label"),
    resolved when the data is loaded (`harness.data.loading`, see `with_keys`). `slices` names a
    feature whose value per example slices the validation and test accuracies; it is no part of
    `identity` (the images, hence the cached features, are the same with or without it).
    """

    name: str
    image_size: tuple[int, int] | None = None
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    image_key: str | None = None
    label_key: str | None = None
    data_dir: str | None = None
    slices: str | None = None
    sequence_length: int | None = None
    text_key: str | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """What the cached inputs depend on (with the image or text key as resolved, once loaded)."""
        key = {"text_key": self.text_key} if self.modality == TEXT else {"image_key": self.image_key}
        return {"source": "tfds", "name": self.name, **key, "data_dir": self.data_dir}

    @property
    def modality(self) -> str | None:
        """ "text" with a sequence length, "image" with an image size; None until `experiment` sizes it."""
        return sized_modality(self)

    @property
    def splits(self) -> dict[str, str | None]:
        """The TFDS split string of each role ("train", "validation", "test"); None where none is declared."""
        return {"train": self.train_split, "validation": self.validation_split, "test": self.test_split}

    def with_keys(self, input_key: str, label_key: str) -> TfdsDataset:
        """The data set with its input (image or text) and label keys resolved."""
        if self.modality == TEXT:
            return dataclasses.replace(self, text_key=input_key, label_key=label_key)
        return dataclasses.replace(self, image_key=input_key, label_key=label_key)

    @property
    def input_key(self) -> str | None:
        """The feature the inputs are read from: the text key of a text data set, else the image key."""
        return self.text_key if self.modality == TEXT else self.image_key


def tfds_dataset(
    name: str,
    *,
    image_size: int | tuple[int, int] | None = None,
    train_split: str = "train",
    validation_split: str | float = "validation",
    test_split: str | None = None,
    image_key: str | None = None,
    label_key: str | None = None,
    data_dir: str | None = None,
    slices: str | None = None,
    sequence_length: int | None = None,
    text_key: str | None = None,
) -> TfdsDataset:
    """A TFDS data set by name, with split slicing ("train[:80%]"): images, or texts for a text backbone.

    Args:
        name: The TFDS name (`"elpv"`, `"tf_flowers"`, `"imdb_reviews"`, `"mnist:3.0.1"`).
        image_size: Images are resized to this (int or (height, width)). Defaults to None: 224
            for an image backbone (a text backbone takes none).
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
        sequence_length: Tokens per text, the special tokens included (a text data set).
            Defaults to None: 128 for a text backbone (an image backbone takes none).
        text_key: Feature name of the text (a text data set). Defaults to None: the builder's
            `supervised_keys`, else "text".

    No two splits may share examples: identical or overlapping split strings are refused.
    """
    _check(
        isinstance(name, str) and re.fullmatch(r"[a-z0-9_]+(/[\w.-]+)?(:[\d.*]+)?", name or "") is not None,
        "tfds_dataset.name",
        "must be a TFDS data set name such as 'elpv' or 'tf_flowers'",
        name,
    )
    for key, value in (("image_key", image_key), ("label_key", label_key), ("text_key", text_key)):
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
    sizes = one_size("tfds_dataset", image_size, sequence_length)
    _check(
        image_key is None or sizes["sequence_length"] is None,
        "tfds_dataset.image_key",
        "is for images; a text data set names its text feature with text_key",
        image_key,
    )
    _check(
        text_key is None or sizes["image_size"] is None,
        "tfds_dataset.text_key",
        "is for texts; an image data set names its image feature with image_key",
        text_key,
    )
    return TfdsDataset(
        name=name,
        train_split=train,
        validation_split=validation,
        test_split=test,
        image_key=image_key,
        label_key=label_key,
        data_dir=None if data_dir is None else str(data_dir),
        slices=slices,
        text_key=text_key,
        **sizes,
    )


def one_size(kind: str, image_size: Any, sequence_length: Any) -> dict[str, Any]:
    """The image size or the sequence length a data set of either modality is given, never both."""
    if image_size is not None and sequence_length is not None:
        raise SpecError(
            f"{kind}.sequence_length",
            "must not be given with image_size: images are sized by image_size, texts by sequence_length",
            sequence_length,
            shown=f"image_size={image_size!r}, sequence_length={sequence_length!r}",
        )
    return {
        "image_size": None if image_size is None else _image_size(image_size, f"{kind}.image_size"),
        "sequence_length": None
        if sequence_length is None
        else _sequence_length(sequence_length, f"{kind}.sequence_length"),
    }


def sized_modality(dataset: Any) -> str | None:
    """ "text" for a data set given a sequence length, "image" for one given an image size, else None."""
    if dataset.sequence_length is not None:
        return TEXT
    return IMAGE if dataset.image_size is not None else None
