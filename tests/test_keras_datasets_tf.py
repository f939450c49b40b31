"""`keras_dataset(...)` loaded: the real Fashion-MNIST files offline, and the skip when files are missing.

The real files come from Debian's package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist`),
copied into a temporary `KERAS_HOME`; without the package those tests skip. No test reaches the
network: every download fails as it does without DNS (`no_network`).
"""

from __future__ import annotations

import pickle
import shutil
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from tiny_models import tiny_backbone
from tiny_specs import PREAMBLE

from harness import spec

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from keras.src.utils import file_utils  # noqa: E402

from harness.data import keras_datasets, loading, stratify  # noqa: E402

pytestmark = pytest.mark.slow  # loads through tf.data; one test trains

DEBIAN = Path(keras_datasets.DEBIAN_FASHION_MNIST)
FASHION_FILES = list(keras_datasets.KERAS_FILES["fashion_mnist"].files)
FASHION_NAMES = list(spec.KERAS_DATASETS["fashion_mnist"].class_names or ())


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every download fails as it does without DNS; the URLs asked for are recorded."""
    calls = []

    def urlretrieve(url, filename=None, reporthook=None, data=None):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)
    return calls


@pytest.fixture(scope="module")
def fashion_files(tmp_path_factory):
    """A Keras home whose cache holds the four Fashion-MNIST files of the Debian package."""
    missing = [f for f in FASHION_FILES if not (DEBIAN / f).is_file()]
    if missing:
        pytest.skip(
            f"Fashion-MNIST is not installed: {DEBIAN} lacks {', '.join(missing)} "
            "(`apt-get install dataset-fashion-mnist`)"
        )
    home = tmp_path_factory.mktemp("keras_home")
    folder = home / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in FASHION_FILES:
        shutil.copyfile(DEBIAN / name, folder / name)
    return home


@pytest.fixture
def fashion_home(fashion_files, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(fashion_files))
    return fashion_files


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    home = tmp_path / "empty_keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def _raw_fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of the Debian files, read as the idx format says (not through Keras)."""
    import gzip

    prefix = "train" if split == "train" else "t10k"
    with gzip.open(DEBIAN / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(DEBIAN / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(len(labels), 28, 28)
    return images, labels


def _labels(data, split: str) -> np.ndarray:
    """`data.labels(split)`, read in batches (one element at a time takes seconds for 48,000)."""
    return np.concatenate([labels for _, labels in data.split(split).batch(8192).as_numpy_iterator()])


def test_real_fashion_mnist_offline_sizes_and_stratified_validation(fashion_home, no_network):
    data = loading.load(spec.keras_dataset("fashion_mnist", image_size=8))
    assert no_network == []  # read from the cache, nothing downloaded
    assert data.sizes == {"train": 48000, "validation": 12000, "test": 10000}
    assert data.num_classes == 10 and data.class_names == FASHION_NAMES
    assert np.bincount(_labels(data, "train")).tolist() == [4800] * 10
    assert np.bincount(_labels(data, "validation")).tolist() == [1200] * 10
    assert np.bincount(_labels(data, "test")).tolist() == [1000] * 10
    # The validation images are the rule's (`harness.data.stratify`), in the data set's order.
    _, raw_labels = _raw_fashion("train")
    _, validation = stratify.split_indices(raw_labels, validation_split=0.2, seed=0)
    assert np.array_equal(_labels(data, "validation"), raw_labels[validation])
    assert loading.describe(data.dataset) == "Keras data set 'fashion_mnist'"


def test_gray_becomes_rgb_and_the_test_set_is_the_data_sets_own(fashion_home):
    data = loading.load(spec.keras_dataset("fashion_mnist", image_size=28, train_size=500, seed=3))
    assert data.sizes == {"train": 400, "validation": 100, "test": 10000}
    raw_images, raw_labels = _raw_fashion("test")
    images = np.stack([image for image, _ in data.test.take(5).as_numpy_iterator()])
    assert images.shape == (5, 28, 28, 3) and images.dtype == np.float32
    for channel in range(3):  # at the native size, the pixels themselves on every channel
        assert np.array_equal(images[..., channel], raw_images[:5].astype(np.float32))
    assert np.array_equal(_labels(data, "test"), raw_labels.astype(np.int32))
    assert next(iter(data.train))[1].dtype == tf.int32


def test_train_size_subsets_are_stratified_and_seeded(fashion_home):
    def validation_digests(seed):
        data = loading.load(spec.keras_dataset("fashion_mnist", image_size=8, train_size=1000, seed=seed))
        assert np.bincount(data.labels("train")).tolist() == [80] * 10
        assert np.bincount(data.labels("validation")).tolist() == [20] * 10
        return data.digests("validation")

    first, again, other = validation_digests(0), validation_digests(0), validation_digests(1)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_tiny_training_run_reports_the_class_names(fashion_home):
    from harness import engine

    experiment = spec.experiment(
        name="fashion_tiny",
        dataset=spec.keras_dataset("fashion_mnist", image_size=16, train_size=200),
        backbone=spec.custom_backbone("tiny", tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=[spec.feature_extraction(epochs=1, learning_rate=1e-2, batch_size=32)],
        expect=[spec.min_test_accuracy(0.0)],
    )
    result = engine.run(experiment, engine.RunOptions()).result
    assert result.dataset == "Keras data set 'fashion_mnist'"
    assert result.class_names == FASHION_NAMES
    assert result.split_sizes == {"train": 160, "validation": 40, "test": 10000}
    assert result.confusion_split == "test"
    assert list(result.class_metrics["test"]) == FASHION_NAMES
    assert result.phases[0].test_accuracy is not None


def test_missing_files_are_unavailable_naming_the_files_and_the_folder(empty_home, no_network):
    with pytest.raises(keras_datasets.DataUnavailableError) as excinfo:
        loading.load(spec.keras_dataset("fashion_mnist"))
    folder = empty_home / "datasets" / "fashion-mnist"
    assert str(excinfo.value) == (
        "keras.datasets.fashion_mnist is not in Keras's cache and could not be downloaded (URL fetch failure on "
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/train-labels-idx1-ubyte.gz: None -- "
        "[Errno -2] Name or service not known). Put train-labels-idx1-ubyte.gz, train-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
        f"(from https://storage.googleapis.com/tensorflow/tf-keras-datasets/) in {folder}/, where Keras looks "
        "($KERAS_HOME/datasets/, by default ~/.keras/datasets/). On Debian or Ubuntu, offline: "
        f"`apt-get install dataset-fashion-mnist`, then `mkdir -p {folder} && cp /usr/share/datasets/fashion-mnist/*.gz "
        f"{folder}/`. Received: keras_dataset('fashion_mnist')"
    )
    assert no_network == ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/train-labels-idx1-ubyte.gz"]
    assert isinstance(excinfo.value, loading.DataError)  # a data error that `reported` turns into a skip
    with pytest.raises(keras_datasets.DataUnavailableError) as excinfo:
        loading.load(spec.keras_dataset("cifar10"))
    archive = empty_home / "datasets" / "cifar-10-batches-py-target_archive"
    assert (
        f"Download, where there is network access, and save https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
        f"as {archive}: where Keras looks" in str(excinfo.value)
    )


def test_a_file_that_fails_keras_hash_check_is_unavailable_too(empty_home, no_network):
    (empty_home / "datasets").mkdir(parents=True)
    (empty_home / "datasets" / "mnist.npz").write_bytes(b"not the file")
    with pytest.raises(keras_datasets.DataUnavailableError, match=r"save https://storage\.googleapis\.com/"):
        loading.load(spec.keras_dataset("mnist"))
    assert no_network == ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"]


def test_the_files_table_matches_what_keras_asks_for(monkeypatch):
    """`KERAS_FILES` against the `get_file` calls of the installed Keras's loaders (files as Keras names them)."""
    import importlib

    for name, expected in keras_datasets.KERAS_FILES.items():
        module = importlib.import_module(f"keras.src.datasets.{name}")
        calls = []

        def record(fname=None, origin=None, cache_subdir="datasets", extract=False, calls=calls, **kwargs):
            calls.append((fname, origin, cache_subdir, extract))
            return "/nonexistent/keras-datasets-test"

        monkeypatch.setattr(module, "get_file", record)
        with pytest.raises(Exception):  # noqa: B017, PT011 - the loader then reads the made-up path
            module.load_data(label_mode="fine") if name == "cifar100" else module.load_data()
        files = {}
        for fname, origin, subdir, extract in calls:
            assert subdir == expected.subdir, name
            # keras/src/utils/file_utils.py `get_file`: an extracted archive is kept as `<fname>_archive`.
            files[f"{fname}_archive" if extract and "." not in fname else fname] = origin
        assert files == expected.files, name


def test_cifar100_names_come_from_the_archives_meta_file(tmp_path):
    extracted = tmp_path / "cifar-100-python-target"
    (extracted / "cifar-100-python").mkdir(parents=True)
    names = [f"class_{i}".encode() for i in range(100)]
    meta = extracted / "cifar-100-python" / "meta"
    meta.write_bytes(pickle.dumps({b"fine_label_names": names, b"coarse_label_names": names[:20]}))
    assert keras_datasets.cifar100_names(str(extracted), 100) == [n.decode() for n in names]
    meta.write_bytes(b"")
    with pytest.raises(loading.DataError, match="CIFAR-100's label names could not be read from"):
        keras_datasets.cifar100_names(str(extracted), 100)


def test_arrays_class_names_reach_the_loaded_data():
    x = np.zeros((4, 8, 8), dtype=np.float32)
    data = loading.load(
        spec.arrays({"train": (x, [0, 1, 0, 1]), "validation": (x[:2], [0, 0])}, image_size=8, class_names=["a", "b"])
    )
    assert data.class_names == ["a", "b"] and data.num_classes == 2
    with pytest.raises(loading.DataError) as excinfo:
        loading.load(
            spec.arrays(
                {"train": (x, [0, 1, 2, 1]), "validation": (x[:2], [0, 1])}, image_size=8, class_names=["a", "b"]
            )
        )
    assert str(excinfo.value) == (
        "`arrays(class_names=...)` must name every class: the labels run to 2, 2 names are given. "
        "Received: class_names=['a', 'b']"
    )


def test_a_spec_on_missing_files_is_skipped_with_the_reason(spec_pytester, empty_home, no_network):
    spec_pytester.makepyfile(
        **{
            "specs/fashion": PREAMBLE
            + "\n\nexperiment(\n"
            + "    name='fashion_offline',\n"
            + "    dataset=keras_dataset('fashion_mnist', image_size=16, train_size=200),\n"
            + "    backbone=custom_backbone('tiny', tiny_backbone),\n"
            + "    phases=[feature_extraction(epochs=1)],\n"
            + ")\n"
        }
    )
    result = spec_pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1)
    folder = empty_home / "datasets" / "fashion-mnist"
    result.stdout.fnmatch_lines(
        [
            (
                "SKIPPED [[]1[]] *fashion_offline: keras.datasets.fashion_mnist is not in Keras's cache and could not be "
                f"downloaded (URL fetch failure on *Name or service not known). Put train-labels-idx1-ubyte.gz, * in {folder}/*"
                "`apt-get install dataset-fashion-mnist`*"
            ),
        ]
    )
