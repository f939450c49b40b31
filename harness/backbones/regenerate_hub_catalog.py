"""Rebuilds the text-preset catalog's `keras_hub_presets.json` from the installed keras-hub (imports TensorFlow).

    python -m harness.backbones.regenerate_hub_catalog [--list]

records every preset of every keras-hub backbone that has a text classifier
(`keras_hub.models.*TextClassifier.backbone_cls`), the Hugging Face `model_type`s keras-hub
converts, and per architecture a template of its encoder's layer names. Each template is read
off a tiny backbone of that class (hidden size 8) and checked against a second tiny backbone of
another depth; a template that does not predict both fails the run. About 15 seconds on 2 cores,
most of it importing keras-hub. Regenerate it whenever the supported keras-hub version changes;
`--list` prints what the catalog holds.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.backbones import hub_catalog
from harness.paths import atomic_write_text

# The constructor arguments a tiny backbone is built with (those its class takes).
_TINY_ARGUMENTS = {
    "vocabulary_size": 50,
    "num_heads": 2,
    "hidden_dim": 8,
    "intermediate_dim": 16,
    "embedding_dim": 4,
    "head_size": 4,
    "max_sequence_length": 16,
    "bucket_size": 4,
    "max_wavelength": 100,
}
# The constructor arguments that can change the layer names, and the two depths each template is
# checked at. The first depth gives every variable a different value above 1, so that each
# repeated block's length names its variable; ALBERT's `num_layers` must divide by `num_groups`.
_DEPTH_VARIABLES = ("num_layers", "num_groups", "num_inner_repetitions")
_DEPTHS = (
    {"num_layers": 4, "num_groups": 2, "num_inner_repetitions": 3},
    {"num_layers": 6, "num_groups": 3, "num_inner_repetitions": 2},
)
_PLAIN_DEPTHS = ({"num_layers": 2}, {"num_layers": 3})
_INDEX_FIELDS = "ijklmn"
_NUMBER = re.compile(r"\d+")


def regenerate(path: Path = hub_catalog.KERAS_HUB_PRESETS_JSON) -> dict[str, Any]:
    """Rebuilds `keras_hub_presets.json` from the installed keras-hub (imports TensorFlow).

    Args:
        path: Where to write the JSON. Defaults to the catalog's own file.

    Returns:
        The data written.
    """
    import keras

    keras_hub = _import("keras_hub")
    classifiers = _text_classifiers()
    model_types = _huggingface_model_types()
    architectures: dict[str, Any] = {}
    for backbone_cls, classifier in sorted(classifiers.items(), key=lambda item: item[0].__name__):
        start = time.perf_counter()
        name = backbone_cls.__name__
        entry = _architecture_entry(backbone_cls, classifier)
        entry["huggingface_model_types"] = sorted(t for t, m in model_types.items() if m["architecture"] == name)
        architectures[name] = entry
        keras.backend.clear_session()
        print(f"{name}: {len(entry['layers'])} template entries in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    data = {
        "generated_by": "python -m harness.backbones.regenerate_hub_catalog",
        "keras_hub_version": keras_hub.__version__,
        "keras_version": keras.__version__,
        "architectures": architectures,
        "huggingface_model_types": dict(sorted(model_types.items())),
        "presets": _presets(list(classifiers)),
    }
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")
    os.chmod(path, 0o644)  # A package data file: readable by all, unlike the temporary file.
    hub_catalog._catalog.cache_clear()
    return data


def _text_classifiers() -> dict[Any, str]:
    """Every backbone class that a `keras_hub.models.*TextClassifier` is built on, with that classifier's name."""
    keras_hub = _import("keras_hub")
    classifiers: dict[Any, str] = {}
    for name in sorted(dir(keras_hub.models)):
        task = getattr(keras_hub.models, name)
        if name.endswith("TextClassifier") and getattr(task, "backbone_cls", None) is not None:
            classifiers.setdefault(task.backbone_cls, name)
    return classifiers


