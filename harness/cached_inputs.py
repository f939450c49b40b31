"""The inputs a cached phase trains on: the frozen part's outputs on every split, from memory, disk or one pass.

The disk entry's key names everything that changes the arrays (backbone, a digest of the frozen
weights, the data set and its splits, the input size, where the cut is, the dihedral views,
the frozen pass's runtime, the dtype policy); a content digest of every image (`LoadedData.digests`) guards against a data set that yields its
images in another order than when the entry was written. An entry is used only with the shapes and
dtypes this plan computes; any entry that cannot be used is computed again, and why is
reported with the cache state. The pass itself runs on LiteRT or Keras (`harness.inference`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from harness import inference, spec, symmetry
from harness.batching import PREDICT_BATCH, train_images
from harness.cache import Expected, FeatureCache, make_key, weights_digest
from harness.data import loading
from harness.planning import Plan
from harness.ragged import Ragged, flattened, stored

Arrays = dict[str, np.ndarray | Ragged]


class CachedInputs:
    """The frozen part's outputs for one experiment's phases; keeps the last entry in memory.

    `get(plan, test=...)` returns the arrays by split ("train", "validation", and "test" when
    asked for), the cache state ("hit" or "miss"), what ran the frozen pass, if one ran, and
    why the disk cache was not used or not written ("digest mismatch: ...", "not stored: ..."),
    None when it worked as it should.
    """

    def __init__(
        self,
        experiment: spec.Experiment,
        data: loading.LoadedData,
        *,
        cache: FeatureCache | None,
        frozen_runtime: str,
        backbone_training: bool | None,
        policy: str = "float32",
    ) -> None:
        self.experiment, self.data, self.cache = experiment, data, cache
        self.frozen_runtime, self.backbone_training, self.policy = frozen_runtime, backbone_training, policy
        self._memory: dict[str, Arrays] = {}
        self.entry: str | None = None  # the disk entry's key of the last `get` (None: not on disk)

    def get(self, plan: Plan, *, test: bool) -> tuple[Arrays, str, str | None, str | None]:
        lower = plan.lower
        assert lower is not None
        experiment, data = self.experiment, self.data
        splits = [s for s in loading.SPLITS if data.has(s) and (test or s != "test")]
        digest = weights_digest(v.numpy() for v in lower.weights)
        key = self.entry = self._key(plan, splits, digest)
        memory_key = key or f"{plan.training_path}:{plan.views}:{splits}:{digest}"
        if memory_key in self._memory:
            return self._memory[memory_key], "hit", None, None
        cache = self.cache if key is not None else None
        # One process computes an entry while the others (xdist workers, other sessions) wait, then read it.
        with cache.lock(key) if cache is not None and key is not None else contextlib.nullcontext():
            # The key names the data, not its order: only an entry on disk needs the checksums.
            checksums = {s: data.digests(s) for s in splits} if cache is not None else {}
            stored_arrays, reason = None, None
            if cache is not None and key is not None:
                stored_arrays, reason = cache.read(key, self._expected(plan, splits, checksums))
            ran_on: str | None
            if stored_arrays is not None and (reason := _order_problem(stored_arrays, checksums)) is None:
                arrays, state, ran_on = {s: stored(stored_arrays, s) for s in splits}, "hit", None
            else:
                inputs = data.input_batches(*splits)  # one pass over the splits back to back
                frozen_pass = inference.FrozenPass(lower, self.frozen_runtime)
                ran_on = frozen_pass.ran_on
                # With a disk cache the pass writes to disk as it goes: an entry larger than memory is never held whole.
                scratch = (cache or FeatureCache(None)).scratch
                arrays = self._pass(plan, splits, frozen_pass, inputs.as_numpy_iterator(), scratch)
                if plan.views:
                    identity = arrays["train"]
                    assert isinstance(identity, np.ndarray), "dihedral() views are for images only"
                    arrays["train"] = self._train_views(frozen_pass, identity, plan.views, scratch)
                state = "miss"
                if cache is not None and key is not None:
                    flat = {name: a for s in splits for name, a in flattened(s, arrays[s]).items()}
                    not_stored = cache.put(
                        key,
                        {**flat, **{f"{s}_checksums": checksums[s] for s in splits}},
                        metadata={
                            "experiment": experiment.name,
                            "backbone": experiment.backbone.name,
                            "output": plan.training_path,
                            "dataset": experiment.dataset.identity,
                            "input_size": experiment.input_size,
                        },
                    )
                    reason = "; ".join(r for r in (reason, not_stored) if r) or None
        self._memory = {memory_key: arrays}  # keep one entry: the next phase usually needs another cut
        return arrays, state, ran_on, reason

    def _pass(
        self,
        plan: Plan,
        splits: list[str],
        frozen_pass: inference.FrozenPass,
        batches: Iterable[Any],
        scratch: Callable[[tuple[int, ...]], np.ndarray],
    ) -> Arrays:
        """The frozen pass over `splits` back to back, split by split; a sequence's outputs for its real tokens only."""
        sizes = [self.data.sizes[s] for s in splits]
        bounds = np.cumsum([0, *sizes])
        per_row = _per_row(plan)
        lengths = _lengths(self.data, splits, plan)
        if lengths is None:
            out = None if per_row is None else scratch((int(bounds[-1]), *_sized(per_row)))
            outputs = frozen_pass(batches, out)
            return {s: outputs[bounds[i] : bounds[i + 1]] for i, s in enumerate(splits)}
        assert per_row is not None
        every = np.concatenate(lengths)
        values = frozen_pass(batches, scratch((int(every.sum()), *_sized(per_row[1:]))), lengths=every)
        offsets = np.concatenate([[0], np.cumsum(every)])
        return {
            s: Ragged(values[offsets[bounds[i]] : offsets[bounds[i + 1]]], lengths[i]) for i, s in enumerate(splits)
        }

    def _expected(self, plan: Plan, splits: list[str], checksums: dict[str, np.ndarray]) -> Expected:
        """The shape and dtype of every array of this plan's entry: what the frozen pass would compute."""
        assert plan.lower is not None
        expected: dict[str, tuple[tuple[int | None, ...], object]] = {}
        per_row = _per_row(plan)
        lengths = _lengths(self.data, splits, plan)
        if per_row is not None and lengths is not None:
            for split, found in zip(splits, lengths, strict=True):
                expected[f"{split}_values"] = ((int(found.sum()), *per_row[1:]), np.float32)
                expected[f"{split}_lengths"] = ((len(found),), np.int64)
        elif per_row is not None:
            sizes = self.data.sizes
            expected.update({s: ((sizes[s], *per_row), np.float32) for s in splits})
            if plan.views:
                expected["train"] = ((len(plan.views), sizes["train"], *per_row), np.float32)
        expected.update({f"{s}_checksums": (c.shape, c.dtype) for s, c in checksums.items()})
        return expected

    def _key(self, plan: Plan, splits: list[str], digest: str) -> str | None:
        """The disk entry's key; None for in-memory arrays without a `cache_key` (nothing names them)."""
        dataset = self.experiment.dataset
        if isinstance(dataset, spec.Arrays) and dataset.cache_key is None:
            return None
        return make_key(
            backbone=self.experiment.backbone.name,
            weights=digest,
            dataset=dataset.identity,
            splits={s: _split_name(dataset, s) for s in splits},
            input_size=self.experiment.input_size,
            output=plan.training_path,
            pooled=plan.pooled,
            views=plan.views,
            training=self.backbone_training,
            runtime=self.frozen_runtime,
            precision=self.policy,
        )

    def _train_views(
        self,
        frozen_pass: inference.FrozenPass,
        identity: np.ndarray,
        views: tuple[int, ...],
        scratch: Callable[[tuple[int, ...]], np.ndarray],
    ) -> np.ndarray:
        """The frozen pass's outputs on every view of the training images, shape (views, images, ...)."""
        assert views[0] == 0, views  # the identity, already computed with the other splits
        stacked = scratch((len(views), *identity.shape))
        stacked[0] = identity
        assert isinstance(self.data, loading.ImageData), "dihedral() views are for images only"
        images = train_images(self.data)
        for position, k in enumerate(views[1:], start=1):
            frozen_pass(inference.batches_of(symmetry.view(images, k), PREDICT_BATCH), stacked[position])
        return stacked


