"""Training phases (feature extraction, fine-tuning) and their augmentation (callbacks: `callbacks`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness import freezing
from harness.spec import augment_layers
from harness.spec.callbacks import Callback, CheckpointBest, EarlyStopping, ReduceLROnPlateau
from harness.spec.schedules import Schedule, training_knobs
from harness.spec.validators import (
    SpecError,
    _bool,
    _check,
    _fraction,
    _is_int,
    _learning_rate,
    _positive_float,
    _positive_int,
    _sequence,
)
from harness.spec.vocabulary import FEATURE_EXTRACTION, FINE_TUNE, OPTIMIZERS

AUGMENTATIONS = tuple(augment_layers.LAYERS)


@dataclass(frozen=True)
class Augmentation:
    layer: str
    kwargs: tuple[tuple[str, Any], ...] = ()


def augment(layer: str, **kwargs: Any) -> Augmentation:
    """A Keras random preprocessing layer applied to training images, e.g. `augment("RandomFlip")`.

    Augmentation runs in the input pipeline of the phase that declares it; it rules out
    feature caching for that phase (the features would change every epoch).

    Args:
        layer: One of "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
            "RandomContrast", "RandomBrightness", "RandomCrop".
        **kwargs: The layer's own arguments (checked against the Keras layer's signature and,
            for `mode`, `fill_mode`, `interpolation`, `data_format`, against its values).
    """
    _check(layer in AUGMENTATIONS, "augment.layer", f"must be one of {', '.join(AUGMENTATIONS)}", layer)
    augment_layers.check_arguments(layer, kwargs)
    return Augmentation(layer=layer, kwargs=tuple(sorted(kwargs.items())))


@dataclass(frozen=True)
class Dihedral:
    """Symmetries of the square shown to the phase: indices into `DIHEDRAL_VIEWS`."""

    views: tuple[int, ...]


# View k: k % 4 quarter turns counter-clockwise, then, for k >= 4, a left-right flip.
DIHEDRAL_VIEWS = (
    "identity",
    "turn 90",
    "turn 180",
    "turn 270",
    "flip left-right",
    "turn 90 + flip",
    "flip up-down",
    "turn 270 + flip",
)


def dihedral(*, turns: bool = True) -> Dihedral:
    """Each epoch, every training image is shown in one symmetry of the square drawn at random.

    The 8 symmetries are the quarter turns and the mirror images; `turns=False` keeps the 4 that
    preserve orientation (identity, left-right and up-down flips, half turn), for images whose
    content has a direction. Unlike `augment(...)` layers, the views form a finite set, so the
    frozen part of the network runs once per view and the phase still trains on cached inputs;
    the draw is seeded and the same on the cached and the full path (which holds the training
    images in memory to draw from them). With `turns=True` the images must be square.

    Args:
        turns: Include the quarter turns (all 8 views). Defaults to True.
    """
    return Dihedral(tuple(range(8)) if _bool(turns, "dihedral.turns") else (0, 2, 4, 6))


@dataclass(frozen=True)
class Phase:
    """One training phase. `kind` is "feature_extraction" or "fine_tune"."""

    kind: str
    name: str
    epochs: int
    learning_rate: float
    rule: freezing.Rule
    backbone_learning_rate: float | None = None
    optimizer: str = "adam"
    batch_size: int = 32
    train_batchnorm: bool = False
    class_weight: str | tuple[tuple[int, float], ...] | None = None
    augmentation: tuple[Augmentation | Dihedral, ...] = ()
    callbacks: tuple[Callback, ...] = ()
    # `harness.spec.schedules`: at these defaults the phase trains exactly as without them.
    schedule: Schedule | None = None
    label_smoothing: float = 0.0
    weight_decay: float | None = None
    # Low-rank adapters of this rank train instead of the selected layers' own weights (`fine_tune`).
    lora_rank: int | None = None

    @property
    def views(self) -> tuple[int, ...]:
        """The `dihedral()` views the phase draws from (none without it)."""
        return next((a.views for a in self.augmentation if isinstance(a, Dihedral)), ())

    @property
    def augment_layers(self) -> tuple[Augmentation, ...]:
        """The `augment(...)` layers (random every epoch: they rule out cached inputs)."""
        return tuple(a for a in self.augmentation if isinstance(a, Augmentation))

    @property
    def class_weight_labels(self) -> tuple[int, ...]:
        """The classes a `class_weight` mapping names (none for None or "balanced")."""
        return tuple(label for label, _ in self.class_weight) if isinstance(self.class_weight, tuple) else ()


def _class_weight(value: Any, kind: str) -> str | tuple[tuple[int, float], ...] | None:
    if not isinstance(value, Mapping):
        _check(
            value in (None, "balanced"), f"{kind}.class_weight", "must be None, 'balanced' or {class: weight}", value
        )
        return value
    _check(len(value) > 0, f"{kind}.class_weight", "must map at least one class index to a weight", dict(value))
    for label, weight in value.items():
        _check(
            _is_int(label) and label >= 0,
            f"{kind}.class_weight",
            "must map class indices (ints >= 0) to weights",
            dict(value),
        )
        _positive_float(weight, f"{kind}.class_weight[{label}]")
    return tuple(sorted((int(k), float(v)) for k, v in value.items()))


def _phase_common(
    kind: str,
    *,
    name: str | None,
    epochs: int,
    learning_rate: float,
    optimizer: str,
    batch_size: int,
    class_weight: Any,
    augmentation: Sequence[Augmentation | Dihedral],
    callbacks: Sequence[Callback],
    **knobs: Any,
) -> dict[str, Any]:
    name = kind if name is None else name
    _check(
        isinstance(name, str) and re.fullmatch(r"[A-Za-z_]\w*", name) is not None,
        f"{kind}.name",
        "must be an identifier such as 'fine_tune_2'",
        name,
    )
    _check(
        isinstance(optimizer, str) and optimizer in OPTIMIZERS,
        f"{kind}.optimizer",
        f"must be one of {tuple(OPTIMIZERS)}",
        optimizer,
    )
    rate = _learning_rate(learning_rate, f"{kind}.learning_rate")
    layers = _sequence(augmentation, f"{kind}.augmentation", "[augment('RandomFlip')]")
    for i, a in enumerate(layers):
        _check(
            isinstance(a, (Augmentation, Dihedral)),
            f"{kind}.augmentation[{i}]",
            "must be built with augment(...) or dihedral()",
            a,
        )
    _check(
        sum(isinstance(a, Dihedral) for a in layers) <= 1,
        f"{kind}.augmentation",
        "must hold dihedral() at most once",
        layers,
    )
    declared = _sequence(callbacks, f"{kind}.callbacks", "[early_stopping()]")
    for i, c in enumerate(declared):
        _check(
            isinstance(c, (EarlyStopping, ReduceLROnPlateau, CheckpointBest)),
            f"{kind}.callbacks[{i}]",
            "must be early_stopping(...), reduce_lr_on_plateau(...) or checkpoint_best(...)",
            c,
        )
        if isinstance(c, ReduceLROnPlateau):
            _check(
                c.min_lr < rate,
                f"{kind}.callbacks[{i}].min_lr",
                f"must be below the phase's learning_rate ({rate:g}), or the rate is never reduced",
                c.min_lr,
            )
    epochs = _positive_int(epochs, f"{kind}.epochs")
    return {
        "kind": kind,
        "name": name,
        "epochs": epochs,
        "learning_rate": rate,
        "optimizer": optimizer,
        "batch_size": _positive_int(batch_size, f"{kind}.batch_size"),
        "class_weight": _class_weight(class_weight, kind),
        "augmentation": layers,
        "callbacks": declared,
        **training_knobs(kind, epochs=epochs, learning_rate=rate, callbacks=declared, **knobs),
    }


def feature_extraction(
    *,
    epochs: int,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 32,
    class_weight: Any = None,
    augmentation: Sequence[Augmentation | Dihedral] = (),
    callbacks: Sequence[Callback] = (),
    name: str | None = None,
    schedule: Schedule | None = None,
    label_smoothing: float = 0.0,
    weight_decay: float | None = None,
) -> Phase:
    """Phase 1: the whole backbone frozen (BatchNorm in inference mode), the new head trained.

    Args:
        epochs: Number of epochs (> 0).
        learning_rate: Learning rate of the head, in (0, 1]. Defaults to 1e-3.
        optimizer: "adam", "adamw", "sgd" or "rmsprop". Defaults to "adam".
        batch_size: Defaults to 32.
        class_weight: None, "balanced" or {class index: weight}. Defaults to None.
        augmentation: A list of `augment(...)` layers applied to training images, and/or
            `dihedral()` (flips and quarter turns that keep the phase on cached inputs).
            Defaults to none.
        callbacks: A list of `early_stopping(...)`, `reduce_lr_on_plateau(...)`,
            `checkpoint_best(...)`. Defaults to none.
        name: Phase name in reports and `trainable_params`. Defaults to "feature_extraction".
        schedule: None (a constant rate), `cosine(...)` or `one_cycle(...)`, per optimizer step,
            peaking at `learning_rate`. Defaults to None.
        label_smoothing: Label smoothing of the cross-entropy loss, in [0, 1). Defaults to 0.0.
        weight_decay: The optimizer's (decoupled) `weight_decay`, >= 0. Defaults to None: the
            optimizer's own default (none; 0.004 for "adamw").
    """
    common = _phase_common(
        FEATURE_EXTRACTION,
        name=name,
        epochs=epochs,
        learning_rate=learning_rate,
        optimizer=optimizer,
        batch_size=batch_size,
        class_weight=class_weight,
        augmentation=augmentation,
        callbacks=callbacks,
        schedule=schedule,
        label_smoothing=label_smoothing,
        weight_decay=weight_decay,
    )
    return Phase(rule=freezing.FreezeAll(), **common)


def fine_tune(
    *,
    epochs: int,
    learning_rate: float = 1e-5,
    unfreeze_from: str | int | None = None,
    unfreeze_fraction: float | None = None,
    unfreeze_layers: Sequence[str] | None = None,
    unfreeze_all: bool = False,
    backbone_learning_rate: float | None = None,
    train_batchnorm: bool = False,
    optimizer: str = "adam",
    batch_size: int = 32,
    class_weight: Any = None,
    augmentation: Sequence[Augmentation | Dihedral] = (),
    callbacks: Sequence[Callback] = (),
    name: str | None = None,
    schedule: Schedule | None = None,
    label_smoothing: float = 0.0,
    weight_decay: float | None = None,
    lora_rank: int | None = None,
) -> Phase:
    """Phase 2: the top of the backbone unfrozen, trained with the head at a low learning rate.

    Give exactly one of `unfreeze_from`, `unfreeze_fraction`, `unfreeze_layers`, `unfreeze_all`.

    Args:
        epochs: Number of epochs (> 0).
        learning_rate: Learning rate of the head, in (0, 1]. Defaults to 1e-5.
        unfreeze_from: A layer-name prefix (the first layer it matches and every layer after it
            are unfrozen; "block_1_" never matches "block_13_") or a layer index with Python
            semantics (-20: the last 20 layers, as fastai's `freeze_to(-20)`). Defaults to None.
        unfreeze_fraction: The top fraction of the backbone's layers, in (0, 1]. Defaults to None.
        unfreeze_layers: A list of exact layer names to unfreeze. Defaults to None.
        unfreeze_all: Unfreeze the whole backbone. Defaults to False.
        backbone_learning_rate: A lower learning rate for the backbone's layers (discriminative
            rates), in (0, 1]. Defaults to None: `learning_rate`.
        train_batchnorm: Let BatchNormalization layers train (and update their statistics).
            Defaults to False: they stay frozen and in inference mode.
        lora_rank: Train low-rank adapters of this rank (LoRA, Keras's `enable_lora`) on the
            selected layers' attention query and value projections instead of their weights, which
            stay unchanged bit for bit; the exported model has the adapters merged into plain
            weights. Text encoders (keras-hub) only. Defaults to None: the selected layers train.
        optimizer, batch_size, class_weight, augmentation, callbacks, name, schedule,
            label_smoothing, weight_decay: As in `feature_extraction`. `name` defaults to "fine_tune".
    """
    _bool(unfreeze_all, "fine_tune.unfreeze_all")
    given = {
        k: v
        for k, v in (
            ("unfreeze_from", unfreeze_from),
            ("unfreeze_fraction", unfreeze_fraction),
            ("unfreeze_layers", unfreeze_layers),
            ("unfreeze_all", unfreeze_all or None),
        )
        if v is not None
    }
    if len(given) != 1:
        raise SpecError(
            "fine_tune",
            "needs exactly one of unfreeze_from, unfreeze_fraction, unfreeze_layers or unfreeze_all=True",
            given,
            shown=", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them",
        )
    rule: freezing.Rule
    if unfreeze_from is not None:
        if isinstance(unfreeze_from, bool) or not isinstance(unfreeze_from, (str, int)):
            raise SpecError("fine_tune.unfreeze_from", "must be a layer-name prefix or a layer index", unfreeze_from)
        if isinstance(unfreeze_from, str):
            _check(
                unfreeze_from != "", "fine_tune.unfreeze_from", "must be a non-empty layer-name prefix", unfreeze_from
            )
            rule = freezing.UnfreezeFromPrefix(unfreeze_from)
        else:
            rule = freezing.UnfreezeFromIndex(unfreeze_from)
    elif unfreeze_fraction is not None:
        rule = freezing.UnfreezeFraction(_fraction(unfreeze_fraction, "fine_tune.unfreeze_fraction", low_open=True))
    elif unfreeze_layers is not None:
        names = tuple(unfreeze_layers) if isinstance(unfreeze_layers, (list, tuple)) else None
        _check(
            bool(names) and all(isinstance(n, str) and n for n in names or ()),
            "fine_tune.unfreeze_layers",
            "must be a non-empty list of layer names",
            unfreeze_layers,
        )
        assert names is not None
        rule = freezing.UnfreezeLayers(names)
    else:
        rule = freezing.UnfreezeAll()
    backbone_rate = None
    if backbone_learning_rate is not None:
        backbone_rate = _learning_rate(backbone_learning_rate, "fine_tune.backbone_learning_rate")
    common = _phase_common(
        FINE_TUNE,
        name=name,
        epochs=epochs,
        learning_rate=learning_rate,
        optimizer=optimizer,
        batch_size=batch_size,
        class_weight=class_weight,
        augmentation=augmentation,
        callbacks=callbacks,
        schedule=schedule,
        label_smoothing=label_smoothing,
        weight_decay=weight_decay,
    )
    return Phase(
        rule=rule,
        backbone_learning_rate=backbone_rate,
        train_batchnorm=_bool(train_batchnorm, "fine_tune.train_batchnorm"),
        lora_rank=None if lora_rank is None else _positive_int(lora_rank, "fine_tune.lora_rank"),
        **common,
    )
