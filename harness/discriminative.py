"""Discriminative learning rates: the backbone's trainable layers learn slower than the head.

Keras optimizers apply one learning rate to every variable, so a phase with
`backbone_learning_rate` trains through `TwoRateModel`: a thin model around the network that
gives the backbone's variables their own optimizer (same class, lower rate) in `train_step`,
as fastai's discriminative rates and Lightning's backbone ratio do. The wrapped network keeps
its variables: training the wrapper trains the user's model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import keras
import tensorflow as tf


class TwoRateModel(keras.Model):
    """Trains `network`; variables in `backbone_variables` are updated by `backbone_optimizer`."""

    def __init__(
        self, network: keras.Model, backbone_variables: Iterable[Any], backbone_optimizer: keras.optimizers.Optimizer
    ):
        super().__init__(name=f"{network.name}_two_rates")
        self.network = network
        self._backbone_ids = {id(v) for v in backbone_variables}
        self.backbone_optimizer = backbone_optimizer

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.network(inputs, training=training)

    def _split(self, values: list[Any]) -> tuple[list[Any], list[Any]]:
        head: list[Any] = []
        backbone: list[Any] = []
        for value, variable in zip(values, self.trainable_variables, strict=False):
            (backbone if id(variable) in self._backbone_ids else head).append(value)
        return head, backbone

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        # Build the second optimizer's slots eagerly: variables may not be created while tracing.
        _, backbone_variables = self._split(list(self.trainable_variables))
        self.backbone_optimizer.build(backbone_variables)
        return super().fit(*args, **kwargs)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
            self._loss_tracker.update_state(loss, sample_weight=batch_size)
        variables = list(self.trainable_variables)
        gradients = tape.gradient(loss, variables)
        head_gradients, backbone_gradients = self._split(gradients)
        head_variables, backbone_variables = self._split(variables)
        self.optimizer.apply(head_gradients, head_variables)
        self.backbone_optimizer.apply(backbone_gradients, backbone_variables)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
