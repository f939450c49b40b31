"""Freezing rules, resolved to the set of layers they unfreeze as pure functions over layer names.

A backbone is seen as its flat list of leaf layers (nested models are expanded in place, input
layers dropped), each a `LayerInfo`. A rule resolves to the qualified names of the layers that
are trainable in a phase; BatchNormalization layers stay frozen unless `train_batchnorm`.

Nothing here imports TensorFlow except `keras_layers` and `apply`, which touch a real model.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayerInfo:
    """One leaf layer: its name, the names of the models it is nested in (`parents`, outermost first) and
    whether it is BatchNorm.

    `has_weights` says whether the layer holds weights (a convolution does, a ReLU does
    not); None where only the name is known. It does not take part in equality.
    """

    name: str
    parents: tuple[str, ...] = ()
    is_batchnorm: bool = False
    has_weights: bool | None = field(default=None, compare=False)

    @property
    def qualified_name(self) -> str:
        return "/".join((*self.parents, self.name))


class RuleError(ValueError):
    """A rule that matches nothing, or is out of range for the layers it is applied to."""

    def __init__(self, field: str, expected: str, received: Any) -> None:
        self.field, self.expected, self.received = field, expected, received
        super().__init__(f"`{field}` must match layers ({expected}). Received: {field}={received!r}")


@dataclass(frozen=True)
class FreezeAll:
    """Every backbone layer frozen (feature extraction)."""


@dataclass(frozen=True)
class UnfreezeAll:
    """Every backbone layer trainable."""


@dataclass(frozen=True)
class UnfreezeFromPrefix:
    """The first layer whose name starts with `prefix` (at a token boundary), and all after it."""

    prefix: str


@dataclass(frozen=True)
class UnfreezeFromIndex:
    """`layers[index:]` with Python semantics: -n unfreezes the last n layers (fastai's freeze_to(-n))."""

    index: int


@dataclass(frozen=True)
class UnfreezeFraction:
    """The top `ceil(fraction * n)` layers."""

    fraction: float


@dataclass(frozen=True)
class UnfreezeLayers:
    """Exactly these layers (by name)."""

    names: tuple[str, ...]


Rule = FreezeAll | UnfreezeAll | UnfreezeFromPrefix | UnfreezeFromIndex | UnfreezeFraction | UnfreezeLayers


def _token_class(char: str) -> str:
    if char.isdigit():
        return "digit"
    if char.isalpha():
        return "alpha"
    return "separator"


def prefix_matches(prefix: str, name: str) -> bool:
    """Whether `name` starts with `prefix` and the prefix ends at a token boundary.

    Tokens are runs of digits, runs of letters and single separators, so "block_1_" and
    "block_1" match "block_1_expand" but never "block_13_expand", and "block6" matches
    "block6a_expand_conv".
    """
    if not prefix or not name.startswith(prefix):
        return False
    if len(name) == len(prefix):
        return True
    last, following = prefix[-1], name[len(prefix)]
    return _token_class(last) == "separator" or _token_class(last) != _token_class(following)


def start_index(layers: Sequence[LayerInfo], rule: Rule) -> int | None:
    """For rules that unfreeze a top slice, the index of its first layer; None for the others."""
    n = len(layers)
    if isinstance(rule, FreezeAll):
        return n
    if isinstance(rule, UnfreezeAll):
        return 0
    if isinstance(rule, UnfreezeFromPrefix):
        for i, layer in enumerate(layers):
            if prefix_matches(rule.prefix, layer.name):
                return i
        candidates = _separator_prefixes(layer.name for layer in layers)
        close = difflib.get_close_matches(rule.prefix, candidates, n=3) or candidates
        raise RuleError("unfreeze_from", f"a name prefix of some layer, e.g. {_preview(close)}", rule.prefix)
    if isinstance(rule, UnfreezeFromIndex):
        if not -n <= rule.index < n:
            raise RuleError("unfreeze_from", f"an index in [{-n}, {n - 1}] for {n} layers", rule.index)
        return rule.index % n
    if isinstance(rule, UnfreezeFraction):
        if not 0 < rule.fraction <= 1:
            raise RuleError("unfreeze_fraction", "a fraction in (0, 1]", rule.fraction)
        # Rounded first: 0.07 * 100 is 7.000000000000001 in floating point, and must unfreeze 7.
        return n - max(1, math.ceil(round(rule.fraction * n, 9)))
    return None


def resolve(layers: Sequence[LayerInfo], rule: Rule, *, train_batchnorm: bool = False) -> frozenset[str]:
    """The qualified names of the layers `rule` makes trainable.

    Raises:
        RuleError: the rule matches no layer, names a layer that does not exist, leaves
            nothing trainable although it asks to unfreeze something, or selects no weights
            (every layer it makes trainable is known to hold none, as a ReLU at the top).
    """
    start = start_index(layers, rule)
    if start is not None:
        chosen = list(layers[start:])
    else:
        assert isinstance(rule, UnfreezeLayers)
        by_name = {layer.name: layer for layer in layers}
        missing = [name for name in rule.names if name not in by_name]
        if missing:
            raise RuleError(
                "unfreeze_layers",
                f"existing layer names, e.g. {_preview([layer.name for layer in layers])}",
                missing[0],
            )
        chosen = [by_name[name] for name in rule.names]
    trainable = frozenset(layer.qualified_name for layer in chosen if train_batchnorm or not layer.is_batchnorm)
    if not trainable and not isinstance(rule, FreezeAll):
        raise RuleError(
            _field(rule), "at least one layer that is not BatchNormalization, or train_batchnorm=True", _value(rule)
        )
    weightless = weightless_selection(chosen, trainable)
    if weightless:
        set_aside = any(layer.is_batchnorm for layer in chosen) and not train_batchnorm
        reason = ", as BatchNormalization stays frozen unless train_batchnorm=True" if set_aside else ""
        raise RuleError(
            _field(rule),
            f"layers with weights; it selects no weights, only {_preview(weightless)}{reason}",
            _value(rule),
        )
    return trainable


def weightless_selection(chosen: Sequence[LayerInfo], trainable: frozenset[str]) -> list[str]:
    """The names of the trainable layers when every one of them is known to hold no weights, else [].

    A rule that unfreezes only such layers ("unfreeze_from=-1" on a network ending in ReLU)
    trains nothing in the backbone: it "selects no weights".
    """
    selected = [layer for layer in chosen if layer.qualified_name in trainable]
    if selected and all(layer.has_weights is False for layer in selected):
        return [layer.name for layer in selected]
    return []


def _field(rule: Rule) -> str:
    return {UnfreezeLayers: "unfreeze_layers", UnfreezeFraction: "unfreeze_fraction", UnfreezeAll: "unfreeze_all"}.get(
        type(rule), "unfreeze_from"
    )


def _value(rule: Rule) -> Any:
    return next(iter(vars(rule).values()), True)


def _separator_prefixes(names: Iterable[str]) -> list[str]:
    """Every prefix of `names` that ends with a separator ("block_12_"), in first-seen order."""
    found: dict[str, None] = {}
    for name in names:
        for i, char in enumerate(name):
            if _token_class(char) == "separator":
                found.setdefault(name[: i + 1])
    return list(found)


def _preview(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


# --------------------------------------------------------------------------- real Keras models


def keras_layers(model: Any, parents: tuple[str, ...] = ()) -> Iterator[tuple[LayerInfo, Any]]:
    """Yields (LayerInfo, layer) for every leaf layer of `model`, nested models expanded in place."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            yield from keras_layers(layer, (*parents, layer.name))
            continue
        is_batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        # Any variable counts: `variable.trainable` follows `layer.trainable` in Keras 3, so a layer that
        # an earlier phase froze would otherwise read as holding no weights.
        has_weights = bool(layer.weights)
        yield LayerInfo(layer.name, parents, is_batchnorm, has_weights), layer


def updated_statistics(model: Any) -> frozenset[str]:
    """Paths of the non-trainable variables that training still updates: the moving mean and
    variance of BatchNormalization layers that train. Every other non-trainable variable of
    `model` is frozen and must stay bit-for-bit unchanged.

    BatchNorm only: a backbone called through a `training=False` wrapper layer (no phase trains
    BatchNorm) is one trainable leaf here that holds all of the backbone's variables."""
    return frozenset(
        v.path
        for info, layer in keras_layers(model)
        if info.is_batchnorm and layer.trainable
        for v in layer.non_trainable_weights
    )


def apply(model: Any, rule: Rule, *, train_batchnorm: bool = False) -> frozenset[str]:
    """Sets `trainable` on every leaf layer of `model` as `rule` resolves; returns the trainable names.

    Raises `RuleError` (and changes no flag) as `resolve` does, including for a rule that
    unfreezes layers none of which holds weights.

    Containers are made trainable first (Keras's `trainable` setter recurses), then each leaf
    is set, so the result does not depend on the flags the model had before.
    """
    pairs = list(keras_layers(model))
    trainable = resolve([info for info, _ in pairs], rule, train_batchnorm=train_batchnorm)
    _set_containers_trainable(model)
    for info, layer in pairs:
        layer.trainable = info.qualified_name in trainable
    return trainable


def _set_containers_trainable(model: Any) -> None:
    import keras

    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _set_containers_trainable(layer)


def trainable_state(model: Any) -> Mapping[str, bool]:
    """The `trainable` flag of every leaf layer, by qualified name."""
    return {info.qualified_name: bool(layer.trainable) for info, layer in keras_layers(model)}
