"""Every `keras.applications` model as a harness backbone: raw RGB pixels in, features out.

The model is flat: `[InputLayer "pixels", PreprocessInput "preprocess", <application layers>]`,
built by passing the preprocessed tensor as the application's `input_tensor`. Layer names are
the ones a fresh Keras session gives, however many models were built before (see
`_fresh_auto_names`), so they match `catalog.describe(name).layer_names` and spec prefixes.

Two private Keras APIs are touched, each in one place: the auto-name counters
(`keras.src.backend.common.global_state`) and the `get_file` the applications call
(`keras.src.utils.file_utils.get_file`), wrapped while a model is built so that missing
ImageNet weights fail fast with a `WeightsUnavailableError` instead of a bare `Exception`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
from keras.src.applications import imagenet_utils
from keras.src.backend import config as keras_backend_config
from keras.src.backend.common import global_state
from keras.src.utils import file_utils

from harness.backbones import catalog, errors
from harness.backbones.errors import WeightsUnavailableError

# Seconds a single connect or read of a weights download may block. A download that keeps
# receiving data is never cut; one that hangs (firewall dropping packets) fails after this.
DOWNLOAD_SOCKET_TIMEOUT_S = 30.0

# `keras.applications.mobilenet_v3` checks its input size itself instead of calling
# `imagenet_utils.obtain_input_shape` (see `MobileNetV3` in keras/src/applications/mobilenet_v3.py).
_SIZES_NOT_FROM_OBTAIN_INPUT_SHAPE = {"mobilenet_v3": (224, 32)}


@keras.saving.register_keras_serializable(package="harness")
class PreprocessInput(keras.layers.Layer):
    """Applies `keras.applications.<module>.preprocess_input` to raw RGB pixels (0..255).

    Has no weights; saving and loading weights skip it. `get_config` makes it serializable.

    Args:
        module: The `keras.applications` module name, e.g. `"mobilenet_v2"`.
        **kwargs: Standard layer arguments (`name`, ...).
    """

    def __init__(self, module: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module = module
        self._preprocess_input = getattr(keras.applications, module).preprocess_input

    def call(self, inputs: Any) -> Any:
        return self._preprocess_input(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "module": self.module}


def build_keras_application(
    name: str,
    *,
    weights: str | os.PathLike[str] | None,
    include_top: bool,
    input_shape: Sequence[int | None],
    classes: int = 1000,
) -> keras.Model:
    """Builds `keras.applications.<name>` taking raw RGB pixels, with its preprocessing inside.

    Args:
        name: The constructor's name in `keras.applications`, e.g. `"MobileNetV2"`.
        weights: `"imagenet"` (downloaded by Keras into `$KERAS_HOME/models`, default
            `~/.keras/models`, or taken from there), `None` (random initialisation), or the path
            to a weights file that `keras.Model.load_weights` reads (`.weights.h5` saved from a
            harness backbone, a Keras application `.h5`/`.hdf5` file, a `.keras` archive without
            Lambda layers, or a sharded `.weights.json` index), loaded after building; a
            relative path is relative to the working directory.
        include_top: Whether to keep the ImageNet classifier.
        input_shape: `(height, width, 3)`, channels last.
        classes: Number of classes of the classifier when `include_top=True`. Defaults to 1000.

    Returns:
        A flat functional model named `name`: `[InputLayer, "preprocess", ...]`.

    Raises:
        UnknownBackboneError: `name` is not a `keras.applications` backbone.
        ValueError: `weights` or `input_shape` is invalid.
        WeightsUnavailableError: `weights="imagenet"` and the file is neither cached nor
            downloadable.
        WeightsFileError: The weights file cannot be read (empty, of another kind, a `.keras`
            file with a Lambda layer) or does not fit the model; the message names the file,
            what was expected and what was found.
    """
    info = catalog.describe(name)
    if info.family != catalog.KERAS_APPLICATION:
        raise ValueError(
            f"`build_keras_application` builds `keras.applications` models only; '{name}' is "
            f"a {info.family} backbone. Use `harness.load_backbone('{name}')`. Received: name={name!r}"
        )
    assert info.module is not None  # every keras.applications entry names its module
    _check_weights(weights)
    input_shape = catalog.check_input_shape(name, input_shape, include_top=include_top, weights=weights)
    _check_data_format()
    model = _build_flat(
        name,
        module=info.module,
        imagenet=weights == "imagenet",
        include_top=include_top,
        input_shape=input_shape,
        classes=classes,
    )
    if weights not in (None, "imagenet"):
        errors.load_keras_weights(model, weights)
    return model


def application_names() -> list[str]:
    """Returns the model constructors the installed `keras.applications` exports."""
    return sorted(
        (n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n))),
        key=str.lower,
    )


def catalog_entry(name: str) -> dict[str, Any]:
    """Returns the catalog's JSON entry for application `name`, from the installed Keras.

    Builds the harness backbone with `weights=None`, `include_top=False` at its default size.
    """
    constructor = getattr(keras.applications, name)
    module = constructor.__module__.rsplit(".", 1)[-1]
    if not callable(getattr(getattr(keras.applications, module, None), "preprocess_input", None)):
        raise RuntimeError(f"keras.applications.{module}.preprocess_input not found for {name}")
    default_size, min_size = _sizes(constructor, module)
    model = _build_flat(
        name,
        module=module,
        imagenet=False,
        include_top=False,
        input_shape=(default_size, default_size, 3),
        classes=1000,
    )
    return {
        "module": module,
        "default_size": default_size,
        "min_size": min_size,
        "layer_names": backbone_layer_names(model),
    }


def backbone_layer_names(model: keras.Model) -> list[str]:
    """Returns the names of `model`'s layers in order, without its `InputLayer`s."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def keras_cache_dir(cache_subdir: str = "models") -> Path:
    """Returns the directory where Keras looks for downloaded application weights.

    `$KERAS_HOME/<cache_subdir>` (read now, not when Keras was imported), else Keras's own
    home (`~/.keras`); like `keras.utils.get_file`, falls back to `/tmp/.keras` when that is
    not writable.
    """
    return Path(_download_dir(_prepared_home(_keras_home()), cache_subdir))


