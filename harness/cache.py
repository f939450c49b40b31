"""A content-keyed, size-bounded disk cache of frozen-network outputs (features, activations).

A key hashes everything that changes the cached arrays: the harness version, the backbone and
a hash of the frozen weights that compute them, the data set and split, the input size and the
layer the arrays are taken at. Entries are `.npz` files written atomically; when the cache
grows past its bound the least recently used entries are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.paths import atomic_path, cache_dir

DEFAULT_MAX_BYTES = 8 * 1024**3
FEATURES_DIR = "features"


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


@dataclass
class FeatureCache:
    """Arrays by key under `root`; `root=None` keeps nothing on disk."""

    root: Path | None
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def default(cls) -> FeatureCache:
        max_bytes = int(float(os.environ.get("HARNESS_CACHE_MAX_GB", DEFAULT_MAX_BYTES / 1024**3)) * 1024**3)
        return cls(cache_dir() / FEATURES_DIR, max_bytes)

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (FileNotFoundError, ValueError, OSError, zipfile.BadZipFile, EOFError):
            return None
        os.utime(path)  # recently used
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray], *, metadata: Mapping[str, Any]) -> None:
        if self.root is None:
            return
        size = sum(a.nbytes for a in arrays.values())
        sidecar = json.dumps({**metadata, "bytes": size}, indent=2, sort_keys=True, default=str)
        if size + len(sidecar) > self.max_bytes:
            return
        self._evict(self.max_bytes - size - len(sidecar))
        with atomic_path(self._path(key)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stubs take the first keyword for allow_pickle
        with atomic_path(self.root / f"{key}.json") as tmp:
            tmp.write_text(sidecar)

    def entries(self) -> list[Path]:
        if self.root is None or not self.root.is_dir():
            return []
        return sorted(self.root.glob("*.npz"), key=lambda p: p.stat().st_mtime)

    def _evict(self, budget: int) -> None:
        sizes = {
            path: sum(f.stat().st_size for f in (path, path.with_suffix(".json")) if f.exists())
            for path in self.entries()
        }
        total = sum(sizes.values())
        for path, size in sizes.items():  # least recently used first
            if total <= budget:
                break
            total -= size
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)

    def clear(self) -> int:
        """Removes every entry; returns how many there were."""
        entries = self.entries()
        for path in entries:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        return len(entries)
