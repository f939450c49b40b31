"""Text of tiny spec files for the plugin tests: a 16x16 custom backbone and in-memory arrays.

Every test that trains writes one of these into a `pytester` folder named `specs`
(`pytester.makepyfile(**{"specs/tiny": spec_file(...)})`) and runs it in-process. The
backbone has a few hundred parameters and the data ~100 images, so a phase takes about a
second on two CPU cores.

Parameter counts (two classes, `dropout_rate=0.0`):

- head (Dense 4 -> 2): 10 trainable (`HEAD_PARAMS`);
- `block_2_conv` (3x3, 4 -> 4 channels): 148 (`BLOCK_2_CONV_PARAMS`), unfrozen by
  `fine_tune(unfreeze_from="block_2_")` (`block_2_bn` stays frozen).
"""

from __future__ import annotations

import textwrap

HEAD_PARAMS = 4 * 2 + 2
BLOCK_2_CONV_PARAMS = 3 * 3 * 4 * 4 + 4

FEATURE_EXTRACTION = "feature_extraction(epochs=3, learning_rate=5e-2, batch_size=16)"
FINE_TUNE = 'fine_tune(unfreeze_from="block_2_", epochs=1, learning_rate=1e-3, batch_size=16)'

PREAMBLE = '''\
import numpy as np

from harness import *


def make_data(noise=False, seed=0):
    """Bright images are class 1, dark ones class 0 (labels at random with `noise`)."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 2, n)
        images = rng.uniform(0, 128, (n, 16, 16, 3)).astype("float32")
        images[labels == 1] += 127.0
        if noise:
            labels = rng.integers(0, 2, n)
        return images, labels

    return {"train": split(64), "validation": split(32)}


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
'''


def experiment_text(
    name: str = "tiny",
    *,
    data: str = "make_data",
    backbone: str = "tiny_backbone",
    phases: str = FEATURE_EXTRACTION,
    expect: str = "min_val_accuracy(0.9)",
    extra: str = "",
) -> str:
    """One `experiment(...)` call over the tiny data and backbone (arguments are spec source)."""
    return (
        f"experiment(\n"
        f"    name={name!r},\n"
        f"    dataset=arrays({data}, image_size=16),\n"
        f"    backbone=custom_backbone({backbone.removesuffix('_backbone')!r}, {backbone}),\n"
        f"    head=classifier_head(dropout_rate=0.0),\n"
        f"    phases=[{phases}],\n"
        f"    expect=[{expect}],\n"
        f"{textwrap.indent(extra, '    ')}"
        f")\n"
    )


def spec_file(*experiments: str) -> str:
    """A whole spec file: the preamble, then `experiments` (spec source) one after another."""
    return PREAMBLE + "\n\n" + "\n\n".join(experiments)


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the first line of `text` that holds `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)
