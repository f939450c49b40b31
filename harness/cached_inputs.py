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
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from harness import inference, spec, symmetry
from harness.batching import PREDICT_BATCH, image_batches, train_images
from harness.cache import Expected, FeatureCache, make_key, weights_digest
from harness.data import loading
from harness.planning import Plan

Arrays = dict[str, np.ndarray]


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
        splits = [s for s in loading.SPLITS if data.split(s) is not None and (test or s != "test")]
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
            stored, reason = None, None
            if cache is not None and key is not None:
                stored, reason = cache.read(key, self._expected(plan, splits, checksums))
            ran_on: str | None
            if stored is not None and (reason := _order_problem(stored, checksums)) is None:
                arrays, state, ran_on = {s: stored[s] for s in splits}, "hit", None
            else:
                # One pass over the splits back to back: one traced function, one ragged last batch.
                images = self._split(splits[0])
                for split in splits[1:]:
                    images = images.concatenate(self._split(split))
                frozen_pass = inference.FrozenPass(lower, self.frozen_runtime)
                ran_on = frozen_pass.ran_on
                # With a disk cache the pass writes to disk as it goes: an entry larger than memory is never held whole.
                scratch = (cache or FeatureCache(None)).scratch
                per_image = _per_image(plan)
                bounds = np.cumsum([0] + [data.sizes[s] for s in splits])
                out = None if per_image is None else scratch((int(bounds[-1]), *per_image))
                outputs = frozen_pass(image_batches(images).as_numpy_iterator(), out)
                arrays = {s: outputs[bounds[i] : bounds[i + 1]] for i, s in enumerate(splits)}
                if plan.views:
                    arrays["train"] = self._train_views(frozen_pass, arrays["train"], plan.views, scratch)
                state = "miss"
                if cache is not None and key is not None:
                    not_stored = cache.put(
                        key,
                        {**arrays, **{f"{s}_checksums": checksums[s] for s in splits}},
                        metadata={
                            "experiment": experiment.name,
                            "backbone": experiment.backbone.name,
                            "output": plan.training_path,
                            "dataset": experiment.dataset.identity,
                            "image_size": experiment.image_size,
                        },
                    )
                    reason = "; ".join(r for r in (reason, not_stored) if r) or None
        self._memory = {memory_key: arrays}  # keep one entry: the next phase usually needs another cut
        return arrays, state, ran_on, reason

    def _expected(self, plan: Plan, splits: list[str], checksums: dict[str, np.ndarray]) -> Expected:
        """The shape and dtype of every array of this plan's entry: what the frozen pass would compute."""
        assert plan.lower is not None
        expected: dict[str, tuple[tuple[int | None, ...], object]] = {}
        per_image = _per_image(plan)
        if per_image is not None:
            sizes = self.data.sizes
            expected.update({s: ((sizes[s], *per_image), np.float32) for s in splits})
            if plan.views:
                expected["train"] = ((len(plan.views), sizes["train"], *per_image), np.float32)
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
            image_size=self.experiment.image_size,
            output=plan.training_path,
            pooled=plan.pooled,
            views=plan.views,
            training=self.backbone_training,
            runtime=self.frozen_runtime,
            precision=self.policy,
        )

    def _split(self, name: str) -> tf.data.Dataset:
        dataset = self.data.split(name)
        assert dataset is not None, name
        return dataset

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
        images = train_images(self.data)
        for position, k in enumerate(views[1:], start=1):
            frozen_pass(inference.batches_of(symmetry.view(images, k), PREDICT_BATCH), stacked[position])
        return stacked


def _per_image(plan: Plan) -> tuple[int, ...] | None:
    """The shape of the frozen part's output for one image; None for a subclassed model (known once called)."""
    assert plan.lower is not None
    try:
        return tuple(plan.lower.output.shape[1:])
    except (AttributeError, ValueError):
        return None


def _order_problem(stored: Arrays, checksums: dict[str, np.ndarray]) -> str | None:
    """None when the entry was computed on these very images, in this order; else which split differs."""
    for split, computed in checksums.items():
        if not np.array_equal(stored[f"{split}_checksums"], computed):
            return f"the images of {split!r} differ from the entry's (another order or other images)"
    return None


def _split_name(dataset: spec.Dataset, role: str) -> str | None:
    if isinstance(dataset, spec.TfdsDataset):
        return dataset.splits[role]
    if isinstance(dataset, spec.ImageFolder):
        return f"test:{dataset.test_path}" if role == "test" else f"{role}:{dataset.validation_split}"
    return role
