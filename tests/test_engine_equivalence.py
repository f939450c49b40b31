"""The engine's cached paths train the same model as the full network does, only faster.

`harness.engine.run` trains a phase on cached backbone outputs ("features") or on cached
activations at the trainable boundary ("activations@<layer>") when that is exact, and on the
full network ("full") otherwise. Each test here runs a tiny experiment (16x16 images, a
backbone of Conv+BatchNorm+ReLU blocks, a head without dropout) twice with the same seed, with
the feature cache on and off, and compares every final weight.

The frozen BatchNorm layers start from moving statistics that are not the identity, so a frozen
BatchNorm that ran in training mode on either path would normalise with batch statistics,
train the layers above it on other inputs and update its moving statistics: both show here.
Likewise a backbone Dropout that dropped on one path only (the backbone runs in inference mode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tiny_models

pytest.importorskip("tensorflow")

from harness import checks, engine, planning, spec  # imports TensorFlow
from harness import model as model_lib
from harness.results import ExperimentResult

pytestmark = pytest.mark.slow  # every test trains a tiny model, most of them twice

MOVING_MEAN, MOVING_VARIANCE = -0.5, 0.25
# The cut tensor of the tiny backbone is computed in batches of 64 on the cached path and of
# 16 inside the full network; convolutions may round differently by batch size.
RTOL, ATOL = 1e-4, 1e-5

Weights = dict[str, np.ndarray]


def make_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """64 training, 32 validation and 32 test images of `tiny_models.make_data`."""
    return tiny_models.make_data(test=True)


def _conv_block(x: Any, prefix: str, *, padding: str = "valid") -> Any:
    import keras

    x = keras.layers.Conv2D(4, 3, padding=padding, name=f"{prefix}conv")(x)
    x = _batchnorm(f"{prefix}bn")(x)
    return keras.layers.ReLU(name=f"{prefix}relu")(x)


def _batchnorm(name: str) -> Any:
    import keras

    return keras.layers.BatchNormalization(
        name=name,
        moving_mean_initializer=keras.initializers.Constant(MOVING_MEAN),
        moving_variance_initializer=keras.initializers.Constant(MOVING_VARIANCE),
    )


def tiny_backbone(input_shape: tuple[int, int, int]) -> Any:
    """preprocess, then `block_1_` and `block_2_` (conv, bn, relu each)."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 12.75, offset=-10.0, name="preprocess")(inputs)
    x = _conv_block(x, "block_1_")
    x = _conv_block(x, "block_2_")
    return keras.Model(inputs, x, name="tiny")


def residual_backbone(input_shape: tuple[int, int, int]) -> Any:
    """`block_1_`, then a residual `block_2_`: expand, project, and the block input added back."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 12.75, offset=-10.0, name="preprocess")(inputs)
    shortcut = _conv_block(x, "block_1_", padding="same")
    y = _conv_block(shortcut, "block_2_expand_", padding="same")
    y = keras.layers.Conv2D(4, 3, padding="same", name="block_2_project")(y)
    y = _batchnorm("block_2_project_bn")(y)
    x = keras.layers.Add(name="block_2_add")([shortcut, y])
    x = keras.layers.ReLU(name="block_2_out")(x)
    return keras.Model(inputs, x, name="residual")


def dropout_backbone(input_shape: tuple[int, int, int]) -> Any:
    """The tiny backbone with a Dropout after each block, as keras.applications' EfficientNets have."""
    import keras

    inputs = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 12.75, offset=-10.0, name="preprocess")(inputs)
    x = _conv_block(x, "block_1_")
    x = keras.layers.Dropout(0.5, name="block_1_drop")(x)
    x = _conv_block(x, "block_2_")
    x = keras.layers.Dropout(0.5, name="block_2_drop")(x)
    return keras.Model(inputs, x, name="dropping")


def tiny_experiment(*phases: spec.Phase, build: Callable[..., Any] = tiny_backbone) -> spec.Experiment:
    return spec.experiment(
        name="tiny",
        dataset=spec.arrays(make_data, image_size=16),
        backbone=spec.custom_backbone("tiny", build),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=phases,
        expect=[spec.frozen_weights_unchanged(), spec.trainable_weights_changed()],
    )