def _build_flat(
    name: str,
    *,
    module: str,
    imagenet: bool,
    include_top: bool,
    input_shape: Sequence[int | None],
    classes: int,
) -> keras.Model:
    constructor = getattr(keras.applications, name)
    with _fresh_auto_names():
        pixels = keras.Input(shape=tuple(input_shape), name="pixels")
        preprocessed = PreprocessInput(module, name="preprocess")(pixels)
        with _guarded_weights_download(name):
            # No `name=`: EfficientNetV2 uses it as the key of its block table.
            application = constructor(
                input_tensor=preprocessed,
                input_shape=tuple(input_shape),
                include_top=include_top,
                weights="imagenet" if imagenet else None,
                classes=classes,
            )
    return keras.Model(pixels, application.output, name=name)


def _check_weights(weights: Any) -> None:
    """Checks `weights` before the model is built: 'imagenet', None, or a weights file that starts right.

    Raises:
        ValueError: Neither 'imagenet' nor None, nor an existing file of a suffix Keras loads.
        WeightsFileError: The file is empty, unreadable or of another kind than its suffix says.
    """
    if weights is None or weights == "imagenet":
        return
    suffix = errors.weights_suffix(weights, errors.KERAS_SUFFIXES) if isinstance(weights, (str, os.PathLike)) else None
    if suffix is None or not Path(weights).is_file():
        raise ValueError(
            "`weights` must be 'imagenet', None, or the path to an existing weights file "
            f"({', '.join(errors.KERAS_SUFFIXES)}). Check the path. Received: weights={weights!r}"
        )
    errors.check_weights_file(weights, suffix, _FILE_KINDS[suffix])


# What each weights file Keras loads must be (the message's expectation when it is not).
_FILE_KINDS = {
    ".keras": "a `.keras` archive saved by `model.save` (a zip holding `model.weights.h5`), without Lambda layers",
    ".weights.h5": "a `.weights.h5` file (HDF5) saved by `model.save_weights`",
    ".weights.json": "a sharded Keras weights index (JSON) saved by `model.save_weights`",
    ".h5": "a Keras `.h5` weights file (HDF5)",
    ".hdf5": "a Keras `.hdf5` weights file (HDF5)",
}


