"""Every backbone name the harness accepts, and what collection needs to know about each.

This module imports no TensorFlow and no Keras: pytest collection uses it to validate a spec's
backbone name, input size and layer-name prefixes. The `keras.applications` facts live in
`keras_applications.json` beside this file, generated from the installed Keras with

    python -m harness.backbones.regenerate_catalog

(`harness.backbones.regenerate_catalog`), which builds every application with `weights=None`, `include_top=False` at its default size
(a few minutes). Regenerate it whenever the supported Keras version changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KERAS_APPLICATIONS_JSON = Path(__file__).with_name("keras_applications.json")

KERAS_APPLICATION = "keras_application"
EFFICIENTNET_LITE = "efficientnet_lite"

# The harness's own EfficientNet-Lite0, -Lite1 and -Lite2 (`harness.backbones.efficientnet_lite`,
# their architecture in `harness.backbones.lite_architecture`); they take raw RGB 0..255 and
# normalise inside the model, so they have no `keras.applications` module.
_EFFICIENTNET_LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """What the harness knows about a backbone without building it.

    Attributes:
        name: The name accepted by `harness.load_backbone`, e.g. `"MobileNetV2"`.
        family: `"keras_application"` or `"efficientnet_lite"`.
        module: The `keras.applications` module whose `preprocess_input` the backbone applies
            inside the model (e.g. `"mobilenet_v2"`); `None` for the `efficientnet_lite` family.
        default_size: The input height and width the ImageNet weights were trained at.
        min_size: The smallest input height and width the architecture accepts.
        layer_names: The names of the backbone model's layers in model order, for
            `include_top=False`, without the `InputLayer`. For `keras.applications` models
            the first one is `"preprocess"`.
        batchnorm_layers: The names of its BatchNormalization layers; None where the catalog
            does not know them (`keras.applications`: they are known once the model is built).
        weightless_layers: The names of its layers that hold no weights; None where unknown.
    """

    name: str
    family: str
    module: str | None
    default_size: int
    min_size: int
    layer_names: tuple[str, ...]
    batchnorm_layers: frozenset[str] | None = None
    weightless_layers: frozenset[str] | None = None


class UnknownBackboneError(ValueError):
    """A backbone name the harness does not know; the message suggests the closest ones."""


def backbone_names() -> list[str]:
    """Returns every backbone name the harness accepts, sorted case-insensitively."""
    return sorted([*_keras_applications()["applications"], *_EFFICIENTNET_LITES], key=str.lower)


def describe(name: str) -> BackboneInfo:
    """Returns what the harness knows about backbone `name`, without TensorFlow.

    Args:
        name: A backbone name, exactly as spelled by `backbone_names()`.

    Returns:
        The backbone's `BackboneInfo`.

    Raises:
        UnknownBackboneError: `name` is not a known backbone. The message suggests the
            closest names and lists the valid ones.
    """
    if name in _EFFICIENTNET_LITES:
        return _describe_efficientnet_lite(name)
    entry = _keras_applications()["applications"].get(name) if isinstance(name, str) else None
    if entry is None:
        raise UnknownBackboneError(_unknown_name_message(name))
    return BackboneInfo(
        name=name,
        family=KERAS_APPLICATION,
        module=entry["module"],
        default_size=entry["default_size"],
        min_size=entry["min_size"],
        layer_names=tuple(entry["layer_names"]),
    )


def check_input_shape(
    name: str, input_shape: Sequence[Any], *, include_top: bool = False, weights: Any = None
) -> tuple:
    """Validates an input shape for backbone `name` (channels last), without TensorFlow.

    Args:
        name: A backbone name.
        input_shape: `(height, width, channels)`. Height and width may be `None` (any size)
            unless `include_top=True`.
        include_top: Whether the ImageNet classifier is kept. Defaults to `False`.
        weights: The weights argument the backbone will be built with; with `"imagenet"` and
            `include_top=True` only the default size is accepted. Defaults to `None`.

    Returns:
        `input_shape` as a tuple.

    Raises:
        UnknownBackboneError: `name` is not a known backbone.
        ValueError: The shape is malformed, has other than 3 channels, is smaller than the
            backbone's minimum, or is not the default size where the classifier needs it.
    """
    info = describe(name)
    received = f"Received: input_shape={input_shape!r}"
    if (
        isinstance(input_shape, (str, bytes))
        or not isinstance(input_shape, Sequence)
        or len(input_shape) != 3
        or not all(d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool)) for d in input_shape)
    ):
        raise ValueError(
            f"`input_shape` must be a tuple of three integers (height, width, channels) for "
            f"backbone '{name}', e.g. ({info.default_size}, {info.default_size}, 3). {received}"
        )
    height, width, channels = input_shape
    if channels != 3:
        raise ValueError(
            f"`input_shape` must have 3 channels for backbone '{name}': the backbone takes RGB "
            f"images (channels last). Convert grayscale images to RGB in the data pipeline. {received}"
        )
    for size in (height, width):
        if size is not None and size < info.min_size:
            raise ValueError(
                f"`input_shape` must be at least {info.min_size}x{info.min_size} for backbone "
                f"'{name}'; its ImageNet weights were trained at "
                f"{info.default_size}x{info.default_size}. {received}"
            )
    if include_top:
        default = (info.default_size, info.default_size, 3)
        if weights == "imagenet" and tuple(input_shape) != default:
            raise ValueError(
                f"With `include_top=True` and `weights='imagenet'`, `input_shape` must be "
                f"{default} for backbone '{name}' (the ImageNet classifier's size). Pass "
                f"include_top=False to use another size. {received}"
            )
        if height is None or width is None:
            raise ValueError(
                f"With `include_top=True`, `input_shape` must have a fixed height and width "
                f"for backbone '{name}'. {received}"
            )
    return tuple(None if d is None else int(d) for d in input_shape)


@functools.cache
def _describe_efficientnet_lite(name: str) -> BackboneInfo:
    # Imported here: the architecture's module is only needed for these backbones.
    from harness.backbones import lite_architecture as lite

    variant = lite.VARIANTS[name]
    return BackboneInfo(
        name=name,
        family=EFFICIENTNET_LITE,
        module=None,
        default_size=variant.default_size,
        min_size=lite.MIN_SIZE,
        layer_names=tuple(lite.layer_names(include_top=False, variant=variant)),
        batchnorm_layers=lite.batchnorm_layer_names(variant),
        weightless_layers=lite.weightless_layer_names(variant),
    )


@functools.cache
def _keras_applications() -> dict[str, Any]:
    with open(KERAS_APPLICATIONS_JSON, encoding="utf-8") as f:
        return json.load(f)


def _unknown_name_message(name: object) -> str:
    names = backbone_names()
    by_lower = {n.lower(): n for n in names}
    text = str(name)
    close = difflib.get_close_matches(text.lower(), list(by_lower), n=3, cutoff=0.6)
    suggestion = ""
    if close:
        quoted = [f"'{by_lower[c]}'" for c in close]
        alternatives = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        suggestion = f" Did you mean {alternatives}?"
    return f"Unknown backbone {text!r}.{suggestion} Expected one of: {', '.join(names)}. Received: name={name!r}"
