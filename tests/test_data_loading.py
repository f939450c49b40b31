"""Data sets as the engine sees them: TFDS by name (download faked), image folders, arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness import spec

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from harness.data import loading  # noqa: E402

pytestmark = pytest.mark.slow  # loads through tf.data; two tests train


def test_tfds_by_name_with_the_download_faked_and_gray_expanded_to_rgb():
    # The real `tfds.load(name)` path, with TFDS's own mock standing in for download and preparation.
    dataset = spec.tfds_dataset("mnist", image_size=32, validation_split="test")
    with tfds.testing.mock_data(num_examples=12):
        data = loading.load(dataset)
    assert data.num_classes == 10
    assert data.class_names == [str(i) for i in range(10)]
    assert data.sizes == {"train": 12, "validation": 12}
    image, label = next(iter(data.train))
    assert image.shape == (32, 32, 3) and image.dtype == tf.float32
    assert label.dtype == tf.int32
    assert np.array_equal(image[..., 0], image[..., 2])  # gray copied to three channels
    assert float(tf.reduce_min(image)) >= 0 and float(tf.reduce_max(image)) <= 255


@pytest.fixture(scope="module")
def elpv_fake_dir(tmp_path_factory):
    """The shipped ELPV builder prepared from the tiny fake files (19 train, 5 validation, 8 test)."""
    from pathlib import Path

    import harness.data.datasets.elpv  # noqa: F401  (registers "elpv")

    data_dir = tmp_path_factory.mktemp("tfds")
    manual = Path(__file__).parent / "fake_data" / "elpv"
    tfds.builder("elpv", data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
    )
    return str(data_dir)


def test_tfds_split_slicing_on_the_shipped_builder(elpv_fake_dir):
    dataset = spec.tfds_dataset(
        "elpv",
        image_size=24,
        label_key="label",
        data_dir=elpv_fake_dir,
        train_split="train[:50%]+test",
        validation_split="train[50%:]",
        test_split="validation",
    )
    data = loading.load(dataset)
    assert data.sizes == {"train": 10 + 8, "validation": 9, "test": 5}
    assert data.num_classes == 4
    assert next(iter(data.validation))[0].shape == (24, 24, 3)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "no_such_dataset_xyz"}, "TFDS has no data set named 'no_such_dataset_xyz'"),
        ({"label_key": "digit"}, "has no feature 'digit'"),
        ({"label_key": "defect_probability"}, "is not a class label"),
        ({"validation_split": "valid"}, "has no split 'valid'"),
    ],
)
def test_tfds_errors_name_what_to_fix(elpv_fake_dir, arguments, message):
    with pytest.raises(loading.DataError, match=message):
        loading.load(spec.tfds_dataset(**{"name": "elpv", "image_size": 16, "data_dir": elpv_fake_dir, **arguments}))


def test_image_folder_mixed_modes_and_sizes_resized_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for label, mode in (("cracked", "L"), ("intact", "RGB")):
        (tmp_path / label).mkdir()
        for i in range(10):
            shape = (20 + i, 30) if mode == "L" else (25, 18 + i, 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(tmp_path / label / f"{i}.png")
    data = loading.load(spec.image_folder(str(tmp_path), image_size=16, validation_split=0.25))
    assert data.class_names == ["cracked", "intact"]
    assert data.sizes == {"train": 15, "validation": 5}
    assert data.test is None
    images = np.stack([image for image, _ in data.train.as_numpy_iterator()])
    assert images.shape == (15, 16, 16, 3)
    assert sorted(set(data.labels("train")) | set(data.labels("validation"))) == [0, 1]


def test_arrays_from_a_callable_count_classes_and_reject_bad_shapes():
    x = np.zeros((6, 8, 8), dtype=np.float32)  # gray, no channel axis
    data = loading.load(
        spec.arrays(lambda: {"train": (x, np.array([0, 1, 2, 0, 1, 2])), "validation": (x[:2], [0, 2])}, image_size=8)
    )
    assert data.num_classes == 3
    assert next(iter(data.train))[0].shape == (8, 8, 3)
    with pytest.raises(loading.DataError, match="must be \\(images"):
        loading.load(spec.arrays({"train": (x, [0, 1]), "validation": (x, [0] * 6)}, image_size=8))


def _small_backbone(input_shape):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, name="block_1_conv")(x)
    x = keras.layers.Conv2D(4, 3, name="block_2_conv")(x)
    return keras.Model(inputs, x, name="small")


@pytest.mark.parametrize(
    ("augmentation", "views"), [((), ()), ((spec.dihedral(turns=False),), (4,))], ids=["no-views", "dihedral"]
)
def test_cached_phases_on_a_tfds_data_set_with_a_test_split(elpv_fake_dir, tmp_path, augmentation, views):
    """Every split goes through the cache in one pass; a second run reads it back, same figures.

    With `dihedral()` the fine-tuning entry keeps the activations of every view of the training images.
    """
    from harness import engine
    from harness.cache import FeatureCache

    experiment = spec.experiment(
        name="small_elpv",
        dataset=spec.tfds_dataset(
            "elpv", image_size=16, label_key="defective", data_dir=elpv_fake_dir, test_split="test"
        ),
        backbone=spec.custom_backbone("small", _small_backbone),
        phases=[
            spec.feature_extraction(epochs=1),
            spec.fine_tune(unfreeze_from="block_2_", epochs=1, augmentation=augmentation),
        ],
    )
    cache = FeatureCache(tmp_path / "features")
    cold, warm = (engine.run(experiment, engine.RunOptions(cache=cache)).result for _ in range(2))
    assert [(p.training_path, p.cache) for p in cold.phases] == [
        ("features", "miss"),
        ("activations@block_2_conv", "miss"),
    ]
    assert [(p.training_path, p.cache) for p in warm.phases] == [
        ("features", "hit"),
        ("activations@block_2_conv", "hit"),
    ]
    assert [p.frozen_pass for p in cold.phases] == ["litert", "litert"]
    assert [p.frozen_pass for p in warm.phases] == [None, None]  # read back: no pass ran
    # The head's global pooling runs once with the frozen backbone: 4 numbers per image are kept
    # for the head, not 5x5x4; the fine-tuning entry keeps the 7x7x4 activations entering block 2.
    shapes = sorted((np.load(entry)["train"].shape for entry in cache.entries()), key=len)
    assert shapes == [(19, 4), (*views, 19, 7, 7, 4)]
    for run in (cold, warm):
        assert run.split_sizes == {"train": 19, "validation": 5, "test": 8}
        assert [p.cached_val_accuracy for p in run.phases] == [p.val_accuracy for p in run.phases]
    assert [p.test_accuracy for p in warm.phases] == [p.test_accuracy for p in cold.phases]
    assert [p.test_accuracy is not None for p in cold.phases] == [False, True]  # scored after the last phase


def test_the_frozen_runtime_keys_the_cache(tmp_path):
    """Inputs computed by LiteRT and by Keras differ in round-off: neither run reads the other's entry."""
    from harness import engine
    from harness.cache import FeatureCache

    data = {
        "train": (np.full((8, 12, 12, 3), 50, "float32"), np.arange(8) % 2),
        "validation": (np.full((4, 12, 12, 3), 80, "float32"), np.arange(4) % 2),
    }
    experiment = spec.experiment(
        name="runtimes",
        dataset=spec.arrays(data, image_size=12, cache_key="constant-images"),
        backbone=spec.custom_backbone("small", _small_backbone),
        phases=[spec.feature_extraction(epochs=1)],
    )
    cache = FeatureCache(tmp_path / "features")
    runs = [
        engine.run(experiment, engine.RunOptions(cache=cache, frozen_runtime=runtime)).result
        for runtime in ("litert", "keras", "keras", "auto")
    ]
    assert [(run.phases[0].cache, run.phases[0].frozen_pass) for run in runs] == [
        ("miss", "litert"),
        ("miss", "keras"),
        ("hit", None),
        ("hit", None),  # auto is LiteRT on this GPU-less machine: the key names what runs, and it reads LiteRT's entry
    ]
    assert len(cache.entries()) == 2


