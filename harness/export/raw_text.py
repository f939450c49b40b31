"""Exports of a text model: raw strings in (keras-hub's preprocessor inside), class probabilities out.

- `model.keras`: a `RawTextClassifier`, keras-hub's way of a model that takes strings (a task
  with its `preprocessor`): the preprocessor, then the trained classifier. keras-hub saves a
  tokenizer's vocabulary as an asset, loaded after the model is rebuilt, so a functional model
  that calls the preprocessor cannot be rebuilt; this class is rebuilt without calling it.
  Loading needs the class registered: `import harness.export.raw_text` (or pass it in
  `custom_objects`), beside keras-hub.
- `saved_model`: a SavedModel whose `serve` takes a batch of strings (`tf.string`, shape
  `(None,)`); loading it needs TensorFlow Text's ops registered (`import tensorflow_text`, which
  keras-hub imports).
- `model_float32.tflite`: LiteRT of the classifier on token ids at the data set's
  `sequence_length` (the app tokenises, as mobile apps do: LiteRT has no tokenizer ops), every
  input `int32` of shape `(batch, sequence_length)`, named as the preprocessor names them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness.backbones.errors import first_line
from harness.data.loaded import PREDICT_BATCH
from harness.data.text_loading import TextData
from harness.export import ExportError
from harness.export.formats import FILES
from harness.model import Built

# What a text model is exported as (int8 calibrates on images).
FORMATS: tuple[str, ...] = ("keras", "saved_model", "litert")


@keras.saving.register_keras_serializable(package="keras_transfer_harness")
class RawTextClassifier(keras.Model):
    """Raw strings in, class probabilities out: `preprocessor` (keras-hub's) then `classifier` (on its outputs)."""

    def __init__(self, preprocessor: Any, classifier: keras.Model, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.preprocessor, self.classifier = preprocessor, classifier
        self.built = True  # both parts are; calling the preprocessor before its vocabulary loads would fail

    def call(self, texts: Any) -> Any:
        return self.classifier(self.preprocessor(texts))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "preprocessor": keras.layers.serialize(self.preprocessor),
            "classifier": keras.saving.serialize_keras_object(self.classifier),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RawTextClassifier:
        return cls(
            preprocessor=keras.layers.deserialize(config["preprocessor"]),
            classifier=keras.saving.deserialize_keras_object(config["classifier"]),
            name=config.get("name"),
        )


def raw_text_model(built: Built, preprocessor: Any) -> keras.Model:
    """`built`'s model behind `preprocessor`: what the exports are made from (the same variables,
    without the harness's training-only wrapper: inference never trains)."""
    inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name) for name, t in built.model.input.items()}
    outputs = built.head(built.head_inputs(built.backbone(inputs), inputs))
    return RawTextClassifier(preprocessor, keras.Model(inputs, outputs, name=built.model.name), name=built.model.name)


def write(format: str, model: RawTextClassifier, folder: Path, sequence_length: int) -> Path:
    """Writes `model` as `format` into `folder`; returns the path written."""
    path = folder / FILES[format]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Keras's own np.array(variable) calls
            if format == "keras":
                model.save(path)
            elif format == "saved_model":
                # A functional model on a string input: its serving signature takes strings.
                texts = keras.Input((), dtype="string", name="texts")
                served = keras.Model(texts, model.classifier(model.preprocessor(texts)), name=model.name)
                served.export(str(path), format="tf_saved_model", verbose=False)
            else:
                path.write_bytes(_litert(model.classifier, sequence_length))
    except Exception as error:  # noqa: BLE001 - converters raise many types; each is one plain failure
        raise ExportError(format, first_line(error)) from None
    return path


def read(format: str, path: Path) -> Callable[[Any], np.ndarray]:
    """`format` loaded back from `path`: a function from a batch (strings, or LiteRT's token ids) to probabilities."""
    try:
        if format == "keras":
            loaded = keras.saving.load_model(path)
            return lambda texts: np.asarray(loaded(tf.constant(texts)))
        if format == "saved_model":
            served = tf.saved_model.load(str(path))
            return lambda texts: served.serve(tf.constant(texts)).numpy()
        return _TokenInterpreter(path)
    except Exception as error:  # noqa: BLE001 - a file that does not load is one plain failure
        raise ExportError(format, f"{path.name} does not load back: {first_line(error)}") from None


def batches(data: TextData, split: str, format: str) -> list[Any]:
    """The batches of `split` `format` reads: its raw texts, or (LiteRT) its token ids padded to `sequence_length`."""
    count = data.sizes[split]
    starts = range(0, count, PREDICT_BATCH)
    if format != "litert":
        texts = data.texts[split]
        return [texts[start : start + PREDICT_BATCH] for start in starts]
    rows, length = data.input_rows(split), data.preprocessor.sequence_length
    return [
        {name: r.padded(np.arange(start, min(start + PREDICT_BATCH, count)), length) for name, r in rows.items()}
        for start in starts
    ]


def _litert(classifier: keras.Model, sequence_length: int) -> bytes:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    names = list(classifier.input)
    function = tf.function(lambda *inputs: classifier(dict(zip(names, inputs, strict=True)), training=False))
    signature = [tf.TensorSpec((None, sequence_length), tf.int32, name=name) for name in names]
    # Variables frozen into constants, as for the frozen pass (harness.inference).
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(*signature))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


class _TokenInterpreter:
    """A LiteRT file with named token-id inputs, called on batches of them (a mapping of name -> array)."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from harness import worker_resources

        self.interpreter = Interpreter(model_path=str(path), num_threads=worker_resources.threads())
        self.interpreter.allocate_tensors()

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        interpreter = self.interpreter
        details = interpreter.get_input_details()
        for detail in details:
            interpreter.resize_tensor_input(detail["index"], batch[detail["name"]].shape)
        interpreter.allocate_tensors()
        for detail in details:
            interpreter.set_tensor(detail["index"], np.asarray(batch[detail["name"]], dtype=np.int32))
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
