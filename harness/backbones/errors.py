"""Errors raised while building backbones and loading their weights, and the checks that explain them.

Pure Python (no TensorFlow, no Keras): `check_weights_file` runs at pytest collection, where it
reads a weights file's first bytes only, and again before a backbone loads the file. Once the
load itself fails, `load_keras_weights` compares what the file holds with the model's layers
(with h5py) and says what was expected and what was found, in one plain message.
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# What `efficientnet_lite0` loads, and what `keras.Model.load_weights` (so `keras.applications`) loads.
LITE0_SUFFIXES = (".weights.h5", ".pth")
KERAS_SUFFIXES = (".keras", ".weights.h5", ".weights.json", ".h5", ".hdf5")

Shapes = list[tuple[str, list[tuple[int, ...]]]]  # (layer name, the shapes of its tensors), in order

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_KERAS_WEIGHTS_MEMBER = "model.weights.h5"  # inside a `.keras` archive
_SHOWN_BYTES = 16
# Keras refuses to rebuild a Lambda layer in safe mode: its Python code could do anything.
_LAMBDA_FOUND = "a Lambda layer: .keras files with Lambda layers cannot be loaded safely"
_LAMBDA_HINT = "Save the backbone's weights alone, with `model.save_weights('name.weights.h5')`, and pass that file."


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights cannot be obtained here (a package is missing, no network, ...).

    The message says where the weights would come from and how to make them available.
    """


class WeightsMismatchError(ValueError):
    """A weights file does not fit the architecture: names or shapes differ.

    The message lists what was left over or missing and the shapes obtained and expected.
    """


class WeightsFileError(ValueError):
    """A weights file cannot be loaded: missing, unreadable, of the wrong kind or of another architecture.

    Attributes:
        path: The file.
        expected: What the backbone loads (the kind of file, the architecture, its tensors).
        found: What the file is or holds instead, e.g. "an empty file".
        hint: How to fix it, when that is known ("" otherwise).
    """

    def __init__(self, path: str | os.PathLike[str], expected: str, found: str, *, hint: str = "") -> None:
        self.path, self.expected, self.found, self.hint = os.fspath(path), expected, found, hint
        super().__init__(weights_file_message(self.path, expected, found, hint=hint))


def weights_file_message(path: str, expected: str, found: str, *, hint: str = "") -> str:
    """The one-line message of a weights file that cannot be loaded (see `WeightsFileError`)."""
    return f"Cannot load the weights file {path}. Expected {expected}.{f' {hint}' if hint else ''} Received: {found}"


# Collection-time checks: the suffix, the file, its first bytes ---------------------------


def weights_suffix(path: str | os.PathLike[str], accepted: tuple[str, ...]) -> str | None:
    """The suffix of `accepted` that `path` ends with (the longest, so ".weights.h5" before ".h5"), or None."""
    name = Path(path).name
    return max((s for s in accepted if name.endswith(s)), key=len, default=None)


def suffix_found(path: str | os.PathLike[str]) -> str:
    """How a refused suffix is shown: "a `.h5` file" or "a file without a suffix"."""
    suffix = Path(path).suffix
    return f"a `{suffix}` file" if suffix else "a file without a suffix"


def check_weights_file(path: str | os.PathLike[str], suffix: str, expected: str) -> None:
    """Checks that `path` exists and starts as a `suffix` file must; cheap, TensorFlow-free.

    Reads a few bytes (the archive's index and `config.json` for `.keras`, the header records for
    `.pth`). Whether the tensors fit the architecture is known only when the file is loaded.

    Raises:
        WeightsFileError: The file is missing, empty, unreadable or of another kind; `expected`
            is the message's expectation.
    """
    file = Path(path)
    try:
        if not file.exists():
            problem, hint = "no such file", ""
        elif not file.is_file():
            problem, hint = "a directory, not a file", ""
        elif file.stat().st_size == 0:
            problem, hint = "an empty file", ""
        else:
            problem, hint = _content_problem(file, suffix)
    except OSError as error:
        problem, hint = f"an unreadable file ({error.strerror or error})", ""
    if problem:
        raise WeightsFileError(file, expected, problem, hint=hint)


def _content_problem(file: Path, suffix: str) -> tuple[str, str]:
    """What is wrong with a non-empty `suffix` file, and the fix; ("", "") when it looks right."""
    if suffix == ".keras":
        return _keras_archive_problem(file)
    if suffix == ".pth":
        from harness.backbones.torch_pickle import TorchPickleError, read_header

        try:
            read_header(file)
        except TorchPickleError as error:
            return error.found, error.hint
        return "", ""
    if suffix == ".weights.json":
        return _json_index_problem(file)
    with open(file, "rb") as stream:
        return _hdf5_problem(stream), ""


def _hdf5_problem(stream: Any) -> str:
    """What is wrong with an HDF5 file: nothing ("") when its signature is at byte 0 or after a user block."""
    for offset in (0, *(512 << k for k in range(12))):
        stream.seek(offset)
        head = stream.read(len(_HDF5_SIGNATURE))
        if head == _HDF5_SIGNATURE:
            return ""
        if len(head) < len(_HDF5_SIGNATURE):
            break
    stream.seek(0)
    return f"not an HDF5 file (starts with {stream.read(_SHOWN_BYTES)!r})"


