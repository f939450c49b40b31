"""Slices read from the data: a TFDS feature of the shipped ELPV builder (prepared from the fake
files), `arrays(slices=...)`, and the engine's per-slice figures after training.

The fake ELPV cells are flat gray images of value 40 + 6 * (file number), so an image tells which
file it is: the slice values must come in the order of the images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import spec

tf = pytest.importorskip("tensorflow")
tfds = pytest.importorskip("tensorflow_datasets")

from harness.data import loading  # noqa: E402

pytestmark = pytest.mark.slow  # prepares a TFDS data set and loads through tf.data; one test trains

FAKE_DIR = Path(__file__).parent / "fake_data" / "elpv"


@pytest.fixture(scope="module")
def elpv_fake_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The shipped ELPV builder prepared from the tiny fake files (19 train, 5 validation, 8 test)."""
    import harness.data.datasets.elpv  # noqa: F401  (registers "elpv")

    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.builder("elpv", data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(FAKE_DIR))
    )
    return str(data_dir)


def _cell_types() -> dict[int, str]:
    """The fake files' cell type by file number, from their labels.csv."""
    rows = (line.split() for line in (FAKE_DIR / "labels.csv").read_text().splitlines())
    return {int(path[len("images/cell") : -len(".png")]): cell_type for path, _, cell_type in rows}


def _file_numbers(split: tf.data.Dataset) -> list[int]:
    """Which fake file each image of `split` is, from its gray value."""
    return [round((float(image[0, 0, 0]) - 40) / 6) for image, _ in split.as_numpy_iterator()]


def test_a_class_label_feature_slices_the_held_out_splits_in_their_order(elpv_fake_dir: str) -> None:
    data = loading.load(
        spec.tfds_dataset("elpv", image_size=16, data_dir=elpv_fake_dir, test_split="test", slices="cell_type")
    )
    assert data.slice_feature == "cell_type"
    assert set(data.slices) == {"validation", "test"}  # the training split is not sliced
    cell_types = _cell_types()
    for split in ("validation", "test"):
        numbers = _file_numbers(data.split(split))
        assert data.slices[split] == [cell_types[n] for n in numbers]
    assert set(data.slices["test"]) == {"mono", "poly"}


def test_a_text_feature_gives_its_strings(elpv_fake_dir: str) -> None:
    data = loading.load(spec.tfds_dataset("elpv", image_size=16, data_dir=elpv_fake_dir, slices="filename"))
    numbers = _file_numbers(data.validation)
    assert data.slices == {"validation": [f"cell{n:04d}.png" for n in numbers]}


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        (
            "module",
            (
                "TFDS data set 'elpv' has no feature 'module' to slice by; it has ['cell_type', 'defect_probability', "
                "'defective', 'filename', 'image', 'label']. Fix `tfds_dataset(slices=...)` in the spec. "
                "Received: slices='module'"
            ),
        ),
        (
            "defect_probability",
            (
                "Feature 'defect_probability' of 'elpv' cannot slice the accuracies: it is Scalar, shape (), dtype "
                "float32. Pick a `tfds.features.ClassLabel`, a string or an integer scalar feature as `slices`. "
                "Received: slices='defect_probability'"
            ),
        ),
    ],
)
def test_a_feature_that_cannot_slice_is_a_data_error(elpv_fake_dir: str, slices: str, message: str) -> None:
    with pytest.raises(loading.DataError) as error:
        loading.load(spec.tfds_dataset("elpv", image_size=16, data_dir=elpv_fake_dir, slices=slices))
    assert str(error.value) == message


def _arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x = np.arange(10 * 8 * 8 * 3, dtype="float32").reshape(10, 8, 8, 3) % 255
    return {"train": (x[:4], np.array([0, 1, 0, 1])), "validation": (x[4:7], [0, 1, 1]), "test": (x[7:], [1, 0, 1])}


