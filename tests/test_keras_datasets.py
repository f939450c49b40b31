"""`keras_dataset(...)` as collection sees it, the stratified split rule, and class names (no TensorFlow).

Loading the real files, training on them and the skip when they are missing:
`test_keras_datasets_tf.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import arrays, custom_backbone, experiment, feature_extraction, keras_dataset, min_test_accuracy
from harness.data import stratify
from harness.spec import KERAS_DATASETS, KerasDataset, SpecError
from harness.spec.datasets import has_test_split, num_classes

FASHION_NAMES = [
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
]


def _build(input_shape):  # never called: collection only
    raise AssertionError("built")


def test_defaults_and_the_cache_identity():
    dataset = keras_dataset("fashion_mnist")
    assert dataset == KerasDataset("fashion_mnist", (96, 96), 0.2, 0, None)
    assert dataset.identity == {
        "source": "keras",
        "name": "fashion_mnist",
        "validation_split": 0.2,
        "seed": 0,
        "train_size": None,
    }
    assert has_test_split(dataset) is True and num_classes(dataset) == 10
    # Whatever changes which images are in which split changes the identity; the image size is
    # keyed separately (`make_key(image_size=...)`).
    variants = [
        keras_dataset("mnist"),
        keras_dataset("fashion_mnist", validation_split=0.1),
        keras_dataset("fashion_mnist", seed=1),
        keras_dataset("fashion_mnist", train_size=1000),
    ]
    identities = [dataset.identity, *(v.identity for v in variants)]
    assert len({tuple(sorted(i.items())) for i in identities}) == 5
    assert keras_dataset("cifar10", image_size=(32, 48)).image_size == (32, 48)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"name": "fashion-mnist"},
            (
                "`keras_dataset.name` must be one of 'fashion_mnist', 'mnist', 'cifar10', 'cifar100' "
                "(a keras.datasets image data set). Received: name='fashion-mnist'"
            ),
        ),
        (
            {"name": "imdb"},
            (
                "`keras_dataset.name` must be one of 'fashion_mnist', 'mnist', 'cifar10', 'cifar100' "
                "(a keras.datasets image data set). Received: name='imdb'"
            ),
        ),
        (
            {"name": "mnist", "validation_split": 0},
            (
                "`keras_dataset.validation_split` must be a fraction in (0, 1) of the training images. "
                "Received: validation_split=0"
            ),
        ),
        (
            {"name": "mnist", "validation_split": 1.0},
            (
                "`keras_dataset.validation_split` must be a fraction in (0, 1) of the training images. "
                "Received: validation_split=1.0"
            ),
        ),
        (
            {"name": "mnist", "validation_split": "0.2"},
            (
                "`keras_dataset.validation_split` must be a fraction in (0, 1) of the training images. "
                "Received: validation_split='0.2'"
            ),
        ),
        (
            {"name": "mnist", "train_size": 0},
            "`keras_dataset.train_size` must be a positive integer. Received: train_size=0",
        ),
        (
            {"name": "mnist", "train_size": 1e3},
            "`keras_dataset.train_size` must be a positive integer. Received: train_size=1000.0",
        ),
        (
            {"name": "cifar10", "train_size": 50001},
            (
                "`keras_dataset.train_size` must be at most 50000 (the training images of cifar10), or None for all "
                "of them. Received: train_size=50001"
            ),
        ),
        (
            {"name": "fashion_mnist", "train_size": 49},
            (
                "`keras_dataset.train_size` must be at least 50, so that each of the 10 classes keeps training and "
                "validation images with validation_split=0.2. Received: train_size=49"
            ),
        ),
        (
            {"name": "cifar100", "train_size": 500, "validation_split": 0.1},
            (
                "`keras_dataset.train_size` must be at least 1000, so that each of the 100 classes keeps training "
                "and validation images with validation_split=0.1. Received: train_size=500"
            ),
        ),
        ({"name": "mnist", "seed": -1}, "`keras_dataset.seed` must be an integer in [0, 2**32) (NumPy's seed range)"),
        (
            {"name": "mnist", "image_size": 4},
            "`keras_dataset.image_size` must be an int or (height, width) of ints >= 8",
        ),
    ],
)
def test_spec_errors_name_field_expected_and_received(arguments, message):
    with pytest.raises(SpecError) as excinfo:
        keras_dataset(**arguments)
    assert str(excinfo.value).startswith(message)


def test_smallest_train_size_is_accepted():
    assert keras_dataset("fashion_mnist", train_size=50).train_size == 50
    assert keras_dataset("cifar100", train_size=200, validation_split=0.5).train_size == 200


def _experiment(dataset, **overrides):
    arguments = {
        "name": "keras_data",
        "dataset": dataset,
        "backbone": custom_backbone("never", _build),
        "phases": [feature_extraction(epochs=1)],
    }
    return experiment(**{**arguments, **overrides})


def test_an_experiment_takes_it_with_its_test_split_and_its_classes():
    built = _experiment(keras_dataset("cifar10", image_size=32), expect=[min_test_accuracy(0.5)])
    assert built.needs_test_split and built.image_size == (32, 32)
    with pytest.raises(SpecError, match=r"must name classes of the data set \(0 to 9\)"):
        _experiment(keras_dataset("mnist"), phases=[feature_extraction(epochs=1, class_weight={10: 2.0})])
    with pytest.raises(SpecError) as excinfo:
        _experiment(keras_dataset("mnist"), expect=[min_test_accuracy(0.5, slice="mono")])
    assert str(excinfo.value) == (
        "`min_test_accuracy.slice` needs a data set declared with slices (the feature whose values it names). "
        "keras_dataset(...) has no slices: use tfds_dataset(slices=...) or arrays(slices=...). "
        "Received: slice='mono' on a data set with slices=None"
    )


def test_documented_class_names():
    assert list(KERAS_DATASETS["fashion_mnist"].class_names or ()) == FASHION_NAMES
    assert list(KERAS_DATASETS["mnist"].class_names or ()) == [str(d) for d in range(10)]
    assert KERAS_DATASETS["cifar10"].class_names == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert KERAS_DATASETS["cifar100"].class_names is None  # read from the archive's `meta` file
    assert {name: info.num_classes for name, info in KERAS_DATASETS.items()} == {
        "fashion_mnist": 10,
        "mnist": 10,
        "cifar10": 10,
        "cifar100": 100,
    }


def test_building_a_keras_dataset_imports_no_tensorflow():
    code = (
        "import sys, harness\n"
        "harness.keras_dataset('cifar100', train_size=1000)\n"
        "harness.arrays({'train': ([], []), 'validation': ([], [])}, image_size=8, class_names=['a', 'b'])\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


# --------------------------------------------------------------------------- the stratified split rule


def test_quotas_are_proportional_with_the_largest_remainders():
    assert stratify.quotas(np.array([6000] * 10), 200).tolist() == [20] * 10
    # exact shares 3.33.., 3.33.., 3.33..: the remainders tie, the lower labels get the extra image.
    assert stratify.quotas(np.array([10, 10, 10]), 10).tolist() == [4, 3, 3]
    # shares 5.9, 3.05, 1.05: one image left over goes to class 0 (remainder 0.9).
    assert stratify.quotas(np.array([590, 305, 105]), 10).tolist() == [6, 3, 1]
    assert stratify.quotas(np.array([5, 7]), 12).tolist() == [5, 7]
    with pytest.raises(ValueError, match="a subset of 13 images of 12"):
        stratify.quotas(np.array([5, 7]), 13)


def test_held_out_rounds_halves_up():
    assert [stratify.held_out(n, 0.2) for n in (6000, 20, 7, 3, 2, 1)] == [1200, 4, 1, 1, 0, 0]
    assert stratify.held_out(5, 0.5) == 3  # 2.5 rounds up


def test_validation_is_the_same_fraction_of_every_class_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    np.random.default_rng(7).shuffle(labels)
    train, validation = stratify.split_indices(labels, validation_split=0.2, seed=3)
    assert np.bincount(labels[validation]).tolist() == [20, 10, 6, 4]
    assert np.bincount(labels[train]).tolist() == [80, 40, 24, 16]
    assert not set(train) & set(validation) and len(train) + len(validation) == len(labels)
    assert np.all(np.diff(train) > 0) and np.all(np.diff(validation) > 0)  # the data set's order
    again = stratify.split_indices(labels, validation_split=0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], validation)
    other = stratify.split_indices(labels, validation_split=0.2, seed=4)
    assert not np.array_equal(other[1], validation)


def test_the_rule_as_the_module_states_it():
    """Per class, in the seeded permutation's order: the first round(f * m) are validation."""
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 0])
    order = np.random.default_rng(5).permutation(len(labels))
    zeros, ones = order[labels[order] == 0], order[labels[order] == 1]
    train, validation = stratify.split_indices(labels, validation_split=0.25, seed=5)
    # class 0: 6 images, 1.5 -> 2 held out; class 1: 4 images, 1.0 -> 1.
    assert sorted(validation.tolist()) == sorted([*zeros[:2], *ones[:1]])
    assert sorted(train.tolist()) == sorted([*zeros[2:], *ones[1:]])


