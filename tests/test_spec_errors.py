"""Every error message of the spec language names the field, what was expected and what was received.

The calls run at spec-import time, as pytest collection runs them: no TensorFlow, no data.
Layer-name rules for `efficientnet_lite0` are checked against `harness.backbones.catalog`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import (
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
    image_folder,
    min_test_accuracy,
    min_val_accuracy,
    parametrize,
    reduce_lr_on_plateau,
    tfds_dataset,
    trainable_params,
)
from harness.backbones import catalog
from harness.spec import SpecError

LITE0_LAYERS = len(catalog.describe("efficientnet_lite0").layer_names)


def no_data() -> dict[str, Any]:
    return {}


def lite0_experiment(**overrides: Any):
    """A valid experiment on `efficientnet_lite0` (collection-time checks only), with `overrides`."""
    arguments = {
        "name": "lite0",
        "dataset": arrays(no_data, image_size=32),
        "backbone": efficientnet_lite0(weights=None),
        "phases": [feature_extraction(epochs=1)],
    }
    return experiment(**{**arguments, **overrides})


def fine_tune_lite0(**rule: Any):
    return lite0_experiment(phases=[feature_extraction(epochs=1), fine_tune(epochs=1, **rule)])


CASES = [
    # ------------------------------------------------------------------ backbones
    pytest.param(
        lambda: backbone("MobileNetv2"),
        ["`backbone.name` must name a known backbone", "Did you mean 'MobileNetV2'", "Received: name='MobileNetv2'"],
        id="unknown-backbone-suggests-the-closest",
    ),
    pytest.param(
        lambda: backbone("MobileNetV2", weights="/nonexistent/mobilenet.weights.h5"),
        [
            "`backbone.weights` must be 'imagenet', None or the path to a weights file",
            "Received: weights='/nonexistent/mobilenet.weights.h5': no such file",
        ],
        id="missing-weights-file",
    ),
    pytest.param(
        lambda: custom_backbone("tiny", "not a function"),
        [
            "`custom_backbone.build` must be a callable input_shape (or inputs) -> keras.Model",
            "Received: build='not a function'",
        ],
        id="custom-backbone-not-callable",
    ),
    pytest.param(
        lambda: lite0_experiment(dataset=arrays(no_data, image_size=16)),
        ["`dataset.image_size` must be at least 32 for efficientnet_lite0", "Received: image_size=(16, 16)"],
        id="image-smaller-than-the-backbone-accepts",
    ),
    # ------------------------------------------------------------------ freezing rules on efficientnet_lite0
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from="blok_12_"),
        [
            "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0'",
            "a name prefix of some layer",
            "e.g. 'block_12_'",
            "Received: unfreeze_from='blok_12_'",
        ],
        id="misspelt-prefix-suggests-the-closest",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from="head_"),
        [
            "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0'",
            "a name prefix of some layer",
            "e.g. 'stem_', 'block_'",
            "Received: unfreeze_from='head_'",
        ],
        id="prefix-that-matches-nothing",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[fine_tune(epochs=1, unfreeze_from="block_16_", name="fine_tune_2")]),
        [
            "`fine_tune_2.unfreeze_from` must match layers of 'efficientnet_lite0'",
            "Received: unfreeze_from='block_16_'",
        ],
        id="prefix-error-names-the-phase",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from=500),
        [
            "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0'",
            f"an index in [{-LITE0_LAYERS}, {LITE0_LAYERS - 1}] for {LITE0_LAYERS} layers",
            "Received: unfreeze_from=500",
        ],
        id="layer-index-out-of-range",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_layers=["top_conv", "top_con"]),
        [
            "`fine_tune.unfreeze_layers` must match layers of 'efficientnet_lite0'",
            "existing layer names",
            "Received: unfreeze_layers='top_con'",
        ],
        id="unknown-layer-name",
    ),
    # ------------------------------------------------------------------ fine_tune arguments
    pytest.param(
        lambda: fine_tune(epochs=1),
        [
            "`fine_tune` needs exactly one of unfreeze_from, unfreeze_fraction, unfreeze_layers or unfreeze_all=True",
            "Received: none of them",
        ],
        id="no-unfreeze-argument",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_from="block_2_", unfreeze_fraction=0.5),
        [
            "`fine_tune` needs exactly one of unfreeze_from, unfreeze_fraction, unfreeze_layers or unfreeze_all=True",
            "Received: unfreeze_from='block_2_', unfreeze_fraction=0.5",
        ],
        id="two-unfreeze-arguments",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_from=True),
        ["`fine_tune.unfreeze_from` must be a layer-name prefix or a layer index", "Received: unfreeze_from=True"],
        id="unfreeze-from-bool",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_from=""),
        ["`fine_tune.unfreeze_from` must be a non-empty layer-name prefix", "Received: unfreeze_from=''"],
        id="unfreeze-from-empty",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_fraction=0),
        ["`fine_tune.unfreeze_fraction` must be a number in (0, 1]", "Received: unfreeze_fraction=0"],
        id="unfreeze-fraction-zero",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_layers="top_conv"),
        ["`fine_tune.unfreeze_layers` must be a non-empty list of layer names", "Received: unfreeze_layers='top_conv'"],
        id="unfreeze-layers-a-string",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_all=True, backbone_learning_rate=-1e-5),
        [
            "`fine_tune.backbone_learning_rate` must be a learning rate in (0, 1], such as 1e-3",
            "Received: backbone_learning_rate=-1e-05",
        ],
        id="negative-backbone-learning-rate",
    ),
    # ------------------------------------------------------------------ phase arguments
    pytest.param(
        lambda: feature_extraction(epochs=-1),
        ["`feature_extraction.epochs` must be a positive integer", "Received: epochs=-1"],
        id="negative-epochs",
    ),
    pytest.param(
        lambda: fine_tune(epochs=2.5, unfreeze_all=True),
        ["`fine_tune.epochs` must be a positive integer", "Received: epochs=2.5"],
        id="fractional-epochs",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, learning_rate=0),
        [
            "`feature_extraction.learning_rate` must be a learning rate in (0, 1], such as 1e-3",
            "Received: learning_rate=0",
        ],
        id="zero-learning-rate",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, learning_rate=float("nan")),
        [
            "`feature_extraction.learning_rate` must be a learning rate in (0, 1], such as 1e-3",
            "Received: learning_rate=nan",
        ],
        id="nan-learning-rate",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, batch_size=0),
        ["`feature_extraction.batch_size` must be a positive integer", "Received: batch_size=0"],
        id="zero-batch-size",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, optimizer="adamm"),
        [
            "`feature_extraction.optimizer` must be one of ('adam', 'adamw', 'sgd', 'rmsprop')",
            "Received: optimizer='adamm'",
        ],
        id="unknown-optimizer",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, class_weight="auto"),
        [
            "`feature_extraction.class_weight` must be None, 'balanced' or {class: weight}",
            "Received: class_weight='auto'",
        ],
        id="unknown-class-weight",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, class_weight={0: 1.0, 1: -2.0}),
        ["`feature_extraction.class_weight[1]` must be a positive finite number", "Received: class_weight[1]=-2.0"],
        id="negative-class-weight",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, name="fine tune"),
        ["`feature_extraction.name` must be an identifier such as 'fine_tune_2'", "Received: name='fine tune'"],
        id="phase-name-not-an-identifier",
    ),
    pytest.param(
        lambda: augment("RandomFlipp"),
        ["`augment.layer` must be one of RandomFlip, RandomRotation", "Received: layer='RandomFlipp'"],
        id="unknown-augment-layer",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, augmentation=["RandomFlip"]),
        [
            "`feature_extraction.augmentation[0]` must be built with augment(...)",
            "Received: augmentation[0]='RandomFlip'",
        ],
        id="augmentation-not-built-with-augment",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, augmentation=[dihedral(), dihedral(turns=False)]),
        ["`feature_extraction.augmentation` must hold dihedral() at most once"],
        id="dihedral-twice",
    ),
    pytest.param(
        lambda: lite0_experiment(
            dataset=arrays(no_data, image_size=(32, 48)),
            phases=[feature_extraction(epochs=1, augmentation=[dihedral()])],
        ),
        [
            (
                "`dataset.image_size` must be square: dihedral() in phase 'feature_extraction' turns images by quarter "
                "turns (dihedral(turns=False) keeps the flips only)"
            ),
            "Received: image_size=(32, 48)",
        ],
        id="dihedral-turns-need-square-images",
    ),
    pytest.param(
        lambda: early_stopping(monitor="val_acc"),
        [
            "`early_stopping.monitor` must be one of ('val_loss', 'val_accuracy', 'loss', 'accuracy')",
            "Received: monitor='val_acc'",
        ],
        id="early-stopping-unknown-monitor",
    ),
    pytest.param(
        lambda: reduce_lr_on_plateau(factor=2.0),
        ["`reduce_lr_on_plateau.factor` must be in (0, 1)", "Received: factor=2.0"],
        id="reduce-lr-factor-above-one",
    ),
    # ------------------------------------------------------------------ expectations
    pytest.param(
        lambda: min_val_accuracy(1.5),
        ["`min_val_accuracy.floor` must be a number in [0, 1]", "Received: floor=1.5"],
        id="accuracy-floor-above-one",
    ),
    pytest.param(
        lambda: min_test_accuracy(-0.1),
        ["`min_test_accuracy.floor` must be a number in [0, 1]", "Received: floor=-0.1"],
        id="accuracy-floor-negative",
    ),
    pytest.param(
        lambda: lite0_experiment(expect=[trainable_params(fine_tuning=1281)]),
        [
            "`trainable_params` must name phases of this experiment (feature_extraction)",
            "Received: trainable_params='fine_tuning'",
        ],
        id="trainable-params-unknown-phase",
    ),
    pytest.param(
        lambda: trainable_params(feature_extraction=-1),
        ["`trainable_params.feature_extraction` must be a non-negative integer", "Received: feature_extraction=-1"],
        id="trainable-params-negative",
    ),
    pytest.param(
        lambda: trainable_params(),
        ["`trainable_params` needs at least one phase=count", "Received: trainable_params={}"],
        id="trainable-params-empty",
    ),
    pytest.param(
        lambda: lite0_experiment(expect=[min_val_accuracy(0.5, phase="fine_tune")]),
        [
            "`min_val_accuracy.phase` must name a phase of this experiment (feature_extraction)",
            "Received: phase='fine_tune'",
        ],
        id="accuracy-unknown-phase",
    ),
    pytest.param(
        lambda: beats("baseline", margin=2),
        ["`beats.margin` must be a number in [-1, 1]", "Received: margin=2"],
        id="beats-margin-out-of-range",
    ),
    pytest.param(
        lambda: beats("baseline", margin=0.01, metric="f1"),
        ["`beats.metric` must be 'test_accuracy' or 'val_accuracy'", "Received: metric='f1'"],
        id="beats-unknown-metric",
    ),
    pytest.param(
        lambda: export_matches("tflite"),
        [
            "`export_matches.format` must be one of 'keras', 'saved_model', 'litert', 'litert_int8'",
            "Received: format='tflite'",
        ],
        id="export-unknown-format",
    ),
    pytest.param(
        lambda: export_matches("litert", max_abs_diff=0),
        ["`export_matches.max_abs_diff` must be a number in (0, 1], such as 1e-4", "Received: max_abs_diff=0"],
        id="export-bound-zero",
    ),
    pytest.param(
        lambda: min_test_accuracy(0.8, runtime="tflite"),
        [
            "`min_test_accuracy.runtime` must be None (the Keras model) or an export format",
            "'keras', 'saved_model', 'litert', 'litert_int8'",
            "Received: runtime='tflite'",
        ],
        id="accuracy-unknown-runtime",
    ),
    pytest.param(
        lambda: min_test_accuracy(0.8, phase="feature_extraction", runtime="litert_int8"),
        [
            "`min_test_accuracy.phase` must be None with a runtime: the export is of the model after the last phase",
            "Received: phase='feature_extraction'",
        ],
        id="accuracy-runtime-with-phase",
    ),
    # ------------------------------------------------------------------ data sets
    pytest.param(
        lambda: tfds_dataset("elpv", train_split="train[:80%"),
        [
            "`tfds_dataset.train_split` must be a TFDS split such as 'train', 'train[:80%]'",
            "Received: train_split='train[:80%'",
        ],
        id="split-unclosed-bracket",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", validation_split="train[:150%]"),
        ["`tfds_dataset.validation_split` must be a TFDS split", "Received: validation_split='train[:150%]'"],
        id="split-percent-above-100",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", test_split="test[a:b]"),
        ["`tfds_dataset.test_split` must be a TFDS split", "Received: test_split='test[a:b]'"],
        id="split-bounds-not-numbers",
    ),
    pytest.param(
        lambda: tfds_dataset("Flowers!"),
        [
            "`tfds_dataset.name` must be a TFDS data set name such as 'elpv' or 'tf_flowers'",
            "Received: name='Flowers!'",
        ],
        id="tfds-name",
    ),
    pytest.param(
        lambda: image_folder("/nonexistent/cells"),
        [
            "`image_folder.path` must be an existing folder of class sub-folders (looked in /nonexistent/cells)",
            "Received: path='/nonexistent/cells'",
        ],
        id="missing-image-folder",
    ),
    pytest.param(
        lambda: arrays({"train": ([], [])}, image_size=16),
        ["`arrays.data` must have 'train' and 'validation' keys", "Received: data=['train']"],
        id="arrays-without-validation",
    ),
    pytest.param(
        lambda: arrays(no_data, image_size=4),
        ["`arrays.image_size` must be an int or (height, width) of ints >= 8", "Received: image_size=(4, 4)"],
        id="image-size-too-small",
    ),
    # ------------------------------------------------------------------ head and experiment
    pytest.param(
        lambda: classifier_head(pooling="mean"),
        ["`classifier_head.pooling` must be 'avg', 'max' (images) or 'cls' (text)", "Received: pooling='mean'"],
        id="head-pooling",
    ),
    pytest.param(
        lambda: classifier_head(dropout_rate=1.0),
        ["`classifier_head.dropout_rate` must be a number in [0, 1)", "Received: dropout_rate=1.0"],
        id="head-dropout-one",
    ),
    pytest.param(
        lambda: classifier_head(hidden_units=[64, 0]),
        ["`classifier_head.hidden_units[1]` must be a positive integer", "Received: hidden_units[1]=0"],
        id="head-hidden-units",
    ),
    pytest.param(
        lambda: lite0_experiment(name="flowers lite0"),
        [
            "`experiment.name` must start with a letter or '_' and hold only letters, digits",
            "Received: name='flowers lite0'",
        ],
        id="experiment-name-with-space",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[feature_extraction(epochs=1), feature_extraction(epochs=2)]),
        [
            "`experiment.phases` must have distinct phase names (give `name=` to repeated phases)",
            "Received: phases=['feature_extraction']",
        ],
        id="duplicate-phase-names",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[]),
        ["`experiment.phases` must hold at least one phase", "Received: phases=[]"],
        id="no-phases",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[fine_tune]),
        [
            "`experiment.phases[0]` must be built with feature_extraction(...) or fine_tune(...)",
            "Received: phases[0]=<function fine_tune",
        ],
        id="phase-not-called",
    ),
    pytest.param(
        lambda: lite0_experiment(expect=[0.9]),
        ["`experiment.expect[0]` must be an expectation such as min_val_accuracy(0.9)", "Received: expect[0]=0.9"],
        id="expectation-not-built",
    ),
    pytest.param(
        lambda: lite0_experiment(dataset="elpv"),
        [
            (
                "`experiment.dataset` must be built with tfds_dataset(...), keras_dataset(...), image_folder(...), "
                "text_folder(...), text_csv(...) or arrays(...)"
            ),
            "Received: dataset='elpv'",
        ],
        id="dataset-a-string",
    ),
    pytest.param(
        lambda: lite0_experiment(backbone="MobileNetV2"),
        ["`experiment.backbone` must be built with backbone(...)", "Received: backbone='MobileNetV2'"],
        id="backbone-a-string",
    ),
    pytest.param(
        lambda: lite0_experiment(seed=-1),
        ["`experiment.seed` must be an integer in [0, 2**32) (NumPy's seed range)", "Received: seed=-1"],
        id="negative-seed",
    ),
    pytest.param(
        lambda: lite0_experiment(marks=["needs-gpu"]),
        ["`experiment.marks` must be marker names (identifiers)", "Received: marks='needs-gpu'"],
        id="mark-not-an-identifier",
    ),
    pytest.param(
        lambda: parametrize("model, learning_rate", [("MobileNetV2",)]),
        ["`parametrize.argvalues` must hold 2 values per entry", "Received: argvalues=('MobileNetV2',)"],
        id="parametrize-too-few-values",
    ),
    pytest.param(
        lambda: parametrize("model", ["MobileNetV2", "ResNet50"], ids=["m"]),
        ["`parametrize.ids` must hold one id per value (2)", "Received: ids=['m']"],
        id="parametrize-ids-length",
    ),
]


@pytest.mark.parametrize(("build", "expected"), CASES)
def test_spec_error_names_field_expectation_and_received_value(build: Callable[[], Any], expected: list[str]) -> None:
    with pytest.raises(SpecError) as excinfo:
        build()
    message = str(excinfo.value)
    missing = [part for part in expected if part not in message]
    assert not missing, f"{missing} not in: {message}"
    assert message.startswith("`"), message  # the field comes first, in backticks
    assert message.count("Received: ") == 1, message  # what was received comes last, once


def test_spec_error_carries_its_parts() -> None:
    with pytest.raises(SpecError) as excinfo:
        feature_extraction(epochs=0)
    error = excinfo.value
    assert (error.field, error.expected, error.received) == (
        "feature_extraction.epochs",
        "must be a positive integer",
        0,
    )
    assert isinstance(error, ValueError)


def test_misspelt_prefix_message_in_full() -> None:
    """The Keras three-part form from the style guide: what, what was expected (with examples), received."""
    with pytest.raises(SpecError) as excinfo:
        fine_tune_lite0(unfreeze_from="blok_12")
    assert str(excinfo.value) == (
        "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0' "
        "(a name prefix of some layer, e.g. 'block_12_', 'block_2_', 'block_1_'). Received: unfreeze_from='blok_12'"
    )


def test_prefix_does_not_match_a_longer_sibling() -> None:
    """`block_1_` unfreezes from block 1, never block 13; a prefix without a separator stops at a token."""
    fine_tune_lite0(unfreeze_from="block_15_")
    fine_tune_lite0(unfreeze_from="block_15")
    with pytest.raises(SpecError, match=r"Received: unfreeze_from='block_15_e'$"):
        fine_tune_lite0(unfreeze_from="block_15_e")  # stops inside the token "expand"


def test_image_folder_with_one_class(tmp_path: Path) -> None:
    (tmp_path / "cracked").mkdir()
    with pytest.raises(SpecError) as excinfo:
        image_folder(str(tmp_path))
    message = str(excinfo.value)
    assert "`image_folder.path` must hold at least two class sub-folders" in message
    assert f"({tmp_path} holds 1)" in message
    assert message.endswith(f"Received: path='{tmp_path}'")


def test_image_folder_relative_path_is_resolved_against_the_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as excinfo:
        image_folder("no_such_folder")
    assert f"(looked in {Path(__file__).parent / 'no_such_folder'})" in str(excinfo.value)


# --------------------------------------------------------------------------- the whole message, per category

WRAP = "Wrap a single value in brackets: "
BOOL = "must be True or False (a bool, not a string or a number)"
LEARNING_RATE = "must be a learning rate in (0, 1], such as 1e-3"
HELD_OUT = (
    "Held-out data must be held out: give disjoint slices, e.g. train_split='train[:80%]', "
    "validation_split='train[80%:]'."
)
K_SAFE = "must hold only letters, digits, '_', '-' or '.' and not be 'and', 'or' or 'not' (so that -k can select it)"


def model_function(model, learning_rate):
    return None


EXACT = [
    # ------------------------------------------------------------------ a string is never a boolean
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_all=True, train_batchnorm="false"),
        f"`fine_tune.train_batchnorm` {BOOL}. Received: train_batchnorm='false'",
        id="train-batchnorm-string",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_all="False"),
        f"`fine_tune.unfreeze_all` {BOOL}. Received: unfreeze_all='False'",
        id="unfreeze-all-string",
    ),
    pytest.param(
        lambda: early_stopping(restore_best_weights="no"),
        f"`early_stopping.restore_best_weights` {BOOL}. Received: restore_best_weights='no'",
        id="restore-best-weights-string",
    ),
    pytest.param(
        lambda: dihedral(turns="yes"), f"`dihedral.turns` {BOOL}. Received: turns='yes'", id="dihedral-turns-string"
    ),
    # ------------------------------------------------------------------ a single object where a list is expected
    pytest.param(
        lambda: lite0_experiment(expect=min_val_accuracy(0.9)),
        f"`experiment.expect` must be a list. {WRAP}expect=[min_val_accuracy(0.9)]. "
        "Received: expect=MinAccuracy(split='validation', floor=0.9, phase=None, runtime=None, slice=None)",
        id="expect-single",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, callbacks=early_stopping()),
        f"`feature_extraction.callbacks` must be a list. {WRAP}callbacks=[early_stopping()]. "
        "Received: callbacks=EarlyStopping(monitor='val_loss', patience=3, restore_best_weights=True)",
        id="callbacks-single",
    ),
    pytest.param(
        lambda: classifier_head(hidden_units=256),
        f"`classifier_head.hidden_units` must be a list. {WRAP}hidden_units=[256]. Received: hidden_units=256",
        id="hidden-units-int",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, augmentation=augment("RandomFlip")),
        f"`feature_extraction.augmentation` must be a list. {WRAP}augmentation=[augment('RandomFlip')]. "
        "Received: augmentation=Augmentation(layer='RandomFlip', kwargs=())",
        id="augmentation-single",
    ),
    pytest.param(
        lambda: lite0_experiment(marks="slow"),
        f"`experiment.marks` must be a list. {WRAP}marks=['slow']. Received: marks='slow'",
        id="marks-string",
    ),
    # ------------------------------------------------------------------ None where a number is expected
    pytest.param(
        lambda: feature_extraction(epochs=None),
        "`feature_extraction.epochs` must be a positive integer. Received: epochs=None",
        id="epochs-none",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, learning_rate=None),
        f"`feature_extraction.learning_rate` {LEARNING_RATE}. Received: learning_rate=None",
        id="learning-rate-none",
    ),
    pytest.param(
        lambda: classifier_head(dropout_rate=None),
        "`classifier_head.dropout_rate` must be a number in [0, 1). Received: dropout_rate=None",
        id="dropout-none",
    ),
    pytest.param(
        lambda: reduce_lr_on_plateau(min_lr=None),
        "`reduce_lr_on_plateau.min_lr` must be a learning rate in [0, 1). Received: min_lr=None",
        id="min-lr-none",
    ),
    pytest.param(
        lambda: beats("other", margin=None),
        "`beats.margin` must be a number in [-1, 1]. Received: margin=None",
        id="margin-none",
    ),
    # ------------------------------------------------------------------ ranges
    pytest.param(
        lambda: feature_extraction(epochs=1, learning_rate=1e3),
        f"`feature_extraction.learning_rate` {LEARNING_RATE}. Received: learning_rate=1000.0",
        id="learning-rate-1e3",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_all=True, backbone_learning_rate=2),
        f"`fine_tune.backbone_learning_rate` {LEARNING_RATE}. Received: backbone_learning_rate=2",
        id="backbone-learning-rate-above-one",
    ),
    pytest.param(
        lambda: reduce_lr_on_plateau(min_lr=1.5),
        "`reduce_lr_on_plateau.min_lr` must be a learning rate in [0, 1). Received: min_lr=1.5",
        id="min-lr-above-one",
    ),
    pytest.param(
        lambda: fine_tune(
            epochs=1, unfreeze_all=True, learning_rate=1e-4, callbacks=[reduce_lr_on_plateau(min_lr=1e-3)]
        ),
        "`fine_tune.callbacks[0].min_lr` must be below the phase's learning_rate (0.0001), or the rate is never "
        "reduced. Received: min_lr=0.001",
        id="min-lr-above-the-phase-rate",
    ),
    pytest.param(
        lambda: lite0_experiment(seed=2**32),
        "`experiment.seed` must be an integer in [0, 2**32) (NumPy's seed range). Received: seed=4294967296",
        id="seed-numpy-rejects",
    ),
    pytest.param(
        lambda: reduce_lr_on_plateau(factor=1),
        "`reduce_lr_on_plateau.factor` must be in (0, 1). Received: factor=1",
        id="factor-one",
    ),
    pytest.param(
        lambda: early_stopping(patience=-1),
        "`early_stopping.patience` must be a non-negative integer. Received: patience=-1",
        id="patience-negative",
    ),
    pytest.param(
        lambda: reduce_lr_on_plateau(patience=2.5),
        "`reduce_lr_on_plateau.patience` must be a non-negative integer. Received: patience=2.5",
        id="patience-float",
    ),
    # ------------------------------------------------------------------ augment(...) against the Keras layer
    pytest.param(
        lambda: augment("RandomFlip", modee="horizontal"),
        "`augment.modee` must be an argument of keras.layers.RandomFlip (mode, seed, data_format). "
        "Received: modee='horizontal'",
        id="augment-unknown-argument",
    ),
    pytest.param(
        lambda: augment("RandomFlip", mode="horizontal_and_vertica"),
        "`augment.mode` must be one of 'horizontal', 'vertical', 'horizontal_and_vertical' for "
        "keras.layers.RandomFlip. Received: mode='horizontal_and_vertica'",
        id="augment-misspelt-flip-mode",
    ),
    pytest.param(
        lambda: augment("RandomRotation", factor=0.1, fill_mode="mirror"),
        "`augment.fill_mode` must be one of 'reflect', 'wrap', 'constant', 'nearest' for "
        "keras.layers.RandomRotation. Received: fill_mode='mirror'",
        id="augment-fill-mode",
    ),
    pytest.param(
        lambda: augment("RandomZoom", height_factor=0.1, interpolation="bicubic"),
        "`augment.interpolation` must be one of 'nearest', 'bilinear' for keras.layers.RandomZoom. "
        "Received: interpolation='bicubic'",
        id="augment-interpolation",
    ),
    pytest.param(
        lambda: augment("RandomCrop", height=16),
        "`augment.width` is required by keras.layers.RandomCrop (it needs height, width). For example "
        "augment('RandomCrop', height=..., width=...). Received: augment('RandomCrop', height=16)",
        id="augment-crop-needs-width",
    ),
    # ------------------------------------------------------------------ a rule that selects no weights
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from=-1),
        "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0' (layers with weights; it selects "
        "no weights, only 'top_relu'). Received: unfreeze_from=-1",
        id="selects-no-weights",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from=-2),
        "`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0' (layers with weights; it selects "
        "no weights, only 'top_relu', as BatchNormalization stays frozen unless train_batchnorm=True). "
        "Received: unfreeze_from=-2",
        id="selects-no-weights-batchnorm-set-aside",
    ),
    # ------------------------------------------------------------------ beats
    pytest.param(
        lambda: lite0_experiment(expect=[beats("lite0", margin=0.1)]),
        "`beats.other` must name another experiment, not this one. Received: other='lite0'",
        id="beats-itself",
    ),
    # ------------------------------------------------------------------ held-out data that is not held out
    pytest.param(
        lambda: tfds_dataset("elpv", train_split="train", validation_split="train[:20%]"),
        "`tfds_dataset.validation_split` must not share examples with train_split ('train'): both read split "
        f"'train' where they overlap. {HELD_OUT} Received: validation_split='train[:20%]'",
        id="split-inside-train",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", validation_split="test", test_split="test"),
        "`tfds_dataset.test_split` must not share examples with validation_split ('test'): both read split "
        f"'test' where they overlap. {HELD_OUT} Received: test_split='test'",
        id="validation-equals-test",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", train_split="train[:80%]", validation_split="train[70%:]"),
        "`tfds_dataset.validation_split` must not share examples with train_split ('train[:80%]'): both read "
        f"split 'train' where they overlap. {HELD_OUT} Received: validation_split='train[70%:]'",
        id="overlapping-slices",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", train_split="train[:100]+test", validation_split="train[50:150]"),
        "`tfds_dataset.validation_split` must not share examples with train_split ('train[:100]+test'): both "
        f"read split 'train' where they overlap. {HELD_OUT} Received: validation_split='train[50:150]'",
        id="overlapping-index-slices",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", train_split="train[:50%]", validation_split=0.2),
        "`tfds_dataset.validation_split` as a fraction needs an unsliced train_split such as 'train'. Or give "
        "both as slices: train_split='train[:80%]', validation_split='train[80%:]'. "
        "Received: validation_split=0.2, train_split='train[:50%]'",
        id="validation-fraction-of-a-slice",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", validation_split=1.5),
        "`tfds_dataset.validation_split` must be a TFDS split string or a fraction in (0, 1) of train_split. "
        "Received: validation_split=1.5",
        id="validation-fraction-above-one",
    ),
    pytest.param(
        lambda: tfds_dataset("elpv", validation_split=0.125),
        "`tfds_dataset.validation_split` must be a fraction in whole percents (TFDS slices in whole percents). "
        "Use for example 0.2, or a split string such as 'train[:15%]'. Received: validation_split=0.125",
        id="validation-fraction-not-whole-percent",
    ),
    # ------------------------------------------------------------------ expectations the data cannot meet
    pytest.param(
        lambda: lite0_experiment(dataset=tfds_dataset("elpv", image_size=32), expect=[min_test_accuracy(0.5)]),
        "`min_test_accuracy` needs a data set with a test split. Declare one with tfds_dataset(test_split=...), "
        "e.g. test_split='test'. Received: test_split=None",
        id="test-floor-without-tfds-test-split",
    ),
    pytest.param(
        lambda: lite0_experiment(
            dataset=arrays({"train": ([], []), "validation": ([], [])}, image_size=32), expect=[min_test_accuracy(0.5)]
        ),
        "`min_test_accuracy` needs a data set with a test split. Add a 'test' key to the arrays(...) mapping. "
        "Received: arrays with keys ['train', 'validation']",
        id="test-floor-without-test-array",
    ),
    pytest.param(
        lambda: lite0_experiment(
            dataset=arrays(no_data, image_size=32, num_classes=2),
            phases=[feature_extraction(epochs=1, class_weight={0: 1.0, 2: 3.0})],
        ),
        "`feature_extraction.class_weight` must name classes of the data set (0 to 1). Received: class_weight=2",
        id="class-weight-not-a-class",
    ),
    # ------------------------------------------------------------------ parametrize
    pytest.param(
        lambda: parametrize("model learning_rate", [("a", 1)]),
        "`parametrize.argnames` must separate names with commas. Write 'model, learning_rate' instead of "
        "'model learning_rate'. Received: argnames='model learning_rate'",
        id="parametrize-missing-comma",
    ),
    pytest.param(
        lambda: parametrize("model", "MobileNetV2"),
        "`parametrize.argvalues` must be a list of values. Wrap a single value in brackets: argvalues=[value]. "
        "Received: argvalues='MobileNetV2'",
        id="parametrize-values-not-a-list",
    ),
    pytest.param(
        lambda: parametrize("model", ["a", "b"], ids=["x", "x"]),
        "`parametrize.ids` must give each value a distinct id. Received: ids='x'",
        id="parametrize-duplicate-ids",
    ),
    pytest.param(
        lambda: parametrize("learning_rate", [0.001, 1e-3]),
        "`parametrize.argvalues` must give each value a distinct id. Give ids=[...] to tell equal-looking "
        "values apart. Received: argvalues='0.001'",
        id="parametrize-duplicate-generated-ids",
    ),
    pytest.param(
        lambda: parametrize("model", ["a", "b"], ids=["x y", "z"]),
        f"`parametrize.ids` {K_SAFE}. Received: ids='x y'",
        id="parametrize-id-with-space",
    ),
    pytest.param(
        lambda: parametrize("model", ["a", "b"], ids=["and", "z"]),
        f"`parametrize.ids` {K_SAFE}. Received: ids='and'",
        id="parametrize-id-a-k-keyword",
    ),
    pytest.param(
        lambda: parametrize("model", ["Mobile Net", "b"]),
        f"`parametrize.argvalues` {K_SAFE}. Give ids=[...] of letters, digits, '_', '-' and '.'. "
        "Received: argvalues='Mobile Net'",
        id="parametrize-generated-id-with-space",
    ),
    pytest.param(
        lambda: parametrize("modle", ["a"])(model_function),
        "`parametrize.argnames` must be parameters of model_function(model, learning_rate). Received: argnames='modle'",
        id="parametrize-name-not-a-parameter",
    ),
]


@pytest.mark.parametrize(("build", "message"), EXACT)
def test_spec_error_message_in_full(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        build()
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("train", "validation", "test"),
    [
        ("train[:80%]", "train[80%:]", "test"),
        ("train[:100]", "train[100:200]", "train[-10%:]"),  # indices against percent: cannot be known, accepted
        ("train", "validation", None),
        ("train[:50%]+test[:50%]", "train[50%:]", "test[50%:]"),
    ],
)
def test_disjoint_splits_are_accepted(train: str, validation: str, test: str | None) -> None:
    tfds_dataset("elpv", train_split=train, validation_split=validation, test_split=test)


def test_tfds_validation_fraction_holds_out_the_end_of_the_training_split() -> None:
    """As `image_folder(validation_split=0.2)` and Keras: the fraction is held out of the training data."""
    dataset = tfds_dataset("elpv", validation_split=0.2, test_split="test")
    assert (dataset.train_split, dataset.validation_split) == ("train[:80%]", "train[80%:]")
    assert (dataset.image_key, dataset.label_key) == (None, None)  # the builder's supervised_keys, at load time


def test_image_folder_test_path_inside_the_training_folder(tmp_path: Path) -> None:
    for name in ("cats", "dogs"):  # each class folder holds two sub-folders, as a folder of classes would
        (tmp_path / name / "a").mkdir(parents=True)
        (tmp_path / name / "b").mkdir()
    with pytest.raises(SpecError) as excinfo:
        image_folder(str(tmp_path), test_path=str(tmp_path / "cats"))
    assert str(excinfo.value) == (
        f"`image_folder.test_path` must be a folder outside the training folder {tmp_path} and not holding it "
        f"(the test images would be trained on). Received: test_path='{tmp_path / 'cats'}'"
    )
    with pytest.raises(SpecError, match="must be a folder outside the training folder"):
        image_folder(str(tmp_path), test_path=str(tmp_path))


def test_every_augment_layer_accepts_its_documented_arguments() -> None:
    augment("RandomFlip", mode="horizontal", seed=1)
    augment("RandomRotation", factor=0.1, fill_mode="constant", interpolation="nearest", fill_value=0.0)
    augment("RandomTranslation", height_factor=0.1, width_factor=0.1)
    augment("RandomCrop", height=16, width=16)
    augment("RandomContrast", factor=0.2, value_range=(0, 255))


@pytest.mark.slow
def test_augment_table_matches_keras() -> None:
    """The TensorFlow-free table of `augment(...)` against the installed Keras, so that it cannot drift."""
    import inspect

    keras = pytest.importorskip("keras")
    from harness.spec import augment_layers

    for layer, entry in augment_layers.LAYERS.items():
        cls = getattr(keras.layers, layer)
        parameters = inspect.signature(cls.__init__).parameters
        own = [n for n, p in parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
        assert set(entry["arguments"]) == set(own) - {"name"}, layer
        required = {n for n in own if parameters[n].default is inspect.Parameter.empty}
        assert set(entry["required"]) == required, layer
        values = {"factor": 0.1, "height_factor": 0.1, "width_factor": 0.1, "height": 8, "width": 8}
        arguments = {n: values[n] for n in entry["required"]}
        for argument, choices in entry["choices"].items():
            for choice in choices:
                made = cls(**arguments, **{argument: choice})  # Keras accepts every value the table lists
                assert getattr(made, argument, choice) == choice, (layer, argument, choice)
        for argument in set(entry["choices"]) & {"fill_mode", "interpolation"}:
            with pytest.raises(
                (ValueError, NotImplementedError)
            ):  # Keras checks these itself: the table holds all it accepts
                cls(**arguments, **{argument: "no_such_value"})
