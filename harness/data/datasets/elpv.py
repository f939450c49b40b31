"""ELPV: electroluminescence images of functional and defective solar cells, as a TFDS builder.

Importing this module registers the builder `elpv` with TFDS, so that
`tfds.builder("elpv", data_dir=...)` and `tfds.load("elpv", split=..., data_dir=...)` work:

    import tensorflow_datasets as tfds
    import harness.data.datasets.elpv  # noqa: F401 (registers "elpv")

    ds = tfds.load("elpv", split="train", data_dir=data_dir, as_supervised=True)

Preparation is offline. The images come from the installed PyPI package `elpv-dataset`
(`elpv_dataset/data/labels.csv` and `elpv_dataset/data/images/*.png`); nothing is downloaded.
To build from another copy of ELPV (for example a clone of the original repository), put its
`labels.csv` and `images/` in the download config's `manual_dir`, which then takes precedence.

The module-level functions (`parse_labels`, `stratified_split`, `split_sizes`,
`probability_to_label`, `is_defective`) are pure and need neither TensorFlow nor the images.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import pathlib
import struct
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

SPLIT_SEED = 2019
"""Seed of the fixed train/validation/test split (the year of Deitsch et al.)."""

SPLIT_PERCENTAGES: Mapping[str, int] = {"train": 65, "validation": 15, "test": 20}
"""Share of every (label, cell type) stratum that goes to each split, in percent."""

SPLIT_NAMES: tuple[str, ...] = tuple(SPLIT_PERCENTAGES)

LABEL_NAMES: tuple[str, ...] = ("p0", "p33", "p67", "p100")
"""Names of the 4-class `label`: defect probability 0, 1/3, 2/3 and 1, in that order."""

DEFECTIVE_NAMES: tuple[str, ...] = ("functional", "defective")
"""Names of the binary `defective` label (defective when the defect probability is >= 0.5)."""

CELL_TYPE_NAMES: tuple[str, ...] = ("mono", "poly")
"""Module types: monocrystalline or polycrystalline."""

IMAGE_SIZE = 300
"""Height and width of every ELPV image, in pixels."""

LABELS_FILENAME = "labels.csv"

HOMEPAGE = "https://github.com/zae-bayern/elpv-dataset"

_PACKAGE = "elpv_dataset"
_PIP_NAME = "elpv-dataset"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAYSCALE = 0
# The four probabilities ELPV uses differ by 1/3, so this tolerance only absorbs
# the rounding of "0.3333333333333333" and the like.
_PROBABILITY_TOLERANCE = 1e-6

_CITATION = r"""
@article{Deitsch2019,
  author    = {Sergiu Deitsch and Vincent Christlein and Stephan Berger and Claudia Buerhop-Lutz and Andreas Maier and Florian Gallwitz and Christian Riess},
  title     = {Automatic classification of defective photovoltaic module cells in electroluminescence images},
  journal   = {Solar Energy},
  year      = {2019},
  volume    = {185},
  pages     = {455--468},
  issn      = {0038-092X},
  doi       = {10.1016/j.solener.2019.02.067},
  publisher = {Elsevier {BV}},
}

@inproceedings{Buerhop2018,
  author    = {Claudia Buerhop-Lutz and Sergiu Deitsch and Andreas Maier and Florian Gallwitz and Stephan Berger and Bernd Doll and Jens Hauch and Christian Camus and Christoph J. Brabec},
  title     = {A Benchmark for Visual Identification of Defective Solar Cells in Electroluminescence Imagery},
  booktitle = {European PV Solar Energy Conference and Exhibition (EU PVSEC)},
  year      = {2018},
  doi       = {10.4229/35thEUPVSEC20182018-5CV.3.15},
}
"""

_DESCRIPTION = f"""
ELPV: 2,624 electroluminescence (EL) images of solar cells extracted from 44 photovoltaic
modules, each 300x300 pixels, 8-bit grayscale, normalized for size and perspective. Every cell
is annotated with a defect probability (0, 1/3, 2/3 or 1, from expert assessment) and the type
of the module it comes from (monocrystalline or polycrystalline).

Features: `image` (300x300x1 uint8), `defect_probability` (float32), `defective` (binary,
{DEFECTIVE_NAMES[1]!r} when the probability is >= 0.5), `label` (4 classes {", ".join(LABEL_NAMES)}
for probability 0, 1/3, 2/3, 1), `cell_type` ({" or ".join(CELL_TYPE_NAMES)}) and `filename`.

ELPV ships without splits. This builder fixes one, stratified by (`label`, `cell_type`): within
each of the 8 strata, the cells are sorted by file name and permuted with
`numpy.random.default_rng([{SPLIT_SEED}, label, cell_type_index])` (SPLIT_SEED = {SPLIT_SEED});
validation takes the first round_half_up(15% of n) cells, test the next
round_half_up(20% of n) and train the remaining ~65%. On the full data set this gives
train 1,705 / validation 394 / test 525.

