"""The text room: texts tokenised by a keras-hub encoder's own preprocessor, pooled over the real tokens.

The encoder (`harness.backbones.keras_hub_text`) returns its token outputs with the padding mask;
the head pools them (`pooling="avg"`: the mean over the real tokens, what sentence encoders are
trained for; `"cls"`: the first token). The frozen pass runs on Keras (`Model.predict`'s
kernels): LiteRT takes one input and a text encoder has several. An export takes raw strings, the
tokenizer inside (`harness.export.text`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from harness import spec
from harness.backbones import keras_hub_text
from harness.backbones.keras_hub_text import PADDING_MASK, SEQUENCE_OUTPUT
from harness.data import text_loading
from harness.data.loaded import LoadedData
from harness.export import raw_text
from harness.model import Built, Parts


class TextRoom:
    export_formats = raw_text.FORMATS

    def load_backbone(self, experiment: spec.Experiment) -> keras.Model:
        declared = experiment.backbone
        assert declared.preset is not None, declared
        return keras_hub_text.load_encoder(
            declared.preset, load_weights=declared.weights is not None, name=declared.name
        )

    def load_data(self, experiment: spec.Experiment) -> LoadedData:
        preset = experiment.backbone.preset
        assert preset is not None, experiment.backbone
        sequence_length = experiment.input_size
        assert isinstance(sequence_length, int), sequence_length
        return text_loading.load(experiment.dataset, keras_hub_text.load_preprocessor(preset, sequence_length))

    def data_key(self, experiment: spec.Experiment) -> Hashable:
        preset = experiment.backbone.preset
        return None if preset is None else (preset.preset, preset.folder)  # the tokenizer

    def parts(self, experiment: spec.Experiment, backbone: keras.Model) -> Parts:
        inputs = {name: keras.Input((None,), dtype=t.dtype, name=name) for name, t in backbone.input.items()}
        features = _features(backbone.output, backbone.input)
        head = {name: keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=name) for name, t in features.items()}
        if experiment.head.pooling == "cls":
            pooled = head[SEQUENCE_OUTPUT][:, 0, :]
        else:  # the mean over the real tokens
            pooled = keras.layers.GlobalAveragePooling1D(name="mean")(head[SEQUENCE_OUTPUT], mask=head[PADDING_MASK])
        return Parts(
            inputs, keras.Model(head, pooled, name="pool"), _features, keras_hub_text.lora_layer_names(backbone)
        )

    def frozen_runtime(self, requested: str) -> str:
        return "keras" if requested == "auto" else requested

    def export_model(self, built: Built, data: LoadedData) -> keras.Model:
        return raw_text.raw_text_model(built, _text(data).preprocessor)

    def write(self, format: str, model: keras.Model, folder: Path, data: LoadedData, seed: int) -> Path:
        return raw_text.write(format, model, folder, _text(data).preprocessor.sequence_length)

    def read(self, format: str, path: Path) -> Callable[[Any], np.ndarray]:
        return raw_text.read(format, path)

    def export_batches(self, data: LoadedData, split: str, format: str) -> Iterable[Any]:
        return raw_text.batches(_text(data), split, format)

    def reference(self, built: Built, data: LoadedData, split: str) -> np.ndarray:
        return np.asarray(built.model.predict(data.input_batches(split), verbose=0))


def _features(outputs: Any, inputs: Any) -> dict[str, Any]:
    """What a text head reads: the encoder's token outputs, and the inputs' padding mask to pool over."""
    return {SEQUENCE_OUTPUT: outputs, PADDING_MASK: inputs[PADDING_MASK]}


def _text(data: LoadedData) -> text_loading.TextData:
    assert isinstance(data, text_loading.TextData), type(data).__name__
    return data
