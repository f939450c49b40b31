"""Declarative transfer-learning experiments for Keras, collected and checked by pytest.

A spec file imports what it needs from here; nothing here imports TensorFlow.
"""

__version__ = "0.1.0"

from harness.backbones import load_backbone  # TensorFlow-free until called
from harness.spec import (
    arrays,
    augment,
    backbone,
    beats,
    classifier_head,
    custom_backbone,
    dihedral,
    early_stopping,
    efficientnet_lite0,
    experiment,
    export_matches,
    feature_extraction,
    fine_tune,
    frozen_weights_unchanged,
    image_folder,
    keras_application,
    loss_decreases,
    min_macro_f1,
    min_precision,
    min_recall,
    min_test_accuracy,
    min_val_accuracy,
    parametrize,
    reduce_lr_on_plateau,
    tfds_dataset,
    trainable_params,
    trainable_weights_changed,
)

__all__ = [
    "arrays",
    "augment",
    "backbone",
    "beats",
    "classifier_head",
    "custom_backbone",
    "dihedral",
    "early_stopping",
    "efficientnet_lite0",
    "experiment",
    "export_matches",
    "feature_extraction",
    "fine_tune",
    "frozen_weights_unchanged",
    "image_folder",
    "keras_application",
    "load_backbone",
    "loss_decreases",
    "min_macro_f1",
    "min_precision",
    "min_recall",
    "min_test_accuracy",
    "min_val_accuracy",
    "parametrize",
    "reduce_lr_on_plateau",
    "tfds_dataset",
    "trainable_params",
    "trainable_weights_changed",
]
