"""The export formats: the inference model, and one writer and one reader per format.

The inference model is the trained model as users deploy it: raw RGB pixels (0..255, float32)
at the experiment's input size in, class probabilities out, built only from Keras's own layers
so that `keras.saving.load_model` loads `model.keras` in a fresh process without the harness.
It shares the trained variables; the harness's training-only wrapper (`model._FixedTraining`)
is left out, since inference never trains.

Readers load a format back from its file and return a function from a batch of pixels to
probabilities: what `measure` compares against the trained model. The int8 model takes uint8
pixels and returns uint8 probabilities (scale 1/256); its reader quantizes and dequantizes
with the file's own parameters (`inference.Interpreted`).
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness.backbones.errors import first_line
from harness.export import ExportError
from harness.model import Built

Predict = Callable[[np.ndarray], np.ndarray]

# The file or folder of each format inside an experiment's export folder.
FILES = {
    "keras": "model.keras",
    "saved_model": "saved_model",
    "litert": "model_float32.tflite",
    "litert_int8": "model_int8.tflite",
}


def inference_model(built: Built) -> keras.Model:
    """`built`'s model for inference and export: the same variables, Keras's own layers only."""
    backbone = _with_keras_preprocessing(built.backbone)
    inputs = keras.Input(tuple(built.model.inputs[0].shape[1:]), name="image")
    return keras.Model(inputs, built.head(backbone(inputs)), name=built.model.name)


def _with_keras_preprocessing(backbone: keras.Model) -> keras.Model:
    """`backbone` with the harness's `PreprocessInput` layers (Keras applications) replaced by
    Keras layers computing the same per-pixel affine map, sharing every other layer."""
    from harness.backbones.keras_apps import PreprocessInput

    if not any(isinstance(layer, PreprocessInput) for layer in backbone.layers):
        return backbone

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return _affine_layer(layer) if isinstance(layer, PreprocessInput) else layer

    return keras.models.clone_model(backbone, clone_function=clone)


def _affine_layer(layer: Any) -> keras.layers.Layer:
    """A Keras layer equal to `layer` (RGB in, 3 channels out, the same map at every pixel).

    `keras.applications` preprocessing is affine per pixel (scale and shift, "caffe" mode also
    reverses the channels): read off its matrix and offset, and check them on random pixels.
    """
    probe = np.concatenate([np.zeros((1, 3)), np.eye(3)]).reshape(1, 1, 4, 3).astype(np.float32)
    mapped = np.asarray(layer(probe)).reshape(4, 3).astype(np.float64)
    offset, matrix = mapped[0], mapped[1:] - mapped[0]
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
    if not np.allclose(np.asarray(layer(pixels)), pixels @ matrix + offset, rtol=1e-5, atol=1e-4):
        raise ExportError("keras", f"the preprocessing {layer.module!r} is not an affine map of each pixel")
    if np.count_nonzero(matrix - np.diag(np.diag(matrix))) == 0:
        return keras.layers.Rescaling(np.diag(matrix).tolist(), offset.tolist(), name=layer.name)
    affine = keras.layers.Dense(3, name=layer.name, trainable=False)
    affine.build((None, 3))
    affine.set_weights([matrix.astype(np.float32), offset.astype(np.float32)])
    return affine


def write(format: str, model: keras.Model, folder: Path, representative: Callable[[], Iterable[np.ndarray]]) -> Path:
    """Writes `model` as `format` into `folder`; returns the path written.

    Args:
        representative: Yields batches of training images; the int8 conversion calibrates its
            activation ranges on them.
    """
    path = folder / FILES[format]
    try:
        with warnings.catch_warnings():
            # Keras's saving calls np.array(variable) the NumPy 2 way it deprecates: not the user's to fix.
            warnings.simplefilter("ignore", DeprecationWarning)
            _write(format, model, path, representative)
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001 - converters raise many types; each is one plain failure
        raise ExportError(format, first_line(error)) from None
    return path


def _write(format: str, model: keras.Model, path: Path, representative: Callable[[], Iterable[np.ndarray]]) -> None:
    if format == "keras":
        model.save(path)
    elif format == "saved_model":
        model.export(str(path), format="tf_saved_model", verbose=False)
    else:
        path.write_bytes(_litert(model, representative if format == "litert_int8" else None))


def _litert(model: keras.Model, representative: Callable[[], Iterable[np.ndarray]] | None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:  # full-integer: uint8 pixels in, uint8 probabilities out
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([batch] for batch in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": the input is pixels
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()


def read(format: str, path: Path) -> Predict:
    """`format` loaded back from `path`: a function from a batch of float32 pixels to probabilities."""
    try:
        if format == "keras":
            loaded = keras.saving.load_model(path)
            return lambda batch: np.asarray(loaded.predict_on_batch(batch))
        if format == "saved_model":
            served = tf.saved_model.load(str(path))
            return lambda batch: served.serve(tf.constant(batch, dtype=tf.float32)).numpy()
        from harness.inference import Interpreted

        return Interpreted(model_path=str(path))
    except Exception as error:  # noqa: BLE001 - a file that does not load is one plain failure
        raise ExportError(format, f"{path.name} does not load back: {first_line(error)}") from None


def remove(path: Path) -> None:
    """Removes a file or folder that a writer left (nothing when there is none)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def size_bytes(path: Path) -> int:
    """The size of a file, or of every file below a folder (a SavedModel)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size