def _per_row(plan: Plan) -> tuple[int | None, ...] | None:
    """The shape of the frozen part's output for one example (None first for a sequence); None for a
    subclassed model (known once called)."""
    assert plan.lower is not None
    try:
        return tuple(plan.lower.output.shape[1:])
    except (AttributeError, ValueError):
        return None


def _sized(shape: tuple[int | None, ...]) -> tuple[int, ...]:
    """`shape` with every size known (the frozen part's output for one example, or one element of a sequence)."""
    if any(size is None for size in shape):
        raise ValueError(f"the frozen part's output for one example has unknown sizes: {shape}")
    return tuple(int(size) for size in shape if size is not None)


def _lengths(data: loading.LoadedData, splits: list[str], plan: Plan) -> list[np.ndarray] | None:
    """Each split's sequence lengths where the frozen part outputs a sequence (kept without its padding), else None."""
    per_row = _per_row(plan)
    if per_row is None or not per_row or per_row[0] is not None:
        return None
    found = [data.lengths(s) for s in splits]
    if any(f is None for f in found):
        raise ValueError(f"the frozen part outputs sequences of shape {per_row}, but the data set has no lengths")
    return [np.asarray(f, dtype=np.int64) for f in found if f is not None]


def _order_problem(entry: dict[str, np.ndarray], checksums: dict[str, np.ndarray]) -> str | None:
    """None when the entry was computed on these very images, in this order; else which split differs."""
    for split, computed in checksums.items():
        if not np.array_equal(entry[f"{split}_checksums"], computed):
            return f"the images of {split!r} differ from the entry's (another order or other images)"
    return None


def _split_name(dataset: spec.Dataset, role: str) -> str | None:
    if isinstance(dataset, spec.TfdsDataset):
        return dataset.splits[role]
    if isinstance(dataset, spec.ImageFolder):
        return f"test:{dataset.test_path}" if role == "test" else f"{role}:{dataset.validation_split}"
    return role
