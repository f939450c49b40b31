"""The frozen pass: LiteRT computes what `Model.predict` computes, and says when it cannot."""

from __future__ import annotations

import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from harness import inference  # noqa: E402  (imports TensorFlow)

pytestmark = pytest.mark.slow  # builds Keras models and converts them for LiteRT

# XNNPACK and TensorFlow's kernels sum in other orders: outputs agree up to float round-off.
RTOL, ATOL = 1e-5, 1e-5


def tiny_backbone() -> keras.Model:
    """Conv, depthwise conv and BatchNorm with moving statistics that are not the identity."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    bn = keras.layers.BatchNormalization()
    x = keras.layers.ReLU(6.0)(bn(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, x)
    rng = np.random.default_rng(1)
    bn.moving_mean.assign(rng.normal(size=8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=8).astype("float32"))
    return model


def images(n: int) -> np.ndarray:
    return np.random.default_rng(2).uniform(0, 255, (n, 12, 12, 3)).astype("float32")


def test_litert_matches_keras_over_ragged_batches() -> None:
    model, pixels = tiny_backbone(), images(13)
    frozen = inference.FrozenPass(model, "litert")
    assert frozen.ran_on == "litert"
    # Batches of 5, 5 and 3: the interpreter is resized for the last one.
    got = frozen(inference.batches_of(pixels, 5))
    want = model.predict(pixels, verbose=0)
    assert got.shape == want.shape == (13, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    assert not np.allclose(want, want[0])  # the images give different outputs


def test_keras_runtime_is_model_predict() -> None:
    model, pixels = tiny_backbone(), images(7)
    frozen = inference.FrozenPass(model, "keras")
    assert frozen.ran_on == "keras"
    np.testing.assert_array_equal(
        frozen(inference.batches_of(pixels, 4)), model.predict(pixels, batch_size=4, verbose=0)
    )


@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_the_pass_fills_a_given_output_row_for_row(runtime: str) -> None:
    model, pixels = tiny_backbone(), images(13)
    frozen = inference.FrozenPass(model, runtime)
    out = np.zeros((13, 8), dtype=np.float32)
    assert frozen(inference.batches_of(pixels, 5), out) is out
    np.testing.assert_array_equal(out, frozen(inference.batches_of(pixels, 5)))
    with pytest.raises(ValueError, match="the pass gave 13 rows for an output of 14"):
        frozen(inference.batches_of(pixels, 5), np.zeros((14, 8), dtype=np.float32))


def test_a_model_with_two_outputs_falls_back_to_keras_and_says_why() -> None:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, [keras.layers.Dense(2)(inputs), keras.layers.Dense(3)(inputs)])
    frozen = inference.FrozenPass(model, "litert")
    assert frozen.ran_on == "keras (LiteRT: 1 inputs and 2 outputs; it runs one to one)"


class PythonOp(keras.layers.Layer):
    """Calls back into Python: no LiteRT kernel exists for that."""

    def call(self, x):
        return tf.py_function(lambda t: t * 2.0, [x], tf.float32)

    def compute_output_shape(self, shape):
        return shape


def test_a_model_the_converter_rejects_falls_back_to_keras() -> None:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, PythonOp()(inputs))
    frozen = inference.FrozenPass(model, "litert")
    assert frozen.ran_on.startswith("keras (LiteRT: conversion failed"), frozen.ran_on
    pixels = np.arange(8, dtype="float32").reshape(2, 4)
    np.testing.assert_array_equal(frozen([pixels]), pixels * 2)


def test_without_ai_edge_litert_the_pass_runs_on_keras(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    model, pixels = tiny_backbone(), images(3)
    frozen = inference.FrozenPass(model, "litert")
    assert frozen.ran_on == "keras (LiteRT: the ai-edge-litert package is not installed)"
    np.testing.assert_array_equal(frozen([pixels]), model.predict(pixels, verbose=0))


def test_an_unknown_runtime_is_refused() -> None:
    with pytest.raises(ValueError, match=r"runtime must be one of \('auto', 'litert', 'keras'\)\. Received: 'onnx'"):
        inference.FrozenPass(tiny_backbone(), "onnx")


def test_auto_runs_litert_without_a_gpu_and_keras_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not tf.config.list_physical_devices("GPU")  # this machine
    assert inference.resolve("auto") == "litert"
    assert inference.FrozenPass(tiny_backbone(), "auto").ran_on == "litert"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert inference.resolve("auto") == "keras"
    assert inference.FrozenPass(tiny_backbone(), "auto").ran_on == "keras"
    assert [inference.resolve(r) for r in ("litert", "keras")] == ["litert", "keras"]  # asked for: as asked