def _keras_archive_problem(file: Path) -> tuple[str, str]:
    """A `.keras` archive: a zip holding `model.weights.h5` (HDF5), and no Lambda layer in `config.json`."""
    if not zipfile.is_zipfile(file):
        with open(file, "rb") as stream:
            return f"not a zip archive, as `.keras` files are (starts with {stream.read(_SHOWN_BYTES)!r})", ""
    try:
        with zipfile.ZipFile(file) as archive:
            names = set(archive.namelist())
            if _KERAS_WEIGHTS_MEMBER not in names:
                return f"a zip archive without `{_KERAS_WEIGHTS_MEMBER}`, so not a Keras `.keras` file", ""
            if "config.json" in names:
                try:
                    config = json.loads(archive.read("config.json"))
                except ValueError:
                    return "a `.keras` archive whose `config.json` is not valid JSON", ""
                if any(node.get("class_name") == "Lambda" for node in _dicts(config)):
                    return _LAMBDA_FOUND, _LAMBDA_HINT
            with archive.open(_KERAS_WEIGHTS_MEMBER) as member:
                inner = _hdf5_problem(member)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:  # an index that lies, a damaged member
        return f"a damaged zip archive ({error})", ""
    return (f"a `.keras` archive whose `{_KERAS_WEIGHTS_MEMBER}` is {inner}" if inner else ""), ""


def _json_index_problem(file: Path) -> tuple[str, str]:
    """A sharded Keras weights index (`model.save_weights('name.weights.json', max_shard_size=...)`)."""
    with open(file, "rb") as stream:
        head = stream.read(64)
    if head.lstrip().startswith(b"{"):
        return "", ""
    return f"not a JSON object, as a sharded Keras weights index is (starts with {head[:_SHOWN_BYTES]!r})", ""


def _dicts(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict nested in a JSON document."""
    if isinstance(node, dict):
        yield node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            yield from _dicts(child)


# Run-time diagnosis: what a Keras weights file holds against the model --------------------


def load_keras_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """`model.load_weights(path)`; when that fails, a `WeightsFileError` saying what the file holds.

    The warnings of a failing load (Keras warns for each layer it cannot match) are dropped: the
    error says it all. Those of a load that works are passed on.

    Raises:
        WeightsFileError: Keras could not load the file; the message gives the model's weighted
            layers and tensors, the file's, and the first layer that differs.
    """
    with warnings.catch_warnings(record=True) as caught:  # a failing load warns once per layer it skips
        warnings.simplefilter("always")
        try:
            model.load_weights(os.fspath(path))
        except Exception as error:  # h5py, zipfile and Keras fail in many ways: all mean this file.
            layers = layer_shapes(model)
            found = _found(Path(path), layers, error)
            raise WeightsFileError(path, weights_expected(model.name, layers), found) from error
    for warning in caught:  # the load worked: what Keras said still counts
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def layer_shapes(model: Any) -> Shapes:
    """The weighted layers of a Keras model, each with the shapes of its tensors."""
    return [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers if layer.weights]


def weights_expected(model_name: str, layers: Shapes) -> str:
    """What loading into a model expects: "the weights of 'name' (122 weighted layers, 398 tensors)"."""
    tensors = sum(len(shapes) for _, shapes in layers)
    return f"the weights of '{model_name}' ({len(layers)} weighted layers, {tensors} tensors)"


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message, or its type's name when it has none: what a one-line report shows."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _found(path: Path, expected: Shapes, error: Exception) -> str:
    keras_says = first_line(error)
    try:
        held = _file_layers(path)
    except Exception:  # noqa: BLE001 - the file is not readable as HDF5 after all: Keras said why
        return f"a file Keras cannot read ({keras_says})"
    summary = f"{sum(len(shapes) for _, shapes in held)} tensors in {len(held)} layers"
    mismatch = first_mismatch(expected, held)
    return f"{summary}, first mismatch: {mismatch}" if mismatch else f"{summary} ({keras_says})"


def first_mismatch(expected: Shapes, held: Shapes) -> str:
    """The first layer of `expected` (in order) that `held` lacks or holds with other shapes; "" if none.

    For example "layer stem_conv expected (3, 3, 3, 32) found (3, 3, 3, 16)".
    """
    by_name: dict[str, list[tuple[int, ...]]] = {}
    for name, shapes in held:
        by_name.setdefault(name, shapes)
    for name, shapes in expected:
        if name not in by_name:
            return f"layer {name} expected {_shapes(shapes)}, not in the file"
        found = by_name[name]
        if len(found) != len(shapes):
            return f"layer {name} expected {_shapes(shapes)} found {_shapes(found)}"
        for want, have in zip(shapes, found, strict=True):
            if want != have:
                return f"layer {name} expected {want} found {have}"
    return ""


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(str(s) for s in shapes) if shapes else "no tensors"


def _file_layers(path: Path) -> Shapes:
    """The layers a Keras weights file holds, each with the shapes of its tensors, in the file's order."""
    import h5py  # type: ignore[import-untyped]  # no stubs (pyproject.toml lists the others)

    if weights_suffix(path, (".keras",)):
        with zipfile.ZipFile(path) as archive:
            source: Any = io.BytesIO(archive.read(_KERAS_WEIGHTS_MEMBER))
    else:
        source = path
    with h5py.File(source, "r") as h5:
        root = h5["model_weights"] if "layer_names" not in h5.attrs and "model_weights" in h5 else h5
        if "layer_names" in root.attrs:  # legacy `.h5`: each layer group names its weights
            return [
                (_text(n), [tuple(root[_text(n)][_text(w)].shape) for w in root[_text(n)].attrs["weight_names"]])
                for n in root.attrs["layer_names"]
            ]
        layers: Shapes = []

        def visit(name: str, node: Any) -> None:  # Keras 3: `<path>/vars/<i>`, the layer's name an attribute
            if isinstance(node, h5py.Group) and name.rsplit("/", 1)[-1] == "vars" and len(node):
                keys = sorted(node, key=lambda k: (len(k), k))
                layers.append(
                    (_text(node.attrs.get("name", name.rpartition("/")[0])), [tuple(node[k].shape) for k in keys])
                )

        h5.visititems(visit)
        return layers


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
