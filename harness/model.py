"""Builds the model an experiment declares: raw pixels -> backbone -> new classifier head.

The backbone and the head are sub-models of the full model, so a phase can train the head
(or the top of the backbone plus the head) on cached inputs while the full model keeps
sharing the very same variables.
"""

from __future__ import annotations

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


def load(experiment: spec.Experiment, num_classes: int) -> Built:
    """Builds the full model for `experiment`, backbone weights loaded as declared."""
    input_shape = (*experiment.image_size, 3)
    backbone = _backbone(experiment.backbone, input_shape)
    head = _head(experiment.head, tuple(backbone.output.shape[1:]), num_classes)
    # As the Keras transfer-learning guide does: the backbone runs in inference mode, so frozen
    # BatchNorm keeps its statistics even once layers above it are unfrozen. Only a phase that
    # asks to train BatchNorm needs the backbone to follow the training flag.
    backbone_training = None if any(p.train_batchnorm for p in experiment.phases) else False
    inputs = keras.Input(input_shape, name="image")
    outputs = head(backbone(inputs, training=backbone_training))
    model = keras.Model(inputs, outputs, name=re.sub(r"\W", "_", experiment.name))
    return Built(model=model, backbone=backbone, head=head, backbone_training=backbone_training)


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
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="predictions"))
    return keras.Sequential(layers, name="head")


def count_params(variables: list[Any]) -> int:
    return int(sum(int(v.numpy().size) for v in variables))
