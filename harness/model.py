"""Builds the model an experiment declares: raw pixels -> backbone -> new classifier head.

The backbone and the head are sub-models of the full model, so a phase can train the head
(or the top of the backbone plus the head) on cached inputs while the full model keeps
sharing the very same variables.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import keras

from harness import spec


@dataclass
class Built:
    model: keras.Model
    backbone: keras.Model
    head: keras.Model
    backbone_training: bool | None  # the `training` argument the backbone is called with


def load_backbone(experiment: spec.Experiment) -> keras.Model:
    """The declared backbone at the experiment's input size, weights loaded as declared."""
    return _backbone(experiment.backbone, (*experiment.image_size, 3))


def load(experiment: spec.Experiment, backbone: keras.Model, num_classes: int) -> Built:
    """Builds the full model for `experiment` around `backbone` (see `load_backbone`)."""
    input_shape = (*experiment.image_size, 3)
    head = _head(experiment.head, tuple(backbone.output.shape[1:]), num_classes)
    # As the Keras transfer-learning guide does: the backbone runs in inference mode, so frozen
    # BatchNorm keeps its statistics even once layers above it are unfrozen. Only a phase that
    # asks to train BatchNorm needs the backbone to follow the training flag.
    backbone_training = None if any(p.train_batchnorm for p in experiment.phases) else False
    inputs = keras.Input(input_shape, name="image")
    outputs = head(call_with_training(backbone, inputs, backbone_training))
    model = keras.Model(inputs, outputs, name=re.sub(r"\W", "_", experiment.name))
    return Built(model=model, backbone=backbone, head=head, backbone_training=backbone_training)


def float32_copy(experiment: spec.Experiment, built: Built) -> Built:
    """`built` rebuilt in float32 on the default device, with its trained weights.

    What exports are made from after a run under a mixed policy or MirroredStrategy: LiteRT
    converts float32 graphs, and a deployed model holds plain variables, not mirrored ones. Call
    it outside `harness.distribution.placed`. Variables are float32 under every policy, so the
    copy holds the very values trained.
    """
    untrained = dataclasses.replace(experiment.backbone, weights=None)  # overwritten below: nothing to load
    backbone = _backbone(untrained, (*experiment.image_size, 3))
    copy = load(experiment, backbone, int(built.model.outputs[0].shape[-1]))
    copy.model.set_weights(built.model.get_weights())
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


def _backbone(declared: spec.Backbone, input_shape: tuple[int, int, int]) -> keras.Model:
    if declared.build is not None:
        model = declared.build(input_shape)
        if not isinstance(model, keras.Model):
            raise spec.SpecError("custom_backbone.build", "must return a keras.Model", type(model).__name__)
        return model
    from harness.backbones import load_backbone

    return load_backbone(declared.name, weights=declared.weights, include_top=False, input_shape=input_shape)


def _head(declared: spec.ClassifierHead, feature_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    layers: list[Any] = [keras.Input(feature_shape, name="features")]
    if len(feature_shape) == 3:
        pool = keras.layers.GlobalAveragePooling2D if declared.pooling == "avg" else keras.layers.GlobalMaxPooling2D
        layers.append(pool(name="pool"))
    for i, units in enumerate(declared.hidden_units):
        layers.append(keras.layers.Dense(units, activation="relu", name=f"hidden_{i}"))
    if declared.dropout_rate > 0:
        layers.append(keras.layers.Dropout(declared.dropout_rate, name="dropout"))
    # float32 under a mixed dtype policy too: the softmax and the loss stay in float32 (harness.distribution).
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="predictions", dtype="float32"))
    return keras.Sequential(layers, name="head")
