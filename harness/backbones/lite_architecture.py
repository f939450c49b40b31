"""The EfficientNet-Lite family's architecture: its variants, blocks, layer names, and the Keras model.

EfficientNet-Lite (the "Lite" models of the TensorFlow TPU repository's
`efficientnet/lite/efficientnet_lite_builder.py`) is EfficientNet without squeeze-and-excitation,
with ReLU6 instead of swish. A variant scales the B0 stages by a width multiplier (filters,
rounded to a multiple of 8 by `round_filters`) and a depth multiplier (repeats, rounded up by
`round_repeats`); unlike EfficientNet-B1..B7 the 32-filter stem and the 1280-filter head are
not scaled, nor are the repeats of the first and the last stage (`fix_head_stem`).

Layer names follow `keras.applications.MobileNetV2` (`block_{i}_expand`, `block_{i}_depthwise_BN`,
...), with `i` the index of the block in the PyTorch checkpoint (`_blocks.i`). Importing this
module does not import TensorFlow or Keras: the layer names are pure Python (pytest collection
reads them through the catalog), and `build` imports Keras when it is called.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

# EfficientNet-B0's stages, before scaling: (kernel_size, stride, expand_ratio, filters, repeats).
BASE_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
STEM_FILTERS = 32  # not scaled in the Lite family
HEAD_FILTERS = 1280  # not scaled in the Lite family
DEPTH_DIVISOR = 8
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99  # PyTorch port: momentum 0.01, i.e. Keras's 0.99.
MIN_SIZE = 32  # the smallest input height and width (the catalog's `min_size`): five stride-2 stages
IMAGENET_CLASSES = 1000


@dataclasses.dataclass(frozen=True)
class Variant:
    """One member of the EfficientNet-Lite family (`efficientnet_lite_builder.efficientnet_lite_params`).

    Attributes:
        name: The backbone's name, e.g. `"efficientnet_lite1"`.
        title: How messages name it, e.g. `"EfficientNet-Lite1"`.
        width: The width multiplier (filters of every block).
        depth: The depth multiplier (repeats of every stage but the first and the last).
        default_size: The input height and width of its ImageNet weights.
        dropout_rate: The classifier's dropout rate.
    """

    name: str
    title: str
    width: float
    depth: float
    default_size: int
    dropout_rate: float


LITE0 = Variant("efficientnet_lite0", "EfficientNet-Lite0", 1.0, 1.0, 224, 0.2)
LITE1 = Variant("efficientnet_lite1", "EfficientNet-Lite1", 1.0, 1.1, 240, 0.2)
LITE2 = Variant("efficientnet_lite2", "EfficientNet-Lite2", 1.1, 1.2, 260, 0.3)
VARIANTS = {variant.name: variant for variant in (LITE0, LITE1, LITE2)}


def round_filters(filters: int, width: float) -> int:
    """`filters * width` to the nearest multiple of 8, never more than 10% below (the reference's rounding)."""
    scaled = filters * width
    rounded = max(DEPTH_DIVISOR, int(scaled + DEPTH_DIVISOR / 2) // DEPTH_DIVISOR * DEPTH_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += DEPTH_DIVISOR
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """`repeats * depth`, rounded up (the reference's `round_repeats`)."""
    return math.ceil(depth * repeats)


def stages(variant: Variant) -> list[tuple[int, int, int, int, int]]:
    """The variant's stages: (kernel_size, stride, expand_ratio, filters, repeats), scaled."""
    last = len(BASE_STAGES) - 1
    return [
        (
            kernel_size,
            stride,
            expand_ratio,
            round_filters(filters, variant.width),
            repeats if i in (0, last) else round_repeats(repeats, variant.depth),
        )
        for i, (kernel_size, stride, expand_ratio, filters, repeats) in enumerate(BASE_STAGES)
    ]


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


def block_specs(variant: Variant = LITE0) -> list[BlockSpec]:
    specs: list[BlockSpec] = []
    in_filters = STEM_FILTERS
    for kernel_size, stride, expand_ratio, filters, repeats in stages(variant):
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


def _layers(variant: Variant, include_top: bool) -> list[tuple[str, str]]:
    """(name, what it holds) for every layer `build` makes, in `model.layers` order, without the input."""
    layers = [("preprocess", _NOTHING), ("stem_conv", _WEIGHTS), ("stem_bn", _BATCHNORM), ("stem_relu", _NOTHING)]
    for spec in block_specs(variant):
        layers += _block_layers(spec)
    layers += [("top_conv", _WEIGHTS), ("top_bn", _BATCHNORM), ("top_relu", _NOTHING)]
    if include_top:
        layers += [("avg_pool", _NOTHING), ("dropout", _NOTHING), ("predictions", _WEIGHTS)]
    return layers


def batchnorm_layer_names(variant: Variant = LITE0) -> frozenset[str]:
    """The BatchNormalization layers of the variant (`include_top=False`). Pure Python."""
    return frozenset(name for name, holds in _layers(variant, False) if holds == _BATCHNORM)


def weightless_layer_names(variant: Variant = LITE0) -> frozenset[str]:
    """The layers of the variant (`include_top=False`) that hold no weights. Pure Python."""
    return frozenset(name for name, holds in _layers(variant, False) if holds == _NOTHING)


def layer_names(include_top: bool = False, variant: Variant = LITE0) -> list[str]:
    """Returns the names of the layers of the variant's model, in `model.layers` order.

    Pure Python: use it to resolve layer-name rules without building the model.

    Args:
        include_top: Whether to include the classifier layers (`avg_pool`, `dropout`,
            `predictions`). Defaults to `False`.
        variant: The family member. Defaults to EfficientNet-Lite0.

    Returns:
        The layer names, without the `InputLayer`.
    """
    return [name for name, _ in _layers(variant, include_top)]


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


def build(include_top: bool, input_shape: tuple, classes: int, name: str, variant: Variant = LITE0) -> keras.Model:
    """The variant's Keras model, randomly initialised; it normalises raw RGB 0..255 as `(x - 127) / 128`."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    x = _conv_bn_relu(x, STEM_FILTERS, 3, 2, name="stem_conv", bn_name="stem_bn", relu_name="stem_relu")
    for spec in block_specs(variant):
        x = _inverted_res_block(x, spec)
    x = _conv_bn_relu(x, HEAD_FILTERS, 1, 1, name="top_conv", bn_name="top_bn", relu_name="top_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(variant.dropout_rate, name="dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)
