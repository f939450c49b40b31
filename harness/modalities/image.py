"""The image room: decoded, resized pixels into a Keras application or EfficientNet-Lite, pooled over the feature map."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness import inference, spec
from harness.data import loading
from harness.data.loaded import LoadedData
from harness.model import Built, Parts

# Training images the int8 conversion calibrates on (drawn with the experiment's seed), as
# TensorFlow's post-training quantization guide suggests (a hundred or a few hundred).
CALIBRATION_IMAGES = 100


class ImageRoom:
    export_formats = spec.EXPORT_FORMATS

    def load_backbone(self, experiment: spec.Experiment) -> keras.Model:
        declared, input_shape = experiment.backbone, (*experiment.image_size, 3)
        if declared.build is not None:
            model = declared.build(input_shape)
            if not isinstance(model, keras.Model):
                raise spec.SpecError("custom_backbone.build", "must return a keras.Model", type(model).__name__)
            return model
        from harness.backbones import load_backbone

        return load_backbone(declared.name, weights=declared.weights, include_top=False, input_shape=input_shape)

    def load_data(self, experiment: spec.Experiment) -> LoadedData:
        return loading.load(experiment.dataset)

    def data_key(self, experiment: spec.Experiment) -> Hashable:
        return None

    def parts(self, experiment: spec.Experiment, backbone: keras.Model) -> Parts:
        pool = None
        if len(backbone.output.shape) == 4:  # a feature map (else the backbone pools itself)
            layer = (
                keras.layers.GlobalAveragePooling2D
                if experiment.head.pooling == "avg"
                else keras.layers.GlobalMaxPooling2D
            )
            pool = layer(name="pool")
        return Parts(keras.Input((*experiment.image_size, 3), name="image"), pool, _features)

    def frozen_runtime(self, requested: str) -> str:
        return inference.resolve(requested)

    def export_model(self, built: Built, data: LoadedData) -> keras.Model:
        from harness.export import formats

        return formats.inference_model(built)

    def write(self, format: str, model: keras.Model, folder: Path, data: LoadedData, seed: int) -> Path:
        from harness.export import formats

        return formats.write(format, model, folder, partial(calibration_images, data, seed))

    def read(self, format: str, path: Path) -> Callable[[Any], np.ndarray]:
        from harness.export import formats

        return formats.read(format, path)

    def export_batches(self, data: LoadedData, split: str, format: str) -> Iterable[Any]:
        return data.input_batches(split).as_numpy_iterator()

    def reference(self, built: Built, data: LoadedData, split: str) -> np.ndarray:
        batches = data.input_batches(split).as_numpy_iterator()
        return np.concatenate([np.asarray(built.model.predict_on_batch(b)) for b in batches])


def _features(outputs: Any, inputs: Any) -> Any:
    """What an image head reads: the backbone's feature map (or vector) alone."""
    return outputs


def calibration_images(data: LoadedData, seed: int) -> Iterator[np.ndarray]:
    """`CALIBRATION_IMAGES` training images drawn with `seed`, one per batch, in data-set order."""
    assert isinstance(data, loading.ImageData), "int8 calibration reads images"
    size = data.sizes["train"]
    picked = tf.constant(
        np.sort(np.random.default_rng(seed).choice(size, min(CALIBRATION_IMAGES, size), replace=False))
    )
    chosen = data.train.enumerate().filter(lambda i, example: tf.reduce_any(i == picked))
    return (image[None] for _, (image, _) in chosen.as_numpy_iterator())
