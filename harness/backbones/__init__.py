"""Backbones the harness can build: every `keras.applications` model and `efficientnet_lite0`, `1`, `2`.

Importing this package does not import TensorFlow; `load_backbone` does, when called.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.backbones.catalog import EFFICIENTNET_LITE, BackboneInfo, UnknownBackboneError, backbone_names, describe
from harness.backbones.errors import WeightsUnavailableError

if TYPE_CHECKING:
    import keras

__all__ = [
    "BackboneInfo",
    "UnknownBackboneError",
    "WeightsUnavailableError",
    "backbone_names",
    "describe",
    "load_backbone",
]


def load_backbone(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = "imagenet",
    include_top: bool = False,
    input_shape: Sequence[int | None] | None = None,
) -> keras.Model:
    """Builds a backbone that takes raw RGB pixels (0..255) and preprocesses them itself.

    For `keras.applications` models the first layer after the input is `"preprocess"`, which
    applies that application's own `preprocess_input`; the model is flat, so its layer names
    are `describe(name).layer_names` and freezing rules can address every layer.

    Args:
        name: A name from `backbone_names()`: a `keras.applications` constructor such as
            `"MobileNetV2"` or `"EfficientNetB0"`, or `"efficientnet_lite0"`,
            `"efficientnet_lite1"`, `"efficientnet_lite2"`.
        weights: `"imagenet"` for the pretrained weights, `None` for random initialisation,
            or the path to a weights file (`.weights.h5`, or the `.h5` file Keras downloads).
            Defaults to `"imagenet"`.
        include_top: Whether to keep the ImageNet classifier. Defaults to `False`.
        input_shape: `(height, width, 3)`, channels last. Defaults to the backbone's own size,
            `describe(name).default_size` (224 for most; 240 for `efficientnet_lite1`, 260 for
            `efficientnet_lite2`, 299 for `InceptionV3`, ...).

    Returns:
        A `keras.Model` named `name`.

    Raises:
        UnknownBackboneError: `name` is not a known backbone; the message suggests the closest.
        ValueError: `weights` or `input_shape` is invalid for this backbone.
        WeightsUnavailableError: The ImageNet weights are neither cached nor downloadable; the
            message names the file and the directory to put it in.
    """
    info = describe(name)
    if input_shape is None:
        input_shape = (info.default_size, info.default_size, 3)
    if info.family == EFFICIENTNET_LITE:
        from harness.backbones.efficientnet_lite import BUILDERS

        height, width, channels = input_shape
        return BUILDERS[name](include_top=include_top, weights=weights, input_shape=(height, width, int(channels or 0)))

    from harness.backbones.keras_apps import build_keras_application

    return build_keras_application(name, weights=weights, include_top=include_top, input_shape=input_shape)
