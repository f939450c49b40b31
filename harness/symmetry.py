"""Dihedral views (symmetries of the square) and the seeded draw of one view per image per epoch.

`dihedral()` in a spec shows every training image, each epoch, in one symmetry of the square.
The set of views is finite, so the frozen part of the network runs once per view and a phase
can still train on cached inputs. Both training paths take their batches from the same `Draw`:
the cached path picks the cached output of the drawn view, the full path transforms the image
itself with `view`, so the two see the same examples in the same order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def view(images: np.ndarray, k: int) -> np.ndarray:
    """View `k` (0..7, see `spec.DIHEDRAL_VIEWS`) of a batch `(n, height, width, channels)`.

    `k % 4` quarter turns counter-clockwise, then a left-right flip for `k >= 4`. Every view
    is a permutation of the pixels, so it is exact in any dtype.
    """
    turned = np.rot90(images, k % 4, axes=(1, 2))
    return turned[:, :, ::-1] if k >= 4 else turned


def views_of(images: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """Image `i` of `images` in view `ks[i]`."""
    return np.stack([view(images[i : i + 1], int(k))[0] for i, k in enumerate(ks)]) if len(ks) else images[:0]


@dataclass(frozen=True)
class Draw:
    """Which images, in which views, make up each training batch; a pure function of the seed.

    Epoch `e` shows every one of `size` images once, in an order and with views drawn from
    `numpy.random.default_rng((seed, e))`. Batch `i` counts on across epochs (`steps` per
    epoch), so a `tf.data` pipeline over `0, 1, 2, ...` needs no per-epoch state.
    """

    seed: int
    size: int
    batch_size: int
    num_views: int

    @property
    def steps(self) -> int:
        return -(-self.size // self.batch_size)

    @functools.lru_cache(maxsize=2)  # noqa: B019 - a frozen Draw per phase; its two last epochs are all it keeps
    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, epoch))
        return rng.permutation(self.size), rng.integers(0, self.num_views, size=self.size)

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image indices, view positions) of batch `index`."""
        epoch, step = divmod(index, self.steps)
        order, positions = self.epoch(epoch)
        batch = slice(step * self.batch_size, (step + 1) * self.batch_size)
        return order[batch], positions[order[batch]]
