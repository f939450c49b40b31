"""EfficientNet-Lite0's architecture: its blocks, its layer names, and the Keras model without weights.

Layer names follow `keras.applications.MobileNetV2` (`block_{i}_expand`, `block_{i}_depthwise_BN`,
...), with `i` the index of the block in the PyTorch checkpoint (`_blocks.i`). Importing this
module does not import TensorFlow or Keras: `layer_names` is pure Python (pytest collection
reads it through the catalog), and `build` imports Keras when it is called.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

# (kernel_size, stride, expand_ratio, filters, repeats) per stage.
_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_FILTERS = 32
_HEAD_FILTERS = 1280
_DROPOUT_RATE = 0.2
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99  # PyTorch port: momentum 0.01, i.e. Keras's 0.99.
MIN_SIZE = 32  # the smallest input height and width (the catalog's `min_size`)
DEFAULT_SIZE = 224  # the ImageNet weights' input size
IMAGENET_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block (MBConv without squeeze-and-excitation)."""

    block_id: int
    kernel_size: int
    stride: int
    expand_ratio: int
    in_filters: int
    filters: int

    @property
    def prefix(self) -> str:
        return f"block_{self.block_id}_"

    @property
    def has_expand(self) -> bool:
        return self.expand_ratio != 1

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_filters == self.filters


def block_specs() -> list[BlockSpec]:
    specs: list[BlockSpec] = []
    in_filters = _STEM_FILTERS
    for kernel_size, stride, expand_ratio, filters, repeats in _STAGES:
        for repeat in range(repeats):
            specs.append(
                BlockSpec(
                    block_id=len(specs),
                    kernel_size=kernel_size,
                    stride=stride if repeat == 0 else 1,
                    expand_ratio=expand_ratio,
                    in_filters=in_filters,
                    filters=filters,
                )
            )
            in_filters = filters
    return specs


# What a layer holds: weights (a convolution, a Dense), BatchNormalization's, or nothing.
_WEIGHTS, _BATCHNORM, _NOTHING = "weights", "batchnorm", "nothing"


def _block_layers(spec: BlockSpec) -> list[tuple[str, str]]:
    p = spec.prefix
    layers = [(f"{p}expand", _WEIGHTS), (f"{p}expand_BN", _BATCHNORM), (f"{p}expand_relu", _NOTHING)]
    layers = layers if spec.has_expand else []
    layers += [(f"{p}depthwise", _WEIGHTS), (f"{p}depthwise_BN", _BATCHNORM), (f"{p}depthwise_relu", _NOTHING)]
    layers += [(f"{p}project", _WEIGHTS), (f"{p}project_BN", _BATCHNORM)]
    return layers + ([(f"{p}add", _NOTHING)] if spec.has_residual else [])


def _layers(include_top: bool) -> list[tuple[str, str]]:
    """(name, what it holds) for every layer `build` makes, in `model.layers` order, without the input."""
    layers = [("preprocess", _NOTHING), ("stem_conv", _WEIGHTS), ("stem_bn", _BATCHNORM), ("stem_relu", _NOTHING)]
    for spec in block_specs():
        layers += _block_layers(spec)
    layers += [("top_conv", _WEIGHTS), ("top_bn", _BATCHNORM), ("top_relu", _NOTHING)]
    if include_top:
        layers += [("avg_pool", _NOTHING), ("dropout", _NOTHING), ("predictions", _WEIGHTS)]
    return layers


def batchnorm_layer_names() -> frozenset[str]:
    """The BatchNormalization layers of `efficientnet_lite0` (`include_top=False`). Pure Python."""
    return frozenset(name for name, holds in _layers(False) if holds == _BATCHNORM)


def weightless_layer_names() -> frozenset[str]:
    """The layers of `efficientnet_lite0` (`include_top=False`) that hold no weights. Pure Python."""
    return frozenset(name for name, holds in _layers(False) if holds == _NOTHING)


def layer_names(include_top: bool = False) -> list[str]:
    """Returns the names of the layers of `efficientnet_lite0`, in `model.layers` order.

    Pure Python: use it to resolve layer-name rules without building the model.

    Args:
        include_top: Whether to include the classifier layers (`avg_pool`, `dropout`,
            `predictions`). Defaults to `False`.

    Returns:
        The layer names, without the `InputLayer`.
    """
    return [name for name, _ in _layers(include_top)]


def _conv_bn_relu(x, filters: int, kernel_size: int, strides: int, name: str, bn_name: str, relu_name: str):
    from keras import layers

    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=bn_name)(x)
    return layers.ReLU(6.0, name=relu_name)(x)


def _inverted_res_block(inputs, spec: BlockSpec):
    """Expand (1x1), depthwise (kxk, maybe strided), project (1x1, linear), maybe add."""
    from keras import layers

    prefix = spec.prefix
    x = inputs
    if spec.has_expand:
        x = _conv_bn_relu(
            x,
            spec.in_filters * spec.expand_ratio,
            1,
            1,
            name=f"{prefix}expand",
            bn_name=f"{prefix}expand_BN",
            relu_name=f"{prefix}expand_relu",
        )
    x = layers.DepthwiseConv2D(
        spec.kernel_size, strides=spec.stride, padding="same", use_bias=False, name=f"{prefix}depthwise"
    )(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(spec.filters, 1, padding="same", use_bias=False, name=f"{prefix}project")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{prefix}project_BN")(x)
    if spec.has_residual:
        x = layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def build(include_top: bool, input_shape: tuple, classes: int, name: str) -> keras.Model:
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    x = _conv_bn_relu(x, _STEM_FILTERS, 3, 2, name="stem_conv", bn_name="stem_bn", relu_name="stem_relu")
    for spec in block_specs():
        x = _inverted_res_block(x, spec)
    x = _conv_bn_relu(x, _HEAD_FILTERS, 1, 1, name="top_conv", bn_name="top_bn", relu_name="top_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(_DROPOUT_RATE, name="dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)
