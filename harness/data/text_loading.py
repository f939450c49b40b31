"""Turns a text data-set spec into token ids, tokenised once by the backbone's own preprocessor.

The texts of every split are read and checked first (`harness.data.text_files` for folders and
CSV files: every problem in one error), then tokenised in one pass by the keras-hub
`TextClassifierPreprocessor` of the experiment's preset at the data set's `sequence_length`: the
very inputs the backbone was trained on (`[CLS] ... [SEP]`, WordPiece or BPE ids, the padding
mask). Each input is kept for the real tokens only (`harness.ragged.Ragged`), in memory, and a
batch is padded to its own longest text, not to `sequence_length` as the plain keras-hub recipe
pads every batch: a batch of tweets runs on 30 tokens, not 128.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import tensorflow as tf

from harness import batching, spec
from harness.data import sources, text_files
from harness.data.errors import DataError
from harness.data.loaded import LoadedData
from harness.data.sources import describe
from harness.ragged import Ragged
from harness.spec.datasets import slice_feature

# The input every keras-hub text classifier's preprocessor gives: which tokens are real.
PADDING_MASK = "padding_mask"
# Texts per batch of the tokenising pass.
_TOKENISE_BATCH = 256
# How many empty texts a message lists per split.
_SHOWN = 10


class TruncationWarning(UserWarning):
    """Every training text is longer than `sequence_length`: the model sees none of them whole."""


@dataclass(kw_only=True)
class TextData(LoadedData):
    """The splits of a text data set as token ids: per split, each of the backbone's inputs as `Ragged` rows.

    `texts` keeps the raw texts (the exports take strings); `truncated` is the share of each
    split's texts cut to `sequence_length`; `preprocessor` is what tokenised them.
    """

    rows: dict[str, dict[str, Ragged]]
    texts: dict[str, list[str]] = field(repr=False)
    given_labels: dict[str, np.ndarray] = field(repr=False)
    preprocessor: Any = field(repr=False)
    feeds_input_rows = True
    examples = "texts"

    def has(self, split: str) -> bool:
        return split in self.rows

    def batches(self, split: str, batch_size: int, *, seed: int | None = None) -> tf.data.Dataset:
        return batching.rows(self.input_rows(split), self.labels(split), batch_size, seed=seed)

    def input_batches(self, *splits: str) -> tf.data.Dataset:
        batches = batching.input_batches(self.input_rows(splits[0]))
        for split in splits[1:]:
            batches = batches.concatenate(batching.input_batches(self.input_rows(split)))
        return batches

    def lengths(self, split: str) -> np.ndarray:
        return self.input_rows(split)[PADDING_MASK].lengths

    def input_rows(self, split: str) -> Mapping[str, Ragged]:
        self._require(split)
        return self.rows[split]

    def _read_labels(self, split: str) -> np.ndarray:
        return self.given_labels[split]

    def _read_digests(self, split: str) -> list[bytes]:
        # The texts, not their tokens: two articles that start alike are not one article cut short.
        return [hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest() for text in self.texts[split]]


def load(dataset: spec.Dataset, preprocessor: Any) -> TextData:
    """Reads and checks every split of `dataset`, then tokenises it with `preprocessor` (keras-hub's)."""
    raw = _read(dataset)
    problems = [p for split, found in raw.texts.items() if (p := _empty_texts(split, found))]
    if problems:
        where = describe(raw.dataset)
        raise DataError("\n".join([f"The {where} has empty texts:", *problems, "Remove them, or give them text."]))
    for name in ("train", "validation"):
        if not raw.texts[name]:
            raise DataError(
                f"The {name} split of {describe(raw.dataset)} is empty. Check the split declared in the spec."
            )
    special = _special_tokens(preprocessor)
    rows, truncated = {}, {}
    for split, found in raw.texts.items():
        rows[split], truncated[split] = _tokenised(found, preprocessor, special)
    if truncated["train"] == 1.0:
        warnings.warn(
            f"Every training text of the {describe(raw.dataset)} is longer than sequence_length="
            f"{preprocessor.sequence_length} tokens and is cut (validation: {truncated['validation']:.0%}): the "
            "model sees no text whole. Raise sequence_length (up to the preset's longest, e.g. 512 for BERT) if "
            "their ends matter.",
            TruncationWarning,
            stacklevel=2,
        )
    return TextData(
        rows=rows,
        texts=raw.texts,
        given_labels=raw.labels,
        truncated=truncated,
        preprocessor=preprocessor,
        num_classes=len(raw.class_names),
        class_names=raw.class_names,
        sizes={split: len(found) for split, found in raw.texts.items()},
        dataset=raw.dataset,
        slice_feature=slice_feature(raw.dataset),
        slices=raw.slices,
        skipped_files=raw.skipped,
    )


@dataclass
class _Raw:
    """A text data set as read, before tokenising: texts and labels by split."""

    dataset: spec.Dataset  # as loaded (a TFDS data set's keys resolved)
    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    class_names: list[str]
    slices: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, Any] = field(default_factory=dict)


