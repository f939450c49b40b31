"""Every error message of the spec language names the field, what was expected and what was received.

The calls run at spec-import time, as pytest collection runs them: no TensorFlow, no data.
Layer-name rules for `efficientnet_lite0` are checked against `harness.backbones.catalog`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

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
    arguments = dict(
        name="lite0",
        dataset=arrays(no_data, image_size=32),
        backbone=efficientnet_lite0(weights=None),
        phases=[feature_extraction(epochs=1)],
    )
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
        ["`backbone.weights` must be 'imagenet', None or an existing weights file",
         "looked for /nonexistent/mobilenet.weights.h5", "Received: weights='/nonexistent/mobilenet.weights.h5'"],
        id="missing-weights-file",
    ),
    pytest.param(
        lambda: custom_backbone("tiny", "not a function"),
        ["`custom_backbone.build` must be a callable input_shape -> keras.Model", "Received: build='not a function'"],
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
        ["`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0'", "a name prefix of some layer",
         "e.g. 'block_12_'", "Received: unfreeze_from='blok_12_'"],
        id="misspelt-prefix-suggests-the-closest",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from="head_"),
        ["`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0'", "a name prefix of some layer",
         "e.g. 'stem_', 'block_'", "Received: unfreeze_from='head_'"],
        id="prefix-that-matches-nothing",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[fine_tune(epochs=1, unfreeze_from="block_16_", name="fine_tune_2")]),
        ["`fine_tune_2.unfreeze_from` must match layers of 'efficientnet_lite0'", "Received: unfreeze_from='block_16_'"],
        id="prefix-error-names-the-phase",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_from=500),
        ["`fine_tune.unfreeze_from` must match layers of 'efficientnet_lite0'",
         f"an index in [{-LITE0_LAYERS}, {LITE0_LAYERS - 1}] for {LITE0_LAYERS} layers", "Received: unfreeze_from=500"],
        id="layer-index-out-of-range",
    ),
    pytest.param(
        lambda: fine_tune_lite0(unfreeze_layers=["top_conv", "top_con"]),
        ["`fine_tune.unfreeze_layers` must match layers of 'efficientnet_lite0'", "existing layer names",
         "Received: unfreeze_layers='top_con'"],
        id="unknown-layer-name",
    ),
    # ------------------------------------------------------------------ fine_tune arguments
    pytest.param(
        lambda: fine_tune(epochs=1),
        ["`fine_tune` needs exactly one of unfreeze_from, unfreeze_fraction, unfreeze_layers or unfreeze_all=True",
         "Received: none of them"],
        id="no-unfreeze-argument",
    ),
    pytest.param(
        lambda: fine_tune(epochs=1, unfreeze_from="block_2_", unfreeze_fraction=0.5),
        ["`fine_tune` needs exactly one of unfreeze_from, unfreeze_fraction, unfreeze_layers or unfreeze_all=True",
         "Received: unfreeze_from='block_2_', unfreeze_fraction=0.5"],
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
        ["`fine_tune.backbone_learning_rate` must be a positive finite number", "Received: backbone_learning_rate=-1e-05"],
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
        ["`feature_extraction.learning_rate` must be a positive finite number", "Received: learning_rate=0"],
        id="zero-learning-rate",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, learning_rate=float("nan")),
        ["`feature_extraction.learning_rate` must be a positive finite number", "Received: learning_rate=nan"],
        id="nan-learning-rate",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, batch_size=0),
        ["`feature_extraction.batch_size` must be a positive integer", "Received: batch_size=0"],
        id="zero-batch-size",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, optimizer="adamm"),
        ["`feature_extraction.optimizer` must be one of ('adam', 'adamw', 'sgd', 'rmsprop')", "Received: optimizer='adamm'"],
        id="unknown-optimizer",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, class_weight="auto"),
        ["`feature_extraction.class_weight` must be None, 'balanced' or {class: weight}", "Received: class_weight='auto'"],
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
        ["`feature_extraction.augmentation[0]` must be built with augment(...)", "Received: augmentation[0]='RandomFlip'"],
        id="augmentation-not-built-with-augment",
    ),
    pytest.param(
        lambda: feature_extraction(epochs=1, augmentation=[dihedral(), dihedral(turns=False)]),
        ["`feature_extraction.augmentation` must hold dihedral() at most once"],
        id="dihedral-twice",
    ),
    pytest.param(
        lambda: lite0_experiment(dataset=arrays(no_data, image_size=(32, 48)),
                                 phases=[feature_extraction(epochs=1, augmentation=[dihedral()])]),
        ["`dataset.image_size` must be square: dihedral() in phase 'feature_extraction' turns images by quarter "
         "turns (dihedral(turns=False) keeps the flips only)", "Received: image_size=(32, 48)"],
        id="dihedral-turns-need-square-images",
    ),
    pytest.param(
        lambda: early_stopping(monitor="val_acc"),
        ["`early_stopping.monitor` must be one of ('val_loss', 'val_accuracy', 'loss', 'accuracy')",
         "Received: monitor='val_acc'"],
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
        ["`trainable_params` must name phases of this experiment (feature_extraction)", "Received: trainable_params='fine_tuning'"],
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
        ["`min_val_accuracy.phase` must name a phase of this experiment (feature_extraction)", "Received: phase='fine_tune'"],
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
    # ------------------------------------------------------------------ data sets
    pytest.param(
        lambda: tfds_dataset("elpv", train_split="train[:80%"),
        ["`tfds_dataset.train_split` must be a TFDS split such as 'train', 'train[:80%]'", "Received: train_split='train[:80%'"],
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
        ["`tfds_dataset.name` must be a TFDS data set name such as 'elpv' or 'tf_flowers'", "Received: name='Flowers!'"],
        id="tfds-name",
    ),
    pytest.param(
        lambda: image_folder("/nonexistent/cells"),
        ["`image_folder.path` must be an existing folder of class sub-folders (looked in /nonexistent/cells)",
         "Received: path='/nonexistent/cells'"],
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
        ["`classifier_head.pooling` must be 'avg' or 'max'", "Received: pooling='mean'"],
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
        ["`experiment.name` must start with a letter or '_' and hold only letters, digits", "Received: name='flowers lite0'"],
        id="experiment-name-with-space",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[feature_extraction(epochs=1), feature_extraction(epochs=2)]),
        ["`experiment.phases` must have distinct phase names (give `name=` to repeated phases)",
         "Received: phases=['feature_extraction']"],
        id="duplicate-phase-names",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[]),
        ["`experiment.phases` must hold at least one phase", "Received: phases=[]"],
        id="no-phases",
    ),
    pytest.param(
        lambda: lite0_experiment(phases=[fine_tune]),
        ["`experiment.phases[0]` must be built with feature_extraction(...) or fine_tune(...)", "Received: phases[0]=<function fine_tune"],
        id="phase-not-called",
    ),
    pytest.param(
        lambda: lite0_experiment(expect=[0.9]),
        ["`experiment.expect[0]` must be an expectation such as min_val_accuracy(0.9)", "Received: expect[0]=0.9"],
        id="expectation-not-built",
    ),
    pytest.param(
        lambda: lite0_experiment(dataset="elpv"),
        ["`experiment.dataset` must be built with tfds_dataset(...), image_folder(...) or arrays(...)", "Received: dataset='elpv'"],
        id="dataset-a-string",
    ),
    pytest.param(
        lambda: lite0_experiment(backbone="MobileNetV2"),
        ["`experiment.backbone` must be built with backbone(...)", "Received: backbone='MobileNetV2'"],
        id="backbone-a-string",
    ),
    pytest.param(
        lambda: lite0_experiment(seed=-1),
        ["`experiment.seed` must be a non-negative integer", "Received: seed=-1"],
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
    assert (error.field, error.expected, error.received) == ("feature_extraction.epochs", "must be a positive integer", 0)
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
