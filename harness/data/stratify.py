"""Seeded, stratified subsets and validation splits of a labelled training set (NumPy only).

The rule, for labels `y` of n images, a seed, an optional size and a validation fraction f:

1. One draw: `order = np.random.default_rng(seed).permutation(n)`; class c's images are taken
   in that order.
2. The subset (`size`, when given): class c keeps its first `q_c` images, where `q_c` is its
   share `size * n_c / n` rounded down, and the images still missing to make `size` go one each
   to the classes with the largest remainders (ties: the lower label first).
3. The validation split: of the `m_c` images class c kept, the first `round_half_up(f * m_c)`
   are validation, the rest training. Every class holds out the same fraction, up to rounding.
4. Each split lists its images in the data set's order (ascending index).

The same labels, seed, size and fraction always give the same indices.
"""

from __future__ import annotations

import math

import numpy as np


def seeded_order(n: int, seed: int) -> np.ndarray:
    """Step 1: the seeded permutation of 0..n-1 every step reads classes in."""
    return np.random.default_rng(seed).permutation(n)


def quotas(counts: np.ndarray, size: int) -> np.ndarray:
    """Step 2: how many images of each class a stratified subset of `size` keeps (largest remainders)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not 0 <= size <= total:
        raise ValueError(f"a subset of {size} images of {total}")
    exact = counts * size / total
    kept = np.floor(exact).astype(np.int64)
    remainders = exact - kept
    # The lower label first among equal remainders: a stable sort on the negated remainders.
    for c in np.argsort(-remainders, kind="stable")[: size - int(kept.sum())]:
        kept[c] += 1
    return kept


def held_out(kept: int, fraction: float) -> int:
    """Step 3: how many of a class's `kept` images are validation: `fraction * kept`, halves rounded up."""
    return math.floor(fraction * kept + 0.5)


def split_indices(
    labels: np.ndarray, *, validation_split: float, seed: int, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation indices into `labels` (steps 1 to 4), each ascending."""
    labels = np.asarray(labels).reshape(-1)
    order = seeded_order(len(labels), seed)
    classes, counts = np.unique(labels, return_counts=True)
    keep = counts if size is None else quotas(counts, size)
    train: list[np.ndarray] = []
    validation: list[np.ndarray] = []
    for c, kept in zip(classes, keep, strict=True):
        members = order[labels[order] == c][:kept]
        k = held_out(int(kept), validation_split)
        validation.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(validation))
