"""ELPV's labels and its fixed split: parsing `labels.csv`, the label of a defect probability, the stratified split.

Pure functions over the label file's text; neither TensorFlow nor the images are needed.
`harness.data.datasets.elpv` (the TFDS builder) re-exports every name.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import pathlib
from collections.abc import Iterable, Mapping

import numpy as np

SPLIT_SEED = 2019
"""Seed of the fixed train/validation/test split (the year of Deitsch et al.)."""

SPLIT_PERCENTAGES: Mapping[str, int] = {"train": 65, "validation": 15, "test": 20}
"""Share of every (label, cell type) stratum that goes to each split, in percent."""

SPLIT_NAMES: tuple[str, ...] = tuple(SPLIT_PERCENTAGES)

LABEL_NAMES: tuple[str, ...] = ("p0", "p33", "p67", "p100")
"""Names of the 4-class `label`: defect probability 0, 1/3, 2/3 and 1, in that order."""

DEFECTIVE_NAMES: tuple[str, ...] = ("functional", "defective")
"""Names of the binary `defective` label (defective when the defect probability is >= 0.5)."""

FIRST_DEFECTIVE_LABEL = 2
"""The first 4-class `label` whose cells are `defective` (defect probability 2/3; 1 follows)."""

CELL_TYPE_NAMES: tuple[str, ...] = ("mono", "poly")
"""Module types: monocrystalline or polycrystalline."""

LABELS_FILENAME = "labels.csv"

# The four probabilities ELPV uses differ by 1/3, so this tolerance only absorbs
# the rounding of "0.3333333333333333" and the like.
_PROBABILITY_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True)
class ElpvRecord:
    """One row of ELPV's `labels.csv`.

    Attributes:
        path: Image path relative to the directory of `labels.csv`, as written in the
            file (e.g. `"images/cell0001.png"`).
        defect_probability: 0, 1/3, 2/3 or 1.
        cell_type: `"mono"` or `"poly"`.
    """

    path: str
    defect_probability: float
    cell_type: str

    @property
    def filename(self) -> str:
        """The image's file name (e.g. `"cell0001.png"`); also the example's TFDS key."""
        return pathlib.PurePosixPath(self.path).name

    @property
    def label(self) -> int:
        """Index into `LABEL_NAMES` (0 to 3)."""
        return probability_to_label(self.defect_probability)

    @property
    def defective(self) -> bool:
        """Whether the cell counts as defective (defect probability >= 0.5)."""
        return is_defective(self.defect_probability)


def probability_to_label(defect_probability: float) -> int:
    """Maps an ELPV defect probability to its 4-class label.

    Args:
        defect_probability: 0, 1/3, 2/3 or 1 (within 1e-6).

    Returns:
        The index into `LABEL_NAMES`: 0 for 0, 1 for 1/3, 2 for 2/3 and 3 for 1.

    Raises:
        ValueError: If the probability is not one of the four ELPV values.
    """
    scaled = float(defect_probability) * 3.0
    label = round(scaled) if math.isfinite(scaled) else -1
    if not 0 <= label <= 3 or abs(scaled - label) > 3 * _PROBABILITY_TOLERANCE:
        raise ValueError(
            "An ELPV defect probability must be one of 0, 1/3, 2/3 or 1. Check that the "
            f"labels come from ELPV's {LABELS_FILENAME}. "
            f"Received: defect_probability={defect_probability!r}"
        )
    return label


def is_defective(defect_probability: float) -> bool:
    """Returns whether a cell with this defect probability counts as defective (p >= 0.5).

    Args:
        defect_probability: 0, 1/3, 2/3 or 1.

    Raises:
        ValueError: If the probability is not one of the four ELPV values.
    """
    return probability_to_label(defect_probability) >= FIRST_DEFECTIVE_LABEL


def parse_labels(text: str, *, source: str = LABELS_FILENAME) -> list[ElpvRecord]:
    """Parses the text of ELPV's `labels.csv`.

    The file has one whitespace-separated row per image and no header:
    `images/cell0001.png  1.0                 mono`.

    Args:
        text: The file's content.
        source: Where the text comes from, for error messages. Defaults to `"labels.csv"`.

    Returns:
        The records in file order.

    Raises:
        ValueError: If a row does not have 3 fields, a probability or cell type is not
            one of ELPV's values, or two rows name the same image file.
    """
    records = []
    seen: dict[str, int] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {line_number} of {source}"
        if len(fields) != 3:
            raise ValueError(
                f"Each row of ELPV's {LABELS_FILENAME} must have 3 whitespace-separated fields "
                f"(image path, defect probability, cell type), but {where} has {len(fields)}. "
                f"Fix or replace the file. Received: {line!r}"
            )
        path, probability_text, cell_type = fields
        try:
            probability = float(probability_text)
            probability_to_label(probability)
        except ValueError:
            raise ValueError(
                f"The defect probability on {where} must be one of 0, 1/3, 2/3 or 1. "
                f"Fix or replace the file. Received: {probability_text!r}"
            ) from None
        if cell_type not in CELL_TYPE_NAMES:
            raise ValueError(
                f"The cell type on {where} must be one of {list(CELL_TYPE_NAMES)}. "
                f"Fix or replace the file. Received: {cell_type!r}"
            )
        record = ElpvRecord(path=path, defect_probability=probability, cell_type=cell_type)
        if record.filename in seen:
            raise ValueError(
                f"Each image may appear once in {source}, but {record.filename!r} appears on "
                f"lines {seen[record.filename]} and {line_number}. Remove the duplicate row. "
                f"Received: {line!r}"
            )
        seen[record.filename] = line_number
        records.append(record)
    return records


def split_sizes(num_examples: int) -> dict[str, int]:
    """Returns how many cells of a stratum of `num_examples` go to each split.

    Validation gets round_half_up(15% of n), test round_half_up(20% of n), computed in
    integers so that no float rounding is involved, and train the remaining ~65%.

    Args:
        num_examples: Size of the stratum (>= 0).

    Returns:
        `{"train": ..., "validation": ..., "test": ...}`, summing to `num_examples`.
    """
    if num_examples < 0:
        raise ValueError(
            "A stratum cannot have a negative size. Pass the number of records in the stratum. "
            f"Received: num_examples={num_examples}"
        )
    validation = (SPLIT_PERCENTAGES["validation"] * num_examples + 50) // 100
    test = (SPLIT_PERCENTAGES["test"] * num_examples + 50) // 100
    return {"train": num_examples - validation - test, "validation": validation, "test": test}


def stratified_split(records: Iterable[ElpvRecord], *, seed: int = SPLIT_SEED) -> dict[str, list[ElpvRecord]]:
    """Splits ELPV records into train, validation and test, stratified by (label, cell type).

    Within each stratum the records are sorted by file name, so that the result does not
    depend on the input order, then permuted with
    `np.random.default_rng([seed, label, cell_type_index])`: a stratum's split depends on
    that stratum's files only. The first `split_sizes(n)["validation"]` permuted records go
    to validation, the next `split_sizes(n)["test"]` to test, the rest to train.

    Args:
        records: The records to split; file names must be unique.
        seed: Seed of the split. Defaults to `SPLIT_SEED`.

    Returns:
        `{"train": [...], "validation": [...], "test": [...]}`, each list sorted by file
        name. The three lists are disjoint and together hold every record.

    Raises:
        ValueError: If two records have the same file name.
    """
    ordered = sorted(records, key=lambda record: record.filename)
    for previous, current in itertools.pairwise(ordered):
        if previous.filename == current.filename:
            raise ValueError(
                "Each ELPV image may appear once, since its file name is its key. Remove the "
                f"duplicate record. Received: {previous.path!r} and {current.path!r}"
            )
    splits: dict[str, list[ElpvRecord]] = {name: [] for name in SPLIT_NAMES}
    for label in range(len(LABEL_NAMES)):
        for type_index, cell_type in enumerate(CELL_TYPE_NAMES):
            stratum = [r for r in ordered if r.label == label and r.cell_type == cell_type]
            permutation = np.random.default_rng([seed, label, type_index]).permutation(len(stratum))
            shuffled = [stratum[i] for i in permutation]
            sizes = split_sizes(len(stratum))
            start_test = sizes["validation"]
            start_train = start_test + sizes["test"]
            splits["validation"] += shuffled[:start_test]
            splits["test"] += shuffled[start_test:start_train]
            splits["train"] += shuffled[start_train:]
    return {name: sorted(split, key=lambda record: record.filename) for name, split in splits.items()}
