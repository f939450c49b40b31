"""`keras.applications` backbones: preprocessing inside, flat layers, weights and offline behaviour.

No test touches the network: the download itself (`urlretrieve` in `keras.utils.get_file`) is
replaced, and `KERAS_HOME` points at a temporary directory.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras.src.utils import file_utils  # noqa: E402  (what `keras.utils.get_file` downloads with)

from harness.backbones import UnknownBackboneError, WeightsUnavailableError, load_backbone  # noqa: E402
from harness.backbones.keras_apps import PreprocessInput, keras_cache_dir  # noqa: E402

pytestmark = pytest.mark.slow  # builds keras.applications models

SHAPE = (96, 96, 3)
# The file `keras.applications.MobileNetV2(weights="imagenet", include_top=False,
# input_shape=(96, 96, 3))` asks for; Keras passes no `file_hash` for MobileNetV2.
MOBILENET_V2_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
MOBILENET_V2_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + MOBILENET_V2_FILE


@pytest.fixture(autouse=True)
def keras_home(tmp_path, monkeypatch):
    """An empty Keras cache, so that no test sees real downloaded weights."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch):
    """Makes every download fail as it does without DNS."""
    calls = []

    def urlretrieve(url, filename=None, reporthook=None, data=None):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)
    return calls


@pytest.fixture(scope="module")
def plain_mobilenet_v2_h5(tmp_path_factory):
    """A plain `weights=None` MobileNetV2 saved in Keras's `.h5` format, and its weights."""
    model = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=SHAPE)
    path = tmp_path_factory.mktemp("weights") / MOBILENET_V2_FILE
    model.save(path)  # Legacy HDF5 with a `model_weights` group, which `load_weights` reads.
    return path, model.get_weights()


def assert_same_weights(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=False):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize(("name", "input_shape"), [("MobileNetV2", SHAPE), ("VGG16", (32, 32, 3))])
def test_preprocess_input_is_applied_inside_the_model(name, input_shape):
    # MobileNetV2 scales to [-1, 1]; VGG16 flips RGB to BGR and subtracts the ImageNet mean.
    backbone = load_backbone(name, weights=None, input_shape=input_shape)
    plain = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=input_shape)
    plain.set_weights(backbone.get_weights())
    module = getattr(keras.applications, backbone.get_layer("preprocess").module)
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, *input_shape)).astype("float32")

    obtained = keras.ops.convert_to_numpy(backbone(pixels, training=False))
    expected = keras.ops.convert_to_numpy(plain(module.preprocess_input(pixels.copy()), training=False))
    unpreprocessed = keras.ops.convert_to_numpy(plain(pixels, training=False))

    # Randomly initialised networks give tiny activations: compare relative to their scale.
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(obtained, expected, rtol=1e-4, atol=1e-5 * scale)
    assert np.abs(obtained - unpreprocessed).max() > 0.1 * scale


def test_model_is_flat_starts_with_preprocess_and_is_named_after_the_backbone():
    model = load_backbone("MobileNetV2", weights=None, input_shape=SHAPE)

    assert model.name == "MobileNetV2"
    assert isinstance(model.layers[0], keras.layers.InputLayer)
    assert model.layers[1].name == "preprocess" and isinstance(model.layers[1], PreprocessInput)
    assert model.layers[2].name == "Conv1"
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    assert model.inputs[0] is model.layers[0].output
    assert tuple(model.inputs[0].shape) == (None, *SHAPE)
    assert model.layers[1].get_config()["module"] == "mobilenet_v2"


def test_later_auto_named_layers_do_not_reuse_the_backbones_names():
    names = {layer.name for layer in load_backbone("MobileNetV3Small", weights=None).layers}

    assert "re_lu" in names
    assert keras.layers.ReLU().name not in names


