"""Loads a `keras_dataset(...)`: `keras.datasets.<name>.load_data()`, then the seeded stratified splits.

Keras's `get_file` reads its cache, `$KERAS_HOME/datasets/` (by default `~/.keras/datasets/`),
and downloads what is missing. Keras reads `KERAS_HOME` once, when it is imported; here it is
read at each load (as the backbones read it, `harness.backbones.keras_apps`), so a
`KERAS_HOME` set later is honoured. A download may block each socket operation for at most
`DOWNLOAD_SOCKET_TIMEOUT_S`; one that fails raises `DataUnavailableError` (the experiment is
skipped) naming the files and the folder to put them in.

One private Keras name is touched, in one place: the `get_file` each `keras.src.datasets`
module imported, wrapped while `load_data` runs (`_keras_cache`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from harness import locks
from harness.backbones.keras_apps import (
    DOWNLOAD_SOCKET_TIMEOUT_S,
    _download_dir,
    _keras_home,
    _prepared_home,
    _socket_timeout,
)
from harness.data import stratify
from harness.data.errors import DataError, DataUnavailableError
from harness.spec.keras_datasets import KerasDataset

_TF_KERAS_DATASETS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_MNIST_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
# Where Debian's and Ubuntu's package `dataset-fashion-mnist` installs the four files above.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@dataclass(frozen=True)
class KerasFiles:
    """What `keras.datasets.<name>.load_data()` reads from Keras's cache, and where Keras downloads it.

    `subdir` is `get_file`'s `cache_subdir`; `files` maps each file's name in that folder to its
    origin. For CIFAR, Keras 3 keeps the downloaded `.tar.gz` as `<fname>_archive` and extracts it
    again at every load (keras/src/utils/file_utils.py `get_file` with `extract=True`).
    """

    subdir: str
    files: dict[str, str]


# As keras/src/datasets/{fashion_mnist,mnist,cifar10,cifar100}.py call `get_file` (checked by
# tests/test_keras_datasets.py::test_the_files_table_matches_what_keras_asks_for).
KERAS_FILES: dict[str, KerasFiles] = {
    "fashion_mnist": KerasFiles(
        os.path.join("datasets", "fashion-mnist"), {f: _TF_KERAS_DATASETS + f for f in _FASHION_MNIST_FILES}
    ),
    "mnist": KerasFiles("datasets", {"mnist.npz": _TF_KERAS_DATASETS + "mnist.npz"}),
    "cifar10": KerasFiles(
        "datasets", {"cifar-10-batches-py-target_archive": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"}
    ),
    "cifar100": KerasFiles(
        "datasets", {"cifar-100-python-target_archive": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"}
    ),
}


def keras_folder(name: str, home: str | None = None) -> str:
    """The folder where Keras looks for data set `name`'s files (under `KERAS_HOME`, as read now)."""
    return _download_dir(_keras_home() if home is None else home, KERAS_FILES[name].subdir)


def missing_files(name: str, home: str | None = None) -> list[str]:
    """The files of data set `name` that are not in Keras's cache, in the order Keras reads them."""
    folder = keras_folder(name, home)
    return [f for f in KERAS_FILES[name].files if not os.path.isfile(os.path.join(folder, f))]


def unavailable_message(name: str, folder: str, missing: list[str], error: BaseException) -> str:
    """Why data set `name` cannot be had, and how to put its files where Keras reads them."""
    origins = KERAS_FILES[name].files
    where = "where Keras looks ($KERAS_HOME/datasets/, by default ~/.keras/datasets/)"
    if name == "fashion_mnist":
        how = (
            f"Put {', '.join(missing)} (from {_TF_KERAS_DATASETS}) in {folder}/, {where}. On Debian or Ubuntu, "
            f"offline: `apt-get install dataset-fashion-mnist`, then `mkdir -p {folder} && cp "
            f"{DEBIAN_FASHION_MNIST}/*.gz {folder}/`."
        )
    else:
        files = "; ".join(f"{origins[f]} as {os.path.join(folder, f)}" for f in missing)
        how = f"Download, where there is network access, and save {files}: {where}."
    return (
        f"keras.datasets.{name} is not in Keras's cache and could not be downloaded ({_first_line(error)}). "
        f"{how} Received: keras_dataset({name!r})"
    )