def test_arrays_slices_are_loaded_as_strings() -> None:
    data = loading.load(
        spec.arrays(
            _arrays(), image_size=8, slices=lambda: {"validation": [1, 2, 1], "test": np.array(["a", "b", "a"])}
        )
    )
    assert (data.slice_feature, data.slices) == ("slice", {"validation": ["1", "2", "1"], "test": ["a", "b", "a"]})


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        (
            {"validation": [1, 2, 1]},
            (
                "`arrays(slices=...)` must map every held-out split ('validation', 'test') to one value per example, "
                "and nothing else. Received: keys ['validation']"
            ),
        ),
        (
            {"validation": [1, 2], "test": [1, 2, 3]},
            (
                "The validation split of in-memory arrays has 3 examples but 2 slice values. Give one value per "
                "example, in the split's order."
            ),
        ),
    ],
)
def test_arrays_slices_that_do_not_fit_the_splits_are_a_data_error(slices: dict, message: str) -> None:
    with pytest.raises(loading.DataError) as error:
        loading.load(spec.arrays(_arrays(), image_size=8, slices=slices))
    assert str(error.value) == message


def _small_backbone(input_shape):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, name="block_1_conv")(x)
    return keras.Model(inputs, x, name="small")


def _experiment(data_dir: str, slices: str | None, expect: tuple = ()) -> spec.Experiment:
    return spec.experiment(
        name="sliced_elpv",
        dataset=spec.tfds_dataset(
            "elpv", image_size=16, label_key="defective", data_dir=data_dir, test_split="test", slices=slices
        ),
        backbone=spec.custom_backbone("small", _small_backbone),
        phases=[spec.feature_extraction(epochs=1)],
        expect=list(expect),
    )


def test_a_slice_floor_naming_no_value_of_its_split_is_an_error_before_training(elpv_fake_dir: str) -> None:
    from harness.data.checks import check_data

    experiment = _experiment(elpv_fake_dir, "cell_type", (spec.min_test_accuracy(0.5, slice="mnoo"),))
    with pytest.raises(loading.DataError) as error:
        check_data(experiment, loading.load(experiment.dataset))
    assert str(error.value) == (
        "`min_test_accuracy.slice` must name a cell_type value of the test split of TFDS data set 'elpv' "
        "(label 'defective'): found 'mono', 'poly'. Received: slice='mnoo'"
    )


def test_the_engine_scores_every_slice_and_slices_share_the_cache_entry(elpv_fake_dir: str, tmp_path: Path) -> None:
    """A run without slices fills the feature cache; the same run with slices reads it back (same images)."""
    from harness import engine
    from harness.cache import FeatureCache

    cache = FeatureCache(tmp_path / "features")
    plain = engine.run(_experiment(elpv_fake_dir, None), engine.RunOptions(cache=cache))
    sliced = engine.run(_experiment(elpv_fake_dir, "cell_type"), engine.RunOptions(cache=cache))
    assert [p.cache for p in plain.result.phases] == ["miss"]
    assert [p.cache for p in sliced.result.phases] == ["hit"]
    assert len(cache.entries()) == 1
    assert (plain.result.slice_feature, plain.result.slice_metrics) == (None, {})

    result = sliced.result
    assert result.slice_feature == "cell_type"
    assert set(result.slice_metrics) == {"validation", "test"}
    cell_types = _cell_types()
    for split, accuracy in (("validation", result.final.val_accuracy), ("test", result.final.test_accuracy)):
        slices = result.slice_metrics[split]
        assert sum(s["n"] for s in slices.values()) == result.split_sizes[split]
        assert sum(s["correct"] for s in slices.values()) == round(accuracy * result.split_sizes[split])
        # Recount from the predictions, each example's cell type taken from its image.
        predictions = sliced.predictions[split]
        types = np.array([cell_types[n] for n in _file_numbers(sliced.data.split(split))])
        for value, figures in slices.items():
            mine = types == value
            assert figures["n"] == int(mine.sum())
            assert figures["correct"] == int((predictions.labels == predictions.predicted)[mine].sum())
            assert figures["accuracy"] == figures["correct"] / figures["n"]
    assert result.to_json()["slice_metrics"] == result.slice_metrics
