"""The spec language: frozen dataclasses that a spec file builds, validated as they are built.

Importing this package (and building specs) never imports TensorFlow: pytest collection runs it.
Every constructor checks its arguments and raises `SpecError` naming the field, what was
expected, how to fix it when that is known, and what was received; the collector adds the spec
file and line. One module per concern:

- `validators`: `SpecError`, `SourceLocation`, the argument validators, TFDS split parsing;
- `vocabulary`: the accepted names (optimizers, frozen runtimes, monitors, split roles);
- `datasets`: `image_folder`, `arrays`; `tfds`: `tfds_dataset`; `keras_datasets`: `keras_dataset`;
  `text_datasets`: `text_folder`, `text_csv`;
- `backbones`: `backbone`, `efficientnet_lite0` (1, 2), `keras_hub_backbone`, `custom_backbone`,
  `classifier_head`; `modality`: what an experiment's parts must agree on (images or text);
- `phases`: `feature_extraction`, `fine_tune`, `augment` (checked against `augment_layers`),
  `dihedral`; `callbacks`: `early_stopping`, `reduce_lr_on_plateau`, `checkpoint_best`;
- `schedules`: `cosine`, `one_cycle` and the checks of a phase's schedule, label smoothing and
  weight decay;
- `expectations`: what must hold after training;
- `experiment`: `experiment(...)`, checked as a whole;
- `parametrize`: `@parametrize` and its expansion;
- `registry`: `collecting()` and where a spec was declared.
"""

from harness.spec.backbones import (
    Backbone,
    ClassifierHead,
    backbone,
    classifier_head,
    custom_backbone,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    keras_application,
    keras_hub_backbone,
)
from harness.spec.callbacks import (
    Callback,
    CheckpointBest,
    EarlyStopping,
    ReduceLROnPlateau,
    checkpoint_best,
    early_stopping,
    reduce_lr_on_plateau,
)
from harness.spec.datasets import Arrays, Dataset, ImageFolder, arrays, image_folder
from harness.spec.expectations import (
    EXPECTATIONS,
    Beats,
    ClassFloor,
    Expectation,
    ExportMatches,
    FrozenWeightsUnchanged,
    LossDecreases,
    MacroF1Floor,
    MinAccuracy,
    TrainableParams,
    TrainableWeightsChanged,
    beats,
    export_matches,
    exported_formats,
    frozen_weights_unchanged,
    loss_decreases,
    min_macro_f1,
    min_precision,
    min_recall,
    min_test_accuracy,
    min_val_accuracy,
    trainable_params,
    trainable_weights_changed,
)
from harness.spec.experiment import Experiment, experiment
from harness.spec.keras_datasets import KERAS_DATASETS, KerasDataset, keras_dataset
from harness.spec.parametrize import Parametrization, expand, parametrize
from harness.spec.phases import (
    AUGMENTATIONS,
    DIHEDRAL_VIEWS,
    Augmentation,
    Dihedral,
    Phase,
    augment,
    dihedral,
    feature_extraction,
    fine_tune,
)
from harness.spec.registry import collecting
from harness.spec.schedules import Cosine, OneCycle, Schedule, cosine, one_cycle
from harness.spec.text_datasets import TextCsv, TextFolder, text_csv, text_folder
from harness.spec.tfds import TfdsDataset, tfds_dataset
from harness.spec.validators import SourceLocation, SpecError
from harness.spec.vocabulary import (
    EXPORT_FORMATS,
    FEATURE_EXTRACTION,
    FINE_TUNE,
    FROZEN_RUNTIMES,
    IMAGE,
    MONITORS,
    OPTIMIZERS,
    SPLITS,
    TEXT,
)

__all__ = [
    "AUGMENTATIONS",
    "DIHEDRAL_VIEWS",
    "EXPECTATIONS",
    "EXPORT_FORMATS",
    "FEATURE_EXTRACTION",
    "FINE_TUNE",
    "FROZEN_RUNTIMES",
    "IMAGE",
    "KERAS_DATASETS",
    "MONITORS",
    "OPTIMIZERS",
    "SPLITS",
    "TEXT",
    "Arrays",
    "Augmentation",
    "Backbone",
    "Beats",
    "Callback",
    "CheckpointBest",
    "ClassFloor",
    "ClassifierHead",
    "Cosine",
    "Dataset",
    "Dihedral",
    "EarlyStopping",
    "Expectation",
    "Experiment",
    "ExportMatches",
    "FrozenWeightsUnchanged",
    "ImageFolder",
    "KerasDataset",
    "LossDecreases",
    "MacroF1Floor",
    "MinAccuracy",
    "OneCycle",
    "Parametrization",
    "Phase",
    "ReduceLROnPlateau",
    "Schedule",
    "SourceLocation",
    "SpecError",
    "TextCsv",
    "TextFolder",
    "TfdsDataset",
    "TrainableParams",
    "TrainableWeightsChanged",
    "arrays",
    "augment",
    "backbone",
    "beats",
    "checkpoint_best",
    "classifier_head",
    "collecting",
    "cosine",
    "custom_backbone",
    "dihedral",
    "early_stopping",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "expand",
    "experiment",
    "export_matches",
    "exported_formats",
    "feature_extraction",
    "fine_tune",
    "frozen_weights_unchanged",
    "image_folder",
    "keras_application",
    "keras_dataset",
    "keras_hub_backbone",
    "loss_decreases",
    "min_macro_f1",
    "min_precision",
    "min_recall",
    "min_test_accuracy",
    "min_val_accuracy",
    "one_cycle",
    "parametrize",
    "reduce_lr_on_plateau",
    "text_csv",
    "text_folder",
    "tfds_dataset",
    "trainable_params",
    "trainable_weights_changed",
]
