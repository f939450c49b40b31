"""Where a phase's training starts: on cached features, on cached activations, or on the full network.

- "features": the whole backbone is frozen, so its outputs (after the head's global pooling,
  which has no weights) are computed once and only the head trains on them;
- "activations@<layer>": only layers from <layer> up are trainable and everything below is
  frozen and deterministic, so the activations entering <layer> are cached and only the part
  above trains;
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
from harness.model import Built

FEATURES, ACTIVATIONS, FULL = "features", "activations", "full"

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
    sizes: dict[str, int],
    *,
    feature_cache: bool,
    activation_budget_bytes: int,
) -> Plan:
    """The route of `phase`, whose freezing rule left the layers `trainable` (qualified names) trainable.

    Args:
        phase: The phase about to train.
        trainable: `freezing.apply`'s result for the phase.
        built: The experiment's model.
        sizes: The number of images per split (for the activations' memory).
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
    cut = _single_cut(pairs, first)
    if cut is None:
        return Plan(FULL, f"more than one tensor crosses into {cut_layer.name!r}; no single cut to cache at")
    images = sum(sizes.values()) + max(len(views) - 1, 0) * sizes["train"]
    needed = images * int(np.prod(cut.shape[1:])) * 4
    if needed > activation_budget_bytes:
        return Plan(
            FULL,
            f"activations at {cut_layer.name!r} need {needed / 1024**3:.1f} GiB, over the "
            f"{activation_budget_bytes / 1024**3:.1f} GiB budget (HARNESS_ACTIVATION_BUDGET_GB)",
        )
    lower = keras.Model(backbone.input, cut, name="frozen_lower")
    upper = keras.Model(cut, backbone.output, name="trainable_upper")
    inputs = keras.Input(tuple(cut.shape[1:]), name="activations")
    upper_outputs = model_lib.call_with_training(upper, inputs, built.backbone_training)
    train_model = keras.Model(inputs, built.head(upper_outputs))
    return Plan(
        ACTIVATIONS,
        f"layers below {cut_layer.name!r} are frozen{_views_note(views)}",
        lower=lower,
        train_model=train_model,
        cut_layer=cut_layer.name,
        views=views,
    )


def is_random(layer: Any) -> bool:
    """Whether `layer` draws random numbers in training mode (dropout, noise, `Random*` augmentation)."""
    name = type(layer).__name__
    return name in RANDOM_LAYERS or name.startswith("Random")


def _features_plan(built: Built, views: tuple[int, ...]) -> Plan:
    backbone, head = built.backbone, built.head
    reason = f"the whole backbone is frozen{_views_note(views)}"
    pool = head.layers[0]
    if not isinstance(pool, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
        return Plan(FEATURES, reason, lower=backbone, train_model=head, views=views)
    # The head's global pooling has no weights and no randomness: it runs once with the
    # backbone, so each image keeps 1,280 numbers (Lite0) instead of 7x7x1,280, and every
    # epoch reads 49 times less.
    lower = keras.Model(backbone.input, pool(backbone.output), name="frozen_backbone_pooled")
    rest = keras.Sequential([keras.Input(tuple(lower.output.shape[1:])), *head.layers[1:]], name="head_after_pool")
    return Plan(FEATURES, reason, lower=lower, train_model=rest, pooled=type(pool).__name__, views=views)


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


def _views_note(views: tuple[int, ...]) -> str:
    return f"; the training images are cached in {len(views)} dihedral views" if views else ""