def load_keras(dataset: KerasDataset) -> tuple[dict[str, tf.data.Dataset], int, list[str]]:
    """The train, validation and test splits of `dataset` (unprepared), its class count and names."""
    (x_train, y_train), (x_test, y_test), extracted = _load_data(dataset.name)
    info = dataset.info
    y_train, y_test = (np.asarray(y, dtype=np.int64).reshape(-1) for y in (y_train, y_test))  # CIFAR: (n, 1)
    for role, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y) or x.ndim not in (3, 4) or len(y) == 0 or y.min() < 0 or y.max() >= info.num_classes:
            raise DataError(
                f"keras.datasets.{dataset.name}.load_data() gave a {role} set that is not {info.num_classes}-class "
                f"images: images {x.shape}, labels {y.shape} in [{y.min(initial=0)}, {y.max(initial=0)}]. "
                f"Remove its files from {keras_folder(dataset.name)} so that Keras downloads them again."
            )
    train, validation = stratify.split_indices(
        y_train, validation_split=dataset.validation_split, seed=dataset.seed, size=dataset.train_size
    )
    _check_every_class_in_both(dataset, y_train[train], y_train[validation])
    splits = {
        "train": _arrays(x_train[train], y_train[train]),
        "validation": _arrays(x_train[validation], y_train[validation]),
        "test": _arrays(x_test, y_test),
    }
    names = list(info.class_names) if info.class_names is not None else cifar100_names(extracted, info.num_classes)
    return splits, info.num_classes, names


def _arrays(images: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))


def _check_every_class_in_both(dataset: KerasDataset, train: np.ndarray, validation: np.ndarray) -> None:
    """Every class keeps training and validation images (a small `train_size` of an unbalanced set may not)."""
    classes = dataset.info.num_classes
    counts = {"train": np.bincount(train, minlength=classes), "validation": np.bincount(validation, minlength=classes)}
    empty = [f"class {c} ({role})" for role, n in counts.items() for c in np.flatnonzero(n == 0).tolist()]
    if empty:
        raise DataError(
            f"The split of keras_dataset({dataset.name!r}) leaves {len(empty)} class split"
            f"{'s' if len(empty) != 1 else ''} without images: {', '.join(empty[:5])}. Give a larger train_size "
            f"or a validation_split nearer 0.5. Received: train_size={dataset.train_size}, "
            f"validation_split={dataset.validation_split}"
        )


def _load_data(name: str) -> tuple[tuple[Any, Any], tuple[Any, Any], str | None]:
    """`keras.datasets.<name>.load_data()` (CIFAR-100 with its fine labels) on Keras's cache as
    `KERAS_HOME` names it now; also the folder CIFAR's archive was extracted to (None for the others)."""
    module = importlib.import_module(f"keras.src.datasets.{name}")
    home = _prepared_home(_keras_home())
    returned: list[str] = []
    # Keras downloads and extracts into its cache unguarded: one process at a time (xdist workers, other sessions).
    with locks.held(f"keras-datasets-{home}-{name}"), _keras_cache(module, name, home, returned):
        train, test = module.load_data(label_mode="fine") if name == "cifar100" else module.load_data()
    return train, test, returned[-1] if name.startswith("cifar") and returned else None


@contextlib.contextmanager
def _keras_cache(module: Any, name: str, home: str, returned: list[str]) -> Iterator[None]:
    """Points the data set module's `get_file` at `home` and bounds its downloads; a file it cannot
    obtain raises `DataUnavailableError` naming every file missing from the cache."""
    real_get_file = module.get_file
    missing = missing_files(name, home)  # before Keras creates the folders or starts a download

    def get_file(fname: Any = None, origin: Any = None, *args: Any, **kwargs: Any) -> str:
        if kwargs.get("cache_dir") is None:
            kwargs["cache_dir"] = home
        try:
            with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
                path = str(real_get_file(fname, origin, *args, **kwargs))
        except Exception as error:  # Keras raises bare `Exception` for URL failures
            shown = missing or list(KERAS_FILES[name].files)  # none missing: a file failed its hash check
            raise DataUnavailableError(unavailable_message(name, keras_folder(name, home), shown, error)) from error
        returned.append(path)
        return path

    module.get_file = get_file
    try:
        yield
    finally:
        module.get_file = real_get_file


def cifar100_names(extracted: str | None, num_classes: int) -> list[str]:
    """CIFAR-100's fine label names, from the archive's own `meta` file (`fine_label_names`)."""
    meta = os.path.join(extracted or "", "cifar-100-python", "meta")
    try:
        with open(meta, "rb") as file:
            found = pickle.load(file, encoding="bytes")  # the archive Keras itself unpickles
        names = found.get(b"fine_label_names", found.get("fine_label_names"))
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    except (OSError, pickle.UnpicklingError, AttributeError, TypeError, EOFError) as error:
        raise DataError(
            f"CIFAR-100's label names could not be read from {meta}: {_first_line(error)}. Remove the "
            f"archive from {os.path.dirname(os.path.dirname(meta))} so that Keras downloads it again."
        ) from None
    if len(names) != num_classes:
        raise DataError(f"CIFAR-100's {meta} names {len(names)} fine labels, not {num_classes}.")
    return names


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
