"""A loaded data set as the engine reads it, whatever its modality.

The engine, the caches, the checks and the exports read a data set through this interface only:
its splits' sizes, labels and content digests, batches of `(inputs, labels)` to train on,
batches of inputs to predict on, and (for sequences) each example's length. Each modality
implements it once: `harness.data.loading.ImageData` (decoded images in a `tf.data` pipeline),
`harness.data.text_loading.TextData` (token ids stored without their padding).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from harness import spec
from harness.ragged import Ragged

# Examples per batch of a prediction pass (the frozen pass, evaluation, exports).
PREDICT_BATCH = 64


@dataclass(kw_only=True)
class LoadedData:
    """The splits of one data set; `test` may be absent.

    `dataset` is the spec's data set as loaded: for TFDS, with the feature keys resolved (the
    builder's `supervised_keys` where the spec leaves them None). `slices` holds, per held-out
    split ("validation", "test"), the value of the `slice_feature` of every example as a string,
    in the split's order; empty when the data set declares no slices. `skipped_files` is what a
    folder's `bad_files="skip"` left out, per folder.
    """

    num_classes: int
    class_names: list[str]
    sizes: dict[str, int]
    dataset: spec.Dataset
    slice_feature: str | None = None
    slices: dict[str, list[str]] = field(default_factory=dict, repr=False)
    skipped_files: dict[str, Any] = field(default_factory=dict)
    truncated: dict[str, float] = field(default_factory=dict)  # text: the share of each split cut to its length
    _digests: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _labels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def resolve(self, experiment: spec.Experiment) -> spec.Experiment:
        """`experiment` with its data set as loaded (what the cache identity and reports must name)."""
        return dataclasses.replace(experiment, dataset=self.dataset)

    def has(self, split: str) -> bool:
        """Whether the data set has split `split` ("train" and "validation" always do)."""
        return split in self.sizes

    def labels(self, split: str) -> np.ndarray:
        """The labels of `split`, in order (computed once per split)."""
        self._require(split)
        if split not in self._labels:
            self._labels[split] = self._read_labels(split)
        return self._labels[split]

    def digests(self, split: str) -> np.ndarray:
        """A content digest of every example of `split`, in order: shape (examples, 16), uint8.

        Computed once per split: the held-out check compares them across splits, and a disk cache
        entry keeps them to tell a reordered data set.
        """
        self._require(split)
        if split not in self._digests:
            found = self._read_digests(split)
            self._digests[split] = np.frombuffer(b"".join(found), dtype=np.uint8).reshape(len(found), 16)
        return self._digests[split]

    def batches(self, split: str, batch_size: int, *, seed: int | None = None) -> tf.data.Dataset:
        """`(inputs, labels)` batches of `split`, reshuffled every epoch (seeded) when `seed` is set."""
        raise NotImplementedError

    def input_batches(self, *splits: str) -> tf.data.Dataset:
        """The inputs of `splits`, back to back, without labels, in order, in batches for prediction."""
        raise NotImplementedError

    def lengths(self, split: str) -> np.ndarray | None:
        """Each example's length for sequence inputs (what padding a batch leaves out); None for fixed-size inputs."""
        return None

    # What the examples are, as messages name them ("identical images").
    examples = "examples"
    # Whether `input_rows` gives the model's inputs by name (what feeds the inputs a cut passes through).
    feeds_input_rows = False

    def input_rows(self, split: str) -> Mapping[str, np.ndarray | Ragged]:
        """The model's inputs of `split` by input name, one row per example (where `feeds_input_rows`)."""
        raise NotImplementedError(f"{type(self).__name__} has no per-input rows")

    def _read_labels(self, split: str) -> np.ndarray:
        raise NotImplementedError

    def _read_digests(self, split: str) -> list[bytes]:
        raise NotImplementedError

    def _require(self, split: str) -> None:
        if not self.has(split):
            raise ValueError(f"the data set has no {split} split")
