"""Reads PyTorch's legacy (pre-zip) `.pth` state dicts with `pickle` and numpy alone.

`torch.save` wrote this format before torch 1.6 (and still does with
`_use_new_zipfile_serialization=False`). A file is a sequence of records:

1. a pickled magic number (`0x1950a86a20f9469cfc6c`),
2. a pickled protocol version (`1001`),
3. a pickled dict of system information (byte order, type sizes),
4. the pickled state dict; each tensor in it is a call
   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` whose
   `storage` is a persistent id `("storage", storage_type, key, location, numel[, view])`,
5. a pickled list of the storage keys,
6. each storage in that order: its element count as 8 little-endian bytes, then its raw bytes.

Unpickling runs code named by the file, so this reader resolves globals against a
short allow-list (the same idea as torch's `weights_only=True`) and maps them to
inert stand-ins; anything else raises `UnsafePickleError` before it is called.
Tensors are rebuilt with their strides: many checkpoints hold non-contiguous views.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

__all__ = ["TorchPickleError", "UnsafePickleError", "load_state_dict", "read_header"]

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_ZIP_SIGNATURE = b"PK\x03\x04"
_RESAVE_HINT = (
    "Re-save a zip-format checkpoint in the legacy format, with "
    "`torch.save(state_dict, path, _use_new_zipfile_serialization=False)`."
)


class TorchPickleError(ValueError):
    """A file is not a readable legacy PyTorch state dict.

    Attributes:
        found: What the file was found to be, in a few words (e.g. "truncated: the pickle ended
            after 120 bytes"); the whole message where no shorter one was given.
        hint: How to fix it, when that is known ("" otherwise).
    """

    def __init__(self, message: str, *, found: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.found = found or message
        self.hint = hint


class UnsafePickleError(TorchPickleError):
    """A pickle names a global outside the allow-list; nothing of it was executed."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
    """Stand-in for `torch.FloatStorage` and friends: only carries the element dtype."""

    name: str
    dtype: np.dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TorchPickleError(
            f"The pickle calls `torch.{self.name}`; a state dict only names storage types in "
            "tensor references. The file is malformed or was not written by `torch.save`. "
            f"Received: a call of torch.{self.name} with {len(args)} argument(s)"
        )


_STORAGE_TYPES = {
    name: _StorageType(name, np.dtype(code))
    for name, code in [
        ("DoubleStorage", "f8"),
        ("FloatStorage", "f4"),
        ("HalfStorage", "f2"),
        ("LongStorage", "i8"),
        ("IntStorage", "i4"),
        ("ShortStorage", "i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "?"),
    ]
}


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    """A tensor's storage: `numel` elements starting at `offset` of root storage `key`."""

    key: str
    storage_type: _StorageType
    offset: int
    numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    """A tensor waiting for its storage bytes, which follow the state-dict pickle."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _is_int_tuple(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2`: records, validates, computes nothing."""
    del requires_grad, backward_hooks, metadata  # Irrelevant to the values.
    if not isinstance(storage, _StorageRef):
        raise TorchPickleError(
            "A tensor in the pickle is not backed by a storage reference. Expected the first "
            "argument of `_rebuild_tensor_v2` to be a persistent storage id. "
            f"Received: {type(storage).__name__}"
        )
    if not (isinstance(storage_offset, int) and _is_int_tuple(size) and _is_int_tuple(stride)):
        raise TorchPickleError(
            "A tensor in the pickle has a malformed offset, size or stride. Expected an int and "
            f"two tuples of ints. Received: offset={storage_offset!r}, size={size!r}, stride={stride!r}"
        )
    if len(size) != len(stride):
        raise TorchPickleError(
            "A tensor in the pickle has as many strides as dimensions. Expected len(size) == "
            f"len(stride). Received: size={size}, stride={stride}"
        )
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """Stand-in for `torch._utils._rebuild_parameter`: a parameter is its tensor."""
    del requires_grad, backward_hooks
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): storage_type for name, storage_type in _STORAGE_TYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; turns storage persistent ids into references."""

    def __init__(self, file: BinaryIO, path: str) -> None:
        super().__init__(file)
        self._path = path
        self.storages: dict[str, tuple[_StorageType, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"Refused to load the global `{module}.{name}` from {self._path}: unpickling it "
                "could run arbitrary code. A PyTorch state dict only needs tensors, storage types "
                "and OrderedDict; load this file only if you trust it, with torch itself. "
                f"Received: global {module}.{name}",
                found=f"the global `{module}.{name}`, refused as unpickling it could run arbitrary code",
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise TorchPickleError(
                f"Unknown persistent id in {self._path}. Expected ('storage', storage_type, key, "
                f"location, numel[, view_metadata]). Received: {pid!r}"
            )
        _, storage_type, key, _location, numel, *view = pid
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and isinstance(numel, int)):
            raise TorchPickleError(
                f"Malformed storage reference in {self._path}. Expected a torch storage type, a "
                f"string key and an int element count. Received: {pid!r}"
            )
        known = self.storages.setdefault(key, (storage_type, numel))
        if known != (storage_type, numel):
            raise TorchPickleError(
                f"Storage {key!r} in {self._path} is declared twice with different types or sizes. "
                f"Expected one declaration. Received: {known} and {(storage_type, numel)}"
            )
        view_metadata = view[0] if view else None
        if view_metadata is None:
            return _StorageRef(key, storage_type, 0, numel)
        if not (_is_int_tuple(view_metadata[1:]) and len(view_metadata) == 3):
            raise TorchPickleError(
                f"Malformed storage view in {self._path}. Expected (view_key, offset, size). "
                f"Received: {view_metadata!r}"
            )
        _view_key, view_offset, view_size = view_metadata
        return _StorageRef(key, storage_type, view_offset, view_size)


def _load_record(file: BinaryIO, path: str, unpickler: _RestrictedUnpickler | None = None) -> Any:
    unpickler = unpickler or _RestrictedUnpickler(file, path)
    try:
        return unpickler.load()
    except TorchPickleError:
        raise
    except Exception as error:  # A truncated or garbled stream fails in many ways.
        if isinstance(error, EOFError) or "truncated" in str(error):
            ended = file.seek(0, os.SEEK_END)
            raise TorchPickleError(
                f"{path} is truncated: the pickle ended after {ended} bytes. Expected a complete legacy "
                f"PyTorch checkpoint. Received: {type(error).__name__}: {error}",
                found=f"truncated: the pickle ended after {ended} bytes",
            ) from error
        raise TorchPickleError(
            f"Could not unpickle {path}: the file is truncated or not a legacy PyTorch "
            f"checkpoint. Received: {type(error).__name__}: {error}",
            found=f"not a legacy PyTorch checkpoint (unpickling failed: {type(error).__name__}: {error})",
        ) from error


def _check_header(file: BinaryIO, path: str) -> str:
    """Reads records 1-3; returns the numpy byte-order character of the stored data."""
    head = file.read(16)
    if head.startswith(_ZIP_SIGNATURE):
        raise TorchPickleError(
            f"{path} is a zip-format PyTorch checkpoint (the default since torch 1.6); this "
            "reader handles only the legacy format. Re-save it with `torch.save(state_dict, path, "
            "_use_new_zipfile_serialization=False)`. Received: a file starting with 'PK'",
            found=_zip_found(file),
            hint=_RESAVE_HINT,
        )
    file.seek(0)
    try:
        magic = _load_record(file, path)
    except UnsafePickleError:
        raise
    except TorchPickleError as error:  # not even a pickle: show what the file starts with
        raise TorchPickleError(
            f"{path} is not a legacy PyTorch checkpoint. Expected a pickle of the magic number "
            f"{_MAGIC_NUMBER:#x} first. Received: a file starting with {head!r}",
            found=f"not a legacy PyTorch checkpoint (starts with {head!r})",
        ) from error
    if magic != _MAGIC_NUMBER:
        raise TorchPickleError(
            f"{path} is not a legacy PyTorch checkpoint. Expected the magic number "
            f"{_MAGIC_NUMBER:#x} first. Received: {magic!r}",
            found=f"not a legacy PyTorch checkpoint (a pickle of {type(magic).__name__} {magic!r} first)",
        )
    protocol = _load_record(file, path)
    if protocol != _PROTOCOL_VERSION:
        raise TorchPickleError(
            f"{path} uses an unsupported serialization protocol. Expected {_PROTOCOL_VERSION}. Received: {protocol!r}"
        )
    sys_info = _load_record(file, path)
    little_endian = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    return "<" if little_endian else ">"


def _zip_found(file: BinaryIO) -> str:
    """How a zip archive in place of a legacy checkpoint is described: torch's zip format, or another archive."""
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            is_torch = any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except zipfile.BadZipFile:
        is_torch = False
    if is_torch:
        return "a zip-format PyTorch checkpoint (torch >= 1.6 saves this by default), which the harness cannot read"
    return "a zip archive, not a legacy PyTorch checkpoint"


def read_header(path: str | os.PathLike[str]) -> None:
    """Checks that `path` starts as a legacy checkpoint does (records 1-3: magic, protocol, system info).

    Reads a few hundred bytes and runs nothing; the state dict and storages are not read.

    Raises:
        TorchPickleError: The file is a zip-format checkpoint, not a pickle, or not a legacy checkpoint.
    """
    path_str = os.fspath(path)
    with open(path_str, "rb") as file:
        _check_header(file, path_str)


def _read_storages(
    file: BinaryIO, path: str, declared: dict[str, tuple[_StorageType, int]], byte_order: str
) -> dict[str, np.ndarray]:
    """Reads records 5-6: the storage keys, then each storage's bytes as a 1-D array."""
    keys = _load_record(file, path)
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise TorchPickleError(
            f"{path} has a malformed storage key list. Expected a list of strings. Received: {keys!r}"
        )
    if set(keys) != set(declared):
        raise TorchPickleError(
            f"{path} lists other storages than its tensors use. Expected keys {sorted(declared)}. Received: {keys}"
        )
    storages = {}
    for key in keys:
        storage_type, numel = declared[key]
        raw_count = file.read(8)
        if len(raw_count) < 8:
            raise TorchPickleError(
                f"{path} ends before storage {key!r}. Expected its element count. Received: {len(raw_count)} bytes",
                found=f"truncated: the file ended after {file.tell()} bytes, before storage {key!r}",
            )
        (count,) = struct.unpack("<q", raw_count)
        if count != numel:
            raise TorchPickleError(
                f"Storage {key!r} in {path} holds {count} elements but its tensors declare "
                f"{numel}. The file is truncated or corrupt. Received: count={count}"
            )
        dtype = storage_type.dtype.newbyteorder(byte_order)  # type: ignore[arg-type]  # "<" or ">"
        data = file.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise TorchPickleError(
                f"{path} ends inside storage {key!r}. Expected {count * dtype.itemsize} bytes. "
                f"Received: {len(data)} bytes",
                found=f"truncated: the file ended after {file.tell()} bytes, inside storage {key!r}",
            )
        storages[key] = np.frombuffer(data, dtype=dtype)
    return storages


def _materialize(name: str, tensor: _TensorRef, storages: dict[str, np.ndarray], path: str) -> np.ndarray:
    """Copies a tensor out of its storage honouring offset, size and stride."""
    ref = tensor.storage
    flat = storages[ref.key][ref.offset : ref.offset + ref.numel]
    if any(s < 0 for s in tensor.size) or any(s < 0 for s in tensor.stride) or tensor.offset < 0:
        raise TorchPickleError(
            f"Tensor {name!r} in {path} has a negative size, stride or offset. Expected "
            f"non-negative values. Received: size={tensor.size}, stride={tensor.stride}, "
            f"offset={tensor.offset}"
        )
    if 0 not in tensor.size:
        last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.size, tensor.stride, strict=False))
        if last >= len(flat):
            raise TorchPickleError(
                f"Tensor {name!r} in {path} reaches past the end of its storage. Expected its "
                f"last element below {len(flat)}. Received: size={tensor.size}, "
                f"stride={tensor.stride}, offset={tensor.offset}"
            )
        view = np.lib.stride_tricks.as_strided(
            flat[tensor.offset :],
            shape=tensor.size,
            strides=[s * flat.itemsize for s in tensor.stride],
            writeable=False,
        )
    else:
        view = np.empty(tensor.size, dtype=flat.dtype)
    return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Loads a legacy-format PyTorch state dict as numpy arrays, without torch.

    Args:
        path: A `.pth` file written by `torch.save(model.state_dict(), path)` in the legacy
            (pre-zip) format.

    Returns:
        The tensors by name, in the file's order, as C-contiguous arrays of the stored dtype.

    Raises:
        UnsafePickleError: The file names a global outside the allow-list (e.g. `os.system`);
            nothing was executed.
        TorchPickleError: The file is not a readable legacy state dict.
    """
    path_str = os.fspath(path)
    with open(path_str, "rb") as file:
        byte_order = _check_header(file, path_str)
        unpickler = _RestrictedUnpickler(file, path_str)
        state = _load_record(file, path_str, unpickler)
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, _TensorRef) for k, v in state.items()
        ):
            raise TorchPickleError(
                f"{path_str} does not hold a flat state dict. Expected a mapping from names to "
                f"tensors, as `model.state_dict()` returns. Received: {type(state).__name__}",
                found=f"a pickled {type(state).__name__}, not a state dict (a mapping from names to tensors)",
            )
        storages = _read_storages(file, path_str, unpickler.storages, byte_order)
    return {name: _materialize(name, tensor, storages, path_str) for name, tensor in state.items()}