def _check_data_format() -> None:
    data_format = keras.config.image_data_format()
    if data_format != "channels_last":
        raise ValueError(
            "Harness backbones take channels-last images. Call "
            "`keras.config.set_image_data_format('channels_last')`. "
            f"Received: image_data_format={data_format!r}"
        )


def _sizes(constructor: Callable[..., Any], module: str) -> tuple[int, int]:
    """Returns `(default_size, min_size)` as the constructor passes them to Keras, unbuilt."""
    if module in _SIZES_NOT_FROM_OBTAIN_INPUT_SHAPE:
        return _SIZES_NOT_FROM_OBTAIN_INPUT_SHAPE[module]

    class Seen(Exception):
        pass

    def record(input_shape: Any, default_size: int, min_size: int, *args: Any, **kwargs: Any) -> Any:
        raise Seen(default_size, min_size)

    real = imagenet_utils.obtain_input_shape
    imagenet_utils.obtain_input_shape = record
    try:
        constructor(weights=None, include_top=False)
    except Seen as seen:
        return seen.args
    finally:
        imagenet_utils.obtain_input_shape = real
    raise RuntimeError(f"{constructor.__name__} does not call imagenet_utils.obtain_input_shape")


@contextlib.contextmanager
def _fresh_auto_names() -> Iterator[None]:
    """Auto-names layers as in a fresh Keras session, then keeps later names unique.

    Keras numbers unnamed layers per session (`re_lu`, `re_lu_1`, ...), so the second
    MobileNetV3 built in a process would otherwise get other names than the catalog's.
    Afterwards each counter is the larger of the two, so no later layer reuses a name.
    """
    key = "object_name_uids"
    before = global_state.get_global_attribute(key, default=collections.defaultdict(int), set_to_default=True)
    fresh: collections.defaultdict[str, int] = collections.defaultdict(int)
    global_state.set_global_attribute(key, fresh)
    try:
        yield
    finally:
        merged = collections.defaultdict(int, before)
        for prefix, count in fresh.items():
            merged[prefix] = max(merged[prefix], count)
        global_state.set_global_attribute(key, merged)


@contextlib.contextmanager
def _guarded_weights_download(name: str) -> Iterator[None]:
    """Makes the application's `get_file` fail fast and clearly when weights cannot be had.

    A cached file is used as Keras uses it (no network). Otherwise Keras downloads exactly as
    usual, with each socket operation bounded by `DOWNLOAD_SOCKET_TIMEOUT_S`; a failure
    becomes a `WeightsUnavailableError` naming the file and where to put it.
    """
    real_get_file = file_utils.get_file

    def get_file(fname: Any = None, origin: Any = None, *args: Any, **kwargs: Any) -> str:
        if kwargs.get("cache_dir") is None:
            kwargs["cache_dir"] = _prepared_home(_keras_home())
        try:
            with _socket_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
                return real_get_file(fname, origin, *args, **kwargs)
        except Exception as error:  # Keras raises bare `Exception` for URL failures.
            file_name = fname or os.path.basename(str(origin))
            directory = _download_dir(kwargs["cache_dir"], kwargs.get("cache_subdir", "datasets"))
            raise WeightsUnavailableError(
                f"The ImageNet weights for '{name}' could not be downloaded: {error}. Keras "
                f"looks for the file '{file_name}' in '{directory}'. Download {origin} where "
                f"there is network access and copy it to '{os.path.join(directory, file_name)}', "
                "set KERAS_HOME to a directory whose 'models' folder holds it, or pass "
                f"weights=None. Received: weights='imagenet'"
            ) from error

    file_utils.get_file = get_file
    try:
        yield
    finally:
        file_utils.get_file = real_get_file


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Sets the default socket timeout unless the process already set one."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _keras_home() -> str:
    return os.environ.get("KERAS_HOME") or keras_backend_config.keras_home()


def _prepared_home(home: str) -> str:
    # Keras creates its home when imported; a KERAS_HOME set later is created here, else
    # `get_file` would silently fall back to /tmp/.keras.
    with contextlib.suppress(OSError):
        os.makedirs(os.path.expanduser(home), exist_ok=True)
    return home


def _download_dir(cache_dir: str, cache_subdir: str) -> str:
    # The same choice as `keras.utils.get_file`.
    base = os.path.expanduser(cache_dir)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return os.path.join(base, cache_subdir)