The images are read offline from the `{_PIP_NAME}` PyPI package. The data set is licensed
CC BY-NC-SA 4.0 by its authors (non-commercial use).
"""

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Nothing to do by default: the builder reads ELPV from the installed `{_PIP_NAME}` package
(`pip install {_PIP_NAME}`). Optionally, to build from another copy of ELPV (for example a
clone of {HOMEPAGE}), put its `{LABELS_FILENAME}` and `images/` directory in `manual_dir`.
"""


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
    return probability_to_label(defect_probability) >= 2


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


def stratified_split(
    records: Iterable[ElpvRecord], *, seed: int = SPLIT_SEED
) -> dict[str, list[ElpvRecord]]:
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
    for previous, current in zip(ordered, ordered[1:]):
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


def package_data_dir() -> epath.Path:
    """Returns the data directory of the installed `elpv-dataset` package.

    Raises:
        ModuleNotFoundError: If `elpv-dataset` is not installed.
    """
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"The ELPV builder reads its images from the `{_PIP_NAME}` package, which is not "
            f"installed. Install it with `pip install {_PIP_NAME}`, or put ELPV's "
            f"{LABELS_FILENAME} and images/ in the download config's manual_dir. "
            f"Received: {error}",
            name=_PACKAGE,
        ) from error
    return epath.Path(str(root)) / "data"


def _check_png(data: bytes, filename: str) -> None:
    """Checks from the PNG header alone that an image is 300x300 8-bit grayscale."""
    if len(data) < 26 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError(
            f"ELPV image {filename!r} must be a PNG file. Reinstall `{_PIP_NAME}` or replace "
            f"the file. Received: {len(data)} bytes starting with {data[:16]!r}"
        )
    width, height, bit_depth, color_type = struct.unpack(">IIBB", data[16:26])
    if (width, height, bit_depth, color_type) != (IMAGE_SIZE, IMAGE_SIZE, 8, _PNG_GRAYSCALE):
        raise ValueError(
            f"ELPV image {filename!r} must be a {IMAGE_SIZE}x{IMAGE_SIZE} 8-bit grayscale PNG. "
            f"Reinstall `{_PIP_NAME}` or replace the file. Received: {width}x{height}, "
            f"bit depth {bit_depth}, PNG color type {color_type}"
        )


class Elpv(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for ELPV, read offline from the `elpv-dataset` package."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {
        "1.0.0": (
            f"Initial release: {_PIP_NAME} 1.0.0.post1, fixed split stratified by "
            f"(label, cell_type), seed {SPLIT_SEED}, 65/15/20."
        ),
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(IMAGE_SIZE, IMAGE_SIZE, 1),
                        encoding_format="png",
                        doc="Electroluminescence image of one solar cell, 8-bit grayscale.",
                    ),
                    "defect_probability": tfds.features.Scalar(
                        dtype=np.float32, doc="Expert defect probability: 0, 1/3, 2/3 or 1."
                    ),
                    "defective": tfds.features.ClassLabel(
                        names=list(DEFECTIVE_NAMES), doc="Defective when defect_probability >= 0.5."
                    ),
                    "label": tfds.features.ClassLabel(
                        names=list(LABEL_NAMES), doc="Defect probability 0, 1/3, 2/3 or 1 as 4 classes."
                    ),
                    "cell_type": tfds.features.ClassLabel(
                        names=list(CELL_TYPE_NAMES), doc="Type of the module the cell comes from."
                    ),
                    "filename": tfds.features.Text(doc="Image file name in ELPV, e.g. cell0001.png."),
                }
            ),
            supervised_keys=("image", "defective"),
            homepage=HOMEPAGE,
            citation=_CITATION,
            license="CC BY-NC-SA 4.0",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        source_dir = _source_dir(dl_manager)
        labels_path = source_dir / LABELS_FILENAME
        records = parse_labels(labels_path.read_text(), source=str(labels_path))
        return {
            name: self._generate_examples(source_dir, split_records)
            for name, split_records in stratified_split(records).items()
        }

    def _generate_examples(
        self, source_dir: epath.Path, records: Sequence[ElpvRecord]
    ) -> Iterator[tuple[str, dict[str, object]]]:
        for record in records:
            image = (source_dir / record.path).read_bytes()
            _check_png(image, record.filename)
            yield record.filename, {
                "image": image,
                "defect_probability": np.float32(record.defect_probability),
                "defective": int(record.defective),
                "label": record.label,
                "cell_type": record.cell_type,
                "filename": record.filename,
            }


def _source_dir(dl_manager: tfds.download.DownloadManager) -> epath.Path:
    """Returns `manual_dir` when it holds files, else the installed package's data directory."""
    try:
        manual_dir = dl_manager.manual_dir
    except AssertionError:  # TFDS's answer when the manual directory is absent or empty.
        return package_data_dir()
    manual_dir = epath.Path(manual_dir)
    if not (manual_dir / LABELS_FILENAME).exists():
        raise FileNotFoundError(
            f"The manual directory {manual_dir} is not empty, so the ELPV builder reads it, but it "
            f"has no {LABELS_FILENAME}. Put ELPV's {LABELS_FILENAME} and images/ there, or empty "
            f"it to read the installed `{_PIP_NAME}` package. "
            f"Received: {sorted(p.name for p in manual_dir.iterdir())[:10]}"
        )
    return manual_dir