@pytest.fixture
def train(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[ExperimentResult, Weights]]:
    """`train(experiment, **run_options)`: runs it and its checks; returns the result and every final weight by path."""
    built: list[model_lib.Built] = []
    load = model_lib.load

    def keep(*args: Any, **kwargs: Any) -> model_lib.Built:
        built.append(load(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(model_lib, "load", keep)

    def run(experiment: spec.Experiment, **options: Any) -> tuple[ExperimentResult, Weights]:
        run = engine.run(experiment, engine.RunOptions(**options))
        assert run.result.checks == []  # the engine evaluates nothing: the checks stage does
        checks.evaluate(experiment, run, results={}, recorded={}, gate=None)
        return run.result, {v.path: np.array(v.numpy(), copy=True) for v in built[-1].model.weights}

    return run


def assert_same_weights(cached: Weights, full: Weights) -> None:
    __tracebackhide__ = True
    assert sorted(cached) == sorted(full)
    for path in sorted(cached):
        np.testing.assert_allclose(cached[path], full[path], rtol=RTOL, atol=ATOL, err_msg=path)


def assert_frozen_batchnorm_untouched(weights: Weights) -> None:
    __tracebackhide__ = True
    statistics = {path: w for path, w in weights.items() if path.endswith(("moving_mean", "moving_variance"))}
    assert statistics
    for path, values in statistics.items():
        expected = MOVING_MEAN if path.endswith("moving_mean") else MOVING_VARIANCE
        assert np.all(values == np.float32(expected)), path


def check_both_paths(cached: ExperimentResult, full: ExperimentResult) -> None:
    __tracebackhide__ = True
    assert [p.trainable_params for p in cached.phases] == [p.trainable_params for p in full.phases]
    assert [p.non_trainable_params for p in cached.phases] == [p.non_trainable_params for p in full.phases]
    for result in (cached, full):
        assert [(c.name, c.phase) for c in result.checks if not c.passed] == []
        assert {"frozen_weights_unchanged", "trainable_weights_changed"} <= {c.name for c in result.checks}
    for phase in cached.phases:  # the cached model's own validation figure is the real model's
        assert phase.cached_val_accuracy == phase.val_accuracy, phase.name
    # Test is scored once, after the last phase: on the cached inputs after a cached phase, end
    # to end on the full path.
    assert [p.test_accuracy for p in cached.phases] == [p.test_accuracy for p in full.phases]
    assert [p.test_accuracy is not None for p in cached.phases] == [False] * (len(cached.phases) - 1) + [True]
    for phase in full.phases:
        assert (phase.training_path, phase.cache, phase.cached_val_accuracy) == ("full", "none", None)
        assert phase.training_path_reason == "feature caching disabled (--no-feature-cache)"


def test_features_path_trains_the_head_as_the_full_network_does(train) -> None:
    experiment = tiny_experiment(spec.feature_extraction(epochs=3, learning_rate=5e-2, batch_size=16))
    cached, cached_weights = train(experiment)
    full, full_weights = train(experiment, feature_cache=False)

    (phase,) = cached.phases
    assert (phase.training_path, phase.training_path_reason) == ("features", "the whole backbone is frozen")
    check_both_paths(cached, full)
    assert_same_weights(cached_weights, full_weights)
    assert_frozen_batchnorm_untouched(cached_weights)
    assert_frozen_batchnorm_untouched(full_weights)
    assert phase.val_accuracy >= 0.9  # it learned something: the comparison is not between two untrained heads


def test_activations_path_fine_tunes_as_the_full_network_does(train) -> None:
    """With Dropout in the backbone, below and above the cut: it drops on no path, frozen or not.

    The backbone runs in inference mode. Keras up to 3.15 overrides `backbone(x, training=False)`
    written in a functional model with the model's own flag (keras-team/keras#23364), so the full
    network's Dropout used to drop during `fit` while the cached inputs were computed without it.
    """
    experiment = tiny_experiment(
        spec.feature_extraction(epochs=2, learning_rate=5e-2, batch_size=16),
        # block_2_conv trains; block_2_bn stays frozen in inference mode, between two trained layers.
        spec.fine_tune(unfreeze_from="block_2_", epochs=2, learning_rate=1e-2, batch_size=16),
        build=dropout_backbone,
    )
    cached, cached_weights = train(experiment)
    full, full_weights = train(experiment, feature_cache=False)

    assert [(p.training_path, p.training_path_reason) for p in cached.phases] == [
        ("features", "the whole backbone is frozen"),
        ("activations@block_2_conv", "layers below 'block_2_conv' are frozen"),
    ]
    check_both_paths(cached, full)
    assert [p.trainable_params for p in cached.phases] == [4 * 2 + 2, 4 * 2 + 2 + 3 * 3 * 4 * 4 + 4]
    assert_same_weights(cached_weights, full_weights)
    assert_frozen_batchnorm_untouched(cached_weights)
    assert_frozen_batchnorm_untouched(full_weights)


@pytest.mark.parametrize("feature_cache", [True, False], ids=["cached", "full"])
def test_a_test_expectation_on_an_earlier_phase_scores_the_test_split_after_it(train, feature_cache: bool) -> None:
    experiment = spec.experiment(
        name="tiny",
        dataset=spec.arrays(make_data, image_size=16),
        backbone=spec.custom_backbone("tiny", tiny_backbone),
        head=spec.classifier_head(dropout_rate=0.0),
        phases=[spec.feature_extraction(epochs=1, batch_size=16), spec.fine_tune(unfreeze_from="block_2_", epochs=1)],
        expect=[spec.min_test_accuracy(0.0, phase="feature_extraction")],
    )
    result, _ = train(experiment, feature_cache=feature_cache)
    assert all(p.test_accuracy is not None for p in result.phases)
    assert [c.passed for c in result.checks if c.name == "min_test_accuracy"] == [True]


def test_augmentation_trains_on_the_full_network(train) -> None:
    experiment = tiny_experiment(
        spec.feature_extraction(epochs=1, batch_size=16, augmentation=[spec.augment("RandomFlip")])
    )
    result, _ = train(experiment)
    (phase,) = result.phases
    assert (phase.training_path, phase.cache, phase.cached_val_accuracy) == ("full", "none", None)
    assert phase.training_path_reason == "augment(...) layers change the backbone's input every epoch"


def test_dihedral_views_train_on_cached_inputs_as_the_full_network_does(train) -> None:
    """Both paths take the same draw of views; the cached one picks the cached output of each view."""
    experiment = tiny_experiment(
        spec.feature_extraction(epochs=2, learning_rate=5e-2, batch_size=16, augmentation=[spec.dihedral()]),
        spec.fine_tune(
            unfreeze_from="block_2_",
            epochs=2,
            learning_rate=1e-2,
            batch_size=16,
            augmentation=[spec.dihedral(turns=False)],
        ),
    )
    cached, cached_weights = train(experiment)
    full, full_weights = train(experiment, feature_cache=False)

    assert [(p.training_path, p.training_path_reason) for p in cached.phases] == [
        ("features", "the whole backbone is frozen; the training images are cached in 8 dihedral views"),
        (
            "activations@block_2_conv",
            ("layers below 'block_2_conv' are frozen; the training images are cached in 4 dihedral views"),
        ),
    ]
    check_both_paths(cached, full)
    assert_same_weights(cached_weights, full_weights)
    assert_frozen_batchnorm_untouched(cached_weights)


def test_dihedral_views_change_what_is_trained(train) -> None:
    """Against the same phases without views: the views reach training (the tiny backbone is not symmetric)."""

    def phases(*augmentation: spec.Augmentation) -> spec.Phase:
        return spec.feature_extraction(epochs=2, learning_rate=5e-2, batch_size=16, augmentation=augmentation)

    _, plain = train(tiny_experiment(phases()))
    _, viewed = train(tiny_experiment(phases(spec.dihedral())))
    (kernel,) = [path for path in plain if path.endswith("predictions/kernel")]
    assert not np.allclose(plain[kernel], viewed[kernel], rtol=RTOL, atol=ATOL)


def test_dihedral_batches_go_on_across_epochs(train, monkeypatch: pytest.MonkeyPatch) -> None:
    """`fit` reads batch 0, 1, 2, ... across epochs: epoch 2 is not a replay of epoch 1."""
    from harness import symmetry

    fetched: list[int] = []
    batch = symmetry.Draw.batch

    def spy(self: symmetry.Draw, index: int) -> tuple[np.ndarray, np.ndarray]:
        fetched.append(index)
        return batch(self, index)

    monkeypatch.setattr(symmetry.Draw, "batch", spy)
    train(tiny_experiment(spec.feature_extraction(epochs=3, batch_size=16, augmentation=[spec.dihedral()])))
    steps = 64 // 16
    assert set(range(3 * steps)) <= set(fetched)
    assert max(fetched) < 3 * steps + 4  # at most a few prefetched beyond the last epoch


def test_boundary_inside_a_residual_block_trains_on_the_full_network(train) -> None:
    """At the block's start one tensor crosses the boundary; inside it the shortcut crosses too."""
    experiment = tiny_experiment(
        spec.fine_tune(name="from_block", unfreeze_from="block_2_", epochs=1, learning_rate=1e-2, batch_size=16),
        spec.fine_tune(
            name="inside_block", unfreeze_from="block_2_project", epochs=1, learning_rate=1e-2, batch_size=16
        ),
        build=residual_backbone,
    )
    result, weights = train(experiment)
    from_block, inside_block = result.phases
    assert (from_block.training_path, from_block.training_path_reason) == (
        "activations@block_2_expand_conv",
        "layers below 'block_2_expand_conv' are frozen",
    )
    assert (inside_block.training_path, inside_block.cache) == ("full", "none")
    assert (
        inside_block.training_path_reason
        == "more than one tensor crosses into 'block_2_project'; no single cut to cache at"
    )
    assert [(c.name, c.phase) for c in result.checks if not c.passed] == []
    assert_frozen_batchnorm_untouched(weights)


def test_frozen_dropout_rules_out_caching_when_the_backbone_follows_the_training_flag(train) -> None:
    """With `train_batchnorm` the backbone follows `fit`'s flag, so its frozen Dropout drops: no cache is exact."""
    experiment = tiny_experiment(
        spec.feature_extraction(epochs=1, learning_rate=5e-2, batch_size=16),
        spec.fine_tune(unfreeze_from="block_2_", train_batchnorm=True, epochs=1, learning_rate=1e-2, batch_size=16),
        build=dropout_backbone,
    )
    result, _ = train(experiment)
    assert [(p.training_path, p.training_path_reason) for p in result.phases] == [
        (
            "full",
            (
                "frozen layers are random in training mode (dropout, noise) and train_batchnorm makes the "
                "backbone follow it"
            ),
        ),
    ] * 2


def test_moving_statistics_of_batchnorm_that_trains_are_not_counted_as_frozen(train) -> None:
    """With `train_batchnorm` the unfrozen BatchNorm updates its moving statistics (non-trainable
    variables): they are not frozen weights, and the frozen block's statistics are still checked."""
    experiment = tiny_experiment(
        spec.feature_extraction(epochs=1, learning_rate=5e-2, batch_size=16),
        spec.fine_tune(unfreeze_from="block_2_", train_batchnorm=True, epochs=1, learning_rate=1e-2, batch_size=16),
    )
    result, weights = train(experiment)
    assert [(c.name, c.phase) for c in result.checks if not c.passed] == []
    frozen = [c for c in result.checks if c.name == "frozen_weights_unchanged"]
    assert [c.phase for c in frozen] == ["feature_extraction", "fine_tune"]
    # Fine-tuning leaves block_1_'s four BatchNorm variables and conv kernel and bias frozen.
    assert frozen[1].expected == "all 6 frozen variables bit-for-bit unchanged"
    assert np.all(weights["block_1_bn/moving_mean"] == np.float32(MOVING_MEAN))
    assert not np.all(weights["block_2_bn/moving_mean"] == np.float32(MOVING_MEAN))


def test_random_layers_are_recognised() -> None:
    import keras
    from keras.src.applications.convnext import StochasticDepth

    random = [
        keras.layers.Dropout(0.1),
        keras.layers.SpatialDropout2D(0.1),
        keras.layers.GaussianNoise(0.1),
        keras.layers.RandomFlip(),
        StochasticDepth(0.1),
    ]
    deterministic = [keras.layers.Conv2D(1, 1), keras.layers.BatchNormalization(), keras.layers.ReLU()]
    assert [planning.is_random(layer) for layer in random + deterministic] == [True] * 5 + [False] * 3
