"""The frozen part's one forward pass, on LiteRT or on Keras.

A cached phase runs its frozen layers once per image, in inference mode: an inference job. By
default it runs on LiteRT (`ai_edge_litert`, TensorFlow's runtime for deployed models), whose
XNNPACK kernels run EfficientNet-Lite0 on this CPU much faster than `Model.predict`: the ELPV
benchmark's cold feature-extraction phase took 35 s against 55 s (README, "Performance"). The
network is traced in inference mode, its variables are frozen into constants and the result is
converted to a flat buffer that lives for the pass only. Its outputs agree with
`Model.predict`'s up to float round-off (tests/test_inference.py).

`runtime="keras"` runs `Model.predict`. LiteRT falls back to it, and says why, for a network it
cannot take (several inputs or outputs, an op the converter rejects, a mixed dtype policy) or
where `ai-edge-litert` is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness import worker_resources
from harness.backbones.errors import first_line
from harness.spec import FROZEN_RUNTIMES


def resolve(runtime: str) -> str:
    """The runtime `runtime` names: "auto" is Keras's Model.predict where TensorFlow sees a GPU, else LiteRT."""
    if runtime == "auto":
        return "keras" if tf.config.list_physical_devices("GPU") else "litert"
    return runtime


class FrozenPass:
    """`model`'s outputs for batches of inputs, on `runtime` (or Keras, when LiteRT cannot run it).

    `ran_on` names what runs the pass, with the reason when LiteRT fell back to Keras.
    """

    def __init__(self, model: keras.Model, runtime: str = "litert"):
        if runtime not in FROZEN_RUNTIMES:
            raise ValueError(f"runtime must be one of {FROZEN_RUNTIMES}. Received: {runtime!r}")
        self.model = model
        self.ran_on = "keras"
        # Keras: one traced inference call per batch, traced once per pass. Not `predict_on_batch`:
        # under MirroredStrategy it returns every replica's outputs for the whole batch (twice the
        # rows on two replicas).
        self._forward: Callable[[np.ndarray], Any] = tf.function(
            lambda images: model(images, training=False), reduce_retracing=True
        )
        if resolve(runtime) == "litert":
            try:
                self._forward = _interpreter(model)
                self.ran_on = "litert"
            except _NotConvertible as error:
                self.ran_on = f"keras (LiteRT: {error})"

    def __call__(
        self, batches: Iterable[Any], out: np.ndarray | None = None, *, lengths: np.ndarray | None = None
    ) -> np.ndarray:
        """The outputs on `batches`, as float32, in order; written into `out` when given (exactly its rows).

        With `lengths` (one per example), each output is a padded sequence and only its first
        `lengths[i]` elements are kept: the result is every example's elements back to back.
        """
        if out is None:
            if lengths is not None:
                raise ValueError("lengths need an `out` to write into")
            return np.concatenate([np.asarray(self._forward(batch)) for batch in batches]).astype(
                np.float32, copy=False
            )
        filled = done = 0
        for batch in batches:
            outputs = np.asarray(self._forward(batch))
            if lengths is not None:
                kept = lengths[done : done + len(outputs)]
                done += len(outputs)
                outputs = outputs[np.arange(outputs.shape[1])[None, :] < kept[:, None]]
            out[filled : filled + len(outputs)] = outputs
            filled += len(outputs)
        if filled != len(out):
            raise ValueError(f"the pass gave {filled} rows for an output of {len(out)}")
        return out


class Interpreted:
    """A LiteRT flat buffer (or `.tflite` file) with one input and one output, called on batches.

    Float inputs are quantized and integer outputs dequantized with the model's own scale and
    zero point, so a full-integer model is called like a float one: float pixels in, float
    probabilities out.
    """

    def __init__(self, *, model_content: bytes | None = None, model_path: str | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(
            model_content=model_content, model_path=model_path, num_threads=worker_resources.threads()
        )
        self.interpreter.allocate_tensors()
        (self.source,), (self.target,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        interpreter, source = self.interpreter, self.source
        batch = _quantized(np.asarray(batch, dtype=np.float32), source)
        if tuple(interpreter.get_input_details()[0]["shape"]) != batch.shape:
            interpreter.resize_tensor_input(source["index"], batch.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        output = interpreter.get_tensor(self.target["index"])
        if np.issubdtype(output.dtype, np.integer):
            scale, zero_point = self.target["quantization"]
            return (output.astype(np.float32) - zero_point) * scale
        return output


def _quantized(batch: np.ndarray, source: dict[str, Any]) -> np.ndarray:
    """`batch` as the model's input type: unchanged for a float input, else rounded to its integers."""
    dtype = np.dtype(source["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return batch
    scale, zero_point = source["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.rint(batch / scale + zero_point), info.min, info.max).astype(dtype)


def batches_of(array: np.ndarray, size: int) -> Iterable[np.ndarray]:
    return (array[start : start + size] for start in range(0, len(array), size))


class _NotConvertible(Exception):
    pass


def _interpreter(model: keras.Model) -> Interpreted:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:  # a dependency, but an environment may lack it
        raise _NotConvertible("the ai-edge-litert package is not installed") from None
    # Freezing variables into constants is what lets XNNPACK take the convolutions; the
    # converter keeps resource variables as mutable state otherwise.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise _NotConvertible(f"{len(model.inputs)} inputs and {len(model.outputs)} outputs; it runs one to one")
    if model.dtype_policy.compute_dtype != "float32":  # the pass must compute what the model computes
        raise _NotConvertible(f"the network computes in {model.dtype_policy.name}; LiteRT would run it in float32")
    signature = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)
    function = tf.function(lambda images: model(images, training=False)).get_concrete_function(signature)
    try:
        flat = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(function)]).convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError, and others for odd graphs
        raise _NotConvertible(f"conversion failed: {first_line(error)}") from None
    return Interpreted(model_content=flat)
