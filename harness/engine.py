"""Runs an experiment's phases on the real model, training on cached inputs where that is exact.

`run` trains every phase and returns a `harness.results.Run`: what happened (phases, weight
changes, predictions, confusion matrix). It knows nothing of expectations, other experiments or
baselines; `harness.checks` evaluates those.

For each phase the engine (1) applies the freezing rule to the backbone and recompiles, so a
`trainable` change can never be silently ignored; (2) picks where training starts
(`harness.planning`: cached features, cached activations at the trainable boundary, or the
full network, as the plain Keras recipe runs it); (3) trains, on the inputs
`harness.cached_inputs` computes once (and keeps in the disk cache) on the cached routes.

`dihedral()` keeps a phase on cached inputs: the lower network's output is cached for every
view of every training image, and each batch picks the view that `symmetry.Draw` drew for it.

The cached parts share their variables with the full model, so after every phase the real
model carries the trained weights; it is evaluated end to end and the checks read it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from harness import (
    batching,
    distribution,
    errors,
    freezing,
    invariants,
    lora,
    modalities,
    planning,
    spec,
    stats,
    symmetry,
    training_options,
)
from harness import model as model_lib
from harness.cache import FeatureCache
from harness.cached_inputs import CachedInputs
from harness.data import loading
from harness.data.checks import check_data
from harness.model import Built
from harness.results import ExperimentResult, PhaseResult, Predictions, Run, WeightChanges, plain_params
from harness.session_memo import SessionMemo
from harness.spec.schedules import phase_config


@dataclass
class RunOptions:
    seed: int | None = None
    cache: FeatureCache | None = None
    feature_cache: bool = True
    # Cached activations larger than this fall back to the full network (the reason says so).
    activation_budget_bytes: int = field(
        default_factory=lambda: int(float(os.environ.get("HARNESS_ACTIVATION_BUDGET_GB", "6")) * 1024**3)
    )
    progress: Callable[[str], None] | None = None
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism()
    # XLA for training steps. "auto" is Keras's default (off on CPU-only machines); the
    # benchmark measures True against it (README, "Performance").
    jit_compile: bool | str = "auto"
    # What runs the frozen part's forward pass (harness/inference.py): "auto", "litert" or "keras".
    frozen_runtime: str = "auto"
    # What the layers compute in and where they train (harness/distribution.py).
    precision: str = "float32"
    strategy: str = "default"
    # What a session keeps across experiments (loaded data, cached paths shown to agree); None: nothing.
    memo: SessionMemo | None = None


def run(experiment: spec.Experiment, options: RunOptions) -> Run:
    """Trains every phase of `experiment`; returns what happened, its checks not yet evaluated."""
    room = modalities.room(experiment.modality)
    with distribution.placed(options.precision, options.strategy) as placement:
        trained = _run(experiment, options, placement, room)
    adapted = lora.enabled(trained.model.model)
    if adapted or (placement.policy, placement.strategy) != ("float32", "default"):  # what exports are made from
        untrained = room.load_backbone(dataclasses.replace(experiment, backbone=experiment.backbone.without_weights()))
        plain = model_lib.plain_copy(experiment, trained.model, untrained, room.parts(experiment, untrained))
        if adapted:  # the merged weights must compute what the adapters did
            inputs = trained.data.input_batches("validation")
            given = trained.model.model.predict(inputs, verbose=0)
            trained.result.merged_adapters_max_abs_diff = float(
                np.max(np.abs(plain.model.predict(inputs, verbose=0) - given))
            )
        trained.model = plain
    return trained


def _run(
    experiment: spec.Experiment, options: RunOptions, placement: distribution.Placement, room: modalities.Room
) -> Run:
    started = time.perf_counter()
    seed = experiment.seed if options.seed is None else options.seed
    keras.utils.set_random_seed(seed)
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    backbone = room.load_backbone(experiment)  # first: missing weights skip before any data is read
    data = room.load_data(experiment) if options.memo is None else options.memo.load(experiment, room)
    experiment = data.resolve(experiment)  # TFDS keys as loaded (the builder's supervised_keys)
    check_data(experiment, data)  # held-out splits, a test split where one is read, class_weight classes
    built = model_lib.load(experiment, backbone, data.num_classes, room.parts(experiment, backbone))
    result = ExperimentResult(
        name=experiment.name,
        seed=seed,
        backbone=experiment.backbone.name,
        weights=experiment.backbone.weights,
        dataset=loading.describe(experiment.dataset),
        num_classes=data.num_classes,
        split_sizes=data.sizes,
        class_names=data.class_names,
        params=plain_params(experiment.params),
        skipped_files=data.skipped_files,
        truncated=data.truncated,
        precision=placement.precision,
        strategy=placement.strategy,
        devices=list(placement.devices),
    )
    runner = _PhaseRunner(experiment, built, data, options, seed, placement.policy, room.frozen_runtime)
    for phase in experiment.phases:
        result.phases.append(runner.run(phase))
    result.wall_time_s = time.perf_counter() - started
    result.confusion_split = "test" if "test" in runner.predictions else "validation"
    result.confusion_matrix = _confusion_matrix(runner.predictions[result.confusion_split], data.num_classes)
    names = (
        result.class_names if len(result.class_names) == data.num_classes else [str(i) for i in range(data.num_classes)]
    )
    result.class_metrics = {
        split: stats.per_class(p.labels.tolist(), p.predicted.tolist(), names)
        for split, p in runner.predictions.items()
    }
    result.slice_feature = data.slice_feature
    result.slice_metrics = {
        split: stats.per_slice(p.labels.tolist(), p.predicted.tolist(), data.slices[split])
        for split, p in runner.predictions.items()
        if split in data.slices
    }
    return Run(
        result=result,
        modality=experiment.modality,
        weight_changes=runner.weight_changes,
        predictions=runner.predictions,
        model=built,
        data=data,
    )


def _confusion_matrix(predictions: Predictions, num_classes: int) -> list[list[int]]:
    """Rows: true class, columns: predicted."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (predictions.labels, predictions.predicted), 1)
    return matrix.tolist()