def _read(dataset: spec.Dataset) -> _Raw:
    if isinstance(dataset, (spec.TextFolder, spec.TextCsv)):
        return _read_files(dataset)
    if isinstance(dataset, spec.TfdsDataset):
        resolved, splits, _, class_names, slices = sources.load_tfds(dataset)
        texts: dict[str, list[str]] = {}
        labels: dict[str, np.ndarray] = {}
        for role, ds in splits.items():
            if ds is None:
                continue
            pairs = list(ds.as_numpy_iterator())
            texts[role] = [_decoded(text) for text, _ in pairs]
            labels[role] = np.asarray([label for _, label in pairs], dtype=np.int32)
        return _Raw(resolved, texts, labels, class_names, slices)
    assert isinstance(dataset, spec.Arrays), dataset
    given, _, class_names = sources.load_arrays(dataset)
    texts = {role: [str(t) for t in xy[0]] for role, xy in given.items() if xy is not None}
    labels = {role: xy[1] for role, xy in given.items() if xy is not None}
    return _Raw(dataset, texts, labels, class_names, sources.array_slices(dataset, given))


def _decoded(text: Any) -> str:
    """A TFDS text feature's value (UTF-8 bytes) as a string."""
    return text.decode("utf-8") if isinstance(text, bytes) else str(text)


def _read_files(dataset: spec.TextFolder | spec.TextCsv) -> _Raw:
    """A text folder's or CSV file's splits, every problem of every source in one `DataError`."""
    found: list[str] = []
    skipped: dict[str, Any] = {}
    if isinstance(dataset, spec.TextFolder):
        read_folder = partial(text_files.read_text_folder, encoding=dataset.encoding, bad_files=dataset.bad_files)
        given, left_out = text_files.gather(found, partial(read_folder, dataset.path), dataset.validation_split)
        skipped["path"] = left_out
        test = None
        if dataset.test_path is not None:
            test, skipped["test_path"] = text_files.gather(
                found, partial(read_folder, dataset.test_path, class_names=given.class_names)
            )
        if dataset.bad_files == "error":
            skipped = {}
        else:
            skipped = {role: {"count": len(files), "files": files} for role, files in skipped.items()}
    else:
        read_csv = partial(
            text_files.read_text_csv,
            text_column=dataset.text_column,
            label_column=dataset.label_column,
            encoding=dataset.encoding,
        )
        given = text_files.gather(found, partial(read_csv, dataset.path), dataset.validation_split)
        test = None
        if dataset.test_path is not None:
            test = text_files.gather(found, partial(read_csv, dataset.test_path, class_names=given.class_names))
    if found:
        raise DataError("\n".join(found))
    train, validation = text_files.split_texts(given, dataset.validation_split, dataset.seed)
    parts = {"train": train, "validation": validation}
    if test is not None:
        parts["test"] = text_files.shuffled_texts(test, dataset.seed)
    return _Raw(
        dataset,
        texts={split: part.texts for split, part in parts.items()},
        labels={split: np.asarray(part.labels, dtype=np.int32) for split, part in parts.items()},
        class_names=list(given.class_names),
        skipped=skipped,
    )


def _empty_texts(split: str, texts: list[str]) -> str:
    """The line naming the texts of `split` that hold nothing but whitespace, or ""."""
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if not empty:
        return ""
    shown = ", ".join(f"#{i}" for i in empty[:_SHOWN]) + (
        f" and {len(empty) - _SHOWN} more" if len(empty) > _SHOWN else ""
    )
    return f"  {split}: {len(empty)} of {len(texts)} ({shown})"


def _special_tokens(preprocessor: Any) -> int:
    """How many tokens the preprocessor adds to every text (`[CLS]` and `[SEP]`: 2)."""
    return int(np.asarray(preprocessor(tf.constant([""]))[PADDING_MASK]).sum())


def _tokenised(texts: list[str], preprocessor: Any, special: int) -> tuple[dict[str, Ragged], float]:
    """`texts` through `preprocessor` in one pass: each input for the real tokens only, and the share truncated."""
    tokenizer, room = preprocessor.tokenizer, preprocessor.sequence_length - special

    def both(batch: tf.Tensor) -> tuple[Any, tf.Tensor]:
        return preprocessor(batch), tokenizer(batch).row_lengths()

    pipeline = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
    pipeline = pipeline.batch(_TOKENISE_BATCH).map(both).prefetch(tf.data.AUTOTUNE)
    kept: dict[str, list[np.ndarray]] = {}
    lengths, cut = [], 0
    for inputs, untruncated in pipeline.as_numpy_iterator():
        found = np.asarray(inputs[PADDING_MASK]).sum(axis=1)
        lengths.append(found)
        cut += int(np.sum(untruncated > room))
        for name, values in inputs.items():
            keep = np.arange(values.shape[1])[None, :] < found[:, None]
            kept.setdefault(name, []).append(np.asarray(values[keep], dtype=np.int32))
    every = np.concatenate(lengths).astype(np.int64)
    pads = _pad_values(preprocessor)
    rows = {name: Ragged(np.concatenate(values), every, pads.get(name, 0)) for name, values in kept.items()}
    return rows, cut / max(len(texts), 1)


def _pad_values(preprocessor: Any) -> dict[str, int]:
    """What pads each input past a text's end (RoBERTa pads its ids with 1, BERT with 0)."""
    probe = preprocessor(tf.constant([""]))
    if bool(np.asarray(probe[PADDING_MASK])[0, -1]):  # no room left to pad: nothing to read
        return {}
    return {name: int(np.asarray(values)[0, -1]) for name, values in probe.items()}


__all__ = ["PADDING_MASK", "TextData", "TruncationWarning", "load"]