# --------------------------------------------------------------------------- keys, held-out fractions, data checks


def test_tfds_keys_default_to_the_builders_supervised_keys(elpv_fake_dir):
    """ELPV declares supervised_keys=("image", "defective"): the binary label, unless the spec names another."""
    data = loading.load(spec.tfds_dataset("elpv", image_size=16, data_dir=elpv_fake_dir, test_split="test"))
    assert (data.dataset.image_key, data.dataset.label_key) == ("image", "defective")
    assert data.num_classes == 2
    assert data.dataset.identity == {"source": "tfds", "name": "elpv", "image_key": "image", "data_dir": elpv_fake_dir}
    assert loading.describe(data.dataset) == "TFDS data set 'elpv' (label 'defective')"
    named = loading.load(spec.tfds_dataset("elpv", image_size=16, data_dir=elpv_fake_dir, label_key="label"))
    assert (named.dataset.label_key, named.num_classes) == ("label", 4)


def test_tfds_validation_fraction_holds_out_part_of_the_training_split(elpv_fake_dir):
    data = loading.load(spec.tfds_dataset("elpv", image_size=16, data_dir=elpv_fake_dir, validation_split=0.2))
    assert data.sizes == {"train": 15, "validation": 4}  # TFDS's rounding of 80% / 20% of 19 examples


