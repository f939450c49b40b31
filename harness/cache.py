"""A content-keyed, size-bounded disk cache of frozen-network outputs (features, activations).

A key hashes everything that changes the cached arrays: the harness version, the backbone and
a hash of the frozen weights that compute them, the data set and split, the input size and the
layer the arrays are taken at. Entries are `.npz` files written atomically, each with a `.json`
sidecar holding its metadata and the SHA-256 of its bytes; when the cache grows past its bound
the least recently used entries are removed. A hit is read memory-mapped: `np.savez` stores
its arrays uncompressed, so each array is a read-only `np.memmap` over its bytes in the entry,
and an entry larger than memory is paged in as it is read, never loaded whole.

The cache is an optimisation, never a point of failure: a read that cannot use an entry
(absent, evicted meanwhile, damaged, another shape) is a miss, and a write that cannot be made
(unwritable folder, full disk) is skipped. Neither raises `OSError`; a fault is a `CacheWarning`
(one per path and reason) and the caller computes in memory, with the same results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from harness import __version__, locks
from harness.paths import (
    NO_ROOM,
    NOT_CACHED,
    CacheWarning,
    atomic_path,
    cache_dir,
    describe,
    file_sha256,
    lacks_room,
    remove_stale_temporaries,
    temporary_pid,
    warn_cache,
)

__all__ = ["CacheWarning", "Expected", "FeatureCache", "make_key", "weights_digest"]

DEFAULT_MAX_BYTES = 8 * 1024**3
FEATURES_DIR = "features"
# A zip member's local file header (PKWARE APPNOTE 4.3.7): its data follows the name and the extra field.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
# What a reader expects of an entry, by array name: its shape (None: any size) and dtype.
Expected = Mapping[str, tuple[tuple[int | None, ...], Any]]


def weights_digest(arrays: Iterable[np.ndarray]) -> str:
    """A SHA-256 over the bytes, dtypes and shapes of `arrays` (order matters)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def make_key(**parts: Any) -> str:
    """A stable key over JSON-serialisable `parts` plus the harness version."""
    payload = json.dumps({"harness_version": __version__, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class _Unusable(Exception):
    """An entry on disk that cannot be used; `warn` is False for states a concurrent writer passes through."""

    def __init__(self, reason: str, *, warn: bool = True) -> None:
        super().__init__(reason)
        self.warn = warn


@dataclass
class FeatureCache:
    """Arrays by key under `root`; `root=None` keeps nothing on disk."""

    root: Path | None
    max_bytes: int = DEFAULT_MAX_BYTES
    _swept: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def default(cls) -> FeatureCache:
        max_bytes = int(float(os.environ.get("HARNESS_CACHE_MAX_GB", DEFAULT_MAX_BYTES / 1024**3)) * 1024**3)
        return cls(cache_dir() / FEATURES_DIR, max_bytes)

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / f"{key}.npz"

    def lock(self, key: str) -> contextlib.AbstractContextManager[bool]:
        """Holds the entry `key`'s lock (`harness.locks`): read it, and compute and `put` it on a miss, inside."""
        if self.root is None:
            return contextlib.nullcontext(False)
        return locks.held(self._path(key), folder=self.root.parent / locks.LOCKS_DIR)

    def get(self, key: str, expected: Expected | None = None) -> dict[str, np.ndarray] | None:
        """The arrays stored under `key`, or None (see `read`)."""
        return self.read(key, expected)[0]

    def read(self, key: str, expected: Expected | None = None) -> tuple[dict[str, np.ndarray] | None, str | None]:
        """The arrays stored under `key` and None; or None and why the entry was not used (None when absent).

        A hit is an entry whose bytes match the digest in its sidecar and whose arrays have the
        `expected` shapes and dtypes. Anything else is a miss: absent, removed while being read,
        damaged, unreadable, without a digest, another shape. Never raises `OSError`; a damaged or
        unreadable entry is also a `CacheWarning`. A hit marks the entry recently used, if it can.
        """
        if self.root is None:
            return None, None
        if not self._swept:  # the first use: what killed writers left behind
            self._swept = True
            remove_stale_temporaries(self.root)
        path = self._path(key)
        try:
            arrays = _load(path)
        except FileNotFoundError:
            return None, None
        except _Unusable as problem:
            return _unused(path, str(problem), warn=problem.warn)
        except OSError as error:
            return _unused(path, f"unreadable: {describe(error)}")
        if (reason := _expectation_problem(arrays, expected or {})) is not None:
            return _unused(path, reason)
        with contextlib.suppress(OSError):  # read-only, or evicted since: still a hit
            os.utime(path)
        return arrays, None

    def put(self, key: str, arrays: Mapping[str, np.ndarray], *, metadata: Mapping[str, Any]) -> str | None:
        """Stores `arrays` under `key`, with a sidecar of `metadata`, their size and the file's SHA-256.

        Returns None when stored (or without a root), else why not. Never raises `OSError`: an
        entry larger than `max_bytes` is not stored; an unwritable folder, too little free space
        (checked before writing) or a failed write skip it with a `CacheWarning` and leave no
        temporary file and no entry without its sidecar. Least recently used entries are evicted
        first so that the folder, temporaries of live writers included, stays within `max_bytes`.
        """
        if self.root is None:
            return None
        size = sum(a.nbytes for a in arrays.values())
        sidecar_bytes = len(_sidecar(metadata, size, "0" * 64))  # a digest's length is fixed
        if size + sidecar_bytes > self.max_bytes:
            return f"not stored: larger than the cache's bound ({size + sidecar_bytes} bytes, bound {self.max_bytes})"
        remove_stale_temporaries(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return self._not_stored(f"cannot create the folder: {describe(error)}")
        self._evict(self.max_bytes - size - sidecar_bytes)
        if (shortfall := lacks_room(self.root, size + sidecar_bytes)) is not None:
            return self._not_stored(NO_ROOM, shortfall)
        path = self._path(key)
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stubs take the first keyword for allow_pickle
                digest = file_sha256(tmp)
        except OSError as error:  # `path` is as it was
            return self._not_stored(f"cannot write an entry: {describe(error)}")
        try:
            with atomic_path(path.with_suffix(".json")) as tmp:
                tmp.write_text(_sidecar(metadata, size, digest))
        except OSError as error:
            _remove(path)  # without its digest the new entry would only be a miss
            return self._not_stored(f"cannot write a sidecar: {describe(error)}")
        return None

    def scratch(self, shape: tuple[int, ...]) -> np.ndarray:
        """A zeroed float32 array to compute an entry in: backed by an unnamed file in the cache's
        folder, so that an entry larger than memory goes to disk as it is computed (and a crash
        leaves nothing behind); in memory without a root, or where that file cannot be made."""
        size = int(np.prod(shape, dtype=np.int64)) * 4
        if self.root is not None and size:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                if lacks_room(self.root, size) is None:
                    with tempfile.TemporaryFile(dir=self.root) as backing:  # the mapping outlives the handle
                        # Blocks reserved now: a full disk is an OSError here, never a SIGBUS mid-pass.
                        os.posix_fallocate(backing.fileno(), 0, size)
                        return np.memmap(backing, dtype=np.float32, mode="r+", shape=shape)
            except OSError:
                pass
        return np.zeros(shape, dtype=np.float32)

    def _not_stored(self, reason: str, detail: str = "") -> str:
        assert self.root is not None
        warn_cache(self.root, reason, NOT_CACHED, detail)
        return f"not stored: {reason}" + (f" ({detail})" if detail else "")

    def entries(self) -> list[Path]:
        """The entries' `.npz` files, least recently used first; temporaries and vanished files left out."""
        if self.root is None:
            return []
        stamped = []
        for path in _listed(self.root, "*.npz"):
            with contextlib.suppress(OSError):  # evicted by another process since it was listed
                status = path.stat()
                if stat.S_ISREG(status.st_mode):
                    stamped.append((status.st_mtime, path))
        return [path for _, path in sorted(stamped)]

    def _evict(self, budget: int) -> None:
        assert self.root is not None
        sizes = {path: _size(path) + _size(path.with_suffix(".json")) for path in self.entries()}
        # Temporaries of live writers take room too, and cannot be evicted.
        total = sum(sizes.values()) + sum(map(_size, _listed(self.root, "*", temporaries=True)))
        for path, size in sizes.items():  # least recently used first
            if total <= budget:
                break
            total -= size
            _remove(path)

    def clear(self) -> int:
        """Removes every entry it can, sidecars without an entry and stale temporaries; returns how many entries."""
        if self.root is None:
            return 0
        removed = sum(_remove(path) for path in self.entries())
        for sidecar in _listed(self.root, "*.json"):
            if not sidecar.with_suffix(".npz").exists():
                with contextlib.suppress(OSError):
                    sidecar.unlink()
        remove_stale_temporaries(self.root)
        return removed


def _load(path: Path) -> dict[str, np.ndarray]:
    """Every array of the entry at `path`, memory-mapped, once its bytes match its sidecar's digest.

    Raises FileNotFoundError when it is absent, `_Unusable` when it is damaged or has no
    digest, OSError when it cannot be read.
    """
    with open(path, "rb") as handle:  # the file read stays this one, even if replaced or evicted meanwhile
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        recorded = _recorded_digest(path)
        if recorded != digest:
            raise _Unusable("digest mismatch: the entry's SHA-256 is not the one its sidecar recorded")
        handle.seek(0)
        try:
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
            return {member.filename.removesuffix(".npy"): _mapped(handle, member) for member in members}
        except (ValueError, zipfile.BadZipFile, EOFError, struct.error) as error:
            raise _Unusable(f"not a readable .npz archive ({type(error).__name__})") from None


def _mapped(handle: BinaryIO, member: zipfile.ZipInfo) -> np.ndarray:
    """The array `np.savez` stored as `member` of the open archive `handle`, as a read-only `np.memmap`.

    The mapping outlives `handle` (and the file's removal): it holds the file, not its name.
    """
    if member.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{member.filename} is compressed")
    handle.seek(member.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    signature, *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != _LOCAL_SIGNATURE:
        raise ValueError(f"no local header for {member.filename}")
    handle.seek(member.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    version = np.lib.format.read_magic(handle)
    if version not in _HEADER_READERS:
        raise ValueError(f"{member.filename}: .npy format {version}")
    shape, fortran_order, dtype = _HEADER_READERS[version](handle)
    if dtype.hasobject:
        raise ValueError(f"{member.filename} holds Python objects")
    if math.prod(shape) == 0:  # nothing to map
        return np.empty(shape, dtype=dtype)
    return np.memmap(
        handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape, order="F" if fortran_order else "C"
    )


def _unused(path: Path, reason: str, *, warn: bool = True) -> tuple[None, str]:
    if warn:
        warn_cache(path, reason, "computing it again")
    return None, reason


def _recorded_digest(path: Path) -> str:
    sidecar = path.with_suffix(".json")
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8")).get("sha256")
    except FileNotFoundError:  # being written, or being evicted
        raise _Unusable(f"no sidecar {sidecar.name} beside the entry", warn=False) from None
    except (ValueError, AttributeError):
        raise _Unusable(f"unreadable sidecar {sidecar.name}: expected a JSON object") from None
    if not isinstance(recorded, str):
        raise _Unusable(f"no digest in the sidecar {sidecar.name} (written by an older harness)", warn=False)
    return recorded


def _expectation_problem(arrays: Mapping[str, np.ndarray], expected: Expected) -> str | None:
    """None when `arrays` has every `expected` name with its shape (None: any size) and dtype; else what differs."""
    for name, (shape, dtype) in expected.items():
        if name not in arrays:
            return f"no array {name!r} in the entry; it holds {sorted(arrays)}"
        array = arrays[name]
        if array.dtype != np.dtype(dtype):
            return f"wrong dtype for {name!r}: {array.dtype} stored, {np.dtype(dtype)} expected"
        if array.ndim != len(shape) or any(e is not None and e != s for s, e in zip(array.shape, shape, strict=True)):
            return f"wrong shape for {name!r}: {array.shape} stored, {tuple(shape)} expected"
    return None


def _sidecar(metadata: Mapping[str, Any], size: int, digest: str) -> str:
    return json.dumps({**metadata, "bytes": size, "sha256": digest}, indent=2, sort_keys=True, default=str)


def _listed(folder: Path, pattern: str, *, temporaries: bool = False) -> list[Path]:
    """The files of `folder` matching `pattern`: the `atomic_path` temporaries, or everything else."""
    try:
        return [p for p in folder.glob(pattern) if (temporary_pid(p) is not None) == temporaries]
    except OSError:
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove(path: Path) -> bool:
    """Removes the entry `path` and then its sidecar, as far as it can; whether the entry was removed."""
    try:
        path.unlink()
        removed = True
    except OSError:
        removed = False
    with contextlib.suppress(OSError):
        path.with_suffix(".json").unlink()
    return removed