def _presets(backbone_classes: Sequence[Any]) -> dict[str, Any]:
    """Each preset of these classes, under the most derived class that lists it.

    `Backbone.presets` also lists the presets of subclasses (`RobertaBackbone.presets` holds
    `xlm_roberta_base_multi`, an `XLMRobertaBackbone`), so a preset goes to the class that is a
    subclass of every other class listing it.
    """
    owners: dict[str, list[Any]] = {}
    metadata: dict[str, Mapping[str, Any]] = {}
    for cls in backbone_classes:
        for preset, entry in cls.presets.items():
            owners.setdefault(preset, []).append(cls)
            metadata[preset] = entry["metadata"]
    presets: dict[str, Any] = {}
    for preset in sorted(owners):
        classes = owners[preset]
        most_derived = [c for c in classes if all(issubclass(c, other) for other in classes)]
        if len(most_derived) != 1:
            raise RuntimeError(f"Preset {preset!r} is listed by unrelated classes: {[c.__name__ for c in classes]}")
        presets[preset] = {
            "architecture": most_derived[0].__name__,
            "params": int(metadata[preset]["params"]),
            "description": str(metadata[preset]["description"]),
        }
    return presets


def _architecture_entry(backbone_cls: Any, classifier: str) -> dict[str, Any]:
    """The architecture's layer-name template, read off one tiny backbone and checked against another."""
    parameters = inspect.signature(backbone_cls).parameters
    variables = [v for v in _DEPTH_VARIABLES if v in parameters]
    depths = [{v: depth[v] for v in variables} for depth in (_DEPTHS if len(variables) > 1 else _PLAIN_DEPTHS)]
    arguments = {k: v for k, v in _TINY_ARGUMENTS.items() if k in parameters}
    built = []
    for depth in depths:
        backbone = backbone_cls(**arguments, **depth)
        config = backbone.get_config()
        for variable, value in depth.items():
            if config.get(variable) != value:
                raise RuntimeError(f"{backbone_cls.__name__}.get_config()[{variable!r}] is not {value}: {config}")
        built.append(_encoder_layers(backbone))
    layers = _template(built[0], depths[0])
    for depth, names in zip(depths, built, strict=True):
        predicted = hub_catalog._expand_layers(layers, depth)
        if predicted != names:
            raise RuntimeError(
                f"The layer-name template of {backbone_cls.__name__} does not predict the backbone built with "
                f"{depth}:\npredicted {predicted}\nbuilt     {names}"
            )
    return {
        "text_classifier": classifier,
        "num_layers_key": "num_layers",
        "variables": {
            v: None if parameters[v].default is inspect.Parameter.empty else parameters[v].default for v in variables
        },
        "layers": layers,
    }


def _encoder_layers(backbone: Any) -> list[tuple[str, bool]]:
    """The encoder's leaf layers, in model order, each with whether it holds weights."""
    import keras

    out = backbone.output
    sequence = out["sequence_output"] if isinstance(out, dict) else out
    encoder = keras.Model(backbone.input, sequence)
    return [
        (layer.name, bool(layer.weights)) for layer in encoder.layers if not isinstance(layer, keras.layers.InputLayer)
    ]


