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

The labels and the split (`parse_labels`, `stratified_split`, `split_sizes`,
`probability_to_label`, `is_defective`) are pure functions in `elpv_labels`, re-exported here.
"""

from __future__ import annotations

import importlib.resources
import struct
from collections.abc import Iterator, Sequence
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from harness.data.datasets.elpv_labels import (
    CELL_TYPE_NAMES,
    DEFECTIVE_NAMES,
    FIRST_DEFECTIVE_LABEL,
    LABEL_NAMES,
    LABELS_FILENAME,
    SPLIT_NAMES,
    SPLIT_PERCENTAGES,
    SPLIT_SEED,
    ElpvRecord,
    is_defective,
    parse_labels,
    probability_to_label,
    split_sizes,
    stratified_split,
)

__all__ = [
    "CELL_TYPE_NAMES",
    "DEFECTIVE_NAMES",
    "FIRST_DEFECTIVE_LABEL",
    "HOMEPAGE",
    "IMAGE_SIZE",
    "LABELS_FILENAME",
    "LABEL_NAMES",
    "SPLIT_NAMES",
    "SPLIT_PERCENTAGES",
    "SPLIT_SEED",
    "Elpv",
    "ElpvRecord",
    "is_defective",
    "package_data_dir",
    "parse_labels",
    "probability_to_label",
    "split_sizes",
    "stratified_split",
]

IMAGE_SIZE = 300
"""Height and width of every ELPV image, in pixels."""

HOMEPAGE = "https://github.com/zae-bayern/elpv-dataset"

_PACKAGE = "elpv_dataset"
_PIP_NAME = "elpv-dataset"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GRAYSCALE = 0
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
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
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
            yield (
                record.filename,
                {
                    "image": image,
                    "defect_probability": np.float32(record.defect_probability),
                    "defective": int(record.defective),
                    "label": record.label,
                    "cell_type": record.cell_type,
                    "filename": record.filename,
                },
            )


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
