"""Runs an experiment's phases on the real model, training on cached inputs where that is exact.

For each phase the engine (1) applies the freezing rule to the backbone and recompiles, so a
`trainable` change can never be silently ignored; (2) picks where training starts:

- "features": the whole backbone is frozen, so its outputs (after the head's global pooling,
  which has no weights) are computed once (and kept in the disk cache) and only the head trains
  on them;
- "activations@<layer>": only layers from <layer> up are trainable and everything below is
  frozen and deterministic, so the activations entering <layer> are cached and only the part
  above trains;
- "full": otherwise (`augment(...)` layers, caching disabled, no clean cut, too much memory), the
  whole network runs every step, as the plain Keras recipe does.

`dihedral()` keeps a phase on cached inputs: the lower network's output is cached for every
view of every training image, and each batch picks the view that `symmetry.Draw` drew for it.

The frozen pass that fills a cache entry runs on LiteRT unless `RunOptions.frozen_runtime` is
"keras" (harness/inference.py); the two agree up to float round-off, and the entry's key names
the runtime.

The cached parts share their variables with the full model, so after every phase the real
model carries the trained weights; it is evaluated end to end and the invariants read it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from harness import freezing, inference, invariants, spec, symmetry
from harness.cache import FeatureCache, make_key, weights_digest
from harness.data import loading
from harness import model as model_lib
from harness.model import Built
from harness.results import ExperimentResult, PhaseResult

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}
PREDICT_BATCH = 64


@dataclass
class RunOptions:
    seed: int | None = None
    cache: FeatureCache | None = None
    feature_cache: bool = True
    # Cached activations larger than this fall back to the full network (the reason says so).
    activation_budget_bytes: int = field(
        default_factory=lambda: int(float(os.environ.get("HARNESS_ACTIVATION_BUDGET_GB", "6")) * 1024**3))
    progress: Callable[[str], None] | None = None
    deterministic: bool = False  # tf.config.experimental.enable_op_determinism()
    # XLA for training steps. "auto" is Keras's default (off on CPU-only machines); the
    # benchmark measures True against it (README, "Performance").
    jit_compile: bool | str = "auto"
    # What runs the frozen part's forward pass (harness/inference.py): "litert" or "keras".
    frozen_runtime: str = "litert"


@dataclass
class Plan:
    kind: str  # "features", "activations", "full"
    reason: str
    lower: keras.Model | None = None
    train_model: keras.Model | None = None
    cut_layer: str | None = None
    pooled: str | None = None  # the head's pooling layer, when it runs once with the frozen part
    views: tuple[int, ...] = ()  # dihedral views of the training images, cached one after another

    @property
    def label(self) -> str:
        return f"activations@{self.cut_layer}" if self.kind == "activations" else self.kind


def run(
    experiment: spec.Experiment,
    options: RunOptions,
    others: Mapping[str, Mapping[str, Any]] | None = None,
) -> ExperimentResult:
    """Trains every phase of `experiment` and evaluates its expectations.

    `others` holds other experiments' final metrics, for `beats` (see `invariants.evaluate`).
    """
    started = time.perf_counter()
    seed = experiment.seed if options.seed is None else options.seed
    keras.utils.set_random_seed(seed)
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    backbone = model_lib.load_backbone(experiment)  # first: missing weights skip before any data is read
    data = loading.load(experiment.dataset)
    built = model_lib.load(experiment, backbone, data.num_classes)
    result = ExperimentResult(
        name=experiment.name,
        seed=seed,
        backbone=experiment.backbone.name,
        weights=experiment.backbone.weights,
        dataset=_describe(experiment.dataset),
        num_classes=data.num_classes,
        split_sizes=data.sizes,
        class_names=data.class_names,
    )
    runner = _PhaseRunner(experiment, built, data, options, seed)
    for phase in experiment.phases:
        result.phases.append(runner.run(phase))
    result.wall_time_s = time.perf_counter() - started
    result.confusion_matrix = runner.confusion_matrix()
    result.checks = invariants.evaluate(experiment, result, runner.weight_changes, others or {})
    return result


def _describe(dataset: spec.Dataset) -> str:
    if isinstance(dataset, spec.TfdsDataset):
        return f"tfds:{dataset.name} ({dataset.label_key})"
    if isinstance(dataset, spec.ImageFolder):
        return f"folder:{dataset.path}"
    return f"arrays:{dataset.cache_key or 'in-memory'}"


class _PhaseRunner:
    def __init__(self, experiment: spec.Experiment, built: Built, data: loading.LoadedData, options: RunOptions, seed: int):
        self.experiment, self.built, self.data, self.options, self.seed = experiment, built, data, options, seed
        self.weight_changes: dict[str, invariants.WeightChanges] = {}
        self.labels = {name: data.labels(name) for name in ("train", "validation")}
        self.predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._memory: dict[str, dict[str, np.ndarray]] = {}
        self.test_phases = experiment.test_phases

    # ------------------------------------------------------------------ one phase

    def run(self, phase: spec.Phase) -> PhaseResult:
        started = time.perf_counter()
        model = self.built.model
        try:
            trainable = freezing.apply(self.built.backbone, phase.rule, train_batchnorm=phase.train_batchnorm)
        except freezing.RuleError as error:  # caught at collection for catalog backbones; here for custom ones
            raise spec.SpecError(f"{phase.name}.{error.field}", f"must match layers of {self.built.backbone.name!r} "
                                 f"({error.expected})", error.received) from None
        self.built.head.trainable = True
        trainable_vars, frozen_vars = list(model.trainable_weights), list(model.non_trainable_weights)
        before = {v.path: np.array(v.numpy(), copy=True) for v in model.weights}

        # Recompiling after every `trainable` change is not optional: Keras only picks the
        # change up at compile time.
        self._compile(model, phase)
        plan = self._plan(phase, trainable)
        views = phase.views
        draw = symmetry.Draw(self.seed, self.data.sizes["train"], phase.batch_size, len(views)) if views else None
        if plan.kind == "full":
            train_model = model
            if draw is None:
                train_ds = self._batched(self.data.train, phase, shuffle=True, augment=True)
            else:
                images = self._train_images()
                train_ds = self._drawn(draw, lambda i, p: symmetry.views_of(images[i], [views[k] for k in p]), phase)
            val_ds = self._batched(self.data.validation, phase)
            cache_state, frozen_pass = "none", None
        else:
            train_model = plan.train_model
            self._compile(train_model, phase)
            arrays, cache_state, frozen_pass = self._cached_inputs(plan, test=phase.name in self.test_phases)
            if draw is None:
                train_ds = self._batched(tf.data.Dataset.from_tensor_slices((arrays["train"], self.labels["train"])), phase,
                                         shuffle=True)
            else:
                train_ds = self._drawn(draw, lambda i, p: arrays["train"][p, i], phase)
            val_ds = self._batched(tf.data.Dataset.from_tensor_slices((arrays["validation"], self.labels["validation"])), phase)

        if phase.backbone_learning_rate is not None:
            train_model = self._two_rates(train_model, phase)
        history = train_model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=phase.epochs,
            steps_per_epoch=None if draw is None else draw.steps,
            callbacks=self._callbacks(phase),
            class_weight=self._class_weight(phase),
            shuffle=False,  # the input pipeline shuffles, seeded per experiment
            verbose=0,
        ).history

        # Validation always runs end to end on raw images through the real model. After a cached
        # phase the cached path scores validation too, and the two must agree (an always-on
        # check), which also vouches for the test score taken on the cached inputs.
        val = self._evaluate("validation", self.built.model, self._images("validation"))
        cached_val = test = None
        if plan.kind != "full":
            cached_val = self._evaluate("validation", train_model, arrays["validation"], keep=False)["accuracy"]
            if "test" in arrays:
                test = self._evaluate("test", train_model, arrays["test"])
        elif self.data.test is not None and phase.name in self.test_phases:
            test = self._evaluate("test", self.built.model, self._images("test"))
        self.weight_changes[phase.name] = invariants.WeightChanges.between(before, frozen_vars, trainable_vars)
        return PhaseResult(
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
            non_trainable_params=_count(frozen_vars),
            wall_time_s=time.perf_counter() - started,
            path=plan.label,
            path_reason=plan.reason,
            cache=cache_state,
            cached_val_accuracy=cached_val,
            frozen_pass=frozen_pass,
        )

    # ------------------------------------------------------------------ choosing the path

    def _plan(self, phase: spec.Phase, trainable: frozenset[str]) -> Plan:
        if not self.options.feature_cache:
            return Plan("full", "feature caching disabled (--no-feature-cache)")
        if phase.augment_layers:
            return Plan("full", "augment(...) layers change the backbone's input every epoch")
        views = phase.views
        backbone = self.built.backbone
        pairs = list(freezing.keras_layers(backbone))
        first = next((i for i, (info, _) in enumerate(pairs) if info.qualified_name in trainable), None)
        if first == 0:
            return Plan("full", "the whole backbone is trainable")
        # Cached outputs are computed in inference mode; with `train_batchnorm` the backbone follows
        # `fit`'s training flag, so frozen random layers (a whole frozen backbone's too) would drop.
        frozen_layers = [layer for _, layer in pairs[:first]]
        if self.built.backbone_training is None and any(_is_random(layer) for layer in frozen_layers):
            return Plan("full", "frozen layers are random in training mode (dropout, noise) and train_batchnorm "
                                "makes the backbone follow it")
        if first is None:
            return self._features_plan(backbone, views)
        if any(info.path for info, _ in pairs):
            return Plan("full", "the backbone nests models; activations are cached only for flat backbones")
        cut_layer = pairs[first][1]
        cut = _single_cut(pairs, first)
        if cut is None:
            return Plan("full", f"more than one tensor crosses into {cut_layer.name!r}; no single cut to cache at")
        images = sum(self.data.sizes.values()) + max(len(views) - 1, 0) * self.data.sizes["train"]
        needed = images * int(np.prod(cut.shape[1:])) * 4
        if needed > self.options.activation_budget_bytes:
            return Plan(
                "full",
                f"activations at {cut_layer.name!r} need {needed / 1024**3:.1f} GiB, over the "
                f"{self.options.activation_budget_bytes / 1024**3:.1f} GiB budget (HARNESS_ACTIVATION_BUDGET_GB)",
            )
        lower = keras.Model(backbone.input, cut, name="frozen_lower")
        upper = keras.Model(cut, backbone.output, name="trainable_upper")
        inputs = keras.Input(tuple(cut.shape[1:]), name="activations")
        upper_outputs = model_lib.call_with_training(upper, inputs, self.built.backbone_training)
        train_model = keras.Model(inputs, self.built.head(upper_outputs))
        return Plan("activations", f"layers below {cut_layer.name!r} are frozen{_views_note(views)}", lower=lower,
                    train_model=train_model, cut_layer=cut_layer.name, views=views)

    def _features_plan(self, backbone: keras.Model, views: tuple[int, ...]) -> Plan:
        reason = f"the whole backbone is frozen{_views_note(views)}"
        head = self.built.head
        pool = head.layers[0]
        if not isinstance(pool, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
            return Plan("features", reason, lower=backbone, train_model=head, views=views)
        # The head's global pooling has no weights and no randomness: it runs once with the
        # backbone, so each image keeps 1,280 numbers (Lite0) instead of 7x7x1,280, and every
        # epoch reads 49 times less.
        lower = keras.Model(backbone.input, pool(backbone.output), name="frozen_backbone_pooled")
        rest = keras.Sequential([keras.Input(tuple(lower.output.shape[1:])), *head.layers[1:]], name="head_after_pool")
        return Plan("features", reason, lower=lower, train_model=rest, pooled=type(pool).__name__, views=views)

    def _cached_inputs(self, plan: Plan, *, test: bool) -> tuple[dict[str, np.ndarray], str, str | None]:
        """The lower network's outputs on train, validation and (with `test`) test: from memory,
        disk, or computed in one pass. Also the cache state, and what ran the pass if one ran."""
        lower = plan.lower
        assert lower is not None
        splits = [s for s in loading.SPLITS if self.data.split(s) is not None and (test or s != "test")]
        key = None
        identity = self.experiment.dataset.identity
        digest = weights_digest(v.numpy() for v in lower.weights)
        if not (isinstance(self.experiment.dataset, spec.Arrays) and self.experiment.dataset.cache_key is None):
            key = make_key(
                backbone=self.experiment.backbone.name,
                weights=digest,
                dataset=identity,
                splits={s: _split_name(self.experiment.dataset, s) for s in splits},
                image_size=self.experiment.image_size,
                output=plan.label,
                pooled=plan.pooled,
                views=plan.views,
                training=self.built.backbone_training,
                runtime=self.options.frozen_runtime,
            )
        memory_key = key or f"{plan.label}:{plan.views}:{splits}:{digest}"
        if memory_key in self._memory:
            return self._memory[memory_key], "hit", None
        cache = self.options.cache if key is not None else None
        stored = cache.get(key) if cache is not None else None
        # The key names the data, not its order: a per-image checksum guards against a data set
        # that yields its images in another order than when the entry was written. Only an
        # entry on disk needs them.
        checksums = {s: self._checksums(s) for s in splits} if cache is not None else {}
        if stored is not None and all(np.array_equal(stored.get(f"{s}_checksums"), checksums[s]) for s in splits):
            arrays, state, ran_on = {s: stored[s] for s in splits}, "hit", None
        else:
            # One pass over the splits back to back: one traced function, one ragged last batch.
            images = self.data.split(splits[0])
            for split in splits[1:]:
                images = images.concatenate(self.data.split(split))
            frozen_pass = inference.FrozenPass(lower, self.options.frozen_runtime)
            ran_on = frozen_pass.ran_on
            outputs = frozen_pass(_batched_images(images).as_numpy_iterator())
            bounds = np.cumsum([0] + [self.data.sizes[s] for s in splits])
            arrays = {s: outputs[bounds[i]:bounds[i + 1]] for i, s in enumerate(splits)}
            if plan.views:
                arrays["train"] = self._train_views(frozen_pass, arrays["train"], plan.views)
            state = "miss"
            if cache is not None:
                cache.put(
                    key,
                    {**arrays, **{f"{s}_checksums": checksums[s] for s in splits}},
                    metadata={"experiment": self.experiment.name, "backbone": self.experiment.backbone.name,
                              "output": plan.label, "dataset": identity, "image_size": self.experiment.image_size},
                )
        self._memory = {memory_key: arrays}  # keep one entry: the next phase usually needs another cut
        return arrays, state, ran_on

    # ------------------------------------------------------------------ helpers

    def _labels(self, split: str) -> np.ndarray:
        if split not in self.labels:
            self.labels[split] = self.data.labels(split)
        return self.labels[split]

    def _checksums(self, split: str) -> np.ndarray:
        sums = self.data.split(split).batch(256).map(_pixel_sums)
        return np.concatenate(list(sums.as_numpy_iterator()))

    def _images(self, split: str) -> tf.data.Dataset:
        return _batched_images(self.data.split(split))

    def _train_images(self) -> np.ndarray:
        return np.stack([image for image, _ in self.data.train.as_numpy_iterator()])

    def _train_views(self, frozen_pass: inference.FrozenPass, identity: np.ndarray, views: tuple[int, ...]) -> np.ndarray:
        """The frozen pass's outputs on every view of the training images, shape (views, images, ...)."""
        assert views[0] == 0, views  # the identity, already computed with the other splits
        stacked = np.empty((len(views), *identity.shape), dtype=np.float32)
        stacked[0] = identity
        images = self._train_images()
        for position, k in enumerate(views[1:], start=1):
            stacked[position] = frozen_pass(inference.batches_of(symmetry.view(images, k), PREDICT_BATCH))
        return stacked

    def _drawn(self, draw: symmetry.Draw, inputs: Callable[[np.ndarray, np.ndarray], np.ndarray],
               phase: spec.Phase) -> tf.data.Dataset:
        """Training batches as `draw` lays them out: `inputs(image indices, view positions)`."""
        labels = self.labels["train"]
        sample = inputs(*draw.batch(0))

        def batch(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            indices, positions = draw.batch(int(index))
            return np.ascontiguousarray(inputs(indices, positions), dtype=np.float32), labels[indices]

        def fetch(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x, y = tf.numpy_function(batch, [index], (tf.float32, tf.int32), stateful=False)
            return tf.ensure_shape(x, (None, *sample.shape[1:])), tf.ensure_shape(y, (None,))

        dataset = tf.data.Dataset.counter().map(fetch)
        return self._augmented(dataset, phase).prefetch(tf.data.AUTOTUNE)

    def _batched(self, dataset: tf.data.Dataset, phase: spec.Phase, *, shuffle: bool = False, augment: bool = False) -> tf.data.Dataset:
        if shuffle:
            dataset = dataset.shuffle(self.data.sizes["train"], seed=self.seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(phase.batch_size)
        if augment:
            dataset = self._augmented(dataset, phase)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _augmented(self, batches: tf.data.Dataset, phase: spec.Phase) -> tf.data.Dataset:
        """`batches` through the phase's `augment(...)` layers (the full path only has any)."""
        if not phase.augment_layers:
            return batches
        pipeline = keras.Sequential([getattr(keras.layers, a.layer)(**dict(a.kwargs)) for a in phase.augment_layers])
        return batches.map(lambda x, y: (pipeline(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)

    def _evaluate(self, split: str, model: keras.Model, inputs: Any, *, keep: bool = True) -> dict[str, float]:
        """Accuracy and loss of `model` on `inputs` (the split's images or cached arrays)."""
        batch_size = PREDICT_BATCH if isinstance(inputs, np.ndarray) else None
        probabilities = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float64)
        labels = self._labels(split)
        predicted = probabilities.argmax(axis=-1)
        if keep:
            self.predictions[split] = (labels, predicted)
        picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
        return {"accuracy": float(np.mean(predicted == labels)), "loss": float(-np.mean(np.log(picked)))}

    def _compile(self, model: keras.Model, phase: spec.Phase) -> None:
        model.compile(optimizer=self._optimizer(phase), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=self.options.jit_compile)

    def _optimizer(self, phase: spec.Phase, learning_rate: float | None = None) -> keras.optimizers.Optimizer:
        return OPTIMIZERS[phase.optimizer](learning_rate=phase.learning_rate if learning_rate is None else learning_rate)

    def _two_rates(self, network: keras.Model, phase: spec.Phase) -> keras.Model:
        """`network` wrapped so that the backbone's variables train at `backbone_learning_rate`."""
        from harness.discriminative import TwoRateModel

        wrapper = TwoRateModel(network, self.built.backbone.trainable_variables,
                               self._optimizer(phase, phase.backbone_learning_rate))
        self._compile(wrapper, phase)
        return wrapper

    def _callbacks(self, phase: spec.Phase) -> list[keras.callbacks.Callback]:
        callbacks: list[keras.callbacks.Callback] = []
        for declared in phase.callbacks:
            if isinstance(declared, spec.EarlyStopping):
                callbacks.append(keras.callbacks.EarlyStopping(monitor=declared.monitor, patience=declared.patience,
                                                               restore_best_weights=declared.restore_best_weights))
            else:
                callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=declared.monitor, factor=declared.factor,
                                                                   patience=declared.patience, min_lr=declared.min_lr))
        if self.options.progress is not None:
            callbacks.append(_Progress(self.options.progress, self.experiment.name, phase))
        return callbacks

    def _class_weight(self, phase: spec.Phase) -> dict[int, float] | None:
        if phase.class_weight is None:
            return None
        if phase.class_weight == "balanced":
            counts = np.bincount(self.labels["train"], minlength=self.data.num_classes).astype(np.float64)
            return {i: float(len(self.labels["train"]) / (self.data.num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}
        return dict(phase.class_weight)

    def confusion_matrix(self) -> list[list[int]]:
        """Rows: true class, columns: predicted, on the test split (validation when there is none)."""
        truth, predicted = self.predictions["test" if "test" in self.predictions else "validation"]
        matrix = np.zeros((self.data.num_classes, self.data.num_classes), dtype=int)
        np.add.at(matrix, (truth, predicted), 1)
        return matrix.tolist()


def _batched_images(dataset: tf.data.Dataset) -> tf.data.Dataset:
    return dataset.map(lambda image, label: image).batch(PREDICT_BATCH).prefetch(tf.data.AUTOTUNE)


def _pixel_sums(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(images, tf.float64), axis=[1, 2, 3])


def _split_name(dataset: spec.Dataset, role: str) -> str:
    if isinstance(dataset, spec.TfdsDataset):
        return {"train": dataset.train_split, "validation": dataset.validation_split, "test": dataset.test_split}[role]
    if isinstance(dataset, spec.ImageFolder):
        return f"test:{dataset.test_path}" if role == "test" else f"{role}:{dataset.validation_split}"
    return role


def _views_note(views: tuple[int, ...]) -> str:
    return f"; the training images are cached in {len(views)} dihedral views" if views else ""


def _count(variables: list[Any]) -> int:
    return int(sum(int(np.prod(v.shape)) for v in variables))


# Layers that are random in training mode; StochasticDepth is keras.applications' ConvNeXt's.
_RANDOM_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                  "GaussianDropout", "AlphaDropout", "StochasticDepth")


def _is_random(layer: Any) -> bool:
    name = type(layer).__name__
    return name in _RANDOM_LAYERS or name.startswith("Random")


def _single_cut(pairs: list[tuple[freezing.LayerInfo, Any]], first: int) -> Any | None:
    """The one tensor that flows from layers below index `first` into the layers above, if unique."""
    lower_ids = {id(layer) for _, layer in pairs[:first]}
    crossing: dict[int, Any] = {}
    for _, layer in pairs[first:]:
        try:
            inputs = layer.input
        except (AttributeError, ValueError):  # a shared layer: several inbound nodes
            return None
        for tensor in inputs if isinstance(inputs, (list, tuple)) else [inputs]:
            producer = tensor._keras_history.operation
            if id(producer) in lower_ids or isinstance(producer, keras.layers.InputLayer):
                crossing[id(tensor)] = tensor
    if len(crossing) != 1:
        return None
    (tensor,) = crossing.values()
    if isinstance(tensor._keras_history.operation, keras.layers.InputLayer):
        return None
    return tensor


class _Progress(keras.callbacks.Callback):
    """One line per epoch: experiment, phase, epoch i/n, loss, accuracy, ETA."""

    def __init__(self, write: Callable[[str], None], experiment: str, phase: spec.Phase):
        super().__init__()
        self.write, self.experiment, self.phase = write, experiment, phase

    def on_train_begin(self, logs: Any = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = logs or {}
        done = epoch + 1
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.phase.epochs - done)
        metrics = " ".join(f"{k}={logs[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs)
        self.write(f"{self.experiment} {self.phase.name} epoch {done}/{self.phase.epochs} {metrics} "
                   f"elapsed={elapsed:.1f}s eta={eta:.1f}s")
