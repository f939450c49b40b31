"""Builds the model an experiment declares: the modality's inputs -> backbone -> new classifier head.

The backbone and the head are sub-models of the full model, so a phase can train the head
(or the top of the backbone plus the head) on cached inputs while the full model keeps
sharing the very same variables. What differs by modality (the inputs, the backbone, the
head's pooling) comes from the experiment's room (`harness.modalities`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras

from harness import lora, spec


@dataclass
class Built:
    model: keras.Model
    backbone: keras.Model
    head: keras.Model
    backbone_training: bool | None  # the `training` argument the backbone is called with
    # What the head reads, from the backbone's outputs and the model's inputs (the room's `head_inputs`).
    head_inputs: Callable[[Any, Any], Any] = field(default=lambda outputs, inputs: outputs)
    lora_layer_names: tuple[str, ...] = ()  # the sublayers that take adapters (the room's)


@dataclass(frozen=True)
class Parts:
    """What the experiment's room gives the model: its inputs, the head's pooling (or None), what the
    head reads, and the names of the sublayers that take low-rank adapters (`fine_tune(lora_rank=...)`)."""

    inputs: Any
    pool: Any
    head_inputs: Callable[[Any, Any], Any]
    lora_layer_names: tuple[str, ...] = ()


def load(experiment: spec.Experiment, backbone: keras.Model, num_classes: int, parts: Parts) -> Built:
    """Builds the full model for `experiment` around `backbone` from the room's `parts`."""
    features = parts.head_inputs(backbone.output, backbone.input)
    head = _head(experiment.head, features, num_classes, parts.pool)
    # As the Keras transfer-learning guide does: the backbone runs in inference mode, so frozen
    # BatchNorm keeps its statistics even once layers above it are unfrozen. Only a phase that
    # asks to train BatchNorm needs the backbone to follow the training flag.
    backbone_training = None if any(p.train_batchnorm for p in experiment.phases) else False
    inputs = parts.inputs
    outputs = head(parts.head_inputs(call_with_training(backbone, inputs, backbone_training), inputs))
    model = keras.Model(inputs, outputs, name=re.sub(r"\W", "_", experiment.name))
    return Built(model, backbone, head, backbone_training, parts.head_inputs, parts.lora_layer_names)


def plain_copy(experiment: spec.Experiment, built: Built, untrained: keras.Model, parts: Parts) -> Built:
    """`built` rebuilt in float32 on the default device around `untrained` (the backbone without
    its weights loaded), with its trained weights, adapters merged into their kernels.

    What exports are made from after a run under a mixed policy or MirroredStrategy, or with
    LoRA: LiteRT converts float32 graphs, and a deployed model holds plain variables, not
    mirrored ones nor adapters. Call it outside `harness.distribution.placed`. Variables are
    float32 under every policy, so the copy holds the very values trained.
    """
    copy = load(experiment, untrained, int(built.model.outputs[0].shape[-1]), parts)
    copy.model.set_weights(lora.merged_weights(built.model))
    return copy


def call_with_training(network: keras.Model, inputs: Any, training: bool | None) -> Any:
    """`network(inputs, training=training)` in a functional graph, keeping `training` when it is set.

    Keras up to 3.15 drops a `training` flag written at a call in a functional graph: the model
    around it passes its own flag to every layer that takes one (fixed in keras-team/keras#23364).
    `backbone(x, training=False)` then runs the backbone in training mode during `fit`, and its
    Dropout drops although it is frozen (frozen BatchNorm is spared only by `trainable=False`).
    `None` follows the flag of the model around it.
    """
    if training is None:
        return network(inputs)
    return _FixedTraining(network, training)(inputs)


class _FixedTraining(keras.layers.Layer):
    """Calls `network` with a fixed `training` flag; its `call` takes none, so none is passed in."""

    def __init__(self, network: keras.Model, training: bool) -> None:
        super().__init__(name=f"{network.name}_training_{str(training).lower()}")
        self.network = network
        self.fixed_training = training

    def call(self, inputs: Any) -> Any:
        return self.network(inputs, training=self.fixed_training)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.network.compute_output_shape(input_shape)


def _head(declared: spec.ClassifierHead, features: Any, num_classes: int, pool: Any) -> keras.Model:
    """Pooling (where `pool` is given), the hidden layers, dropout and the softmax layer.

    One feature tensor (an image backbone's) makes a `Sequential` head; several (a text encoder's
    token outputs and padding mask, by name) a functional one that pools them first.
    """
    if isinstance(features, dict):
        inputs = {k: keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=k) for k, t in features.items()}
        x = inputs if pool is None else pool(inputs)
        for layer in _top(declared, num_classes):
            x = layer(x)
        return keras.Model(inputs, x, name="head")
    layers: list[Any] = [keras.Input(tuple(features.shape[1:]), name="features")]
    if pool is not None:
        layers.append(pool)
    return keras.Sequential([*layers, *_top(declared, num_classes)], name="head")


def _top(declared: spec.ClassifierHead, num_classes: int) -> list[keras.layers.Layer]:
    layers: list[keras.layers.Layer] = []
    for i, units in enumerate(declared.hidden_units):
        layers.append(keras.layers.Dense(units, activation="relu", name=f"hidden_{i}"))
    if declared.dropout_rate > 0:
        layers.append(keras.layers.Dropout(declared.dropout_rate, name="dropout"))
    # float32 under a mixed dtype policy too: the softmax and the loss stay in float32 (harness.distribution).
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="predictions", dtype="float32"))
    return layers
