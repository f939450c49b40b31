"""Low-rank adapters (LoRA) on the layers a fine-tuning phase selects, and the plain weights they merge into.

keras-hub's `Backbone.enable_lora(rank)` freezes a whole backbone and enables Keras's LoRA
(`EinsumDense.enable_lora`, `Dense.enable_lora`) on its attention query and value projections
(`default_lora_layer_names()`). A phase with `lora_rank` does the same on the layers its
freezing rule selects only (`transformer_layer_4` and up, say): inside them, only the adapters
train. Unlike Keras's own LoRA, the projections' biases stay frozen too, so every base weight
stays unchanged bit for bit and the frozen check covers it; the trainable count is the adapters
and the head.

`merged_weights` gives the trained model's weights with each adapter merged into its kernel
(`kernel + a @ b * alpha / rank`, what Keras's `kernel` property computes), in the order of the
same model without adapters: what a plain copy for export is loaded with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from harness import freezing


def targets(layer: Any, names: Sequence[str]) -> list[Any]:
    """The sublayers of `layer` named in `names` that take adapters (they have `enable_lora`)."""
    return [s for s in layer._flatten_layers(include_self=False) if s.name in names and hasattr(s, "enable_lora")]


def apply(backbone: keras.Model, trainable: frozenset[str], rank: int, names: Sequence[str]) -> int:
    """Adapters of `rank` on the `names` sublayers of `backbone`'s `trainable` layers, every other
    weight of them frozen (`freezing.apply` has made them trainable). Returns how many layers are adapted.

    Raises:
        ValueError: No trainable layer holds such a sublayer (the rule selects no attention).
    """
    adapted = 0
    for info, layer in freezing.keras_layers(backbone):
        if info.qualified_name not in trainable:
            continue
        chosen = targets(layer, names)
        for sublayer in layer._flatten_layers(include_self=False):
            sublayer.trainable = False
        for sublayer in chosen:
            sublayer.trainable = True
            if not getattr(sublayer, "lora_enabled", False):
                sublayer.enable_lora(rank)
            adapters = (sublayer.lora_kernel_a, sublayer.lora_kernel_b)
            for variable in sublayer.weights:
                variable.trainable = any(variable is a for a in adapters)
            adapted += 1
    if adapted == 0:
        raise ValueError(f"none of the trainable layers holds a {' or '.join(map(repr, names))} layer to adapt")
    return adapted


def enabled(model: keras.Model) -> bool:
    """Whether any layer of `model` carries adapters."""
    return any(getattr(layer, "lora_enabled", False) for layer in model._flatten_layers())


def merged_weights(model: keras.Model) -> list[np.ndarray]:
    """`model`'s weights with every adapter merged into its kernel, adapters left out, in model order."""
    adapted = {
        id(layer._kernel): layer.kernel for layer in model._flatten_layers() if getattr(layer, "lora_enabled", False)
    }
    adapters = {
        id(v)
        for layer in model._flatten_layers()
        if getattr(layer, "lora_enabled", False)
        for v in (layer.lora_kernel_a, layer.lora_kernel_b)
    }
    return [np.asarray(adapted.get(id(v), v)) for v in model.weights if id(v) not in adapters]
