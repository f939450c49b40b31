"""The Keras random preprocessing layers `augment(...)` accepts, their arguments and string values.

A TensorFlow-free table, like the backbone catalog: `augment` checks a spec against it at
collection (a misspelt `RandomFlip` mode is not an error in Keras: it silently turns the
augmentation off). `tests/test_spec_errors.py::test_augment_table_matches_keras` checks it
against the installed Keras, so it cannot drift.
"""

from __future__ import annotations

from typing import Any

from harness.spec.validators import SpecError, _check

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")
# The harness feeds images as (height, width, channels): channels_first would be wrong here.
_DATA_FORMATS = ("channels_last",)
_GEOMETRIC = {"fill_mode": _FILL_MODES, "interpolation": _INTERPOLATIONS, "data_format": _DATA_FORMATS}

# Layer -> {"arguments": every keyword it takes, "required": those without a default,
#           "choices": {argument: the string values it accepts}}.
LAYERS: dict[str, dict[str, Any]] = {
    "RandomFlip": {
        "arguments": ("mode", "seed", "data_format"),
        "required": (),
        "choices": {"mode": ("horizontal", "vertical", "horizontal_and_vertical"), "data_format": _DATA_FORMATS},
    },
    "RandomRotation": {
        "arguments": ("factor", "fill_mode", "interpolation", "seed", "fill_value", "data_format"),
        "required": ("factor",),
        "choices": _GEOMETRIC,
    },
    "RandomZoom": {
        "arguments": (
            "height_factor",
            "width_factor",
            "fill_mode",
            "interpolation",
            "seed",
            "fill_value",
            "data_format",
        ),
        "required": ("height_factor",),
        "choices": _GEOMETRIC,
    },
    "RandomTranslation": {
        "arguments": (
            "height_factor",
            "width_factor",
            "fill_mode",
            "interpolation",
            "seed",
            "fill_value",
            "data_format",
        ),
        "required": ("height_factor", "width_factor"),
        "choices": _GEOMETRIC,
    },
    "RandomContrast": {"arguments": ("factor", "value_range", "seed"), "required": ("factor",), "choices": {}},
    "RandomBrightness": {"arguments": ("factor", "value_range", "seed"), "required": ("factor",), "choices": {}},
    "RandomCrop": {
        "arguments": ("height", "width", "seed", "data_format"),
        "required": ("height", "width"),
        "choices": {"data_format": _DATA_FORMATS},
    },
}


def check_arguments(layer: str, kwargs: dict[str, Any]) -> None:
    """Raises `SpecError` for an argument `layer` does not take, a missing one, or a value not allowed."""
    entry = LAYERS[layer]
    arguments: tuple[str, ...] = entry["arguments"]
    for name, value in kwargs.items():
        _check(
            name in arguments,
            f"augment.{name}",
            f"must be an argument of keras.layers.{layer} ({', '.join(arguments)})",
            value,
        )
        choices: tuple[str, ...] | None = entry["choices"].get(name)
        if choices is not None:
            _check(
                isinstance(value, str) and value in choices,
                f"augment.{name}",
                f"must be one of {', '.join(map(repr, choices))} for keras.layers.{layer}",
                value,
            )
        if name == "seed":
            _check(
                value is None or (isinstance(value, int) and not isinstance(value, bool)),
                "augment.seed",
                "must be an integer or None",
                value,
            )
    missing = [name for name in entry["required"] if name not in kwargs]
    if missing:
        raise SpecError(
            f"augment.{missing[0]}",
            f"is required by keras.layers.{layer} (it needs {', '.join(entry['required'])})",
            None,
            hint=f"For example augment({layer!r}, {', '.join(f'{n}=...' for n in entry['required'])}).",
            shown=f"augment({layer!r}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})",
        )