def test_a_subset_is_stratified_and_split_after():
    labels = np.repeat(np.arange(10), 600)
    train, validation = stratify.split_indices(labels, validation_split=0.2, seed=0, size=200)
    assert np.bincount(labels[train], minlength=10).tolist() == [16] * 10
    assert np.bincount(labels[validation], minlength=10).tolist() == [4] * 10
    # The subset's validation images are the first of each class in the same permutation as the full split's.
    _, full_validation = stratify.split_indices(labels, validation_split=0.2, seed=0)
    assert set(validation) <= set(full_validation)


def test_an_unbalanced_subset_keeps_proportions():
    labels = np.repeat(np.arange(3), [700, 200, 100])
    train, validation = stratify.split_indices(labels, validation_split=0.1, seed=1, size=100)
    kept = np.bincount(labels[np.concatenate([train, validation])]).tolist()
    assert kept == [70, 20, 10]
    assert np.bincount(labels[validation]).tolist() == [7, 2, 1]


# --------------------------------------------------------------------------- arrays(class_names=...)

_DATA = {"train": (np.zeros((4, 8, 8)), [0, 1, 0, 1]), "validation": (np.zeros((2, 8, 8)), [0, 1])}


def test_arrays_take_class_names():
    dataset = arrays(_DATA, image_size=8, class_names=["dark", "bright"])
    assert dataset.class_names == ("dark", "bright")
    assert num_classes(dataset) == 2
    assert "class_names" not in dataset.identity
    assert arrays(_DATA, image_size=8, num_classes=2, class_names=("a", "b")).class_names == ("a", "b")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"num_classes": 3, "class_names": ["dark", "bright"]},
            (
                "`arrays.class_names` must hold one name per class: num_classes=3, 2 names. "
                "Received: class_names=['dark', 'bright']"
            ),
        ),
        (
            {"class_names": ["dark", "dark"]},
            "`arrays.class_names` must name each class once: 'dark' repeated. Received: class_names=['dark', 'dark']",
        ),
        (
            {"class_names": "dark,bright"},
            (
                "`arrays.class_names` must be a list of at least two non-empty strings, label 0 first. "
                "Received: class_names='dark,bright'"
            ),
        ),
        (
            {"class_names": ["dark", 1]},
            (
                "`arrays.class_names` must be a list of at least two non-empty strings, label 0 first. "
                "Received: class_names=['dark', 1]"
            ),
        ),
    ],
)
def test_arrays_class_names_errors(arguments, message):
    with pytest.raises(SpecError) as excinfo:
        arrays(_DATA, image_size=8, **arguments)
    assert str(excinfo.value) == message