def test_weights_from_a_path_are_loaded_after_building(tmp_path):
    source = load_backbone("MobileNetV2", weights=None, input_shape=SHAPE)
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(path)

    loaded = load_backbone("MobileNetV2", weights=str(path), input_shape=SHAPE)

    assert_same_weights(loaded.get_weights(), source.get_weights())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"input_shape": (96, 96, 1)}, r"must have 3 channels .*Received: input_shape=\(96, 96, 1\)"),
        ({"input_shape": (24, 24, 3)}, r"must be at least 32x32 .*Received: input_shape=\(24, 24, 3\)"),
        (
            {"input_shape": (96, 96, 3), "include_top": True},
            r"must be \(224, 224, 3\) for backbone 'MobileNetV2'.*Received: input_shape=\(96, 96, 3\)",
        ),
        ({"weights": "imagnet"}, r"`weights` must be 'imagenet', None, or the path .*Received: weights='imagnet'"),
    ],
)
def test_invalid_arguments_are_rejected_before_building(kwargs, expected, no_network):
    with pytest.raises(ValueError, match=expected):
        load_backbone("MobileNetV2", **kwargs)
    assert no_network == []


def test_unknown_backbone_name():
    with pytest.raises(UnknownBackboneError, match="Did you mean 'ResNet50'"):
        load_backbone("resnet50", weights=None)


def test_offline_imagenet_fails_fast_naming_the_file_and_directory(keras_home, no_network):
    real_get_file = file_utils.get_file
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as excinfo:
        load_backbone("MobileNetV2", weights="imagenet", input_shape=SHAPE)
    elapsed = time.perf_counter() - start

    message = str(excinfo.value)
    directory = keras_home / "models"
    assert keras_cache_dir() == directory
    assert message.startswith("The ImageNet weights for 'MobileNetV2' could not be downloaded: ")
    assert "Name or service not known" in message
    assert f"Keras looks for the file '{MOBILENET_V2_FILE}' in '{directory}'" in message
    assert f"copy it to '{directory / MOBILENET_V2_FILE}'" in message
    assert message.endswith("Received: weights='imagenet'")
    assert no_network == [MOBILENET_V2_ORIGIN]
    assert elapsed < 5
    assert file_utils.get_file is real_get_file
    assert socket.getdefaulttimeout() is None


def test_a_hanging_download_is_cut_by_the_socket_timeout(monkeypatch):
    # A server that accepts connections (through the backlog) but never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/{MOBILENET_V2_FILE}"
    real_urlretrieve = urllib.request.urlretrieve
    monkeypatch.setattr(
        file_utils, "urlretrieve", lambda origin, *args, **kwargs: real_urlretrieve(url, *args, **kwargs)
    )
    monkeypatch.setattr("harness.backbones.keras_apps.DOWNLOAD_SOCKET_TIMEOUT_S", 0.5)

    start = time.perf_counter()
    try:
        with pytest.raises(WeightsUnavailableError, match="timed out"):
            load_backbone("MobileNetV2", weights="imagenet", input_shape=SHAPE)
    finally:
        server.close()
    assert time.perf_counter() - start < 5
    assert socket.getdefaulttimeout() is None


def test_online_download_goes_through_keras_and_loads_the_file(keras_home, monkeypatch, plain_mobilenet_v2_h5):
    source, expected_weights = plain_mobilenet_v2_h5
    downloads = []

    def urlretrieve(url, filename, reporthook=None):
        downloads.append(url)
        shutil.copyfile(source, filename)

    monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)

    model = load_backbone("MobileNetV2", weights="imagenet", input_shape=SHAPE)

    assert downloads == [MOBILENET_V2_ORIGIN]
    assert (keras_home / "models" / MOBILENET_V2_FILE).is_file()
    assert_same_weights(model.get_weights(), expected_weights)


def test_a_cached_weights_file_is_used_without_any_network_call(keras_home, no_network, plain_mobilenet_v2_h5):
    source, expected_weights = plain_mobilenet_v2_h5
    (keras_home / "models").mkdir(parents=True)
    shutil.copyfile(source, keras_home / "models" / MOBILENET_V2_FILE)

    model = load_backbone("MobileNetV2", weights="imagenet", input_shape=SHAPE)

    assert no_network == []
    assert_same_weights(model.get_weights(), expected_weights)


def test_a_download_with_the_wrong_hash_is_rejected(keras_home, monkeypatch):
    # MobileNetV3 passes `file_hash` to `get_file`, so a file other than Google's is refused.
    def urlretrieve(url, filename, reporthook=None):
        with open(filename, "wb") as f:
            f.write(b"not the ImageNet weights")

    monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)

    with pytest.raises(WeightsUnavailableError) as excinfo:
        load_backbone("MobileNetV3Small", weights="imagenet")

    message = str(excinfo.value)
    assert "Incomplete or corrupted file detected" in message and "hash does not match" in message
    assert "'weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5'" in message