def _arrays(train_x, validation_x, test_x=None, *, labels=(0, 1)):
    def split(x):
        return x, np.resize(np.array(labels), len(x))

    splits = {"train": split(train_x), "validation": split(validation_x)}
    if test_x is not None:
        splits["test"] = split(test_x)
    return lambda: splits


def _experiment(data, **overrides):
    from harness.data.checks import check_data

    arguments = {
        "name": "checked",
        "dataset": spec.arrays(data, image_size=8),
        "backbone": spec.custom_backbone("small", _small_backbone),
        "phases": [spec.feature_extraction(epochs=1)],
    }
    experiment = spec.experiment(**{**arguments, **overrides})
    loaded = loading.load(experiment.dataset)
    return lambda: check_data(experiment, loaded)


def test_examples_shared_by_two_splits_are_an_error_before_training():
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 255, (10, 8, 8, 3)).astype("float32")
    validation = rng.uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    validation[[1, 4]] = train[[7, 2]]
    check = _experiment(_arrays(train, validation))
    with pytest.raises(loading.DataError) as excinfo:
        check()
    assert str(excinfo.value) == (
        "The train and validation splits of in-memory arrays share 2 examples (identical images): train #7 = "
        "validation #1, train #2 = validation #4. Held-out data must be held out: declare disjoint splits or remove "
        "the duplicates from the data."
    )
    _experiment(_arrays(train, validation[[0, 2, 3, 5]]))()  # disjoint: no error


def test_a_test_accuracy_floor_without_test_data_is_an_error_before_training():
    x = np.arange(4 * 8 * 8 * 3, dtype="float32").reshape(4, 8, 8, 3) % 255
    check = _experiment(_arrays(x[:2], x[2:]), expect=[spec.min_test_accuracy(0.5)])
    with pytest.raises(
        loading.DataError,
        match=r"^in-memory arrays has no test split, but an expectation of "
        r"'checked' reads test accuracy \(min_test_accuracy or beats\)",
    ):
        check()


def test_class_weight_keys_that_are_not_classes_are_an_error_before_training():
    x = np.arange(4 * 8 * 8 * 3, dtype="float32").reshape(4, 8, 8, 3) % 255
    check = _experiment(
        _arrays(x[:2], x[2:]), phases=[spec.feature_extraction(epochs=1, class_weight={0: 1.0, 5: 2.0})]
    )
    with pytest.raises(loading.DataError) as excinfo:
        check()
    assert str(excinfo.value) == (
        "`feature_extraction.class_weight` must name classes of in-memory arrays (0 to 1). "
        "Received: class_weight={0: 1.0, 5: 2.0}"
    )


def test_rows_batches_as_from_tensor_slices_does_and_reads_a_memory_map(tmp_path):
    from harness import batching

    inputs = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(37, 3, 2))
    inputs[:] = np.random.default_rng(0).normal(size=inputs.shape)
    labels = np.arange(37, dtype=np.int32) % 3
    want = tf.data.Dataset.from_tensor_slices((np.asarray(inputs), labels)).shuffle(37, seed=4).batch(8)
    got = batching.rows(inputs, labels, 8, seed=4)
    for _ in range(2):  # reshuffled each epoch, as the other is
        pairs = list(zip(got.as_numpy_iterator(), want.as_numpy_iterator(), strict=True))
        assert len(pairs) == 5
        for (x, y), (x_want, y_want) in pairs:
            np.testing.assert_array_equal(x, x_want)
            np.testing.assert_array_equal(y, y_want)
    in_order = np.concatenate(list(batching.rows(inputs, None, 10).as_numpy_iterator()))
    np.testing.assert_array_equal(in_order, inputs)
    assert batching.rows(inputs, None, 10).element_spec.shape.as_list() == [None, 3, 2]
