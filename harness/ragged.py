"""Rows of different lengths stored without their padding: token ids, and a text encoder's hidden states.

A `Ragged` keeps every row's elements back to back in one array (`values`, shape
`(total, *element_shape)`, perhaps memory-mapped from a cache entry) with each row's length; a
batch is gathered and padded to its own longest row (`padded`), never to a fixed length. Texts are
mostly much shorter than the longest one allowed, so a batch of short texts stays short, and a
cache entry of hidden states holds the real tokens only.

No TensorFlow: NumPy only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# How a `Ragged` called `name` is stored among a cache entry's flat arrays.
VALUES, LENGTHS = "{}_values", "{}_lengths"


@dataclass(frozen=True, eq=False)
class Ragged:
    """`len(lengths)` rows; row i is `values[offsets[i]:offsets[i + 1]]`. `pad` fills a padded batch."""

    values: np.ndarray
    lengths: np.ndarray
    pad: Any = 0

    def __post_init__(self) -> None:
        if int(np.sum(self.lengths, dtype=np.int64)) != len(self.values):
            raise ValueError(
                f"the lengths add up to {int(np.sum(self.lengths))}, but there are {len(self.values)} values"
            )

    def __len__(self) -> int:
        return len(self.lengths)

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    @property
    def element_shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape[1:])

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def padded(self, indices: np.ndarray, length: int | None = None) -> np.ndarray:
        """Rows `indices`, in that order, padded with `pad` to the longest of them (or to `length`):
        `(len(indices), longest, ...)`."""
        lengths = self.lengths[indices]
        longest = int(lengths.max(initial=0)) if length is None else length
        if longest < int(lengths.max(initial=0)):
            raise ValueError(f"rows of up to {int(lengths.max())} elements do not fit {length}")
        out = np.full((len(indices), longest, *self.element_shape), self.pad, dtype=self.values.dtype)
        for position, i in enumerate(indices):
            out[position, : lengths[position]] = self.row(int(i))
        return out

    def take(self, indices: np.ndarray) -> Ragged:
        """Rows `indices` as a new `Ragged` (its values copied into memory)."""
        rows = [self.row(int(i)) for i in indices]
        values = np.concatenate(rows) if rows else self.values[:0]
        return Ragged(values, self.lengths[indices], self.pad)

    def flat(self, name: str) -> dict[str, np.ndarray]:
        """The arrays a cache entry stores for this `Ragged` under `name`."""
        return {VALUES.format(name): self.values, LENGTHS.format(name): np.asarray(self.lengths, dtype=np.int64)}

    @classmethod
    def from_padded(cls, padded: np.ndarray, lengths: np.ndarray, pad: Any = 0) -> Ragged:
        """The first `lengths[i]` elements of each row `i` of `padded` (`(rows, longest, ...)`)."""
        keep = np.arange(padded.shape[1])[None, :] < np.asarray(lengths)[:, None]
        return cls(padded[keep], np.asarray(lengths, dtype=np.int64), pad)


def stored(arrays: Mapping[str, np.ndarray], name: str) -> np.ndarray | Ragged:
    """Array `name` of a cache entry's flat arrays: itself, or the `Ragged` stored under it."""
    if name in arrays:
        return arrays[name]
    return Ragged(arrays[VALUES.format(name)], arrays[LENGTHS.format(name)])


def flattened(name: str, array: np.ndarray | Ragged) -> dict[str, np.ndarray]:
    """`array` as a cache entry's flat arrays under `name` (the inverse of `stored`)."""
    return array.flat(name) if isinstance(array, Ragged) else {name: array}
