"""Tiny Keras backbones and data for the tests that train: 16x16 images, a few hundred parameters.

The one source of these builders. Tests that call the engine import them
(`from tiny_models import make_data, tiny_backbone`); `tiny_specs.PREAMBLE` copies their source
into the spec files that plugin tests write with `pytester`. Importing this module imports
neither TensorFlow nor Keras: each builder imports Keras when it is called.
"""

from __future__ import annotations

import inspect

import numpy as np


def make_data(noise=False, seed=0, test=False):
    """Bright images are class 1, dark ones class 0 (labels at random with `noise`).

    64 training and 32 validation images, and with `test` 32 test images drawn after them.
    """
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 2, n)
        images = rng.uniform(0, 128, (n, 16, 16, 3)).astype("float32")
        images[labels == 1] += 127.0
        if noise:
            labels = rng.integers(0, 2, n)
        return images, labels

    data = {"train": split(64), "validation": split(32)}
    if test:
        data["test"] = split(32)
    return data


def noise_data():
    return make_data(noise=True)


def tiny_backbone(input_shape):
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 12.75, offset=-10.0, name="preprocess")(inputs)
    x = keras.layers.Conv2D(4, 3, name="block_1_conv")(x)
    x = keras.layers.BatchNormalization(name="block_1_bn")(x)
    x = keras.layers.ReLU(name="block_1_relu")(x)
    x = keras.layers.Conv2D(4, 3, name="block_2_conv")(x)
    x = keras.layers.BatchNormalization(name="block_2_bn")(x)
    x = keras.layers.ReLU(name="block_2_relu")(x)
    return keras.Model(inputs, x, name="tiny")


def counting_backbone(input_shape):
    """A backbone whose frozen `counter` layer changes its own variable on every call."""
    import keras

    class Counter(keras.layers.Layer):
        def build(self, shape):
            self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

        def call(self, x):
            self.calls.assign_add(1.0)
            return x

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 12.75, offset=-10.0, name="preprocess")(inputs)
    x = Counter(name="counter")(x)
    x = keras.layers.Conv2D(4, 3, name="block_1_conv")(x)
    return keras.Model(inputs, x, name="counting")


def source() -> str:
    """The source of the builders above, as a spec file holds it (after `import numpy as np`)."""
    return "\n\n".join(inspect.getsource(f) for f in (make_data, noise_data, tiny_backbone, counting_backbone))
