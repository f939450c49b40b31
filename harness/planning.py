"""Where a phase's training starts: on cached features, on cached activations, or on the full network.

- "features": the whole backbone is frozen, so its outputs (after the head's global pooling,
  which has no weights) are computed once and only the head trains on them;
- "activations@<layer>": only layers from <layer> up are trainable and everything below is
  frozen and deterministic, so the activations entering <layer> are cached and only the part
  above trains. Inputs of the backbone that the part above reads as they are (a text encoder's
  padding mask) are fed from the data beside the cached activations; a sequence's activations
  are cached for its real tokens only (`harness.ragged`);
- "full": otherwise (`augment(...)` layers, caching disabled, no clean cut, too much memory), the
  whole network runs every step, as the plain Keras recipe does.

A `Plan` is chosen after the freezing rule is applied; the cached parts it builds share their
variables with the full model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from harness import freezing, spec
from harness import model as model_lib
from harness.data.loaded import LoadedData
from harness.model import Built

FEATURES, ACTIVATIONS, FULL = "features", "activations", "full"
# The name of the cached activations among the inputs of a part above the cut that reads other inputs too.
CACHED_INPUT = "activations"
# The name of the head's weightless pooling layer (or model), which runs once with the frozen part.
POOL = "pool"

# Layers that are random in training mode; StochasticDepth is keras.applications' ConvNeXt's.
RANDOM_LAYERS = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "StochasticDepth",
)


@dataclass
class Plan:
    """How one phase trains: `route` ("features", "activations" or "full") and why."""

    route: str
    reason: str
    lower: keras.Model | None = None  # the frozen part whose outputs are cached
    train_model: keras.Model | None = None  # what `fit` trains on the cached inputs
    cut_layer: str | None = None
    pooled: str | None = None  # the head's pooling layer, when it runs once with the frozen part
    views: tuple[int, ...] = ()  # dihedral views of the training images, cached one after another
    passthrough: tuple[str, ...] = ()  # backbone inputs the part above the cut reads, fed from the data

    @property
    def cached(self) -> bool:
        return self.route != FULL

    @property
    def training_path(self) -> str:
        """ "features", "activations@<layer>" or "full", as the results and reports show it."""
        return f"{ACTIVATIONS}@{self.cut_layer}" if self.route == ACTIVATIONS else self.route


def plan(
    phase: spec.Phase,
    trainable: frozenset[str],
    built: Built,
    data: LoadedData,
    *,
    feature_cache: bool,
    activation_budget_bytes: int,
) -> Plan:
    """The route of `phase`, whose freezing rule left the layers `trainable` (qualified names) trainable.

    Args:
        phase: The phase about to train.
        trainable: `freezing.apply`'s result for the phase.
        built: The experiment's model.
        data: The loaded data set (its sizes and lengths tell the activations' memory).
        feature_cache: Whether cached routes are allowed at all (`--no-feature-cache` turns them off).
        activation_budget_bytes: Cached activations larger than this take the full route.
    """
    if not feature_cache:
        return Plan(FULL, "feature caching disabled (--no-feature-cache)")
    if phase.augment_layers:
        return Plan(FULL, "augment(...) layers change the backbone's input every epoch")
    views = phase.views
    backbone = built.backbone
    pairs = list(freezing.keras_layers(backbone))
    first = next((i for i, (info, _) in enumerate(pairs) if info.qualified_name in trainable), None)
    if first == 0:
        return Plan(FULL, "the whole backbone is trainable")
    # Cached outputs are computed in inference mode; with `train_batchnorm` the backbone follows
    # `fit`'s training flag, so frozen random layers (a whole frozen backbone's too) would drop.
    frozen_layers = [layer for _, layer in pairs[:first]]
    if built.backbone_training is None and any(is_random(layer) for layer in frozen_layers):
        return Plan(
            FULL,
            "frozen layers are random in training mode (dropout, noise) and train_batchnorm "
            "makes the backbone follow it",
        )
    if first is None:
        return _features_plan(built, views)
    if any(info.parents for info, _ in pairs):
        return Plan(FULL, "the backbone nests models; activations are cached only for flat backbones")
    cut_layer = pairs[first][1]
    found = _cut(pairs, first)
    if found is None:
        return Plan(FULL, f"more than one tensor crosses into {cut_layer.name!r}; no single cut to cache at")
    cut, passthrough = found
    if passthrough and not data.feeds_input_rows:
        return Plan(
            FULL, f"the backbone's input reaches {cut_layer.name!r} and layers above it; no single cut to cache at"
        )
    needed = _cached_bytes(cut, data, views)
    if needed > activation_budget_bytes:
        return Plan(
            FULL,
            f"activations at {cut_layer.name!r} need {needed / 1024**3:.1f} GiB, over the "
            f"{activation_budget_bytes / 1024**3:.1f} GiB budget (HARNESS_ACTIVATION_BUDGET_GB)",
        )
    lower = keras.Model(backbone.input, cut, name="frozen_lower")
    cached = keras.Input(tuple(cut.shape[1:]), name=CACHED_INPUT)
    passed = {name: keras.Input(tuple(t.shape[1:]), dtype=t.dtype, name=name) for name, t in passthrough.items()}
    # The upper part takes a list: Keras names a functional model's dict inputs after their tensors.
    upper = _sub_model([cut, *passthrough.values()] if passed else cut, backbone.output, name="trainable_upper")
    inputs: Any = {CACHED_INPUT: cached, **passed} if passed else cached
    upper_inputs = [cached, *passed.values()] if passed else cached
    upper_outputs = model_lib.call_with_training(upper, upper_inputs, built.backbone_training)
    train_model = keras.Model(inputs, built.head(built.head_inputs(upper_outputs, inputs)))
    return Plan(
        ACTIVATIONS,
        f"layers below {cut_layer.name!r} are frozen{_views_note(views)}",
        lower=lower,
        train_model=train_model,
        cut_layer=cut_layer.name,
        views=views,
        passthrough=tuple(passthrough),
    )


def is_random(layer: Any) -> bool:
    """Whether `layer` draws random numbers in training mode (dropout, noise, `Random*` augmentation)."""
    name = type(layer).__name__
    return name in RANDOM_LAYERS or name.startswith("Random")


def _features_plan(built: Built, views: tuple[int, ...]) -> Plan:
    backbone, head = built.backbone, built.head
    reason = f"the whole backbone is frozen{_views_note(views)}"
    layers = [layer for layer in head.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or layers[0].name != POOL:
        return Plan(FEATURES, reason, lower=backbone, train_model=head, views=views)
    # The head's pooling has no weights and no randomness: it runs once with the backbone, so
    # each image keeps 1,280 numbers (Lite0) instead of 7x7x1,280, and every epoch reads 49 times
    # less; a text keeps one vector instead of one per token.
    pool = layers[0]
    lower = keras.Model(
        backbone.input, pool(built.head_inputs(backbone.output, backbone.input)), name="frozen_backbone_pooled"
    )
    rest = keras.Sequential([keras.Input(tuple(lower.output.shape[1:])), *layers[1:]], name="head_after_pool")
    return Plan(FEATURES, reason, lower=lower, train_model=rest, pooled=type(pool).__name__, views=views)


def _cut(pairs: list[tuple[freezing.LayerInfo, Any]], first: int) -> tuple[Any, dict[str, Any]] | None:
    """The one computed tensor that flows from layers below index `first` into the layers above, if
    unique, and the backbone inputs the layers above read directly (by input name)."""
    lower_ids = {id(layer) for _, layer in pairs[:first]}
    crossing: dict[int, Any] = {}
    passthrough: dict[str, Any] = {}
    for _, layer in pairs[first:]:
        try:
            node = layer._inbound_nodes[0]
            tensors = [*node.arguments.keras_tensors]
        except (AttributeError, IndexError):
            return None
        if len(layer._inbound_nodes) != 1:  # a shared layer: several inbound nodes
            return None
        for tensor in tensors:
            producer = tensor._keras_history.operation
            if isinstance(producer, keras.layers.InputLayer):
                passthrough[producer.name] = tensor
            elif id(producer) in lower_ids:
                crossing[id(tensor)] = tensor
    if len(crossing) != 1:
        return None
    (tensor,) = crossing.values()
    return tensor, passthrough


def _cached_bytes(cut: Any, data: LoadedData, views: tuple[int, ...]) -> int:
    """What the activations at `cut` take for every example of every split (and view), as float32."""
    shape = tuple(cut.shape[1:])
    if shape and shape[0] is None:  # a sequence: its real tokens only
        rows = {split: int(np.sum(_known(data.lengths(split)))) for split in data.sizes}
        shape = shape[1:]
    else:
        rows = dict(data.sizes)
    rows["train"] *= max(len(views), 1)
    return sum(rows.values()) * int(np.prod(shape)) * 4


def _sub_model(inputs: Any, outputs: Any, *, name: str) -> keras.Model:
    """`keras.Model(inputs, outputs)` over a part of the backbone, leaving the backbone whole.

    Keras builds a model on intermediate tensors by cloning the nodes between them
    (`keras.src.models.functional.clone_graph_nodes`), and re-points an original `keras.Input`
    given among the inputs (a text encoder's padding mask) at a node of its own; the backbone
    could then no longer be saved ("could not find node key"). Its history is put back.
    """
    given = inputs if isinstance(inputs, list) else [inputs]
    kept = [(tensor, tensor._keras_history) for tensor in given]
    model = keras.Model(inputs, outputs, name=name)
    for tensor, history in kept:
        if isinstance(history.operation, keras.layers.InputLayer):
            tensor._keras_history = history
    return model


def _known(lengths: np.ndarray | None) -> np.ndarray:
    if lengths is None:
        raise ValueError("a cut that outputs sequences needs a data set with sequence lengths")
    return lengths


def _views_note(views: tuple[int, ...]) -> str:
    return f"; the training images are cached in {len(views)} dihedral views" if views else ""