def _template(layers: Sequence[tuple[str, bool]], depth: Mapping[str, int]) -> list[dict[str, Any]]:
    """Groups a run of names that differ only in their numbers into one repeated entry.

    A run is repeated when its numbers count through `range(n1) x range(n2) ...` in order and each
    `n` is the value of one depth variable (they are all different and above 1 in `depth`);
    any other name is kept as it is.
    """
    variable_of = {value: variable for variable, value in depth.items()}
    entries: list[dict[str, Any]] = []
    start = 0
    while start < len(layers):
        name, has_weights = layers[start]
        if "{" in name or "}" in name:
            raise RuntimeError(f"A layer name with a brace cannot be templated: {name!r}")
        pattern = _NUMBER.sub("{}", name)
        end = start
        while end < len(layers) and _NUMBER.sub("{}", layers[end][0]) == pattern:
            end += 1
        run = [tuple(int(n) for n in _NUMBER.findall(n)) for n, _ in layers[start:end]]
        counts = [len({numbers[slot] for numbers in run}) for slot in range(len(run[0]))]
        if (
            run[0]
            and all(count in variable_of for count in counts)
            and run == list(itertools.product(*(range(count) for count in counts)))
            and len({w for _, w in layers[start:end]}) == 1
            and len(counts) <= len(_INDEX_FIELDS)
        ):
            fields = _INDEX_FIELDS[: len(counts)]
            entries.append(
                {
                    "name": pattern.format(*(f"{{{field}}}" for field in fields)),
                    "repeat": {field: variable_of[count] for field, count in zip(fields, counts, strict=True)},
                    "has_weights": has_weights,
                }
            )
            start = end
        else:
            entries.append({"name": name, "has_weights": has_weights})
            start += 1
    return entries


def _huggingface_model_types() -> dict[str, dict[str, Any]]:
    """Every Hugging Face `model_type` keras-hub converts, its backbone class and config keys.

    The types are the string literals `TransformersPresetLoader` compares `model_type` with; the
    class is the converter's `backbone_cls`. The config keys (a depth variable's key in the Hugging
    Face `config.json`) are found by running the converter's `convert_backbone_config` on a probe
    that answers each key with a number of its own.
    """
    preset_loader = _import("keras_hub.src.utils.transformers.preset_loader")
    tree = ast.parse(Path(inspect.getfile(preset_loader)).read_text(encoding="utf-8"))
    literals: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "model_type":
            for comparator in node.comparators:
                for constant in ast.walk(comparator):
                    if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                        literals.add(constant.value)
    model_types: dict[str, dict[str, Any]] = {}
    for model_type in sorted(literals):
        try:
            converter = preset_loader.TransformersPresetLoader(None, {"model_type": model_type}).converter
        except ValueError:
            continue  # Compared with, but not converted.
        model_types[model_type] = {
            "architecture": converter.backbone_cls.__name__,
            "config_keys": _probe_config_keys(converter),
        }
    if not model_types:
        raise RuntimeError("Found no Hugging Face model types in keras-hub's TransformersPresetLoader")
    return model_types


class _Probe(dict):
    """A Hugging Face config that answers every key with a number of its own, remembering which."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_by_number: dict[int, str] = {}

    def __missing__(self, key: str) -> int:
        number = 1_000_003 + 7 * len(self.keys_by_number)
        self.keys_by_number[number] = key
        self[key] = number
        return number

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key]

    def __contains__(self, key: object) -> bool:
        return True


def _probe_config_keys(converter: Any) -> dict[str, str]:
    probe = _Probe()
    try:
        config = converter.convert_backbone_config(probe)
    except Exception:  # noqa: BLE001  (a converter that computes with its config: its keys stay unknown)
        return {}
    return {
        variable: probe.keys_by_number[config[variable]]
        for variable in _DEPTH_VARIABLES
        if isinstance(config.get(variable), int) and config[variable] in probe.keys_by_number
    }


def _import(name: str) -> Any:
    # keras-hub ships no type information; mypy checks the rest of this module.
    return importlib.import_module(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m harness.backbones.regenerate_hub_catalog [--list]`."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.backbones.regenerate_hub_catalog", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--list", action="store_true", help="Print the catalog's text presets instead of rebuilding it")
    args = parser.parse_args(argv)
    if args.list:
        for name in hub_catalog.text_preset_names():
            info = hub_catalog.describe_preset(name)
            print(f"{name:36} {info.architecture or '?':20} {info.params or 0:>12,} params")
        return 0
    regenerate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