def optimizer_class(name: str) -> type[keras.optimizers.Optimizer]:
    """The Keras optimizer class a phase's `optimizer` names (`spec.OPTIMIZERS`: name -> class name)."""
    return getattr(keras.optimizers, spec.OPTIMIZERS[name])


class _PhaseRunner:
    """Trains one experiment's phases one after another on the same model."""

    def __init__(
        self,
        experiment: spec.Experiment,
        built: Built,
        data: loading.LoadedData,
        options: RunOptions,
        seed: int,
        policy: str,
        frozen_runtime: Callable[[str], str],
    ) -> None:
        self.experiment, self.built, self.data, self.options, self.seed = experiment, built, data, options, seed
        self.policy = policy
        self.weight_changes: dict[str, WeightChanges] = {}
        self.predictions: dict[str, Predictions] = {}
        self.test_phases = experiment.test_phases
        self.cached_inputs = CachedInputs(
            experiment,
            data,
            cache=options.cache,
            frozen_runtime=frozen_runtime(options.frozen_runtime),
            backbone_training=built.backbone_training,
            policy=policy,
        )

    def run(self, phase: spec.Phase) -> PhaseResult:
        started = time.perf_counter()
        model = self.built.model
        try:
            trainable = freezing.apply(self.built.backbone, phase.rule, train_batchnorm=phase.train_batchnorm)
        except freezing.RuleError as error:  # caught at collection for catalog backbones; here for custom ones
            raise spec.SpecError(
                f"{phase.name}.{error.field}",
                f"must match layers of {self.built.backbone.name!r} ({error.expected})",
                error.received,
            ) from None
        if phase.lora_rank is not None:  # adapters train instead of the selected layers' own weights
            try:
                lora.apply(self.built.backbone, trainable, phase.lora_rank, self.built.lora_layer_names)
            except ValueError as error:
                raise spec.SpecError(
                    f"{phase.name}.lora_rank", f"needs attention layers among those selected: {error}", phase.lora_rank
                ) from None
        self.built.head.trainable = True
        trainable_vars, non_trainable_vars = list(model.trainable_weights), list(model.non_trainable_weights)
        updated = freezing.updated_statistics(model)  # moving statistics of BatchNorm layers that train
        frozen_vars = [v for v in non_trainable_vars if v.path not in updated]
        before = {v.path: np.array(v.numpy(), copy=True) for v in model.weights}
        # Optimizer steps per epoch, for a schedule (needed to compile; as `symmetry.Draw.steps`).
        self.steps = training_options.steps_per_epoch(self.data.sizes["train"], phase.batch_size)

        # Recompiling after every `trainable` change is not optional: Keras only picks the
        # change up at compile time.
        self._compile(model, phase)
        plan = planning.plan(
            phase,
            trainable,
            self.built,
            self.data,
            feature_cache=self.options.feature_cache,
            activation_budget_bytes=self.options.activation_budget_bytes,
        )
        views = phase.views
        draw = symmetry.Draw(self.seed, self.data.sizes["train"], phase.batch_size, len(views)) if views else None
        scores_test = phase.name in self.test_phases
        arrays: dict[str, batching.Rows] = {}
        labels = self.data.labels("train")
        if not plan.cached:
            train_model = model
            if draw is None:
                train_ds = self.data.batches("train", phase.batch_size, seed=self.seed)
                train_ds = batching.augmented(train_ds, phase).prefetch(tf.data.AUTOTUNE)
            else:
                assert isinstance(self.data, loading.ImageData), "dihedral() views are for images only"
                images = batching.train_images(self.data)
                train_ds = batching.drawn(
                    draw, lambda i, p: symmetry.views_of(images[i], [views[k] for k in p]), labels, phase
                )
            val_ds = self.data.batches("validation", phase.batch_size).prefetch(tf.data.AUTOTUNE)
            cache_state, frozen_pass, cache_reason = "none", None, None
        else:
            assert plan.train_model is not None
            train_model = plan.train_model
            self._compile(train_model, phase)
            cached, cache_state, frozen_pass, cache_reason = self.cached_inputs.get(plan, test=scores_test)
            arrays = {split: self._with_passthrough(plan, split, inputs) for split, inputs in cached.items()}
            if draw is None:
                train_ds = batching.rows(arrays["train"], labels, phase.batch_size, seed=self.seed)
            else:
                views_cached = cached["train"]
                assert isinstance(views_cached, np.ndarray), "dihedral() views are for images only"
                train_ds = batching.drawn(draw, lambda i, p: views_cached[p, i], labels, phase)
            val_ds = batching.rows(arrays["validation"], self.data.labels("validation"), phase.batch_size)

        if phase.backbone_learning_rate is not None:
            train_model = self._two_rates(train_model, phase)
        callbacks = training_options.callbacks(phase, self.experiment.name, self.options.progress)
        history = train_model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=phase.epochs,
            steps_per_epoch=None if draw is None else draw.steps,
            callbacks=callbacks,
            class_weight=self._class_weight(phase),
            shuffle=False,  # the input pipeline shuffles, seeded per experiment
            verbose=0,
        ).history

        # Validation runs end to end on raw images through the real model. After a cached phase
        # the cached path scores validation too, and the two must agree (an always-on check),
        # which also vouches for the test score taken on the cached inputs. Once a cache entry's
        # path has agreed in this session, later phases on it take the cached figure (`session_memo`).
        memo = self.options.memo
        entry = self.cached_inputs.entry if plan.cached else None
        shown_by = None if memo is None else memo.shown(entry)
        cached_val = test = None
        if shown_by is not None:
            val = self._evaluate("validation", train_model, arrays["validation"])
        else:
            val = self._evaluate("validation", self.built.model, self._inputs("validation"))
            if plan.cached:
                cached_val = self._evaluate("validation", train_model, arrays["validation"], keep=False)["accuracy"]
        if plan.cached and "test" in arrays:
            test = self._evaluate("test", train_model, arrays["test"])
        elif not plan.cached and self.data.has("test") and scores_test:
            test = self._evaluate("test", self.built.model, self._inputs("test"))
        self.weight_changes[phase.name] = WeightChanges.between(before, frozen_vars, trainable_vars)
        result = PhaseResult(
            name=phase.name,
            kind=phase.kind,
            epochs=phase.epochs,
            epochs_run=len(history.get("loss", [])),
            history={k: [float(x) for x in v] for k, v in history.items()},
            val_accuracy=val["accuracy"],
            val_loss=val["loss"],
            test_accuracy=None if test is None else test["accuracy"],
            test_loss=None if test is None else test["loss"],
            trainable_params=_count(trainable_vars),
            non_trainable_params=_count(non_trainable_vars),
            wall_time_s=time.perf_counter() - started,
            training_path=plan.training_path,
            training_path_reason=plan.reason,
            cache=cache_state,
            cached_val_accuracy=cached_val,
            frozen_pass=frozen_pass,
            cache_reason=cache_reason,
            best_epoch=training_options.kept_epoch(callbacks),
            config=phase_config(phase),
            cached_path_shown_by=shown_by,
        )
        if (
            memo is not None
            and cached_val is not None
            and invariants.cached_path(result, self.data.sizes["validation"]).passed
        ):
            memo.record(entry, self.experiment.name)
        return result

    # ------------------------------------------------------------------ helpers

    def _with_passthrough(self, plan: planning.Plan, split: str, cached: Any) -> batching.Rows:
        """A split's cached arrays with the data's inputs that cross the cut untouched (a text's padding mask)."""
        if not plan.passthrough:
            return cached
        rows = self.data.input_rows(split)
        return {planning.CACHED_INPUT: cached, **{name: rows[name] for name in plan.passthrough}}

    def _inputs(self, split: str) -> tf.data.Dataset:
        return self.data.input_batches(split)

    def _evaluate(self, split: str, model: keras.Model, inputs: Any, *, keep: bool = True) -> dict[str, float]:
        """Accuracy and loss of `model` on `inputs` (the split's own inputs, or its cached arrays)."""
        if not isinstance(inputs, tf.data.Dataset):  # cached arrays, perhaps memory-mapped: read batch by batch
            inputs = batching.input_batches(inputs)
        probabilities = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
        labels = self.data.labels(split)
        predicted = probabilities.argmax(axis=-1)
        if keep:
            self.predictions[split] = Predictions(labels=labels, predicted=predicted)
        picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
        return {"accuracy": float(np.mean(predicted == labels)), "loss": float(-np.mean(np.log(picked)))}

    def _compile(self, model: keras.Model, phase: spec.Phase) -> None:
        model.compile(
            optimizer=self._optimizer(phase),
            loss=training_options.loss(phase),
            metrics=["accuracy"],
            jit_compile=self.options.jit_compile,
        )

    def _optimizer(self, phase: spec.Phase, learning_rate: float | None = None) -> keras.optimizers.Optimizer:
        rate = phase.learning_rate if learning_rate is None else learning_rate
        return training_options.optimizer(phase, rate, self.steps)

    def _two_rates(self, network: keras.Model, phase: spec.Phase) -> keras.Model:
        """`network` wrapped so that the backbone's variables train at `backbone_learning_rate`."""
        from harness.discriminative import TwoRateModel

        if self.policy == "mixed_float16":  # two optimizers would need one loss scale between them
            raise errors.HarnessFailure(
                f"{self.experiment.location}: {phase.name}.backbone_learning_rate cannot train under mixed_float16 "
                "(its two optimizers would need one loss scale); run it with --precision float32 or mixed_bfloat16"
            )

        wrapper = TwoRateModel(
            network, self.built.backbone.trainable_variables, self._optimizer(phase, phase.backbone_learning_rate)
        )
        self._compile(wrapper, phase)
        return wrapper

    def _class_weight(self, phase: spec.Phase) -> dict[int, float] | None:
        if phase.class_weight is None:
            return None
        if phase.class_weight == "balanced":
            labels = self.data.labels("train")
            counts = np.bincount(labels, minlength=self.data.num_classes).astype(np.float64)
            return {i: float(len(labels) / (self.data.num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}
        assert not isinstance(phase.class_weight, str), phase.class_weight
        return dict(phase.class_weight)


def _count(variables: list[Any]) -> int:
    return int(sum(int(np.prod(v.shape)) for v in variables))
